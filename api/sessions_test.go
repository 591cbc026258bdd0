package api

// Session routes against real PostgreSQL and the real test cluster.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

// newSessionAPI is newTestAPI with Slurm: the bridge talks to the test
// cluster, and alice and bob (POSIX users there) are members of project
// vision in a domain with a unique name, whose Slurm accounts exist for the
// test's duration. The cluster is shared, hence the unique name.
func newSessionAPI(t *testing.T, configure ...func(*bridge.Config)) (*testAPI, bridge.Project) {
	t.Helper()
	env := cluster.Require(t)
	slurm, err := slurmctl.New(slurmctl.Config{URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := bridgetest.Pool(t)
	// Session jobs run `slurmgate agent`, which dials this server's tunnel
	// endpoint, as in production.
	a := &testAPI{t: t, db: db, logs: logs}
	a.ts = httptest.NewUnstartedServer(nil)
	cfg := bridge.Config{Cluster: env.Name, JobOutputDir: env.JobOutputDir, ReconcileInterval: 200 * time.Millisecond, SecretKey: key,
		AgentBinary: cluster.AgentBinary(t), TunnelURL: "ws://" + a.ts.Listener.Addr().String() + "/api/v1/agent/tunnel"}
	for _, f := range configure {
		f(&cfg)
	}
	b := bridge.New(db, slurm, cfg, log)
	a.b, a.srv = b, New(b, Options{Logger: log})
	a.ts.Config.Handler = a.srv
	a.ts.Start()
	t.Cleanup(a.ts.Close)

	ctx := t.Context()
	domain := fmt.Sprintf("a%x", time.Now().UnixNano()&0xffffffff)
	if _, err := b.CreateDomain(ctx, bridge.System, domain, ""); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, uid int, role bridge.Role) testUser {
		u, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: name, UID: uid, Domain: domain, Role: role})
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
	project, err := b.CreateProject(ctx, bridge.System, domain, "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []testUser{a.alice, a.bob} {
		if _, err := b.SetMembership(ctx, bridge.System, project.ID, u.UserID, "member"); err != nil {
			t.Fatal(err)
		}
	}
	// The Slurm side of the project, as the account sync would make it.
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: domain, Organization: "slurmgate-test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Retried while the sessions' cancelled jobs finish: Slurm keeps an
		// account with active jobs.
		for range 50 {
			err := slurm.DeleteAccount(context.Background(), domain)
			if err == nil || errors.Is(err, slurmctl.ErrNotFound) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: project.Account(), Parent: domain, Organization: "slurmgate-test"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := slurm.CreateAssociation(ctx, slurmctl.Association{Account: project.Account(), User: u}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.CreateScalingGroup(ctx, bridge.System, bridge.ScalingGroup{Name: "cpu", Partitions: []string{"cpu"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateImage(ctx, bridge.System, bridge.Image{Name: "host", Tag: "latest", Location: "/", Runtime: "none"}); err != nil {
		t.Fatal(err)
	}
	// Cancel every live session's job when the test ends, so none outlives it.
	t.Cleanup(func() {
		ss, _ := b.ListSessions(context.Background(), bridge.System, bridge.SessionFilter{All: true,
			States: []bridge.SessionState{bridge.StatePending, bridge.StatePreparing, bridge.StateRunning}, Limit: 500})
		for _, s := range ss {
			if s.JobID != nil {
				slurm.Cancel(context.Background(), s.Owner, slurmctl.JobID(*s.JobID))
			}
		}
	})
	return a, project
}

// batchBody is a small batch session request as JSON.
func batchBody(t *testing.T, extra map[string]any) []byte {
	t.Helper()
	req := map[string]any{"type": "batch", "image": "host", "scaling_group": "cpu", "command": "echo hello; sleep 30",
		"cpus": 1, "memory_mb": 128, "time_limit_s": 300}
	for k, v := range extra {
		req[k] = v
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSessionsAPI(t *testing.T) {
	t.Parallel()
	a, project := newSessionAPI(t)
	ctx := t.Context()
	now := time.Now

	// Create, as alice: 201 with the session and its Location.
	body := batchBody(t, map[string]any{"project": project.Path()})
	r := a.signed(a.alice, "POST", "/api/v1/sessions", body, now())
	r.Header.Set("Idempotency-Key", "first-try")
	status, h, raw := a.send(r)
	if status != http.StatusCreated {
		t.Fatalf("create: status %d: %s", status, raw)
	}
	var sess bridge.Session
	if err := json.Unmarshal(raw, &sess); err != nil {
		t.Fatal(err)
	}
	if sess.ID == "" || sess.Owner != "alice" || sess.JobID == nil || h.Get("Location") != "/api/v1/sessions/"+sess.ID {
		t.Fatalf("created %+v, Location %q", sess, h.Get("Location"))
	}

	// The header is an idempotency key: a retry returns the same session.
	r = a.signed(a.alice, "POST", "/api/v1/sessions", body, now())
	r.Header.Set("Idempotency-Key", "first-try")
	var again bridge.Session
	if err := json.Unmarshal(a.wantStatus(r, http.StatusCreated), &again); err != nil {
		t.Fatal(err)
	}
	if again.ID != sess.ID {
		t.Fatalf("retry with the same Idempotency-Key made session %s, want %s", again.ID, sess.ID)
	}

	alice, bob := a.client(a.alice), a.client(a.bob)
	got, err := alice.Session(ctx, sess.ID)
	if err != nil || got.ID != sess.ID || got.Project != project.Path() {
		t.Fatalf("alice gets %+v, %v", got, err)
	}
	if evs, err := alice.SessionEvents(ctx, sess.ID); err != nil || len(evs) == 0 {
		t.Fatalf("alice's events: %v, %v", evs, err)
	}
	var out bytes.Buffer
	if err := alice.SessionLog(ctx, sess.ID, client.LogOptions{Tail: 10}, &out); err != nil {
		t.Fatalf("alice's log: %v", err)
	}

	// Bob may not see it at all: 404, never 403.
	_, err = bob.Session(ctx, sess.ID)
	wantClientProblem(t, err, http.StatusNotFound)
	_, err = bob.SessionEvents(ctx, sess.ID)
	wantClientProblem(t, err, http.StatusNotFound)
	err = bob.SessionLog(ctx, sess.ID, client.LogOptions{}, &out)
	wantClientProblem(t, err, http.StatusNotFound)
	_, err = bob.DestroySession(ctx, sess.ID)
	wantClientProblem(t, err, http.StatusNotFound)

	for _, c := range []struct {
		who  string
		c    *client.Client
		want int
	}{{"alice", alice, 1}, {"bob", bob, 0}} {
		page, err := c.c.ListSessions(ctx, client.SessionListOptions{})
		if err != nil || len(page.Items) != c.want {
			t.Fatalf("%s lists %v, %v; want %d sessions", c.who, page, err, c.want)
		}
	}
	if page, err := alice.ListSessions(ctx, client.SessionListOptions{States: []string{"TERMINATED"}}); err != nil || len(page.Items) != 0 {
		t.Fatalf("alice's TERMINATED sessions: %v, %v", page, err)
	}

	// Malformed and invalid requests.
	p, _ := a.wantProblem(a.signed(a.alice, "POST", "/api/v1/sessions", batchBody(t, map[string]any{"colour": "blue"}), now()), http.StatusBadRequest)
	if p.Field != "colour" {
		t.Errorf("unknown field: field %q, want colour", p.Field)
	}
	p, _ = a.wantProblem(a.signed(a.alice, "POST", "/api/v1/sessions", batchBody(t, map[string]any{"image": "no-such-image"}), now()), http.StatusUnprocessableEntity)
	if p.Field != "image" {
		t.Errorf("unknown image: field %q, want image", p.Field)
	}
	a.wantProblem(a.signed(a.alice, "GET", "/api/v1/sessions?all=maybe", nil, now()), http.StatusBadRequest)
	if p, _ = a.wantProblem(a.signed(a.alice, "GET", "/api/v1/sessions?state=RUNNING&state=SLEEPING", nil, now()), http.StatusBadRequest); p.Field != "state" {
		t.Errorf("unknown state: field %q, want state", p.Field)
	}
	a.wantProblem(a.signed(a.alice, "GET", "/api/v1/sessions/"+sess.ID+"/logs?tail=-1", nil, now()), http.StatusBadRequest)

	// A policy allowing alice one session at a time refuses a second one.
	one := 1
	if _, err := a.client(a.root).SetPolicy(ctx, client.Policy{Scope: "user", TargetID: a.alice.UserID, MaxConcurrentSessions: &one}); err != nil {
		t.Fatal(err)
	}
	_, err = alice.CreateSession(ctx, client.SessionRequest{Type: "batch", Image: "host", ScalingGroup: "cpu", Command: "true", CPUs: 1, MemoryMB: 128, TimeLimitS: 60})
	qp := wantClientProblem(t, err, http.StatusForbidden)
	if qp.Quota == nil || qp.Quota.Limit != "max_concurrent_sessions" || qp.Quota.Max != 1 {
		t.Fatalf("quota refusal without the limit: %+v", qp)
	}

	// Destroy: 202 with the session as it stands.
	r = a.signed(a.alice, "DELETE", "/api/v1/sessions/"+sess.ID, nil, now())
	var ended bridge.Session
	if err := json.Unmarshal(a.wantStatus(r, http.StatusAccepted), &ended); err != nil {
		t.Fatal(err)
	}
	if ended.ID != sess.ID || (ended.State != bridge.StateCancelled && ended.State != bridge.StateTerminating) {
		t.Fatalf("after DELETE: %s %s", ended.ID, ended.State)
	}
}

// TestSessionLogFollow streams a batch job's output as it runs: a followed
// log ends by itself when the reconciler sees the session end.
func TestSessionLogFollow(t *testing.T) {
	t.Parallel()
	a, _ := newSessionAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.b.RunReconciler(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done }) // before the database goes away

	alice := a.client(a.alice)
	s, err := alice.CreateSession(t.Context(), client.SessionRequest{Type: "batch", Image: "host", ScalingGroup: "cpu",
		Command: "echo hello; sleep 1; echo world; echo oops >&2", CPUs: 1, MemoryMB: 64, TimeLimitS: 120})
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer fcancel()
	var out bytes.Buffer
	if err := alice.SessionLog(fctx, s.ID, client.LogOptions{Follow: true}, &out); err != nil {
		t.Fatalf("following the log: %v (so far %q)", err, out.String())
	}
	if out.String() != "hello\nworld\n" {
		t.Fatalf("followed stdout %q, want hello and world", out.String())
	}
	out.Reset()
	if err := alice.SessionLog(t.Context(), s.ID, client.LogOptions{Stream: "stderr"}, &out); err != nil || out.String() != "oops\n" {
		t.Fatalf("stderr %q, %v", out.String(), err)
	}
	out.Reset()
	if err := alice.SessionLog(t.Context(), s.ID, client.LogOptions{Tail: 1}, &out); err != nil || out.String() != "world\n" {
		t.Fatalf("tail 1: %q, %v", out.String(), err)
	}
	r := a.signed(a.alice, "GET", "/api/v1/sessions/"+s.ID+"/logs?stream=stdin", nil, time.Now())
	if p, _ := a.wantProblem(r, http.StatusUnprocessableEntity); p.Field != "stream" {
		t.Errorf("bad stream: field %q", p.Field)
	}
	status, h, _ := a.send(a.signed(a.alice, "GET", "/api/v1/sessions/"+s.ID+"/logs", nil, time.Now()))
	if status != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("log: status %d, Content-Type %q", status, h.Get("Content-Type"))
	}
}

// TestSessionListPagination pages through sessions with the cursor.
func TestSessionListPagination(t *testing.T) {
	t.Parallel()
	a, _ := newSessionAPI(t)
	ctx := t.Context()
	alice := a.client(a.alice)
	made := map[string]bool{}
	for i := range 3 {
		s, err := alice.CreateSession(ctx, client.SessionRequest{Type: "batch", Image: "host", ScalingGroup: "cpu",
			Command: "true", CPUs: 1, MemoryMB: 64, TimeLimitS: 60, IdempotencyKey: "page-" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		made[s.ID] = true
	}
	seen := map[string]bool{}
	opts := client.SessionListOptions{ListOptions: client.ListOptions{Limit: 2}}
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("the listing does not end")
		}
		page, err := alice.ListSessions(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Items {
			if seen[s.ID] {
				t.Fatalf("session %s listed twice", s.ID)
			}
			seen[s.ID] = true
		}
		if page.Next == "" {
			break
		}
		opts.Cursor = page.Next
	}
	if len(seen) != len(made) {
		t.Fatalf("listed %d sessions, made %d", len(seen), len(made))
	}
}

// TestRoutesNeedCredentials walks the route table itself, so every route
// added later is covered: without credentials, each non-public route
// answers 401.
func TestRoutesNeedCredentials(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, Options{})
	for _, rt := range a.srv.routes {
		if rt.access == public || rt.access == localOrSuperadmin { // the test client is on the loopback interface
			continue
		}
		path := wildcard.ReplaceAllString(strings.ReplaceAll(rt.pattern, "{$}", ""), "1")
		var body []byte
		if rt.method == "POST" || rt.method == "PUT" || rt.method == "PATCH" {
			body = []byte("{}")
		}
		status, h, raw := a.send(a.request(rt.method, path, body))
		if status != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s without credentials: status %d (WWW-Authenticate %q), want 401: %s",
				rt.method, rt.pattern, status, h.Get("WWW-Authenticate"), raw)
		}
	}
}
