package api

// Tests of the session runtime's gateway side (agent tunnel, app proxy,
// terminal, exec, TCP, apps, metrics, culling) against a real tunnel: a
// test agent dials the real endpoint with tunnel.Dial and serves streams
// from real processes (a PTY shell, exec'd commands) and a real HTTP
// server. The full agent and Slurm are exercised by the cluster tests.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/gorilla/websocket"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/tunnel"
)

// testAgent is the agent end of a real tunnel, serving the "web" service
// (an HTTP server), PTYs and exec from real processes, and reports.
type testAgent struct {
	t       *testing.T
	conn    *tunnel.Conn
	web     *httptest.Server
	reports net.Conn
	mu      sync.Mutex
	stops   []string
	opened  map[tunnel.Kind]int // streams the gateway opened, by kind
	seen    chan *http.Request  // requests as the app saw them
}

// streams is how many streams of kind the gateway has opened.
func (ag *testAgent) streams(kind tunnel.Kind) int {
	ag.mu.Lock()
	defer ag.mu.Unlock()
	return ag.opened[kind]
}

// runtimeWorld is an API with alice's session in state PREPARING.
type runtimeWorld struct {
	*testAPI
	sid    string
	secret string
}

func newRuntimeWorld(t *testing.T) *runtimeWorld {
	a := newTestAPI(t, Options{AppsDomain: "apps.test", TunnelKeepalive: tunnel.Keepalive{Interval: time.Second, Timeout: 3 * time.Second}})
	ctx := t.Context()
	b := a.b
	proj, err := b.CreateProject(ctx, bridge.System, "lab", "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetMembership(ctx, bridge.System, proj.ID, a.alice.UserID, "member"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateScalingGroup(ctx, bridge.System, bridge.ScalingGroup{Name: "cpu", Cluster: "c", Partitions: []string{"cpu"}}); err != nil {
		t.Fatal(err)
	}
	sid := "7d1c2b7a-8e4d-4c5b-9a6f-0123456789ab"
	_, err = a.db.Exec(ctx, `INSERT INTO sessions (id, user_id, project_id, domain_id, scaling_group, partition, type,
		image, cpus, memory_mb, time_limit_s, state, started_at)
		VALUES ($1, $2, $3, $4, 'cpu', 'cpu', 'interactive', 'host:latest', 2, 1024, 3600, 'PREPARING', now())`,
		sid, a.alice.UserID, proj.ID, proj.DomainID)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := b.IssueAgentSecret(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	return &runtimeWorld{testAPI: a, sid: sid, secret: secret}
}

func (w *runtimeWorld) tunnelURL() string {
	return "ws" + strings.TrimPrefix(w.ts.URL, "http") + "/api/v1/agent/tunnel"
}

// connectAgent dials the gateway as the session's agent and serves it.
func (w *runtimeWorld) connectAgent(t *testing.T, secret string) (*testAgent, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: w.tunnelURL(), SessionID: w.sid, Secret: secret, Version: "test",
		Keepalive: tunnel.Keepalive{Interval: time.Second, Timeout: 3 * time.Second}})
	if err != nil {
		return nil, err
	}
	ag := &testAgent{t: t, conn: conn, seen: make(chan *http.Request, 64)}
	ag.web = httptest.NewServer(ag.app())
	t.Cleanup(func() { conn.Close(); ag.web.Close() })
	go ag.serve()
	rs, err := conn.OpenStream(ctx, tunnel.Header{Kind: tunnel.KindReport})
	if err != nil {
		return nil, err
	}
	ag.reports = rs
	return ag, nil
}

func (ag *testAgent) report(r tunnel.Report) {
	ag.t.Helper()
	r.Time = time.Now()
	if err := json.NewEncoder(ag.reports).Encode(r); err != nil {
		ag.t.Fatal(err)
	}
}

