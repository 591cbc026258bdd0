package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/slurmgate/slurmgate/apptainer"
	"github.com/slurmgate/slurmgate/tunnel"
)

// Options are the agent's collaborators; the zero value suits a job.
type Options struct {
	// Driver runs the container; nil looks up Config.Runtime.
	Driver apptainer.Driver
	Logger *slog.Logger
	// Stdout and Stderr receive the batch command's output and the
	// services' logs (default: the job's, i.e. Slurm's output files).
	Stdout, Stderr io.Writer
	Version        string
	Keepalive      tunnel.Keepalive
	// TLS overrides the one built from Config.GatewayCAFile.
	TLS *tls.Config
	// MaxBackoff caps the delay between reconnection attempts (default 30s).
	MaxBackoff time.Duration
}

// Agent supervises one session on its node. Run it once.
type Agent struct {
	cfg      *Config
	driver   apptainer.Driver
	log      *slog.Logger
	stdout   io.Writer
	stderr   io.Writer
	dial     tunnel.DialConfig
	backoff  time.Duration
	stateDir string

	// life outlives the Run context: processes get a graceful stop after
	// the signal, and life ends only when everything has stopped.
	life    context.Context
	endLife context.CancelFunc
	stop    context.CancelCauseFunc

	procs    procs
	activity activity
	sampler  *sampler
	notify   chan struct{}

	mu       sync.Mutex
	inst     apptainer.Instance
	services []*service
	exit     *tunnel.ExitStatus
	stopping string
	report   *reportStream
	// connected says a tunnel is up; stopSent is closed once the gateway
	// has been sent why the session stops (shutdown waits for it briefly).
	connected    bool
	stopSent     chan struct{}
	stopSentOnce sync.Once

	ssh *sshServer // the built-in SSH service (ssh.go)
}

