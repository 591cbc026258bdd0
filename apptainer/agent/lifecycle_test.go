package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/tunnel"
)

func TestConfigWithReadableModeRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.json")
	body := `{"session_id":"s1","gateway_url":"wss://gw/agent","secret":"abc","runtime":"none","interactive":true,"metrics_interval":"2s"}`
	os.WriteFile(path, []byte(body), 0o644)
	os.Chmod(path, 0o644)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Load of a 0644 config = %v; want a refusal naming chmod 600", err)
	}
	os.Chmod(path, 0o600)
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.metricsInterval() != 2*time.Second {
		t.Errorf("metrics interval %v", c.metricsInterval())
	}
	os.WriteFile(path, []byte(`{"session_id":"s1","gateway_url":"http://gw","runtime":"none"}`), 0o600)
	_, err = Load(path)
	for _, want := range []string{"ws://", "secret", "needs a command"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load of a bad config = %v; want it to mention %q", err, want)
		}
	}
}

func TestInteractiveSession(t *testing.T) {
	const secret = "dGVzdC1zZWNyZXQ"
	g := newTestGateway(t, secret)
	cfg := testConfig(t, g, secret)
	mark := "AGENT_TEST_MARK=" + cfg.SessionID
	termFile := filepath.Join(t.TempDir(), "term")
	cfg.Env = []string{mark, "AGENT_TEST_APP=1", "AGENT_TEST_TERMFILE=" + termFile}
	self, _ := os.Executable()
	cfg.Services = []Service{
		{Name: "app", Protocol: "http", Command: []string{self, "port={port}"},
			AuthHeader: "Authorization: Bearer {token}"},
		{Name: "sock", Protocol: "http", Socket: true, Command: []string{self, "socket={socket}"}},
		// Nothing to change in its requests: its streams are spliced.
		{Name: "base", Protocol: "http", Socket: true, BaseURL: true, Command: []string{self, "socket={socket}"}},
	}
	ra := startAgent(t, cfg)

	var mu sync.Mutex
	conn := g.conn(t)
	current := func() *tunnel.Conn { mu.Lock(); defer mu.Unlock(); return conn }
	g.waitReport(t, "the services ready", allReady("app", "sock", "base"))

	app := proxy(current, "app")
	defer app.Close()
	sock := proxy(current, "sock")
	defer sock.Close()
	if code, body := get(t, app.URL+"/x"); code != 200 || body != "app ok /x" {
		t.Errorf("GET app/x through the tunnel = %d %q; the agent must add the service's token", code, body)
	}
	if code, body := get(t, sock.URL+"/y"); code != 200 || body != "app ok /y" {
		t.Errorf("GET sock/y through the tunnel = %d %q", code, body)
	}
	base := proxy(current, "base")
	defer base.Close()
	for range 2 { // the second on the kept-alive stream
		prefixed := "/s/" + cfg.SessionID + "/base/z"
		if code, body := get(t, base.URL+prefixed); code != 200 || body != "app ok "+prefixed {
			t.Errorf("GET %s through the spliced stream = %d %q; want the path unchanged", prefixed, code, body)
		}
	}
	if fi, err := os.Stat(cfg.StateDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory %v, %v; want mode 0700", fi.Mode(), err)
	}
	if _, err := current().DialService(context.Background(), "nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("DialService(nope) = %v", err)
	}

	// A TCP stream to the token-guarded HTTP app (slurmgate app forward)
	// goes through the agent's proxy, which adds the token: the app answers.
	tcp, err := current().OpenStream(context.Background(), tunnel.Header{Kind: tunnel.KindTCP, Service: "app"})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(tcp, "GET / HTTP/1.0\r\n\r\n")
	b, _ := io.ReadAll(tcp)
	if !strings.Contains(string(b), " 200 ") {
		t.Errorf("TCP stream to the app: %q; want 200 (the agent adds the service's token)", b)
	}
	// A gateway that shapes requests itself learns how from the report,
	// and its Shaped streams reach the app unparsed: the agent adds
	// nothing, so the request without the token is refused and the one
	// with it answered.
	var shape *tunnel.HTTPShape
	for _, sv := range g.waitReport(t, "the services ready", allReady("app", "sock", "base")).Services {
		switch {
		case sv.Name == "app":
			shape = sv.Shape
		case sv.Name == "sock" && (sv.Shape == nil || !sv.Shape.StripPrefix || sv.Shape.AuthHeader != ""):
			t.Errorf("service sock's shape %+v; want the prefix stripped and no credential", sv.Shape)
		case sv.Name == "base" && sv.Shape != nil:
			t.Errorf("service base's shape %+v; want none (its requests need no change)", sv.Shape)
		}
	}
	if shape == nil || !shape.StripPrefix || shape.AuthHeader != "Authorization" || !strings.HasPrefix(shape.AuthValue, "Bearer ") {
		t.Fatalf("service app's shape %+v; want the prefix stripped and its bearer token", shape)
	}
	for _, tc := range []struct {
		header string
		want   string
	}{{"", " 403 "}, {"Authorization: " + shape.AuthValue + "\r\n", " 200 "}} {
		s, err := current().OpenStream(context.Background(), tunnel.Header{Kind: tunnel.KindHTTP, Service: "app", Shaped: true})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(s, "GET /x HTTP/1.0\r\n"+tc.header+"\r\n")
		b, _ := io.ReadAll(s)
		s.Close()
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("shaped stream with header %q: %q; want%s", strings.TrimSpace(tc.header), b, tc.want)
		}
	}

	// The app's port itself still refuses anyone without the token, such
	// as another user on the node.
	if svc := ra.agent.service("app"); svc == nil || svc.network != "tcp" {
		t.Errorf("service app: %+v; want it on a loopback port", svc)
	} else if resp, err := http.Get("http://" + svc.address + "/"); err != nil {
		t.Errorf("direct request to the app's port: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("direct request to the app's port: %d; want 403 without the token", resp.StatusCode)
		}
	}
	// Nor can they read the token: it is in no command line (which
	// /proc shows everyone), only in the app's environment.
	token := strings.TrimPrefix(shape.AuthValue, "Bearer ")
	procs := markedProcesses(mark)
	if len(procs) == 0 {
		t.Error("no process of the session found by its environment")
	}
	for _, p := range procs {
		if strings.Contains(p, token) {
			t.Errorf("the service's token is on a command line: %s", p)
		}
	}

	t.Run("terminals", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				term := openTerminal(t, current(), []string{"LANG=C.UTF-8"})
				defer term.p.Close()
				io.WriteString(term.p, "echo h''i\n")
				term.expect(t, "hi\r\n")
				term.p.Resize(uint16(40+i), 100)
				io.WriteString(term.p, "stty size\n")
				term.expect(t, strconv.Itoa(40+i)+" 100")
				io.WriteString(term.p, "echo 'grüß 東京'\n")
				term.expect(t, "grüß 東京\r\n")
				io.WriteString(term.p, "exit 4\n")
				st, err := term.p.Wait()
				if err != nil || st.Code != 4 {
					t.Errorf("terminal exit %+v, %v; want 4", st, err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("exec", func(t *testing.T) {
		var stdout, stderr syncBuffer
		p, err := tunnel.StartProcess(context.Background(), current(), tunnel.Header{Kind: tunnel.KindExec,
			Argv: []string{"/bin/sh", "-c", "cat; echo out; echo err >&2; exit 3"}},
			tunnel.ProcessOutput{Stdout: &stdout, Stderr: &stderr})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(p, "from stdin\n")
		p.CloseStdin()
		st, err := p.Wait()
		if err != nil || st.Code != 3 || stdout.String() != "from stdin\nout\n" || stderr.String() != "err\n" {
			t.Errorf("exec: %+v %v, stdout %q, stderr %q", st, err, stdout.String(), stderr.String())
		}
		_, err = tunnel.StartProcess(context.Background(), current(), tunnel.Header{Kind: tunnel.KindExec,
			Argv: []string{"/nonexistent/tool"}}, tunnel.ProcessOutput{})
		if err == nil || !strings.Contains(err.Error(), "/nonexistent/tool") {
			t.Errorf("exec of a missing program: %v", err)
		}
	})

	rep := g.waitReport(t, "metrics and activity", func(r tunnel.Report) bool {
		return r.Metrics != nil && r.Activity != nil && r.Activity.Requests > 0
	})
	t.Logf("metrics: %+v, activity: %+v", *rep.Metrics, *rep.Activity)
	if rep.Metrics.MemoryBytes == 0 && len(rep.Metrics.Unavailable) == 0 {
		t.Errorf("metrics report neither memory nor why not: %+v", rep.Metrics)
	}

	t.Run("reconnect", func(t *testing.T) {
		old := current()
		old.Close()
		c := g.conn(t)
		mu.Lock()
		conn = c
		mu.Unlock()
		if code, body := get(t, app.URL+"/after"); code != 200 || body != "app ok /after" {
			t.Errorf("after reconnecting: %d %q", code, body)
		}
	})

	// A terminal with a background job, left open at shutdown.
	bg := openTerminal(t, current(), nil)
	io.WriteString(bg.p, "sleep 1000 & echo started\n")
	bg.expect(t, "started\r\n")
	if procs := markedProcesses(mark); len(procs) < 3 {
		t.Fatalf("expected the two services and the background job running; found %v", procs)
	}
	ra.stop(errors.New("SIGTERM from Slurm"))
	if !ra.wait() {
		t.Fatal("agent did not stop on SIGTERM")
	}
	if ra.code != 0 || ra.err != nil {
		t.Errorf("Run = %d, %v; want 0, nil", ra.code, ra.err)
	}
	g.waitReport(t, "stopping with the reason", func(r tunnel.Report) bool { return r.Stopping == "SIGTERM from Slurm" })
	if procs := markedProcesses(mark); len(procs) > 0 {
		t.Errorf("processes left after the agent stopped: %v", procs)
	}
	if b, _ := os.ReadFile(termFile); string(b) != "graceful" {
		t.Errorf("a service did not get SIGTERM before being killed")
	}
	if _, err := os.Stat(cfg.StateDir); !os.IsNotExist(err) {
		t.Errorf("state directory left behind: %v", err)
	}
}

func TestBatchSessionExitCodeAndOutput(t *testing.T) {
	const secret = "YmF0Y2g"
	g := newTestGateway(t, secret)
	cfg := testConfig(t, g, secret)
	cfg.Interactive = false
	// Wait for the gateway first, so the exit report has somewhere to go.
	cfg.Command = "sleep 1; echo out; echo err >&2; exit 7"
	ra := startAgent(t, cfg)
	g.conn(t)
	if !ra.wait() {
		t.Fatal("batch session did not end")
	}
	if ra.code != 7 || ra.err != nil {
		t.Errorf("Run = %d, %v; want exit status 7", ra.code, ra.err)
	}
	if out := ra.out.String(); !strings.Contains(out, "out\n") || !strings.Contains(out, "err\n") {
		t.Errorf("job output %q", out)
	}
	g.waitReport(t, "exit 7", func(r tunnel.Report) bool { return r.Exit != nil && r.Exit.Code == 7 && r.Stopping != "" })
}

func TestGatewayStopRequest(t *testing.T) {
	const secret = "c3RvcA"
	g := newTestGateway(t, secret)
	ra := startAgent(t, testConfig(t, g, secret))
	c := g.conn(t)
	s, err := c.OpenStream(context.Background(), tunnel.Header{Kind: tunnel.KindStop, Reason: "idle for 1h"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !ra.wait() {
		t.Fatal("agent ignored the gateway's stop")
	}
	g.waitReport(t, "stopping: idle", func(r tunnel.Report) bool { return r.Stopping == "idle for 1h" })
}

// Before its services have started (the container may still be starting),
// the agent reports each configured service as not ready: a first report
// with no services would read as "all ready" and make the session RUNNING
// before Jupyter answers.
func TestStatesListConfiguredServicesBeforeTheyStart(t *testing.T) {
	a := &Agent{cfg: &Config{Services: []Service{{Name: "jupyter"}, {Name: "tensorboard"}}}}
	got := a.states()
	if len(got) != 2 || got[0].Name != "jupyter" || got[0].Ready || got[1].Name != "tensorboard" || got[1].Ready {
		t.Fatalf("states before start = %+v; want jupyter and tensorboard, not ready", got)
	}
}