// app is the session's "web" service.
func (ag *testAgent) app() http.Handler {
	mux := http.NewServeMux()
	up := websocket.Upgrader{}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		select {
		case ag.seen <- r.Clone(context.Background()):
		default:
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/ws"):
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				typ, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				c.WriteMessage(typ, append([]byte("echo:"), msg...))
			}
		case strings.HasSuffix(r.URL.Path, "/upload"):
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
		case strings.HasSuffix(r.URL.Path, "/stream"):
			for i := range 3 {
				fmt.Fprintf(w, "tick %d\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(200 * time.Millisecond)
			}
		case strings.HasSuffix(r.URL.Path, "/set-cookies"):
			// An app setting cookies, the gateway's among them.
			for _, c := range r.URL.Query()["c"] {
				w.Header().Add("Set-Cookie", c)
			}
		case strings.HasSuffix(r.URL.Path, "/file"):
			http.ServeContent(w, r, "file.txt", time.Time{}, strings.NewReader("0123456789abcdef"))
		default:
			fmt.Fprintf(w, "path=%s", r.URL.Path)
		}
	})
	return mux
}

// serve answers the gateway's streams like an agent would.
func (ag *testAgent) serve() {
	for {
		st, err := ag.conn.AcceptStream(context.Background())
		if err != nil {
			return
		}
		ag.mu.Lock()
		if ag.opened == nil {
			ag.opened = map[tunnel.Kind]int{}
		}
		ag.opened[st.Header.Kind]++
		ag.mu.Unlock()
		go func() {
			defer st.Close()
			switch st.Header.Kind {
			case tunnel.KindHTTP, tunnel.KindTCP:
				if st.Header.Service != "web" {
					st.Reject(fmt.Sprintf("no service %q", st.Header.Service))
					return
				}
				c, err := net.Dial("tcp", ag.web.Listener.Addr().String())
				if err != nil {
					st.Reject(err.Error())
					return
				}
				defer c.Close()
				st.Accept()
				go func() { io.Copy(c, st); c.(*net.TCPConn).CloseWrite() }()
				io.Copy(st, c)
			case tunnel.KindPTY, tunnel.KindExec:
				st.Accept()
				ag.runProcess(st)
			case tunnel.KindStop:
				st.Accept()
				ag.mu.Lock()
				ag.stops = append(ag.stops, st.Header.Reason)
				ag.mu.Unlock()
			default:
				st.Reject("unsupported")
			}
		}()
	}
}

// runProcess runs a real process for a pty or exec stream.
func (ag *testAgent) runProcess(st *tunnel.Stream) {
	fw := tunnel.NewFrameWriter(st)
	argv := st.Header.Argv
	if len(argv) == 0 {
		argv = []string{"/bin/sh"}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "TERM=xterm"}, st.Header.Env...)
	exit := func(err error) {
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		b, _ := json.Marshal(tunnel.ExitStatus{Code: code})
		fw.WriteFrame(tunnel.FrameExit, b)
	}
	if st.Header.Kind == tunnel.KindPTY {
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: st.Header.Rows, Cols: st.Header.Cols})
		if err != nil {
			fw.WriteFrame(tunnel.FrameExit, []byte(`{"code":127,"error":"no pty"}`))
			return
		}
		defer f.Close()
		go func() {
			for {
				t, p, err := tunnel.ReadFrame(st, nil)
				if err != nil {
					cmd.Process.Kill()
					return
				}
				switch t {
				case tunnel.FrameStdin:
					f.Write(p)
				case tunnel.FrameResize:
					r, c, _ := tunnel.ParseResize(p)
					pty.Setsize(f, &pty.Winsize{Rows: r, Cols: c})
				}
			}
		}()
		done := make(chan struct{})
		go func() { io.Copy(fw.Writer(tunnel.FrameStdout), f); close(done) }()
		err = cmd.Wait()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		exit(err)
		return
	}
	stdin, _ := cmd.StdinPipe()
	cmd.Stdout = fw.Writer(tunnel.FrameStdout)
	cmd.Stderr = fw.Writer(tunnel.FrameStderr)
	if err := cmd.Start(); err != nil {
		fw.WriteFrame(tunnel.FrameExit, []byte(`{"code":127,"error":"cannot start"}`))
		return
	}
	exited := make(chan struct{})
	go func() {
		for {
			t, p, err := tunnel.ReadFrame(st, nil)
			if err != nil {
				// Like the real agent: the gateway hanging up ends the
				// command.
				stdin.Close()
				select {
				case <-exited:
				default:
					cmd.Process.Kill()
				}
				return
			}
			switch t {
			case tunnel.FrameStdin:
				stdin.Write(p)
			case tunnel.FrameStdinEOF:
				stdin.Close()
			}
		}
	}()
	err := cmd.Wait()
	close(exited)
	exit(err)
}