// New checks cfg and prepares an agent.
func New(cfg *Config, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, driver: opts.Driver, log: opts.Logger, stdout: opts.Stdout, stderr: opts.Stderr,
		backoff: opts.MaxBackoff, notify: make(chan struct{}, 1), sampler: newSampler(), stopSent: make(chan struct{})}
	if a.driver == nil {
		d, err := apptainer.LookupDriver(cfg.Runtime)
		if err != nil {
			return nil, err
		}
		a.driver = d
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	a.log = a.log.With("session", cfg.SessionID)
	if a.stdout == nil {
		a.stdout = os.Stdout
	}
	if a.stderr == nil {
		a.stderr = os.Stderr
	}
	if a.backoff <= 0 {
		a.backoff = 30 * time.Second
	}
	tlsConf := opts.TLS
	if tlsConf == nil && cfg.GatewayCAFile != "" {
		pem, err := os.ReadFile(cfg.GatewayCAFile)
		if err != nil {
			return nil, fmt.Errorf("gateway CA: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("gateway CA %s holds no PEM certificate", cfg.GatewayCAFile)
		}
		tlsConf = &tls.Config{RootCAs: pool}
	}
	a.dial = tunnel.DialConfig{URL: cfg.GatewayURL, SessionID: cfg.SessionID, Secret: cfg.Secret,
		Version: opts.Version, TLS: tlsConf, Keepalive: opts.Keepalive, Logger: a.log}
	ssh, err := newSSHServer(opts.Version)
	if err != nil {
		return nil, err
	}
	a.ssh = ssh
	a.stateDir = cfg.StateDir
	if a.stateDir == "" {
		a.stateDir = filepath.Join(os.TempDir(), "slurmgate-"+cfg.SessionID)
	}
	if cfg.CacheDir == "" && cfg.Runtime == "charliecloud" {
		// Node-local and per user, so a SIF is extracted once per node
		// and user, not once per session (imagecache.go keys it by content).
		cfg.CacheDir = filepath.Join(os.TempDir(), "slurmgate-images-"+strconv.Itoa(os.Getuid()))
	}
	return a, nil
}

// Run runs the session until it ends: a batch command exits, the gateway
// asks it to stop, or ctx is cancelled (SIGTERM from Slurm; pass the
// reason as ctx's cause). It returns the job's exit status: the batch
// command's, else 0.
func (a *Agent) Run(ctx context.Context) (int, error) {
	ctx, a.stop = context.WithCancelCause(ctx)
	defer a.stop(nil)
	a.life, a.endLife = context.WithCancel(context.WithoutCancel(ctx))
	defer a.endLife()

	if err := privateDir(a.stateDir); err != nil {
		return 1, err
	}
	defer os.RemoveAll(a.stateDir)
	if a.cfg.CacheDir != "" {
		if err := privateDir(a.cfg.CacheDir); err != nil {
			return 1, fmt.Errorf("image cache: %w", err)
		}
	}

	connCtx, stopConn := context.WithCancel(a.life)
	connDone := make(chan struct{})
	go func() { defer close(connDone); a.connectLoop(connCtx) }()
	defer func() { stopConn(); <-connDone }()

	inst, err := a.driver.Start(ctx, a.cfg.spec(a.stateDir))
	if err != nil {
		err = fmt.Errorf("start %s container: %w", a.driver.Name(), err)
		a.shutdown(err.Error())
		return 1, err
	}
	a.mu.Lock()
	a.inst = inst
	a.mu.Unlock()
	a.log.Info("container started", "runtime", a.driver.Name(), "image", a.cfg.Image)

	for _, sc := range a.cfg.Services {
		svc, err := a.startService(sc)
		if err != nil {
			a.log.Error("service failed to start", "service", sc.Name, "err", err)
			svc.setState(false, err.Error())
		}
		a.mu.Lock()
		a.services = append(a.services, svc)
		a.mu.Unlock()
	}
	a.changed()

	if !a.cfg.Interactive {
		done := make(chan tunnel.ExitStatus, 1)
		go func() { done <- a.runBatch(a.cfg.Command) }()
		select {
		case st := <-done:
			a.mu.Lock()
			a.exit = &st
			a.mu.Unlock()
			a.shutdown(fmt.Sprintf("batch command exited with status %d", st.Code))
			return st.Code, nil
		case <-ctx.Done():
			a.shutdown(stopReason(ctx))
			st := <-done
			return st.Code, nil
		}
	}
	if a.cfg.Command != "" {
		go func() {
			st := a.runBatch(a.cfg.Command)
			a.log.Info("startup command ended", "status", st.Code, "err", st.Error)
		}()
	}
	<-ctx.Done()
	a.shutdown(stopReason(ctx))
	return 0, nil
}

func stopReason(ctx context.Context) string {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c.Error()
	}
	return "the agent was told to stop"
}

// shutdown tells the gateway why the session stops, then stops every
// process (SIGTERM, grace, SIGKILL) and the container.
func (a *Agent) shutdown(reason string) {
	a.log.Info("stopping", "reason", reason)
	a.mu.Lock()
	a.stopping = reason
	inst, services := a.inst, a.services
	a.mu.Unlock()
	a.sendReport(tunnel.Report{Stopping: reason, Exit: a.exitStatus()})
	a.mu.Lock()
	connected := a.connected
	a.mu.Unlock()
	if connected {
		// A stop that came before the report stream opened (the
		// gateway's own, right after connecting) goes out with the
		// stream's first report: wait for it, briefly, so the session
		// ends with its reason rather than as "the agent disconnected".
		select {
		case <-a.stopSent:
		case <-time.After(stopReportWait):
		}
	}
	for _, svc := range services {
		if svc.srv != nil {
			svc.srv.Close()
			svc.streams.Close()
		}
	}
	a.procs.stopAll(a.cfg.stopGrace())
	if inst != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.life), a.cfg.stopGrace()+5*time.Second)
		if err := inst.Stop(ctx); err != nil {
			a.log.Warn("container stop", "err", err)
		}
		cancel()
	}
}

func (a *Agent) instance() apptainer.Instance {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inst
}

func (a *Agent) exitStatus() *tunnel.ExitStatus {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.exit
}

