package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/slurmgate/slurmgate/api/sign"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/tunnel"
)

// replica is one more gateway replica over the test API's database and
// secret key, advertising its own URL.
type replica struct {
	ts  *httptest.Server
	b   *bridge.Bridge
	url string
}

func startReplica(t *testing.T, a *testAPI, name string) *replica {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	log := slog.New(slog.NewJSONHandler(a.logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", name)
	b := bridge.New(a.db, nil, bridge.Config{SecretKey: a.key, AdvertiseURL: url}, log)
	ts := httptest.NewUnstartedServer(New(b, Options{Logger: log,
		TunnelKeepalive: tunnel.Keepalive{Interval: time.Second, Timeout: 3 * time.Second}}))
	ts.Listener.Close()
	ts.Listener = l
	ts.Start()
	t.Cleanup(ts.Close)
	return &replica{ts: ts, b: b, url: url}
}

// at sends r to the replica instead of the test API's server.
func (rp *replica) at(r *http.Request) *http.Request {
	r.URL.Host = strings.TrimPrefix(rp.url, "http://")
	r.Host = r.URL.Host
	return r
}

func (w *runtimeWorld) gatewayURL(t *testing.T) *string {
	t.Helper()
	var at *string
	if err := w.db.QueryRow(t.Context(), `SELECT gateway_url FROM session_agents WHERE session_id = $1`, w.sid).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at
}

// TestReplicasForwardToTheAgentsReplica: the agent is connected to replica
// A; apps, WebSockets, terminals and exec asked of replica B are forwarded
// to A and work, with every credential kind; who may not use the session is
// refused by B without forwarding; a forwarded request is not forwarded
// again; a dead replica is a 502 that says so.
func TestReplicasForwardToTheAgentsReplica(t *testing.T) {
	w := newRuntimeWorld(t)
	a, b := startReplica(t, w.testAPI, "a"), startReplica(t, w.testAPI, "b")

	// The agent dials replica A.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := tunnel.Dial(ctx, tunnel.DialConfig{URL: "ws" + strings.TrimPrefix(a.url, "http") + "/api/v1/agent/tunnel",
		SessionID: w.sid, Secret: w.secret, Version: "test", Keepalive: tunnel.Keepalive{Interval: time.Second, Timeout: 3 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ag := &testAgent{t: t, conn: conn, seen: make(chan *http.Request, 64)}
	ag.web = httptest.NewServer(ag.app())
	t.Cleanup(func() { conn.Close(); ag.web.Close() })
	go ag.serve()
	if ag.reports, err = conn.OpenStream(ctx, tunnel.Header{Kind: tunnel.KindReport}); err != nil {
		t.Fatal(err)
	}
	ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: true}}})
	w.waitState(t, bridge.StateRunning)
	if at := w.gatewayURL(t); at == nil || *at != a.url {
		t.Fatalf("session_agents.gateway_url = %v, want replica A's %s", at, a.url)
	}

	t.Run("app over HTTP, bearer token", func(t *testing.T) {
		r := b.at(w.appRequest(w.alice, "GET", "/s/"+w.sid+"/web/hello?x=1", nil))
		status, _, body := w.send(r)
		if status != 200 || string(body) != "path=/s/"+w.sid+"/web/hello" {
			t.Fatalf("through replica B: %d %s", status, body)
		}
		seen := <-ag.seen
		if seen.Header.Get(forwardedHeader) != "" || seen.Header.Get("Authorization") != "" {
			t.Fatalf("the app saw the gateway's headers: %v", seen.Header)
		}
		// B's log says it forwarded; A's, that it proxied.
		logs := w.logs.String()
		if !strings.Contains(logs, `"replica":"b"`) || !strings.Contains(logs, "forwarding to the replica holding the agent") {
			t.Fatalf("replica B did not log the forward:\n%s", logs)
		}
	})

	t.Run("behind a TLS load balancer", func(t *testing.T) {
		// The balancer says https; the forward between replicas is plain
		// HTTP, and the app must still be told https.
		for len(ag.seen) > 0 {
			<-ag.seen
		}
		r := b.at(w.appRequest(w.alice, "GET", "/s/"+w.sid+"/web/tls", nil))
		r.Header.Set("X-Forwarded-Proto", "https")
		w.wantStatus(r, 200)
		if seen := <-ag.seen; seen.Header.Get("X-Forwarded-Proto") != "https" {
			t.Errorf("the app saw X-Forwarded-Proto %q through a forward; want https", seen.Header.Get("X-Forwarded-Proto"))
		}
	})

	t.Run("app WebSocket, portal cookie", func(t *testing.T) {
		cookie := w.portalLogin(t, w.alice)
		h := http.Header{"Cookie": {sessionCookie + "=" + cookie}, "Origin": {b.url}}
		c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(b.url, "http")+"/s/"+w.sid+"/web/ws", h)
		if err != nil {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("WebSocket through replica B: %v (HTTP %d)", err, status)
		}
		defer c.Close()
		c.WriteMessage(websocket.TextMessage, []byte("hi"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, msg, err := c.ReadMessage(); err != nil || string(msg) != "echo:hi" {
			t.Fatalf("echo: %q %v", msg, err)
		}
		// Logging out (on any replica) ends the connection, though the
		// replica holding it is not the one that forwarded it.
		if err := w.b.RevokePortalSession(t.Context(), cookie); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, msg, err := c.ReadMessage(); err == nil {
			t.Fatalf("the app WebSocket outlived the logout: read %q", msg)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the app WebSocket was still open 10 s after the logout")
		}
	})

	t.Run("terminal and exec, signed requests", func(t *testing.T) {
		path := "/api/v1/sessions/" + w.sid + "/terminal"
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(b.url, "http")+path, w.signedHeader(w.alice, path))
		if err != nil {
			t.Fatalf("terminal through replica B: %v", err)
		}
		defer c.Close()
		c.WriteMessage(websocket.BinaryMessage, []byte("echo h''i\nexit 4\n"))
		var out bytes.Buffer
		readUntil(t, c, &out, `{"exit_code":4}`)
		if !strings.Contains(out.String(), "hi") {
			t.Fatalf("terminal output %q lacks the echo", out.String())
		}

		body := []byte(`{"argv":["/bin/sh","-c","cat; exit 5"],"stdin":"through b\n"}`)
		r := b.at(w.signed(w.alice, "POST", "/api/v1/sessions/"+w.sid+"/exec", body, time.Now()))
		again := r.Clone(t.Context())
		status, _, resp := w.send(r)
		if status != 200 || !strings.Contains(string(resp), `"data":"through b\n"`) || !strings.Contains(string(resp), `"exit_code":5`) {
			t.Fatalf("exec through replica B: %d %s", status, resp)
		}
		// The same signed request once more: a replay, refused by B.
		again.Body = io.NopCloser(bytes.NewReader(body))
		if status, _, resp := w.send(again); status != http.StatusUnauthorized || !strings.Contains(string(resp), "already received") {
			t.Fatalf("replayed through replica B: %d %s", status, resp)
		}
	})

	t.Run("a forward proof is good once, and only for its signature", func(t *testing.T) {
		body := []byte(`{"argv":["true"]}`)
		r := a.at(w.signed(w.alice, "POST", "/api/v1/sessions/"+w.sid+"/exec", body, time.Now()))
		_, sig, err := sign.ParseAuthorization(r.Header.Get("Authorization"))
		if err != nil {
			t.Fatal(err)
		}
		// As if replica B had checked and remembered the signature.
		if fresh, err := w.b.RememberSignature(t.Context(), sig, time.Hour); err != nil || !fresh {
			t.Fatal(fresh, err)
		}
		forged := r.Clone(t.Context())
		forged.Body = io.NopCloser(bytes.NewReader(body))
		forged.Header.Set(forwardedHeader, base64.RawURLEncoding.EncodeToString(w.b.ForwardProof([]byte("another signature"))))
		if status, _, resp := w.send(forged); status != http.StatusUnauthorized {
			t.Fatalf("a proof of another signature: %d %s", status, resp)
		}
		r.Header.Set(forwardedHeader, base64.RawURLEncoding.EncodeToString(w.b.ForwardProof(sig)))
		replay := r.Clone(t.Context())
		replay.Body = io.NopCloser(bytes.NewReader(body))
		if status, _, resp := w.send(r); status != 200 {
			t.Fatalf("a forwarded request with its proof: %d %s", status, resp)
		}
		if status, _, resp := w.send(replay); status != http.StatusUnauthorized {
			t.Fatalf("the forwarded request replayed: %d %s", status, resp)
		}
	})

	t.Run("others are refused by the replica they reach", func(t *testing.T) {
		r := b.at(w.appRequest(w.bob, "GET", "/s/"+w.sid+"/web/", nil))
		if status, _, body := w.send(r); status != http.StatusNotFound {
			t.Fatalf("bob through replica B: %d %s", status, body)
		}
		before := strings.Count(w.logs.String(), "forwarding to the replica")
		r = b.at(w.signed(w.bob, "POST", "/api/v1/sessions/"+w.sid+"/exec", []byte(`{"argv":["id"]}`), time.Now()))
		if status, _, body := w.send(r); status != http.StatusNotFound {
			t.Fatalf("bob's exec through replica B: %d %s", status, body)
		}
		if after := strings.Count(w.logs.String(), "forwarding to the replica"); after != before {
			t.Fatal("a request of someone who may not use the session was forwarded")
		}
	})

	t.Run("no second forward", func(t *testing.T) {
		r := b.at(w.appRequest(w.alice, "GET", "/s/"+w.sid+"/web/", nil))
		r.Header.Set(forwardedHeader, "1")
		p, _ := w.wantProblem(r, http.StatusBadGateway)
		if !strings.Contains(p.Detail, a.url) {
			t.Fatalf("the refusal does not say where the agent is: %+v", p)
		}
	})

	t.Run("a replica that does not answer", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := "http://" + l.Addr().String()
		l.Close()
		if _, err := w.db.Exec(t.Context(), `UPDATE session_agents SET gateway_url = $2 WHERE session_id = $1`, w.sid, dead); err != nil {
			t.Fatal(err)
		}
		defer w.db.Exec(context.Background(), `UPDATE session_agents SET gateway_url = $2 WHERE session_id = $1`, w.sid, a.url)
		p, _ := w.wantProblem(b.at(w.appRequest(w.alice, "GET", "/s/"+w.sid+"/web/", nil)), http.StatusBadGateway)
		if !strings.Contains(p.Detail, dead) || !strings.Contains(p.Detail, "does not answer") {
			t.Fatalf("%+v", p)
		}
	})

	t.Run("the replica is forgotten when the tunnel closes", func(t *testing.T) {
		conn.Close()
		deadline := time.Now().Add(10 * time.Second)
		for w.gatewayURL(t) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("gateway_url is still %s after the agent disconnected", *w.gatewayURL(t))
			}
			time.Sleep(20 * time.Millisecond)
		}
		p, _ := w.wantProblem(b.at(w.appRequest(w.alice, "GET", "/s/"+w.sid+"/web/", nil)), http.StatusBadGateway)
		if !strings.Contains(p.Detail, "not connected") {
			t.Fatalf("%+v", p)
		}
	})
}

// portalLogin makes a portal login for u and returns its cookie's value.
func (w *runtimeWorld) portalLogin(t *testing.T, u testUser) string {
	t.Helper()
	token, _, err := w.b.CreatePortalSession(t.Context(), bridge.NewPortalSession{UserID: u.UserID, Source: "local", IdleTimeout: time.Hour, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return token
}