// waitState polls the session until it reaches state.
func (w *runtimeWorld) waitState(t *testing.T, state bridge.SessionState) bridge.Session {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := w.b.Session(t.Context(), bridge.System, w.sid)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == state {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("session is %s (%s), want %s", s.State, s.StatusMessage, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ready connects the agent and reports the web service ready.
func (w *runtimeWorld) ready(t *testing.T) *testAgent {
	t.Helper()
	ag, err := w.connectAgent(t, w.secret)
	if err != nil {
		t.Fatal(err)
	}
	ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: true}}})
	w.waitState(t, bridge.StateRunning)
	return ag
}

// appRequest builds a request to the app proxy signed by u.
func (w *runtimeWorld) appRequest(u testUser, method, path string, body io.Reader) *http.Request {
	w.t.Helper()
	r, err := http.NewRequestWithContext(w.t.Context(), method, w.ts.URL+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	tok, err := w.client(u).CreateToken(w.t.Context(), time.Hour)
	if err != nil {
		w.t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+tok.Token)
	return r
}

func TestRuntimeAgentReadinessMakesSessionRunning(t *testing.T) {
	w := newRuntimeWorld(t)
	if _, err := w.connectAgent(t, "d3Jvbmc"); err == nil || !strings.Contains(err.Error(), "unknown session or wrong secret") {
		t.Fatalf("agent with a wrong secret: %v; want refused", err)
	}
	ag, err := w.connectAgent(t, w.secret)
	if err != nil {
		t.Fatal(err)
	}
	// One session, one agent: a second is refused while the first lives.
	if _, err := w.connectAgent(t, w.secret); err == nil || !strings.Contains(err.Error(), "connected already") {
		t.Fatalf("second agent: %v; want refused", err)
	}
	ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: false}}})
	time.Sleep(100 * time.Millisecond)
	if s, _ := w.b.Session(t.Context(), bridge.System, w.sid); s.State != bridge.StatePreparing {
		t.Fatalf("session %s before its service is ready; want PREPARING", s.State)
	}
	ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: true}}})
	w.waitState(t, bridge.StateRunning)
	evs, err := w.b.SessionEvents(t.Context(), bridge.System, w.sid)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if !strings.Contains(strings.Join(kinds, ","), "agent,ready") {
		t.Errorf("events %v; want agent then ready", kinds)
	}
	// A reconnecting agent, once the first tunnel is dead, is accepted.
	ag.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ag2, err := w.connectAgent(t, w.secret)
		if err == nil {
			ag2.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: true}}})
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reconnecting agent refused: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := w.waitState(t, bridge.StateRunning); s.State != bridge.StateRunning {
		t.Fatal("session left RUNNING on reconnect")
	}
}