// changed wakes the report stream to send the services' state.
func (a *Agent) changed() {
	select {
	case a.notify <- struct{}{}:
	default:
	}
}

// connectLoop keeps a connection to the gateway until ctx ends, redialling
// with capped exponential backoff and full jitter (many agents restarting
// at once after a gateway restart must not arrive in lockstep).
func (a *Agent) connectLoop(ctx context.Context) {
	delay := 250 * time.Millisecond
	for ctx.Err() == nil {
		conn, err := tunnel.Dial(ctx, a.dial)
		if err != nil {
			wait := time.Duration(rand.Int64N(int64(delay)) + 1)
			a.log.Warn("cannot reach the gateway; retrying", "err", err, "in", wait.Round(time.Millisecond))
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
			delay = min(2*delay, a.backoff)
			continue
		}
		delay = 250 * time.Millisecond
		a.log.Info("connected to the gateway", "url", a.dial.URL)
		a.setConnected(true)
		a.serveConn(ctx, conn)
		a.setConnected(false)
		conn.Close()
		if ctx.Err() == nil {
			a.log.Warn("lost the gateway connection; reconnecting")
		}
	}
}

func (a *Agent) setConnected(up bool) {
	a.mu.Lock()
	a.connected = up
	a.mu.Unlock()
}

// stopReportWait bounds how long shutdown waits for the report stream to
// carry the reason the session stops.
const stopReportWait = 3 * time.Second

// serveConn serves the gateway's streams and sends reports until the
// connection ends.
func (a *Agent) serveConn(ctx context.Context, conn *tunnel.Conn) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { a.reportLoop(ctx, conn) })
	for {
		s, err := conn.AcceptStream(ctx)
		if err != nil {
			conn.Close()
			return
		}
		go a.serveStream(s)
	}
}

func (a *Agent) serveStream(s *tunnel.Stream) {
	h := s.Header
	switch h.Kind {
	case tunnel.KindHTTP:
		svc := a.service(h.Service)
		if svc == nil || svc.cfg.Protocol != "http" {
			s.Reject(a.noService(h.Service, "http"))
			return
		}
		if svc.streams == nil || h.Shaped {
			// Nothing (left) to change in the app's requests: the
			// gateway's HTTP goes straight through, unparsed.
			a.spliceStream(s, svc.dial)
			return
		}
		a.proxyStream(s, svc)
	case tunnel.KindTCP:
		switch {
		case h.Service == SSHService && a.service(SSHService) == nil:
			if err := s.Accept(); err != nil {
				s.Close()
				return
			}
			a.activity.streams.Add(1)
			a.serveSSH(countingConn{s, &a.activity.bytes})
		case h.Service != "":
			svc := a.service(h.Service)
			if svc == nil {
				s.Reject(a.noService(h.Service, "tcp"))
				return
			}
			if svc.streams != nil {
				// An HTTP service whose credentials only this agent knows
				// (a token-guarded Jupyter): a forwarded port (slurmgate
				// app forward) carries HTTP too, and the gateway has
				// already checked the caller may use the session, so it
				// goes through the proxy that adds them. The token still
				// keeps other users on the node out of the port itself.
				a.proxyStream(s, svc)
				return
			}
			a.spliceStream(s, svc.dial)
		case h.Port > 0 && h.Port < 65536:
			a.spliceStream(s, func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(h.Port)))
			})
		default:
			s.Reject("a tcp stream needs a service or a port")
		}
	case tunnel.KindPTY, tunnel.KindExec:
		a.serveProcess(s)
	case tunnel.KindStop:
		s.Accept()
		s.Close()
		reason := h.Reason
		if reason == "" {
			reason = "requested by the gateway"
		}
		a.stop(errors.New(reason))
	default:
		s.Reject(fmt.Sprintf("this agent does not serve %q streams; upgrade the agent", h.Kind))
	}
}

// proxyStream accepts a stream and hands it to the service's proxy, which
// changes each request as the service needs (credential, prefix).
func (a *Agent) proxyStream(s *tunnel.Stream, svc *service) {
	if err := s.Accept(); err != nil {
		s.Close()
		return
	}
	a.activity.streams.Add(1)
	if !svc.streams.push(countingConn{s, &a.activity.bytes}) {
		s.Close()
	}
}

