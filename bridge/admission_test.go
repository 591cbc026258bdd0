package bridge

// Admission against real PostgreSQL: the plan is resolved and admitted as
// CreateSession does, but not submitted, so these tests need no Slurm jobs
// (the world still makes the project's Slurm accounts).

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// admitOnly resolves and admits req for a, as CreateSession does before it
// submits.
func (w *world) admitOnly(ctx context.Context, a Actor, req SessionRequest) (string, error) {
	p, err := w.b.resolve(ctx, a, req)
	if err != nil {
		return "", err
	}
	ad, err := w.b.admit(ctx, p)
	if err != nil {
		return "", err
	}
	ad.release(ctx)
	return ad.id, nil
}

// resetAdmission lifts every policy and ends every session of the world.
func (w *world) resetAdmission(t *testing.T) {
	t.Helper()
	if _, err := w.b.db.Exec(t.Context(), `DELETE FROM policies`); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.db.Exec(t.Context(), `UPDATE sessions SET state = 'CANCELLED' WHERE state <> 'CANCELLED'`); err != nil {
		t.Fatal(err)
	}
}

func (w *world) counts(t *testing.T) (sessions, events int) {
	t.Helper()
	if err := w.b.db.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM session_events)`).Scan(&sessions, &events); err != nil {
		t.Fatal(err)
	}
	return sessions, events
}

func intp(v int) *int       { return &v }
func int64p(v int64) *int64 { return &v }

func TestAdmissionRefusesEachLimitNamingIt(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	cpu := func(cpus int, mem int64) SessionRequest {
		r := w.batch("true")
		r.CPUs, r.MemoryMB = cpus, mem
		return r
	}
	gpu := func(n int, typ string) SessionRequest {
		return SessionRequest{Type: "batch", Image: "host", ScalingGroup: "gpu", Command: "true", GPUs: n, GPUType: typ, TimeLimitS: 600}
	}
	type want struct {
		scope, limit  string
		max, inUse    int64
		asked         int64
		messageSubstr string
	}
	cases := []struct {
		name   string
		policy Policy
		fill   []SessionRequest // admitted first, by alice
		ask    SessionRequest   // then refused
		actor  func() Actor
		want   want
	}{{
		name:   "user sessions",
		policy: Policy{Scope: "user", TargetID: w.alice.UserID, MaxConcurrentSessions: intp(2)},
		fill:   []SessionRequest{cpu(1, 128), cpu(1, 128)},
		ask:    cpu(1, 128),
		want:   want{"user", "max_concurrent_sessions", 2, 2, 1, "may have at most 2 sessions at once (2 live)"},
	}, {
		name:   "user pending",
		policy: Policy{Scope: "user", TargetID: w.alice.UserID, MaxPendingSessions: intp(1)},
		fill:   []SessionRequest{cpu(1, 128)},
		ask:    cpu(1, 128),
		want:   want{"user", "max_pending_sessions", 1, 1, 1, "may have at most 1 sessions waiting (1 pending)"},
	}, {
		name:   "project CPUs, counting another user's",
		policy: Policy{Scope: "project", TargetID: w.project.ID, MaxCPUs: intp(4)},
		fill:   []SessionRequest{cpu(3, 128)},
		ask:    cpu(2, 128),
		actor:  func() Actor { return w.bob },
		want:   want{"project", "cpus", 4, 3, 2, "has a limit of 4 CPUs (3 in use, 2 asked)"},
	}, {
		name:   "domain memory",
		policy: Policy{Scope: "domain", TargetID: w.project.DomainID, MaxMemoryMB: int64p(1000)},
		fill:   []SessionRequest{cpu(1, 600)},
		ask:    cpu(1, 500),
		want:   want{"domain", "memory_mb", 1000, 600, 500, "has a limit of 1000 MiB memory (600 in use, 500 asked)"},
	}, {
		name:   "typed GPUs count untyped ones",
		policy: Policy{Scope: "project", TargetID: w.project.ID, MaxGPUs: map[string]int{"a100": 2, "": 8}},
		fill:   []SessionRequest{gpu(1, "")},
		ask:    gpu(2, "a100"),
		want:   want{"project", "gpus", 2, 1, 2, "has a limit of 2 a100 GPUs (1 in use, 2 asked)"},
	}, {
		name:   "untyped GPUs meet every typed limit",
		policy: Policy{Scope: "domain", TargetID: w.project.DomainID, MaxGPUs: map[string]int{"a100": 1}},
		fill:   nil,
		ask:    gpu(2, ""),
		want:   want{"domain", "gpus", 1, 0, 2, "has a limit of 1 a100 GPUs (0 in use, 2 asked)"},
	}, {
		name:   "total GPUs across types",
		policy: Policy{Scope: "user", TargetID: w.alice.UserID, MaxGPUs: map[string]int{"": 3}},
		fill:   []SessionRequest{gpu(2, "a100")},
		ask:    gpu(2, ""),
		want:   want{"user", "gpus", 3, 2, 2, "has a limit of 3 GPUs (2 in use, 2 asked)"},
	}, {
		name:   "scaling group not allowed",
		policy: Policy{Scope: "project", TargetID: w.project.ID, AllowedScalingGroups: []string{"gpu"}},
		ask:    cpu(1, 128),
		want:   want{"project", "allowed_scaling_groups", 0, 0, 0, "may not use scaling group cpu"},
	}, {
		name:   "lifetime",
		policy: Policy{Scope: "domain", TargetID: w.project.DomainID, MaxSessionLifetimeS: int64p(60)},
		ask:    cpu(1, 128),
		want:   want{"domain", "max_session_lifetime_s", 60, 0, 300, "allows sessions of at most 1m0s; 5m0s was asked"},
	}}
	for _, c := range cases {
		w.resetAdmission(t)
		if _, err := w.b.SetPolicy(ctx, w.admin, c.policy); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, r := range c.fill {
			if _, err := w.admitOnly(ctx, w.alice, r); err != nil {
				t.Fatalf("%s: filling: %v", c.name, err)
			}
		}
		actor := w.alice
		if c.actor != nil {
			actor = c.actor()
		}
		sessions, events := w.counts(t)
		_, err := w.admitOnly(ctx, actor, c.ask)
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindQuota || e.Quota == nil {
			t.Errorf("%s: %v; want a quota refusal", c.name, err)
			continue
		}
		q := e.Quota
		if q.Scope != c.want.scope || q.Limit != c.want.limit || q.Max != c.want.max || q.InUse != c.want.inUse || q.Requested != c.want.asked {
			t.Errorf("%s: refusal %+v; want %+v", c.name, *q, c.want)
		}
		if !strings.Contains(e.Message, c.want.messageSubstr) {
			t.Errorf("%s: message %q; want it to say %q", c.name, e.Message, c.want.messageSubstr)
		}
		if s, ev := w.counts(t); s != sessions || ev != events {
			t.Errorf("%s: a refused admission wrote %d sessions and %d events", c.name, s-sessions, ev-events)
		}
	}
}

func TestAdmissionEndedSessionsFreeTheirQuota(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.b.SetPolicy(ctx, w.admin, Policy{Scope: "domain", TargetID: w.project.DomainID, MaxCPUs: intp(2)}); err != nil {
		t.Fatal(err)
	}
	req := w.batch("true")
	req.CPUs = 2
	id, err := w.admitOnly(ctx, w.alice, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.admitOnly(ctx, w.bob, req); KindOf(err) != KindQuota {
		t.Fatalf("second 2-CPU session under a 2-CPU domain limit: %v; want a quota refusal", err)
	}
	for _, st := range []SessionState{StateRunning, StateTerminating} {
		w.b.db.Exec(ctx, `UPDATE sessions SET state = $2 WHERE id = $1`, id, st)
		if _, err := w.admitOnly(ctx, w.bob, req); KindOf(err) != KindQuota {
			t.Fatalf("with the first session %s: %v; want a quota refusal", st, err)
		}
	}
	w.b.db.Exec(ctx, `UPDATE sessions SET state = 'TERMINATED' WHERE id = $1`, id)
	if _, err := w.admitOnly(ctx, w.bob, req); err != nil {
		t.Fatalf("after the first session ended: %v", err)
	}
}

// Many admissions at once against limits at every level: exactly as many as
// fit get in, whichever level binds, and the refused write nothing.
func TestAdmissionConcurrentNeverOvershootsAnyLevel(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	for _, p := range []Policy{
		{Scope: "user", TargetID: w.alice.UserID, MaxCPUs: intp(6)},                  // alice: 6 of 1-CPU sessions
		{Scope: "project", TargetID: w.project.ID, MaxConcurrentSessions: intp(100)}, // never binds
		{Scope: "domain", TargetID: w.project.DomainID, MaxMemoryMB: int64p(10 * 128)},
	} {
		if _, err := w.b.SetPolicy(ctx, w.admin, p); err != nil {
			t.Fatal(err)
		}
	}
	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := map[string]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := w.alice
			if i%2 == 1 {
				a = w.bob
			}
			_, err := w.admitOnly(ctx, a, w.batch("true"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				admitted[a.Username]++
			case KindOf(err) != KindQuota:
				t.Errorf("admit: %v", err)
			}
		}()
	}
	wg.Wait()
	// The domain holds 10 sessions of 128 MiB; alice may take at most 6 of them.
	if admitted["alice"] > 6 || admitted["alice"]+admitted["bob"] != 10 {
		t.Fatalf("admitted %v of %d; want 10 in all, alice at most 6", admitted, n)
	}
	var live, mem, aliceCPUs int64
	w.b.db.QueryRow(ctx, `SELECT count(*), sum(memory_mb), sum(cpus) FILTER (WHERE user_id = $2) FROM sessions WHERE state = ANY($1)`,
		liveStates, w.alice.UserID).Scan(&live, &mem, &aliceCPUs)
	if live != 10 || mem != 10*128 || aliceCPUs > 6 {
		t.Fatalf("live sessions: %d holding %d MiB, alice %d CPUs; want 10, 1280 MiB, at most 6", live, mem, aliceCPUs)
	}
	var events int
	w.b.db.QueryRow(ctx, `SELECT count(*) FROM session_events`).Scan(&events)
	if events != 10 {
		t.Fatalf("%d events for 10 admitted sessions", events)
	}
}

func TestAdmissionIdempotencyKeyRace(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	// A policy, so the admissions take the checked path.
	if _, err := w.b.SetPolicy(ctx, w.admin, Policy{Scope: "user", TargetID: w.alice.UserID, MaxConcurrentSessions: intp(10)}); err != nil {
		t.Fatal(err)
	}
	req := w.batch("true")
	req.IdempotencyKey = "same"
	const n = 8
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := w.admitOnly(ctx, w.alice, req)
			if err != nil {
				t.Errorf("admit: %v", err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	for _, id := range ids[1:] {
		if id != ids[0] {
			t.Fatalf("concurrent admissions with one key returned %v; want one session", ids)
		}
	}
	if s, ev := w.counts(t); s != 1 || ev != 1 {
		t.Fatalf("%d sessions and %d events for one idempotency key; want 1 and 1", s, ev)
	}
}

// An admission waits only for the admission locks of scopes that bound it:
// with a domain limit, for the domain's; with only per-user limits, for no
// other user's.
func TestAdmissionLocksOnlyBoundedScopes(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	// Another create of the domain, mid-admission: it holds the domain's lock.
	holdDomain := func() func() {
		tx, err := w.b.db.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(7, $1::int)`, w.project.DomainID); err != nil {
			t.Fatal(err)
		}
		release := func() { tx.Rollback(context.Background()) }
		t.Cleanup(release) // a failing test must not leave the pool a held connection
		return release
	}

	// Only a per-user limit: bob's admission does not wait for the domain.
	if _, err := w.b.SetPolicy(ctx, w.admin, Policy{Scope: "user", TargetID: w.bob.UserID, MaxCPUs: intp(8)}); err != nil {
		t.Fatal(err)
	}
	release := holdDomain()
	done := make(chan error, 1)
	go func() { _, err := w.admitOnly(ctx, w.bob, w.batch("true")); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("admission under a user limit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an admission bounded only by its user's limit waited for the domain's lock")
	}
	release()

	// A domain limit: the admission waits for the domain's lock, then runs.
	if _, err := w.b.SetPolicy(ctx, w.admin, Policy{Scope: "domain", TargetID: w.project.DomainID, MaxCPUs: intp(8)}); err != nil {
		t.Fatal(err)
	}
	release = holdDomain()
	go func() { _, err := w.admitOnly(ctx, w.bob, w.batch("true")); done <- err }()
	waiting := false
	for range 300 {
		var n int
		if err := w.b.db.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = 7 AND objid = $1`,
			w.project.DomainID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if waiting = n == 1; waiting {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("admission under a domain limit ran while another held the domain's lock (err %v)", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !waiting {
		t.Fatal("admission under a domain limit never queued for the domain's lock")
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("admission after the lock was released: %v", err)
	}
	if s, _ := w.counts(t); s != 2 {
		t.Fatalf("%d sessions, want 2", s)
	}
}