func TestRuntimeAppProxy(t *testing.T) {
	w := newRuntimeWorld(t)
	ag := w.ready(t)
	base := "/s/" + w.sid + "/web/"

	t.Run("prefix kept and gateway credentials stripped", func(t *testing.T) {
		r := w.appRequest(w.alice, "GET", base+"lab?x=1", nil)
		r.AddCookie(&http.Cookie{Name: "slurmgate_session", Value: "portal"})
		r.AddCookie(&http.Cookie{Name: "_xsrf", Value: "app"})
		r.Header.Set("X-SG-Date", "x")
		body := w.wantStatus(r, 200)
		if string(body) != "path="+base+"lab" {
			t.Errorf("app saw %q", body)
		}
		seen := <-ag.seen
		if seen.Header.Get("Authorization") != "" || seen.Header.Get("X-SG-Date") != "" {
			t.Errorf("app saw gateway headers: %v", seen.Header)
		}
		if c := seen.Header.Get("Cookie"); strings.Contains(c, "slurmgate") || !strings.Contains(c, "_xsrf=app") {
			t.Errorf("app saw cookies %q; want only its own", c)
		}
		if seen.Host != strings.TrimPrefix(w.ts.URL, "http://") || seen.Header.Get("X-Forwarded-Proto") != "http" {
			t.Errorf("app saw Host %q, X-Forwarded-Proto %q", seen.Host, seen.Header.Get("X-Forwarded-Proto"))
		}
	})
	t.Run("access log levels", func(t *testing.T) {
		// A page's many app requests are logged at debug; failures and
		// WebSocket opens at info (Options.LogAppRequests logs all at info).
		w.wantStatus(w.appRequest(w.alice, "GET", base+"quiet-asset.js", nil), 200)
		w.wantProblem(w.appRequest(w.alice, "GET", "/s/"+w.sid+"/nope/failing", nil), 404)
		deadline := time.Now().Add(5 * time.Second)
		for {
			quiet, failing := accessLevel(w.logs.String(), base+"quiet-asset.js"), accessLevel(w.logs.String(), "/s/"+w.sid+"/nope/failing")
			if quiet == "DEBUG" && failing == "INFO" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("access lines at %q (a 200) and %q (a 404); want DEBUG and INFO", quiet, failing)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("redirect to the slash", func(t *testing.T) {
		r := w.appRequest(w.alice, "GET", strings.TrimSuffix(base, "/"), nil)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 301 || resp.Header.Get("Location") != base {
			t.Errorf("%d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("large upload", func(t *testing.T) {
		data := make([]byte, 24<<20)
		rand.Read(data)
		body := w.wantStatus(w.appRequest(w.alice, "POST", base+"upload", bytes.NewReader(data)), 200)
		if want := fmt.Sprintf("%d %x", len(data), sha256.Sum256(data)); string(body) != want {
			t.Errorf("app received %s; want %s", body, want)
		}
	})
	t.Run("streaming is not buffered", func(t *testing.T) {
		resp, err := http.DefaultClient.Do(w.appRequest(w.alice, "GET", base+"stream", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "tick 0\n" {
			t.Fatalf("first line %q, %v", line, err)
		}
	})
	t.Run("range", func(t *testing.T) {
		r := w.appRequest(w.alice, "GET", base+"file", nil)
		r.Header.Set("Range", "bytes=4-7")
		status, h, body := w.send(r)
		if status != 206 || string(body) != "4567" || h.Get("Content-Range") != "bytes 4-7/16" {
			t.Errorf("%d %q %q", status, body, h.Get("Content-Range"))
		}
	})
	t.Run("websocket", func(t *testing.T) {
		r := w.appRequest(w.alice, "GET", base+"ws", nil)
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(w.ts.URL, "http")+base+"ws", http.Header{"Authorization": r.Header["Authorization"]})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.WriteMessage(websocket.TextMessage, []byte("hello"))
		_, msg, err := c.ReadMessage()
		if err != nil || string(msg) != "echo:hello" {
			t.Fatalf("%q %v", msg, err)
		}
	})
	t.Run("subdomain mode", func(t *testing.T) {
		r := w.appRequest(w.alice, "GET", "/lab", nil)
		r.Host = "web--" + w.sid + ".apps.test"
		if body := w.wantStatus(r, 200); string(body) != "path=/lab" {
			t.Errorf("app saw %q", body)
		}
	})
	t.Run("authorization", func(t *testing.T) {
		w.wantProblem(w.appRequest(w.bob, "GET", base, nil), 404)
		w.wantProblem(w.appRequest(w.root, "GET", base, nil), 403)
		w.wantProblem(w.request("GET", base, nil), 401)
		p, _ := w.wantProblem(w.appRequest(w.alice, "GET", "/s/"+w.sid+"/jupyter/", nil), 404)
		if !strings.Contains(p.Detail, "jupyter") {
			t.Errorf("detail %q", p.Detail)
		}
	})
	t.Run("shaped by the gateway", func(t *testing.T) {
		// An agent that asks the gateway to shape a service's requests
		// (prefix stripped, the app's credential added) gets them so,
		// and the credential is kept out of the database.
		ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: true,
			Shape: &tunnel.HTTPShape{StripPrefix: true, AuthHeader: "X-App-Token", AuthValue: "app-s3cret"}}}})
		defer func() {
			ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: true}}})
			time.Sleep(100 * time.Millisecond)
		}()
		time.Sleep(100 * time.Millisecond)
		for len(ag.seen) > 0 {
			<-ag.seen
		}
		if body := w.wantStatus(w.appRequest(w.alice, "GET", base+"lab?x=1", nil), 200); string(body) != "path=/lab" {
			t.Errorf("app saw %q; want the prefix stripped", body)
		}
		seen := <-ag.seen
		if seen.Header.Get("X-App-Token") != "app-s3cret" || seen.Header.Get("Authorization") != "" ||
			seen.Header.Get("X-Forwarded-Prefix") != strings.TrimSuffix(base, "/") {
			t.Errorf("app saw headers %v; want its token, the prefix, and not the gateway's credential", seen.Header)
		}
		var stored string
		if err := w.db.QueryRow(context.Background(), `SELECT services::text FROM session_agents WHERE session_id = $1`, w.sid).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored, "app-s3cret") || !strings.Contains(stored, `"web"`) {
			t.Errorf("stored services %s; want the service without its credential", stored)
		}
	})
	t.Run("service not ready", func(t *testing.T) {
		ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: false, Error: "exited with code 1"}}})
		time.Sleep(100 * time.Millisecond)
		p, _ := w.wantProblem(w.appRequest(w.alice, "GET", base, nil), 502)
		if !strings.Contains(p.Detail, "service web") || !strings.Contains(p.Detail, "exited with code 1") {
			t.Errorf("detail %q", p.Detail)
		}
		ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: true}}})
		time.Sleep(100 * time.Millisecond)
	})
	t.Run("apps", func(t *testing.T) {
		var apps appList
		if err := json.Unmarshal(w.wantStatus(w.signed(w.alice, "GET", "/api/v1/sessions/"+w.sid+"/apps", nil, time.Now()), 200), &apps); err != nil {
			t.Fatal(err)
		}
		if !apps.AgentConnected || len(apps.Apps) != 1 || !apps.Apps[0].Ready || apps.Apps[0].URL != base ||
			apps.Apps[0].SubdomainURL != "http://web--"+w.sid+".apps.test/" {
			t.Errorf("apps %+v", apps)
		}
	})
	t.Run("agent gone", func(t *testing.T) {
		ag.conn.Close()
		time.Sleep(200 * time.Millisecond)
		p, _ := w.wantProblem(w.appRequest(w.alice, "GET", base, nil), 502)
		if !strings.Contains(p.Detail, "not connected") {
			t.Errorf("detail %q", p.Detail)
		}
	})
}

