package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slurmgate/slurmgate/apptainer"
	"github.com/slurmgate/slurmgate/tunnel"
)

// service is one running app: its process, where it listens, the proxy
// that adapts the gateway's HTTP streams to it (when they need it), and
// its readiness.
type service struct {
	cfg     Service
	network string // "unix" or "tcp"
	address string
	token   string
	// shape is what each HTTP request needs (the credential the agent
	// gave the app, the gateway's prefix removed); set before the service
	// starts and never changed. Zero when nothing.
	shape tunnel.HTTPShape

	streams *streamListener // HTTP streams from the gateway, when proxied; nil when spliced
	srv     *http.Server

	mu    sync.Mutex
	state tunnel.ServiceState
}

func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the app binds; the readiness probe then fails visibly.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startService expands the service's command, starts it inside the
// container and probes it until it is ready.
func (a *Agent) startService(cfg Service) (*service, error) {
	svc := &service{cfg: cfg, token: newToken(), state: tunnel.ServiceState{Name: cfg.Name}}
	// Any user of the node can read a command line (/proc/PID/cmdline):
	// the token goes in the environment, never in argv.
	if slices.ContainsFunc(cfg.Command, func(w string) bool { return strings.Contains(w, "{token}") }) {
		return svc, apptainer.TokenInCommandError(cfg.Name)
	}
	vars := map[string]string{"{token}": svc.token, "{base_url}": "/", "{port}": "", "{socket}": ""}
	if cfg.BaseURL {
		vars["{base_url}"] = "/s/" + a.cfg.SessionID + "/" + cfg.Name + "/"
	}
	if cfg.Socket {
		svc.network = "unix"
		svc.address = filepath.Join(a.stateDir, cfg.Name+".sock")
		vars["{socket}"] = svc.address
	} else {
		port := cfg.Port
		if port == 0 {
			var err error
			if port, err = freePort(); err != nil {
				return svc, fmt.Errorf("service %s: no free port: %w", cfg.Name, err)
			}
		}
		svc.network, svc.address = "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		vars["{port}"] = strconv.Itoa(port)
	}
	expand := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, k, v)
		}
		return s
	}
	if cfg.AuthHeader != "" {
		name, value, _ := strings.Cut(expand(cfg.AuthHeader), ":")
		svc.shape.AuthHeader, svc.shape.AuthValue = strings.TrimSpace(name), strings.TrimSpace(value)
	}
	argv := make([]string, len(cfg.Command))
	for i, s := range cfg.Command {
		argv[i] = expand(s)
	}
	env := append([]string{"SLURMGATE_SERVICE=" + cfg.Name}, cfg.Env...)
	for i, kv := range env {
		env[i] = expand(kv)
	}
	if strings.Contains(cfg.AuthHeader, "{token}") {
		// The app learns the token it must demand from its environment,
		// which only its user and root can read: Jupyter reads
		// JUPYTER_TOKEN, other apps SLURMGATE_SERVICE_TOKEN.
		env = append(env, "SLURMGATE_SERVICE_TOKEN="+svc.token, "JUPYTER_TOKEN="+svc.token)
	}
	svc.shape.StripPrefix = !cfg.BaseURL
	if cfg.Protocol == "http" && svc.shape != (tunnel.HTTPShape{}) {
		// A service whose requests need changing (its credentials added,
		// the gateway's prefix stripped) says how in its reports, and
		// the gateway does it: its http streams come Shaped and are
		// spliced to the app like the others' (serveStream). The proxy
		// here serves what the gateway does not shape: forwarded ports
		// (tcp streams), and gateways that predate shaping.
		svc.state.Shape = &svc.shape
		svc.streams = newStreamListener()
		svc.srv = &http.Server{Handler: a.serviceProxy(svc), ReadHeaderTimeout: time.Minute}
		go svc.srv.Serve(svc.streams)
	}
	cmd, err := a.instance().Command(a.life, argv, env)
	if err != nil {
		return svc, fmt.Errorf("service %s: %w", cfg.Name, err)
	}
	cmd.Stdout = prefixWriter(a.stderr, cfg.Name)
	cmd.Stderr = cmd.Stdout
	if err := a.procs.start(cmd, nil); err != nil {
		return svc, fmt.Errorf("service %s: cannot start %s: %w", cfg.Name, argv[0], err)
	}
	exited := make(chan struct{})
	go func() {
		code, err := a.procs.wait(cmd)
		close(exited)
		msg := fmt.Sprintf("exited with status %d", code)
		if err != nil {
			msg = err.Error()
		}
		a.log.Warn("service ended", "service", cfg.Name, "status", msg)
		svc.setState(false, msg)
		a.changed()
	}()
	go a.probe(svc, exited)
	return svc, nil
}

