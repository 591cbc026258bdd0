package api

// The test harness: the real handler in an httptest.Server over a fresh
// PostgreSQL database, with users and their keypairs.

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/api/sign"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
)

type testUser struct {
	bridge.Actor
	accessKey, secret string
}

type testAPI struct {
	t                *testing.T
	db               *pgxpool.Pool
	b                *bridge.Bridge
	srv              *Server
	ts               *httptest.Server
	logs             *lockedBuffer
	alice, bob, root testUser
	key              []byte // the bridge's SecretKey, which replicas share
}

// lockedBuffer is the server's log: handlers write it from their own
// goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// newTestAPI starts the API with alice and bob (users) and root
// (superadmin) in domain "lab", each with a keypair.
func newTestAPI(t *testing.T, opts Options) *testAPI {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := bridgetest.Pool(t)
	b := bridge.New(db, nil, bridge.Config{SecretKey: key}, log)
	opts.Logger = log
	a := &testAPI{t: t, db: db, b: b, srv: New(b, opts), logs: logs, key: key}
	a.ts = httptest.NewServer(a.srv)
	t.Cleanup(a.ts.Close)

	ctx := t.Context()
	if _, err := b.CreateDomain(ctx, bridge.System, "lab", ""); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, uid int, role bridge.Role) testUser {
		u, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: name, UID: uid, Domain: "lab", Role: role})
		if err != nil {
			t.Fatal(err)
		}
		ak, sk, err := b.CreateKeypair(ctx, u.Actor(), u.ID, "test")
		if err != nil {
			t.Fatal(err)
		}
		return testUser{u.Actor(), ak, sk}
	}
	a.alice = mk("alice", 2001, bridge.RoleUser)
	a.bob = mk("bob", 2002, bridge.RoleUser)
	a.root = mk("root1", 2003, bridge.RoleSuperadmin)
	return a
}

// client returns an API client signing with u's keypair.
func (a *testAPI) client(u testUser) *client.Client {
	a.t.Helper()
	c, err := client.New(a.ts.URL, client.WithKeypair(u.accessKey, u.secret))
	if err != nil {
		a.t.Fatal(err)
	}
	return c
}

// tokenClient returns an API client sending a fresh bearer token of u's.
func (a *testAPI) tokenClient(u testUser) (*client.Client, string) {
	a.t.Helper()
	tok, err := a.client(u).CreateToken(a.t.Context(), time.Hour)
	if err != nil {
		a.t.Fatal(err)
	}
	c, err := client.New(a.ts.URL, client.WithToken(tok.Token))
	if err != nil {
		a.t.Fatal(err)
	}
	return c, tok.Token
}

// request builds a request to the test server; body may be nil.
func (a *testAPI) request(method, path string, body []byte) *http.Request {
	a.t.Helper()
	r, err := http.NewRequestWithContext(a.t.Context(), method, a.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// signed builds a request signed by u as of at.
func (a *testAPI) signed(u testUser, method, path string, body []byte, at time.Time) *http.Request {
	a.t.Helper()
	r := a.request(method, path, body)
	if err := sign.Sign(r, body, u.accessKey, []byte(u.secret), at); err != nil {
		a.t.Fatal(err)
	}
	return r
}

// signedHeader is the headers of a GET of path that u signs, for clients
// that take headers rather than a request (WebSocket dialers).
func (a *testAPI) signedHeader(u testUser, path string) http.Header {
	a.t.Helper()
	r := a.signed(u, "GET", path, nil, time.Now())
	h := http.Header{}
	for _, k := range []string{"Authorization", sign.DateHeader, sign.NonceHeader, sign.ContentSHA256Header} {
		h.Set(k, r.Header.Get(k))
	}
	return h
}

// readUntil reads c's messages into out until it holds want, failing after
// 10 s.
func readUntil(t *testing.T, c *websocket.Conn, out *bytes.Buffer, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(out.String(), want) {
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("reading for %q: %v; so far %q", want, err, out.String())
		}
		out.Write(msg)
	}
}

// send sends r and returns the status, headers and body.
func (a *testAPI) send(r *http.Request) (int, http.Header, []byte) {
	a.t.Helper()
	resp, err := a.ts.Client().Do(r)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// wantStatus sends r and fails unless the answer has the status.
func (a *testAPI) wantStatus(r *http.Request, status int) []byte {
	a.t.Helper()
	got, _, body := a.send(r)
	if got != status {
		a.t.Fatalf("%s %s: status %d, want %d: %s", r.Method, r.URL.Path, got, status, body)
	}
	return body
}

// wantProblem sends r and checks that the answer is a well-formed problem
// with the status; it returns the problem and the headers.
func (a *testAPI) wantProblem(r *http.Request, status int) (*problem, http.Header) {
	a.t.Helper()
	got, h, body := a.send(r)
	return checkProblem(a.t, got, h, body, status), h
}

// checkProblem checks a problem response: the status, the content type,
// the members every problem has, and that its request id is the header's.
func checkProblem(t *testing.T, status int, h http.Header, body []byte, want int) *problem {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, want %d: %s", status, want, body)
	}
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json (body %s)", ct, body)
	}
	var p problem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("problem body %s: %v", body, err)
	}
	if p.Status != want || !strings.HasPrefix(p.Type, problemTypeBase) || p.Title == "" || p.Detail == "" {
		t.Fatalf("incomplete problem: %s", body)
	}
	if p.RequestID == "" || p.RequestID != h.Get("X-Request-Id") {
		t.Fatalf("problem request_id %q, header X-Request-Id %q", p.RequestID, h.Get("X-Request-Id"))
	}
	return &p
}

// wantClientProblem checks that err is an API problem with the status.
func wantClientProblem(t *testing.T, err error, status int) *client.Problem {
	t.Helper()
	p, ok := err.(*client.Problem)
	if !ok {
		t.Fatalf("err = %v (%T), want a *client.Problem with status %d", err, err, status)
	}
	if p.Status != status {
		t.Fatalf("status %d, want %d: %v", p.Status, status, p)
	}
	return p
}