func TestRuntimeTerminalExecTCPMetrics(t *testing.T) {
	w := newRuntimeWorld(t)
	ag := w.ready(t)
	wsURL := "ws" + strings.TrimPrefix(w.ts.URL, "http")
	authz := w.signedHeader

	t.Run("terminal", func(t *testing.T) {
		path := "/api/v1/sessions/" + w.sid + "/terminal"
		c, _, err := websocket.DefaultDialer.Dial(wsURL+path+"?rows=30&cols=100", authz(w.alice, path+"?rows=30&cols=100"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var out bytes.Buffer
		readUntil := func(want string) {
			t.Helper()
			readUntil(t, c, &out, want)
		}
		c.WriteMessage(websocket.BinaryMessage, []byte("echo h''i\n"))
		readUntil("hi")
		c.WriteMessage(websocket.BinaryMessage, []byte("stty size\n"))
		readUntil("30 100")
		c.WriteMessage(websocket.TextMessage, []byte(`{"resize":[40,120]}`))
		c.WriteMessage(websocket.BinaryMessage, []byte("stty size\n"))
		readUntil("40 120")
		c.WriteMessage(websocket.BinaryMessage, []byte("exit 3\n"))
		readUntil(`{"exit_code":3}`)
	})
	t.Run("exec", func(t *testing.T) {
		body := []byte(`{"argv":["/bin/sh","-c","echo out; echo err >&2; cat; exit 7"],"stdin":"in\n"}`)
		status, h, resp := w.send(w.signed(w.alice, "POST", "/api/v1/sessions/"+w.sid+"/exec", body, time.Now()))
		if status != 200 || h.Get("Content-Type") != "application/x-ndjson" {
			t.Fatalf("%d %s", status, resp)
		}
		var stdout, stderr string
		var exit *int
		for line := range strings.SplitSeq(strings.TrimSpace(string(resp)), "\n") {
			var l execLine
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatal(err)
			}
			switch {
			case l.Stream == "stdout":
				stdout += l.Data
			case l.Stream == "stderr":
				stderr += l.Data
			case l.ExitCode != nil:
				exit = l.ExitCode
			}
		}
		if stdout != "out\nin\n" || stderr != "err\n" || exit == nil || *exit != 7 {
			t.Errorf("stdout %q stderr %q exit %v", stdout, stderr, exit)
		}
	})
	t.Run("tcp", func(t *testing.T) {
		path := "/api/v1/sessions/" + w.sid + "/tcp/web"
		c, _, err := websocket.DefaultDialer.Dial(wsURL+path, authz(w.alice, path))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.WriteMessage(websocket.BinaryMessage, []byte("GET /raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
		var out bytes.Buffer
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for !strings.Contains(out.String(), "path=/raw") {
			_, msg, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("%v; got %q", err, out.String())
			}
			out.Write(msg)
		}
	})
	t.Run("client", func(t *testing.T) {
		c := w.client(w.alice)
		var out, errOut bytes.Buffer
		code, err := c.Exec(t.Context(), w.sid, client.ExecRequest{Argv: []string{"/bin/sh", "-c", "echo $X; echo e >&2; exit 4"}, Env: []string{"X=y"}}, &out, &errOut)
		if err != nil || code != 4 || out.String() != "y\n" || errOut.String() != "e\n" {
			t.Errorf("Exec: %d %v %q %q", code, err, out.String(), errOut.String())
		}
		term, err := c.OpenTerminal(t.Context(), w.sid, 20, 70)
		if err != nil {
			t.Fatal(err)
		}
		term.Write([]byte("stty size; exit\n"))
		got, _ := io.ReadAll(term)
		if code, ok := term.ExitCode(); !strings.Contains(string(got), "20 70") || !ok || code != 0 {
			t.Errorf("terminal showed %q, exit %d %v", got, code, ok)
		}
		tc, err := c.DialTCP(t.Context(), w.sid, "web")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := (&http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return tc, nil }}).
			RoundTrip(httptest.NewRequest("GET", "http://web/via-tcp", nil).WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if string(body) != "path=/via-tcp" {
			t.Errorf("through DialTCP: %q", body)
		}
		apps, err := c.SessionApps(t.Context(), w.sid)
		if err != nil || len(apps.Apps) != 1 || apps.Apps[0].URL != "/s/"+w.sid+"/web/" {
			t.Errorf("SessionApps: %+v %v", apps, err)
		}
		if _, err := w.client(w.bob).SessionMetrics(t.Context(), w.sid); err == nil {
			t.Error("bob read alice's metrics")
		}
	})
	t.Run("others refused", func(t *testing.T) {
		path := "/api/v1/sessions/" + w.sid + "/terminal"
		_, resp, err := websocket.DefaultDialer.Dial(wsURL+path, authz(w.bob, path))
		if err == nil || resp.StatusCode != 404 {
			t.Errorf("bob's terminal: %v", err)
		}
		w.wantProblem(w.signed(w.bob, "POST", "/api/v1/sessions/"+w.sid+"/exec", []byte(`{"argv":["id"]}`), time.Now()), 404)
		w.wantProblem(w.signed(w.bob, "GET", "/api/v1/sessions/"+w.sid+"/metrics", nil, time.Now()), 404)
		w.wantProblem(w.signed(w.bob, "GET", "/api/v1/sessions/"+w.sid+"/apps", nil, time.Now()), 404)
	})
	t.Run("metrics", func(t *testing.T) {
		ag.report(tunnel.Report{Metrics: &tunnel.Metrics{CPUCores: 1.5, MemoryBytes: 1 << 30, Unavailable: []string{"GPU metrics unavailable: NVML not found"}}})
		time.Sleep(100 * time.Millisecond)
		var m sessionMetrics
		if err := json.Unmarshal(w.wantStatus(w.signed(w.alice, "GET", "/api/v1/sessions/"+w.sid+"/metrics", nil, time.Now()), 200), &m); err != nil {
			t.Fatal(err)
		}
		if m.Metrics == nil || m.CPUCores != 1.5 || m.MemoryBytes != 1<<30 || m.Allocated.CPUs != 2 || m.At == nil {
			t.Errorf("metrics %+v", m)
		}
	})
}

// A client that goes away (Ctrl-C on `slurmgate session exec -- sleep
// 3600`) ends the remote command, though the command writes nothing that
// would fail on the closed connection.
func TestRuntimeExecEndsWhenTheClientGoesAway(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	body := []byte(`{"argv":["/bin/sh","-c","echo $$; exec sleep 3600"]}`)
	r := w.signed(w.alice, "POST", "/api/v1/sessions/"+w.sid+"/exec", body, time.Now()).WithContext(ctx)
	resp, err := w.ts.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %q %v", line, err)
	}
	var l execLine
	if err := json.Unmarshal([]byte(line), &l); err != nil || l.Stream != "stdout" {
		t.Fatalf("first line %q (%v); want the command's pid on stdout", line, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(l.Data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the command (pid %d) still runs 10 s after its client went away", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRuntimeIdleSessionIsCulled(t *testing.T) {
	w := newRuntimeWorld(t)
	ctx := t.Context()
	ag := w.ready(t)
	idle := int64(1)
	s, _ := w.b.Session(ctx, bridge.System, w.sid)
	if _, err := w.b.SetPolicy(ctx, bridge.System, bridge.Policy{Scope: "domain", TargetID: mustDomainID(t, w), IdleTimeoutS: &idle}); err != nil {
		t.Fatal(err)
	}
	// Busy: utilisation above the threshold keeps it alive.
	for range 3 {
		ag.report(tunnel.Report{Metrics: &tunnel.Metrics{CPUCores: 1.9}})
		time.Sleep(500 * time.Millisecond)
		st, err := w.b.CullOnce(ctx)
		if err != nil || len(st.Idle) != 0 {
			t.Fatalf("busy session culled: %+v %v", st, err)
		}
	}
	// Idle: low utilisation and no traffic for longer than the timeout.
	ag.report(tunnel.Report{Metrics: &tunnel.Metrics{CPUCores: 0.01}})
	time.Sleep(1200 * time.Millisecond)
	st, err := w.b.CullOnce(ctx)
	if err != nil || len(st.Idle) != 1 || st.Idle[0] != s.ID {
		t.Fatalf("cull: %+v %v; want the session culled", st, err)
	}
	s = w.waitState(t, bridge.StateTerminated)
	if !strings.HasPrefix(s.StatusMessage, "idle:") {
		t.Errorf("status message %q", s.StatusMessage)
	}
	if reason, _ := w.b.SessionEndReason(ctx, bridge.System, w.sid); reason != "idle" {
		t.Errorf("end reason %q", reason)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ag.mu.Lock()
		stops := strings.Join(ag.stops, ",")
		ag.mu.Unlock()
		if stops == "idle" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent got stops %q; want idle", stops)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustDomainID(t *testing.T, w *runtimeWorld) int64 {
	d, err := w.b.DomainByName(t.Context(), bridge.System, "lab")
	if err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// A portal login's cookie opens apps (POST without the gateway's CSRF
// header, which app pages cannot send); its WebSockets close on logout.
func TestRuntimePortalCookieAndLogout(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	ctx := t.Context()
	token, _, err := w.b.CreatePortalSession(ctx, bridge.NewPortalSession{UserID: w.alice.UserID, Source: "local", IdleTimeout: time.Hour, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	base := "/s/" + w.sid + "/web/"
	r := w.request("POST", base+"upload", []byte("abc"))
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
	if body := w.wantStatus(r, 200); !strings.HasPrefix(string(body), "3 ") {
		t.Errorf("upload with the portal cookie: %q", body)
	}
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(w.ts.URL, "http")+base+"ws",
		http.Header{"Cookie": {sessionCookie + "=" + token}, "Origin": {w.ts.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("x"))
	if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo:x" {
		t.Fatalf("%q %v", msg, err)
	}
	term, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(w.ts.URL, "http")+"/api/v1/sessions/"+w.sid+"/terminal",
		http.Header{"Cookie": {sessionCookie + "=" + token}, "Origin": {w.ts.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if err := w.b.RevokePortalSession(ctx, token); err != nil {
		t.Fatal(err)
	}
	// The terminal closes saying why, so the page can tell the person.
	term.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := term.ReadMessage()
		if err == nil {
			continue // the shell's prompt
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Text != "signed out" {
			t.Fatalf("terminal after logout: %v; want a close frame saying \"signed out\"", err)
		}
		break
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil {
		t.Fatal("the app WebSocket stayed open after logout")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the app WebSocket stayed open for 10 s after logout")
	}
	r = w.request("GET", base, nil)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
	w.wantProblem(r, 401)
}

// accessLevel is the level of the access line logged for path, or "".
func accessLevel(logs, path string) string {
	for line := range strings.Lines(logs) {
		var rec struct{ Level, Msg, Path string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "request" && rec.Path == path {
			return rec.Level
		}
	}
	return ""
}
