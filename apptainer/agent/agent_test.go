package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/tunnel"
)

// TestMain doubles as the test app the agent supervises: started with
// AGENT_TEST_APP set, the test binary serves HTTP on port=N or socket=PATH
// and demands "Authorization: Bearer TOKEN" when its environment holds
// SLURMGATE_SERVICE_TOKEN=TOKEN, as the agent passes it.
func TestMain(m *testing.M) {
	if os.Getenv("AGENT_TEST_APP") != "" {
		testApp(os.Args[1:])
		return
	}
	os.Exit(m.Run())
}

func testApp(args []string) {
	opts := map[string]string{}
	for _, a := range args {
		k, v, _ := strings.Cut(a, "=")
		opts[k] = v
	}
	var l net.Listener
	var err error
	if s := opts["socket"]; s != "" {
		l, err = net.Listen("unix", s)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:"+opts["port"])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "test app:", err)
		os.Exit(1)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		if f := os.Getenv("AGENT_TEST_TERMFILE"); f != "" {
			os.WriteFile(f, []byte("graceful"), 0o600)
		}
		os.Exit(0)
	}()
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := os.Getenv("SLURMGATE_SERVICE_TOKEN"); tok != "" && r.Header.Get("Authorization") != "Bearer "+tok {
			http.Error(w, "no token", http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "app ok %s", r.URL.Path)
	}))
}

// testGateway accepts agent tunnels like the gateway and records reports.
type testGateway struct {
	srv   *httptest.Server
	conns chan *tunnel.Conn

	mu      sync.Mutex
	reports []tunnel.Report
}

func newTestGateway(t testing.TB, secret string) *testGateway {
	g := &testGateway{conns: make(chan *tunnel.Conn, 8)}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := tunnel.Accept(w, r, tunnel.AcceptConfig{
			Authenticate: func(_ context.Context, id, s string) error {
				if s != secret {
					return errors.New("wrong secret")
				}
				return nil
			},
			Keepalive: tunnel.Keepalive{Interval: 200 * time.Millisecond, Timeout: 2 * time.Second},
		})
		if err != nil {
			return
		}
		go func() {
			for {
				s, err := c.AcceptStream(context.Background())
				if err != nil {
					return
				}
				if s.Header.Kind != tunnel.KindReport {
					s.Reject("gateway accepts reports only")
					continue
				}
				s.Accept()
				go func() {
					for rep, err := range tunnel.Reports(s) {
						if err != nil {
							return
						}
						g.mu.Lock()
						g.reports = append(g.reports, rep)
						g.mu.Unlock()
					}
				}()
			}
		}()
		g.conns <- c
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *testGateway) url() string { return "ws" + strings.TrimPrefix(g.srv.URL, "http") + "/agent" }

func (g *testGateway) conn(t *testing.T) *tunnel.Conn {
	t.Helper()
	select {
	case c := <-g.conns:
		return c
	case <-time.After(15 * time.Second):
		t.Fatal("the agent did not connect to the gateway within 15 s")
		return nil
	}
}

// waitReport waits for a report satisfying ok.
func (g *testGateway) waitReport(t *testing.T, what string, ok func(tunnel.Report) bool) tunnel.Report {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		g.mu.Lock()
		for _, r := range g.reports {
			if ok(r) {
				g.mu.Unlock()
				return r
			}
		}
		g.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t.Fatalf("no report with %s; got %+v", what, g.reports)
	return tunnel.Report{}
}

func allReady(names ...string) func(tunnel.Report) bool {
	return func(r tunnel.Report) bool {
		ready := 0
		for _, s := range r.Services {
			for _, n := range names {
				if s.Name == n && s.Ready {
					ready++
				}
			}
		}
		return ready == len(names)
	}
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

type runningAgent struct {
	agent *Agent
	stop  context.CancelCauseFunc
	done  chan struct{} // closed when Run has returned code and err
	code  int
	err   error
	out   *syncBuffer
	logs  *syncBuffer
}

func startAgent(t *testing.T, cfg *Config) *runningAgent {
	t.Helper()
	logs := &syncBuffer{}
	ra := &runningAgent{done: make(chan struct{}), out: &syncBuffer{}, logs: logs}
	a, err := New(cfg, Options{
		Logger:     slog.New(slog.NewTextHandler(logs, nil)),
		Stdout:     ra.out,
		Stderr:     ra.out,
		Version:    "test",
		Keepalive:  tunnel.Keepalive{Interval: 200 * time.Millisecond, Timeout: 2 * time.Second},
		MaxBackoff: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ra.agent = a
	ctx, cancel := context.WithCancelCause(context.Background())
	ra.stop = cancel
	go func() {
		ra.code, ra.err = a.Run(ctx)
		close(ra.done)
	}()
	t.Cleanup(func() {
		cancel(errors.New("test over"))
		if !ra.wait() {
			t.Error("agent did not stop within 30 s")
		}
		if t.Failed() {
			t.Logf("agent log:\n%s\noutput:\n%s", logs, ra.out)
		}
	})
	return ra
}

// wait waits up to 30 s for Run to return.
func (ra *runningAgent) wait() bool {
	select {
	case <-ra.done:
		return true
	case <-time.After(30 * time.Second):
		return false
	}
}

func testConfig(t *testing.T, g *testGateway, secret string) *Config {
	return &Config{
		SessionID:       "s-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")),
		GatewayURL:      g.url(),
		Secret:          secret,
		Runtime:         "none",
		Interactive:     true,
		StateDir:        filepath.Join(t.TempDir(), "state"),
		MetricsInterval: Duration(200 * time.Millisecond),
		StopGrace:       Duration(2 * time.Second),
	}
}

// markedProcesses lists processes whose environment holds mark.
func markedProcesses(mark string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || e.Name() == fmt.Sprint(os.Getpid()) {
			continue
		}
		if bytes.Contains(env, []byte(mark)) {
			cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out = append(out, e.Name()+" "+strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	return out
}

func proxy(conn func() *tunnel.Conn, service string) *httptest.Server {
	return httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(&url.URL{Scheme: "http", Host: service}) },
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return conn().DialService(ctx, service)
		}},
	})
}

func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// terminal is a test client of a pty stream.
type terminal struct {
	p   *tunnel.Process
	out *syncBuffer
}

func openTerminal(t *testing.T, c *tunnel.Conn, env []string) *terminal {
	t.Helper()
	term := &terminal{out: &syncBuffer{}}
	p, err := tunnel.StartProcess(context.Background(), c, tunnel.Header{Kind: tunnel.KindPTY, Rows: 24, Cols: 80, Env: env},
		tunnel.ProcessOutput{Stdout: term.out})
	if err != nil {
		t.Fatal(err)
	}
	term.p = p
	return term
}

// expect waits until the terminal's output contains want.
func (term *terminal) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(term.out.String(), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("terminal never showed %q; it shows:\n%q", want, term.out.String())
}
