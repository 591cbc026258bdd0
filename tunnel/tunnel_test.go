package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const testSecret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ"

// gateway is a test gateway: an httptest server whose handler accepts
// agent tunnels and hands them to the test.
type gateway struct {
	srv   *httptest.Server
	conns chan *Conn
	errs  chan error
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newGateway(t testing.TB, ka Keepalive) *gateway {
	g := &gateway{conns: make(chan *Conn, 16), errs: make(chan error, 16), logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, AcceptConfig{
			Authenticate: func(_ context.Context, id, secret string) error {
				if id != "s1" || secret != testSecret {
					return errors.New("unknown session or wrong secret")
				}
				return nil
			},
			Keepalive: ka,
			Logger:    logger,
		})
		if err != nil {
			logger.Info("agent refused", "err", err)
			g.errs <- err
			return
		}
		g.conns <- c
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) url() string { return "ws" + strings.TrimPrefix(g.srv.URL, "http") + "/agent" }

// connect dials as the agent and returns both ends.
func connect(t testing.TB, g *gateway, url string, ka Keepalive) (agent, gw *Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	agent, err := Dial(ctx, DialConfig{URL: url, SessionID: "s1", Secret: testSecret, Version: "test", Keepalive: ka,
		Logger: slog.New(slog.NewTextHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case gw = <-g.conns:
	case <-ctx.Done():
		t.Fatal("gateway saw no connection")
	}
	t.Cleanup(func() { agent.Close(); gw.Close() })
	return agent, gw
}

// serveEcho accepts streams on c and echoes them until c closes.
func serveEcho(c *Conn) {
	for {
		s, err := c.AcceptStream(context.Background())
		if err != nil {
			return
		}
		go func() {
			defer s.Close()
			if s.Header.Service != "echo" {
				s.Reject(fmt.Sprintf("no service %q", s.Header.Service))
				return
			}
			s.Accept()
			io.Copy(s, s)
		}()
	}
}

func TestHelloAcceptAndReject(t *testing.T) {
	g := newGateway(t, Keepalive{})
	agent, gw := connect(t, g, g.url(), Keepalive{})
	if gw.SessionID() != "s1" || gw.AgentVersion() != "test" {
		t.Errorf("gateway sees session %q version %q", gw.SessionID(), gw.AgentVersion())
	}
	agent.Close()

	_, err := Dial(context.Background(), DialConfig{URL: g.url(), SessionID: "s1", Secret: "d3Jvbmc"})
	var rej *RejectedError
	if !errors.As(err, &rej) || rej.Reason != "unknown session or wrong secret" {
		t.Fatalf("dial with a wrong secret: %v; want a RejectedError with the authenticator's reason", err)
	}
	select {
	case <-g.errs:
	case <-time.After(5 * time.Second):
		t.Fatal("gateway did not report the rejection")
	}
	if strings.Contains(g.logs.String(), testSecret) || strings.Contains(g.logs.String(), "d3Jvbmc") {
		t.Errorf("a secret appears in the logs:\n%s", g.logs)
	}
}

func TestStreamRefusedWithReason(t *testing.T) {
	g := newGateway(t, Keepalive{})
	agent, gw := connect(t, g, g.url(), Keepalive{})
	go serveEcho(agent)
	_, err := gw.DialService(context.Background(), "jupyter")
	var se *StreamError
	if !errors.As(err, &se) || se.Reason != `no service "jupyter"` {
		t.Fatalf("DialService(jupyter) = %v; want the agent's reason", err)
	}
}

func TestManyConcurrentStreams(t *testing.T) {
	g := newGateway(t, Keepalive{})
	agent, gw := connect(t, g, g.url(), Keepalive{})
	go serveEcho(agent)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			s, err := gw.DialService(context.Background(), "echo")
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			msg := bytes.Repeat([]byte{byte(i)}, 1000+i*37)
			go s.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(s, got); err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("stream %d: echo differs (%v)", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestLargeTransferBothWays(t *testing.T) {
	const size = 64 << 20
	g := newGateway(t, Keepalive{})
	agent, gw := connect(t, g, g.url(), Keepalive{})
	// The agent's side hashes what it receives, then sends size random
	// bytes followed by nothing; the gateway checks both hashes.
	sent := make([]byte, size)
	rand.Read(sent)
	go func() {
		s, err := agent.AcceptStream(context.Background())
		if err != nil {
			return
		}
		s.Accept()
		h := sha256.New()
		io.CopyN(h, s, size)
		s.Write(h.Sum(nil))
		s.Write(sent)
		s.Close()
	}()
	s, err := gw.OpenStream(context.Background(), Header{Kind: KindTCP, Service: "sink"})
	if err != nil {
		t.Fatal(err)
	}
	up := make([]byte, size)
	rand.Read(up)
	start := time.Now()
	go s.Write(up)
	sum := make([]byte, sha256.Size)
	if _, err := io.ReadFull(s, sum); err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(up); !bytes.Equal(sum, want[:]) {
		t.Fatal("64 MiB gateway→agent arrived corrupted")
	}
	h := sha256.New()
	n, err := io.Copy(h, s)
	if err != nil || n != size {
		t.Fatalf("agent→gateway: %d bytes, %v", n, err)
	}
	if want := sha256.Sum256(sent); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("64 MiB agent→gateway arrived corrupted")
	}
	t.Logf("2×64 MiB in %v", time.Since(start))
}

// streamListener is a net.Listener of accepted tunnel streams, so that an
// http.Server can serve them (as the agent does for HTTP services).
type streamListener struct {
	c    chan net.Conn
	done chan struct{}
	once sync.Once
}

func serveHTTP(t testing.TB, c *Conn, h http.Handler) { serveHTTPWith(t, c, &http.Server{Handler: h}) }

// serveHTTPWith serves srv on c's incoming streams until the test ends.
func serveHTTPWith(t testing.TB, c *Conn, srv *http.Server) {
	l := &streamListener{c: make(chan net.Conn), done: make(chan struct{})}
	go func() {
		for {
			s, err := c.AcceptStream(context.Background())
			if err != nil {
				l.Close()
				return
			}
			s.Accept()
			select {
			case l.c <- s:
			case <-l.done:
				return
			}
		}
	}()
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func (l *streamListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *streamListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *streamListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// proxyTo is the gateway's app proxy in miniature: httputil.ReverseProxy
// over tunnel streams.
func proxyTo(t testing.TB, gw *Conn, service string) *httptest.Server {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: service})
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return gw.DialService(ctx, service)
			},
			// As many idle streams as clients, as the app proxy keeps.
			MaxIdleConnsPerHost: 100,
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPThroughReverseProxy(t *testing.T) {
	g := newGateway(t, Keepalive{})
	agent, gw := connect(t, g, g.url(), Keepalive{})
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello ", r.Host) })
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		fmt.Fprint(w, "second\n")
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			typ, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			ws.WriteMessage(typ, append([]byte("echo: "), b...))
		}
	})
	serveHTTP(t, agent, mux)
	front := proxyTo(t, gw, "app")

	resp, err := http.Get(front.URL + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello app" {
		t.Errorf("GET /hello = %q", b)
	}

	// Chunked streaming: the first chunk arrives before the handler writes
	// the second.
	resp, err = http.Get(front.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("first chunk %q, %v", buf, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "second\n" || resp.TransferEncoding == nil {
		t.Errorf("rest %q, transfer encoding %v", rest, resp.TransferEncoding)
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	for _, m := range []string{"a", "ünïcödé", strings.Repeat("x", 100000)} {
		ws.WriteMessage(websocket.TextMessage, []byte(m))
		_, got, err := ws.ReadMessage()
		if err != nil || string(got) != "echo: "+m {
			t.Fatalf("websocket echo of %.20q: %.30q, %v", m, got, err)
		}
	}
}

// idleProxy forwards TCP like an intermediary with an idle timeout: it
// drops a connection that carried nothing for idle. freeze stops it
// forwarding without closing anything, as a dead peer or network does.
type idleProxy struct {
	l      net.Listener
	idle   time.Duration
	mu     sync.Mutex
	frozen bool
}

func newIdleProxy(t testing.TB, target string, idle time.Duration) *idleProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &idleProxy{l: l, idle: idle}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			go p.pipe(in, out)
			go p.pipe(out, in)
		}
	}()
	return p
}

func (p *idleProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		src.SetReadDeadline(time.Now().Add(p.idle))
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		frozen := p.frozen
		p.mu.Unlock()
		if frozen {
			select {} // swallow everything, forever: a black hole
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

func (p *idleProxy) freeze() { p.mu.Lock(); p.frozen = true; p.mu.Unlock() }

func TestKeepaliveSurvivesIdleTimeoutAndDetectsDeadPeer(t *testing.T) {
	ka := Keepalive{Interval: 100 * time.Millisecond, Timeout: 600 * time.Millisecond}
	g := newGateway(t, ka)
	proxy := newIdleProxy(t, g.srv.Listener.Addr().String(), 400*time.Millisecond)
	agent, gw := connect(t, g, "ws://"+proxy.l.Addr().String()+"/agent", ka)
	go serveEcho(agent)
	s, err := gw.DialService(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	// Idle for five times the intermediary's idle timeout.
	time.Sleep(2 * time.Second)
	s.Write([]byte("still there?"))
	got := make([]byte, 12)
	if _, err := io.ReadFull(s, got); err != nil || string(got) != "still there?" {
		t.Fatalf("idle stream after 2 s: %q, %v", got, err)
	}

	proxy.freeze()
	start := time.Now()
	for _, c := range []*Conn{agent, gw} {
		select {
		case <-c.Done():
		case <-time.After(10 * ka.Timeout):
			t.Fatalf("dead peer not detected within %v", 10*ka.Timeout)
		}
	}
	t.Logf("dead peer detected after %v (timeout %v)", time.Since(start), ka.Timeout)
	if _, err := s.Write([]byte("x")); err == nil {
		if _, err := s.Read(got); err == nil {
			t.Error("stream still usable after its connection died")
		}
	}
}

// A peer that stops reading while this end sends must not hang the
// sender: the write deadline and the keepalive end the connection, and a
// blocked stream write returns an error.
func TestDeadPeerDetectedWhileSending(t *testing.T) {
	ka := Keepalive{Interval: 100 * time.Millisecond, Timeout: 600 * time.Millisecond}
	g := newGateway(t, ka)
	proxy := newIdleProxy(t, g.srv.Listener.Addr().String(), time.Minute)
	agent, gw := connect(t, g, "ws://"+proxy.l.Addr().String()+"/agent", ka)
	go serveEcho(agent)
	s, err := gw.DialService(context.Background(), "echo")
	if err != nil {
		t.Fatal(err)
	}
	proxy.freeze()
	wrote := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			if _, err := s.Write(buf); err != nil {
				wrote <- err
				return
			}
		}
	}()
	start := time.Now()
	for _, c := range []*Conn{gw, agent} {
		select {
		case <-c.Done():
		case <-time.After(10 * ka.Timeout):
			t.Fatalf("peer behind a black hole not detected within %v while sending", 10*ka.Timeout)
		}
	}
	select {
	case err := <-wrote:
		t.Logf("dead peer detected after %v; the blocked write returned %v", time.Since(start), err)
	case <-time.After(10 * ka.Timeout):
		t.Fatal("a stream write to a dead peer still blocks after its connection closed")
	}
}

// A stream the gateway closes while the agent is still sending (a browser
// leaving a download mid-way) must free the agent's side within the
// keepalive timeout: its blocked write fails, so its copy ends and the
// app's connection closes, instead of waiting out yamux's default five
// minutes with everything pinned.
func TestAbortedDownloadFreesTheAgentSide(t *testing.T) {
	ka := Keepalive{Interval: 100 * time.Millisecond, Timeout: 600 * time.Millisecond}
	g := newGateway(t, ka)
	agent, gw := connect(t, g, g.url(), ka)
	wrote := make(chan error, 1)
	go func() {
		s, err := agent.AcceptStream(context.Background())
		if err != nil {
			wrote <- err
			return
		}
		s.Accept()
		defer s.Close()
		buf := make([]byte, 64<<10)
		for { // an endless download that never reads
			if _, err := s.Write(buf); err != nil {
				wrote <- err
				return
			}
		}
	}()
	s, err := gw.OpenStream(context.Background(), Header{Kind: KindHTTP, Service: "download"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	start := time.Now()
	select {
	case err := <-wrote:
		t.Logf("the agent's write failed %v after the gateway's close: %v", time.Since(start), err)
	case <-time.After(10 * ka.Timeout):
		t.Fatalf("the agent still writes into a stream the gateway closed %v ago (keepalive timeout %v)", 10*ka.Timeout, ka.Timeout)
	}
	deadline := time.Now().Add(5 * time.Second)
	for (agent.NumStreams() > 0 || gw.NumStreams() > 0) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if a, g := agent.NumStreams(), gw.NumStreams(); a+g > 0 {
		t.Errorf("%d streams open on the agent, %d on the gateway after the aborted download; want none", a, g)
	}
}