// spliceStream connects a stream to what dial reaches, accepting it once
// the target answered (a refusal carries the dial's error), and copies
// both ways until both ends are done.
func (a *Agent) spliceStream(s *tunnel.Stream, dial func(context.Context) (net.Conn, error)) {
	ctx, cancel := context.WithTimeout(a.life, 10*time.Second)
	target, err := dial(ctx)
	cancel()
	if err != nil {
		s.Reject(err.Error())
		return
	}
	if err := s.Accept(); err != nil {
		target.Close()
		s.Close()
		return
	}
	a.activity.streams.Add(1)
	splice(countingConn{s, &a.activity.bytes}, target)
}

func (a *Agent) service(name string) *service {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.services {
		if s.cfg.Name == name {
			return s
		}
	}
	return nil
}

func (a *Agent) noService(name, proto string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for _, s := range a.services {
		if proto == "tcp" || s.cfg.Protocol == proto {
			names = append(names, s.cfg.Name)
		}
	}
	return fmt.Sprintf("session %s has no %s service %q (it has %v)", a.cfg.SessionID, proto, name, names)
}

// reportStream is the current connection's report stream.
type reportStream struct {
	mu sync.Mutex
	s  net.Conn
}

func (r *reportStream) send(rep tunnel.Report) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.Time = time.Now().UTC()
	r.s.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return json.NewEncoder(r.s).Encode(rep)
}

// sendReport sends rep on the current connection, if there is one.
func (a *Agent) sendReport(rep tunnel.Report) {
	a.mu.Lock()
	r := a.report
	a.mu.Unlock()
	if r != nil {
		if err := r.send(rep); err != nil {
			a.log.Warn("report not sent", "err", err)
		} else if rep.Stopping != "" {
			a.stopSentOnce.Do(func() { close(a.stopSent) })
		}
	}
}

// reportLoop opens the report stream, sends the full state, then service
// changes as they happen and metrics with activity every interval.
func (a *Agent) reportLoop(ctx context.Context, conn *tunnel.Conn) {
	s, err := conn.OpenStream(ctx, tunnel.Header{Kind: tunnel.KindReport})
	if err != nil {
		a.log.Warn("gateway refused the report stream", "err", err)
		return
	}
	defer s.Close()
	r := &reportStream{s: s}
	a.mu.Lock()
	a.report = r
	stopping := a.stopping
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		if a.report == r {
			a.report = nil
		}
		a.mu.Unlock()
	}()
	if r.send(tunnel.Report{Services: a.states(), Exit: a.exitStatus(), Stopping: stopping}) == nil && stopping != "" {
		a.stopSentOnce.Do(func() { close(a.stopSent) })
	}
	tick := time.NewTicker(a.cfg.metricsInterval())
	defer tick.Stop()
	for {
		var err error
		select {
		case <-a.notify:
			err = r.send(tunnel.Report{Services: a.states()})
		case <-tick.C:
			err = r.send(tunnel.Report{Metrics: a.sampler.sample(), Activity: a.activity.take()})
		case <-conn.Done():
			return
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

func (a *Agent) states() []tunnel.ServiceState {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Every configured service is in the report from the first one on, as
	// not ready until it has started and answered: a report sent while the
	// container still starts must not read as "all (zero) services ready".
	out := make([]tunnel.ServiceState, 0, len(a.cfg.Services))
	for _, sc := range a.cfg.Services {
		st := tunnel.ServiceState{Name: sc.Name}
		for _, s := range a.services {
			if s.cfg.Name == sc.Name {
				st = s.State()
				break
			}
		}
		out = append(out, st)
	}
	return slices.Clip(out)
}

// privateDir creates dir 0700, or checks an existing one is the user's
// own and makes it 0700: it holds the services' sockets.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("state directory %s belongs to another user", dir)
	}
	return os.Chmod(dir, 0o700)
}