// probe polls the service until it answers, backing off from 50 ms to 1 s.
func (a *Agent) probe(svc *service, exited <-chan struct{}) {
	delay := 50 * time.Millisecond
	for {
		select {
		case <-exited:
			return
		case <-a.life.Done():
			return
		case <-time.After(delay):
		}
		if err := svc.check(a.life); err == nil {
			svc.setState(true, "")
			a.log.Info("service ready", "service", svc.cfg.Name, "listen", svc.address)
			a.changed()
			return
		}
		delay = min(2*delay, time.Second)
	}
}

// check is one readiness probe: any HTTP response, or an accepted TCP
// connection.
func (svc *service) check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if svc.cfg.Protocol != "http" {
		c, err := svc.dial(ctx)
		if err == nil {
			c.Close()
		}
		return err
	}
	path := svc.cfg.ReadyPath
	if path == "" {
		path = "/"
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+svc.cfg.Name+path, nil)
	if svc.shape.AuthHeader != "" {
		req.Header.Set(svc.shape.AuthHeader, svc.shape.AuthValue)
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return svc.dial(ctx) }}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (svc *service) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, svc.network, svc.address)
}

func (svc *service) setState(ready bool, errText string) {
	svc.mu.Lock()
	svc.state.Ready, svc.state.Error = ready, errText
	svc.mu.Unlock()
}

func (svc *service) State() tunnel.ServiceState {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.state
}

// serviceProxy forwards the gateway's requests to the app, adding the
// service's credentials; WebSocket upgrades and streamed bodies pass.
func (a *Agent) serviceProxy(svc *service) http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			a.activity.requests.Add(1)
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = svc.cfg.Name
			r.Out.Host = r.In.Host // the gateway chose what the app sees
			// The gateway forwards /s/{session}/{name}/… as the browser
			// sent it, unshaped on these streams.
			svc.shape.Apply(r.Out, a.cfg.SessionID, svc.cfg.Name)
		},
		Transport: &http.Transport{
			DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return svc.dial(ctx) },
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     time.Minute,
		},
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, fmt.Sprintf("service %s is not answering: %v (state: %+v)", svc.cfg.Name, err, svc.State()), http.StatusBadGateway)
		},
	}
}

// streamListener hands accepted tunnel streams to an http.Server.
type streamListener struct {
	c    chan net.Conn
	done chan struct{}
	once sync.Once
}

func newStreamListener() *streamListener {
	return &streamListener{c: make(chan net.Conn), done: make(chan struct{})}
}

func (l *streamListener) push(c net.Conn) bool {
	select {
	case l.c <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *streamListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *streamListener) Addr() net.Addr { return &net.UnixAddr{Name: "tunnel", Net: "unix"} }

// activity counts traffic on proxied streams for idleness reports.
type activity struct {
	streams, requests, bytes atomic.Int64
}

func (a *activity) take() *tunnel.Activity {
	return &tunnel.Activity{Streams: a.streams.Swap(0), Requests: a.requests.Swap(0), Bytes: a.bytes.Swap(0)}
}

// countingConn counts the bytes of a proxied stream.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// splice copies both ways until both directions have ended, passing each
// end-of-stream on as a half-close.
func splice(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		pump(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close() // a yamux stream's Close is its half-close
		}
	}
	wg.Go(func() { cp(a, b) })
	wg.Go(func() { cp(b, a) })
	wg.Wait()
	a.Close()
	b.Close()
}

// bulkBuffers serve pump while data comes faster than it is read.
var bulkBuffers = sync.Pool{New: func() any { return new([256 << 10]byte) }}

// pump copies src to dst like io.Copy, in 32 KiB reads, and in 256 KiB
// ones while reads fill the buffer (a download): a quarter of the system
// calls, and frames as large as the tunnel's window. The large buffer goes
// back to the pool once a read comes back short, so an idle kept-alive
// stream holds only the small one.
func pump(dst io.Writer, src io.Reader) error {
	small := make([]byte, 32<<10)
	var big *[256 << 10]byte
	defer func() {
		if big != nil {
			bulkBuffers.Put(big)
		}
	}()
	for {
		buf := small
		if big != nil {
			buf = big[:]
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case big == nil && n == len(buf):
			big = bulkBuffers.Get().(*[256 << 10]byte)
		case big != nil && n < len(buf):
			bulkBuffers.Put(big)
			big = nil
		}
	}
}

// prefixWriter prefixes each line a service writes with its name, so that
// the job's output file says which app said what.
func prefixWriter(w io.Writer, name string) io.Writer {
	return &linePrefixer{w: w, prefix: []byte("[" + name + "] "), bol: true}
}

type linePrefixer struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	bol    bool
}

func (p *linePrefixer) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for _, c := range b {
		if p.bol {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		p.bol = c == '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
