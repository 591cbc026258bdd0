package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/bridge"
)

// sseEvent is one Server-Sent Event as a client parses it.
type sseEvent struct{ name, data string }

// readEvents parses an SSE body into events until it ends.
func readEvents(resp *http.Response, out chan<- sseEvent) {
	defer close(out)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		}
	}
}

func TestSessionStreamDeliversOwnChangesOnly(t *testing.T) {
	a := newTestAPI(t, Options{})
	ctx := t.Context()
	proj, err := a.b.CreateProject(ctx, bridge.System, "lab", "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.b.CreateScalingGroup(ctx, bridge.System, bridge.ScalingGroup{Name: "cpu", Cluster: "c", Partitions: []string{"cpu"}}); err != nil {
		t.Fatal(err)
	}
	open := func(u testUser, query string) (chan sseEvent, func()) {
		r := a.signed(u, "GET", "/api/v1/sessions/stream"+query, nil, time.Now())
		c, cancel := context.WithCancel(ctx)
		resp, err := a.ts.Client().Do(r.WithContext(c))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		evs := make(chan sseEvent, 16)
		go readEvents(resp, evs)
		return evs, func() { cancel(); resp.Body.Close() }
	}
	aliceEvents, stopAlice := open(a.alice, "")
	defer stopAlice()
	bobEvents, stopBob := open(a.bob, "?all=true")
	defer stopBob()
	rootEvents, stopRoot := open(a.root, "?all=true")
	defer stopRoot()
	// The subscription is made before the headers are sent, but its LISTEN
	// connection comes up asynchronously: give it a moment.
	time.Sleep(300 * time.Millisecond)

	const sid = "3f1c2b7a-8e4d-4c5b-9a6f-0123456789ab"
	if _, err := a.db.Exec(ctx, `INSERT INTO sessions (id, user_id, project_id, domain_id, scaling_group, partition, type,
		image, cpus, memory_mb, time_limit_s, state, stdout_path, stderr_path)
		VALUES ($1, $2, $3, $4, 'cpu', 'cpu', 'batch', 'host:latest', 1, 1024, 60, 'PENDING', '/nonexistent/o', '/nonexistent/e')`,
		sid, a.alice.UserID, proj.ID, proj.DomainID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Exec(ctx, `UPDATE sessions SET state = 'RUNNING' WHERE id = $1`, sid); err != nil {
		t.Fatal(err)
	}
	// Notifications are hints: the stream sends the session as it is when
	// read, so the last state must arrive; intermediate ones may coalesce.
	wantState := func(who string, evs chan sseEvent, st string) {
		t.Helper()
		for {
			select {
			case ev := <-evs:
				var s bridge.Session
				if ev.name != "session" || json.Unmarshal([]byte(ev.data), &s) != nil || s.ID != sid {
					t.Fatalf("%s got event %s %s; want session %s", who, ev.name, ev.data, sid)
				}
				if string(s.State) == st {
					return
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%s saw no event for state %s", who, st)
			}
		}
	}
	wantState("alice", aliceEvents, "RUNNING")
	wantState("superadmin", rootEvents, "RUNNING")
	select {
	case ev := <-bobEvents:
		t.Fatalf("bob, who may not see alice's session, got %s %s", ev.name, ev.data)
	case <-time.After(500 * time.Millisecond):
	}

	// A bounded stream ends by itself.
	bounded, stop := open(a.alice, "?max_s=0.3")
	defer stop()
	select {
	case _, ok := <-bounded:
		if ok {
			t.Fatal("bounded stream delivered an event with nothing changing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stream with max_s=0.3 was still open after 5 s")
	}
	a.wantProblem(a.signed(a.alice, "GET", "/api/v1/sessions/stream?max_s=-1", nil, time.Now()), http.StatusBadRequest)
}

// Live streams opened with a portal login end when it is revoked (logout
// on any replica, an admin's revocation), like terminals and app
// WebSockets: the session stream and a followed log.
func TestStreamsEndWhenTheLoginIsRevoked(t *testing.T) {
	w := newRuntimeWorld(t)
	ctx := t.Context()
	// A live session with some output, so that the followed log has
	// started answering before the revocation.
	out := filepath.Join(t.TempDir(), "out")
	if err := os.WriteFile(out, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var uid int
	if err := w.db.QueryRow(ctx, `SELECT uid FROM users WHERE id = $1`, w.alice.UserID).Scan(&uid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(out, uid, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.Exec(ctx, `UPDATE sessions SET stdout_path = $2 WHERE id = $1`, w.sid, out); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/sessions/stream", "/api/v1/sessions/" + w.sid + "/logs?follow=true"} {
		t.Run(path, func(t *testing.T) {
			token := w.portalLogin(t, w.alice)
			r := w.request("GET", path, nil)
			r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
			resp, err := w.ts.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			ended := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, resp.Body)
				ended <- err
			}()
			select {
			case err := <-ended:
				t.Fatalf("the stream ended before the revocation: %v", err)
			case <-time.After(300 * time.Millisecond):
			}
			if err := w.b.RevokePortalSession(ctx, token); err != nil {
				t.Fatal(err)
			}
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatal("the stream was still open 10 s after its portal login was revoked")
			}
		})
	}
}
