package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestWatchSessionsSeesEveryCommittedChange(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithCancel(t.Context())
	changes := w.b.WatchSessions(ctx)
	// The LISTEN connection comes up asynchronously; a change committed
	// before it listens would be missed, so wait for it to be in place.
	waitListening(t, w)

	s, err := w.b.CreateSession(t.Context(), w.alice, w.batch("true"))
	if err != nil {
		t.Fatal(err)
	}
	w.waitState(t, w.alice, s.ID, time.Minute, StateTerminated)
	seen := 0
	timeout := time.After(10 * time.Second)
	for seen < 3 { // created, submitted, terminated at least
		select {
		case c := <-changes:
			if c.ID == s.ID {
				seen++
			}
		case <-timeout:
			t.Fatalf("saw %d changes of session %s, want at least 3", seen, s.ID)
		}
	}

	// A watcher that does not read falls behind; it then gets one Resync
	// instead of blocking the others or the writers.
	slow := w.b.WatchSessions(ctx)
	for i := range 100 {
		if _, err := w.b.db.Exec(t.Context(), `UPDATE sessions SET status_message = $1 WHERE id = $2`, fmt.Sprint(i), s.ID); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for got < 64 {
		select {
		case <-slow:
			got++
		case <-time.After(10 * time.Second):
			t.Fatalf("slow watcher got %d changes, want its whole buffer (64)", got)
		}
	}
	if _, err := w.b.db.Exec(t.Context(), `UPDATE sessions SET status_message = 'last' WHERE id = $1`, s.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-slow:
		if !c.Resync {
			t.Fatalf("after overflowing, the slow watcher got %+v, want a Resync first", c)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("slow watcher got nothing after draining")
	}

	cancel()
	for range changes { // closed once the context ends
	}
}

// waitListening waits until the watch hub's connection LISTENs.
func waitListening(t *testing.T, w *world) {
	t.Helper()
	for range 100 {
		var n int
		err := w.b.db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN `+notifyChannel+`' AND datname = current_database()`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the session watch never started listening")
}
