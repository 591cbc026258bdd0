package bridge

// Session lifecycle tests against real PostgreSQL and the real test cluster.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/testdata/cluster"
	"github.com/slurmgate/slurmgate/tunnel"
)

// world is a bridge over a fresh database with one domain, one project whose
// Slurm account exists, users alice and bob, and the catalogue sessions need.
type world struct {
	b          *Bridge
	env        *cluster.Env
	slurm      *slurmctl.Client
	admin      Actor
	alice, bob Actor
	project    Project
}

func newWorld(t testing.TB) *world {
	t.Helper()
	env := cluster.Require(t)
	slurm, err := slurmctl.New(slurmctl.Config{URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf})
	if err != nil {
		t.Fatal(err)
	}
	// Sessions run as in production: the job's one step is `slurmgate
	// agent`, which dials this tunnel endpoint (the gateway's, without the
	// REST API around it: package api imports this one).
	var b *Bridge
	tunnelSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := tunnel.Accept(w, r, tunnel.AcceptConfig{Authenticate: b.AuthenticateAgent})
		if err != nil {
			return
		}
		b.ServeAgent(context.WithoutCancel(r.Context()), conn)
	}))
	t.Cleanup(tunnelSrv.Close)
	b = New(bridgetest.Pool(t), slurm, Config{Cluster: env.Name, JobOutputDir: env.JobOutputDir, ReconcileInterval: 200 * time.Millisecond,
		AgentBinary: cluster.AgentBinary(t), TunnelURL: "ws" + strings.TrimPrefix(tunnelSrv.URL, "http") + "/api/v1/agent/tunnel"}, nil)
	ctx := t.Context()
	w := &world{b: b, env: env, slurm: slurm}

	domain := fmt.Sprintf("t%x", time.Now().UnixNano()&0xffffffff)
	var domainID int64
	if err := b.db.QueryRow(ctx, `INSERT INTO domains (name) VALUES ($1) RETURNING id`, domain).Scan(&domainID); err != nil {
		t.Fatal(err)
	}
	w.admin = Actor{Username: "root", Role: RoleSuperadmin, DomainID: domainID}
	mkUser := func(name string, uid int) Actor {
		u, err := b.CreateUser(ctx, w.admin, NewUser{Username: name, UID: uid, Domain: domain})
		if err != nil {
			t.Fatal(err)
		}
		return u.Actor()
	}
	w.alice, w.bob = mkUser("alice", 2001), mkUser("bob", 2002)
	if w.project, err = b.CreateProject(ctx, w.admin, domain, "vision", ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range []Actor{w.alice, w.bob} {
		if _, err := b.SetMembership(ctx, w.admin, w.project.ID, u.UserID, "member"); err != nil {
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
		for try := 0; try < 50; try++ {
			err := slurm.DeleteAccount(context.Background(), domain)
			if err == nil || errors.Is(err, slurmctl.ErrNotFound) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: w.project.Account(), Parent: domain, Organization: "slurmgate-test"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := slurm.CreateAssociation(ctx, slurmctl.Association{Account: w.project.Account(), User: u}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sg := range []ScalingGroup{{Name: "cpu", Partitions: []string{"cpu"}}, {Name: "gpu", Partitions: []string{"gpu"}, GPUTypes: []string{"a100"}}} {
		if _, err := b.CreateScalingGroup(ctx, w.admin, sg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.CreateImage(ctx, w.admin, Image{Name: "host", Tag: "latest", Location: "/", Runtime: "none"}); err != nil {
		t.Fatal(err)
	}
	// Stop every live session when the test ends, so no job outlives it.
	t.Cleanup(func() {
		ss, _ := b.ListSessions(context.Background(), w.admin, SessionFilter{All: true, States: []SessionState{StatePending, StatePreparing, StateRunning}, Limit: 500})
		for _, s := range ss {
			if s.JobID != nil {
				slurm.Cancel(context.Background(), s.Owner, slurmctl.JobID(*s.JobID))
			}
		}
	})
	return w
}

func (w *world) batch(cmd string) SessionRequest {
	return SessionRequest{Type: "batch", Image: "host", ScalingGroup: "cpu", Command: cmd, CPUs: 1, MemoryMB: 128, TimeLimitS: 300}
}

// waitState reconciles until the session reaches one of the states.
func (w *world) waitState(t *testing.T, a Actor, id string, limit time.Duration, states ...SessionState) Session {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if _, err := w.b.ReconcileOnce(t.Context()); err != nil {
			t.Logf("reconcile: %v", err)
		}
		s, err := w.b.Session(t.Context(), a, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range states {
			if s.State == st {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("session %s stayed %s (%s), want %v", id, s.State, s.StatusMessage, states)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (w *world) jobsFor(t *testing.T, id string) []slurmctl.Job {
	t.Helper()
	jobs, err := w.slurm.AllJobs(t.Context(), slurmctl.JobFilter{CommentPrefix: jobComment(id)})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func TestSessionBatchRunsToCompletionWithLogs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s, err := w.b.CreateSession(t.Context(), w.alice, w.batch(`echo "hello from $(hostname) as $(id -un)"; echo oops >&2`))
	if err != nil {
		t.Fatal(err)
	}
	if s.State != StatePending || s.JobID == nil || s.Owner != "alice" {
		t.Fatalf("created session %+v; want PENDING with a job id, owned by alice", s)
	}
	s = w.waitState(t, w.alice, s.ID, 2*time.Minute, StateTerminated, StateError)
	if s.State != StateTerminated || s.ExitCode == nil || *s.ExitCode != 0 || s.SlurmState != "COMPLETED" {
		t.Fatalf("session ended %s exit %v slurm %s (%s)", s.State, s.ExitCode, s.SlurmState, s.StatusMessage)
	}
	var out, errOut bytes.Buffer
	if err := w.b.SessionLog(t.Context(), w.alice, s.ID, LogOptions{}, &out, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.b.SessionLog(t.Context(), w.alice, s.ID, LogOptions{Stream: "stderr"}, &errOut, nil); err != nil {
		t.Fatal(err)
	}
	if want := "hello from " + s.Node + " as alice\n"; out.String() != want || errOut.String() != "oops\n" {
		t.Fatalf("logs: stdout %q stderr %q; want %q and \"oops\"", out.String(), errOut.String(), want)
	}
	events, err := w.b.SessionEvents(t.Context(), w.alice, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	if got := strings.Join(kinds, ","); !strings.HasPrefix(got, "created,submitted") || !strings.HasSuffix(got, "ended") {
		t.Errorf("timeline %s; want created, submitted, …, ended", got)
	}
}

func TestSessionFailureExitCodeAndTimeout(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	failing, err := w.b.CreateSession(t.Context(), w.alice, w.batch("exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	slow := w.batch("sleep 600")
	slow.TimeLimitS = 60
	timed, err := w.b.CreateSession(t.Context(), w.alice, slow)
	if err != nil {
		t.Fatal(err)
	}
	s := w.waitState(t, w.alice, failing.ID, 2*time.Minute, StateTerminated, StateError)
	if s.ExitCode == nil || *s.ExitCode != 3 || s.SlurmState != "FAILED" || !strings.Contains(s.StatusMessage, "exit code 3") {
		t.Errorf("exit 3 session: exit %v slurm %s message %q", s.ExitCode, s.SlurmState, s.StatusMessage)
	}
	// Slurm checks time limits every 30 s or so: allow a few minutes.
	s = w.waitState(t, w.alice, timed.ID, 4*time.Minute, StateTerminated, StateError)
	if s.SlurmState != "TIMEOUT" || !strings.Contains(s.StatusMessage, "TIMEOUT") {
		t.Errorf("time-limited session: slurm %s message %q; want TIMEOUT", s.SlurmState, s.StatusMessage)
	}
	// Its job ran the agent: PREPARING (job started, agent not yet ready)
	// came between PENDING and the end.
	events, err := w.b.SessionEvents(t.Context(), w.alice, timed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(events, func(e Event) bool { return e.To == StatePreparing }) {
		t.Errorf("timeline %+v: no transition to PREPARING", events)
	}
}

func TestSessionGPUQuotaRefusesWithLimitNamed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.b.SetPolicy(ctx, w.admin, Policy{Scope: "project", TargetID: w.project.ID, MaxGPUs: map[string]int{"": 2}}); err != nil {
		t.Fatal(err)
	}
	req := SessionRequest{Type: "batch", Image: "host", ScalingGroup: "gpu", Command: "sleep 300", GPUs: 1, TimeLimitS: 600}
	for range 2 {
		if _, err := w.b.CreateSession(ctx, w.alice, req); err != nil {
			t.Fatal(err)
		}
	}
	_, err := w.b.CreateSession(ctx, w.bob, req)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindQuota || e.Quota == nil {
		t.Fatalf("third GPU session: %v; want a quota refusal", err)
	}
	if q := e.Quota; q.Scope != "project" || q.Limit != "gpus" || q.Max != 2 || q.InUse != 2 || q.Requested != 1 {
		t.Errorf("refusal names %+v; want project gpus max 2, 2 in use, 1 asked", q)
	}
	if !strings.Contains(e.Message, "limit of 2 GPUs") {
		t.Errorf("message %q does not name the limit", e.Message)
	}
}

func TestSessionConcurrentCreatesNeverOvershootQuota(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.b.SetPolicy(ctx, w.admin, Policy{Scope: "project", TargetID: w.project.ID, MaxGPUs: map[string]int{"": 4}}); err != nil {
		t.Fatal(err)
	}
	req := SessionRequest{Type: "batch", Image: "host", ScalingGroup: "gpu", Command: "sleep 300", GPUs: 1, TimeLimitS: 600}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, refused := 0, 0
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := w.alice
			if i%2 == 1 {
				a = w.bob
			}
			_, err := w.b.CreateSession(ctx, a, req)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				admitted++
			case KindOf(err) == KindQuota:
				refused++
			default:
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	if admitted != 4 || refused != 16 {
		t.Fatalf("admitted %d, refused %d of 20 against a 4-GPU quota; want 4 and 16", admitted, refused)
	}
	var gpus int
	w.b.db.QueryRow(ctx, `SELECT COALESCE(sum(gpus), 0) FROM sessions WHERE state = ANY($1)`, liveStates).Scan(&gpus)
	if gpus != 4 {
		t.Fatalf("%d GPUs held by live sessions, want 4", gpus)
	}
}

func TestSessionCrashBetweenWriteAndSubmitYieldsOneJob(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	crash := errors.New("simulated crash")

	// Crash after the row is durable, before Slurm hears of it.
	w.b.hooks.afterAdmit = func(string) error { return crash }
	_, err := w.b.CreateSession(ctx, w.alice, w.batch("sleep 30"))
	w.b.hooks.afterAdmit = nil
	if !errors.Is(err, crash) {
		t.Fatalf("create: %v, want the simulated crash", err)
	}
	// Crash after Slurm took the job, before its id was recorded.
	w.b.hooks.afterSubmit = func(string) error { return crash }
	_, err = w.b.CreateSession(ctx, w.bob, w.batch("sleep 30"))
	w.b.hooks.afterSubmit = nil
	if err != nil {
		t.Fatalf("create with a crash after submit: %v (the create itself reports success: the job exists)", err)
	}

	ss, err := w.b.ListSessions(ctx, w.admin, SessionFilter{All: true})
	if err != nil || len(ss) != 2 {
		t.Fatalf("%d sessions (%v), want 2", len(ss), err)
	}
	for _, s := range ss {
		if s.SubState != subSubmitting || s.JobID != nil {
			t.Fatalf("session %s: sub-state %q job %v; want still submitting", s.Owner, s.SubState, s.JobID)
		}
	}
	// "Restart": reconcile a few times, as a fresh gateway would.
	for range 3 {
		if _, err := w.b.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range ss {
		jobs := w.jobsFor(t, s.ID)
		if len(jobs) != 1 {
			t.Fatalf("session of %s has %d Slurm jobs, want exactly 1", s.Owner, len(jobs))
		}
		got, _ := w.b.Session(ctx, w.admin, s.ID)
		if got.JobID == nil || *got.JobID != int64(jobs[0].ID) {
			t.Fatalf("session of %s records job %v, Slurm has %d", s.Owner, got.JobID, jobs[0].ID)
		}
	}
}

func TestSessionDestroyAndPendingReason(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	// Slurm lets the project run one job at a time, so a second session pends
	// on the account's limit.
	acct, err := w.slurm.Account(ctx, w.project.Account())
	if err != nil {
		t.Fatal(err)
	}
	acct.Limits.GrpJobs = 1
	if err := w.slurm.UpdateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	run, err := w.b.CreateSession(ctx, w.alice, w.batch("sleep 300"))
	if err != nil {
		t.Fatal(err)
	}
	w.waitState(t, w.alice, run.ID, time.Minute, StateRunning)
	pend, err := w.b.CreateSession(ctx, w.alice, w.batch("sleep 300"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for pend.SlurmReason != "AssocGrpJobsLimit" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		w.b.ReconcileOnce(ctx)
		pend, _ = w.b.Session(ctx, w.alice, pend.ID)
	}
	if pend.State != StatePending || pend.SlurmReason != "AssocGrpJobsLimit" || !strings.Contains(pend.StatusMessage, "1") {
		t.Fatalf("second session: %s reason %s message %q; want PENDING on AssocGrpJobsLimit, explained", pend.State, pend.SlurmReason, pend.StatusMessage)
	}
	if pend.QueuePosition == nil {
		t.Error("pending session has no queue position")
	}
	s, err := w.b.DestroySession(ctx, w.alice, pend.ID)
	if err != nil || s.State != StateCancelled {
		t.Fatalf("destroying a pending session: %v %s, want CANCELLED", err, s.State)
	}
	s, err = w.b.DestroySession(ctx, w.alice, run.ID)
	if err != nil || s.State != StateTerminating {
		t.Fatalf("destroying a running session: %v %s, want TERMINATING", err, s.State)
	}
	s = w.waitState(t, w.alice, run.ID, time.Minute, StateTerminated)
	if s.SlurmState != "CANCELLED" || s.StatusMessage != "terminated on request" {
		t.Errorf("terminated session: slurm %s message %q", s.SlurmState, s.StatusMessage)
	}
}

func TestSessionOtherUsersGetNotFound(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	s, err := w.b.CreateSession(ctx, w.alice, w.batch("echo secret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.Session(ctx, w.bob, s.ID); KindOf(err) != KindNotFound {
		t.Errorf("bob reading alice's session: %v, want not found", err)
	}
	if _, err := w.b.SessionEvents(ctx, w.bob, s.ID); KindOf(err) != KindNotFound {
		t.Errorf("bob reading alice's events: %v, want not found", err)
	}
	if err := w.b.SessionLog(ctx, w.bob, s.ID, LogOptions{}, &bytes.Buffer{}, nil); KindOf(err) != KindNotFound {
		t.Errorf("bob reading alice's logs: %v, want not found", err)
	}
	if _, err := w.b.DestroySession(ctx, w.bob, s.ID); KindOf(err) != KindNotFound {
		t.Errorf("bob destroying alice's session: %v, want not found", err)
	}
	list, err := w.b.ListSessions(ctx, w.bob, SessionFilter{All: true})
	if err != nil || len(list) != 0 {
		t.Errorf("bob's listing shows %d sessions (%v), want none", len(list), err)
	}
	if list, _ := w.b.ListSessions(ctx, w.alice, SessionFilter{}); len(list) != 1 {
		t.Errorf("alice's listing shows %d sessions, want 1", len(list))
	}
}

func TestSessionBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	bad := map[string]func(*SessionRequest){
		"unknown image":     func(r *SessionRequest) { r.Image = "nosuch" },
		"negative GPUs":     func(r *SessionRequest) { r.GPUs = -1 },
		"10-year lifetime":  func(r *SessionRequest) { r.TimeLimitS = 10 * 365 * 24 * 3600 },
		"bad type":          func(r *SessionRequest) { r.Type = "daemon" },
		"reserved env":      func(r *SessionRequest) { r.Environment = map[string]string{"SLURM_JOB_ID": "1"} },
		"bad env name":      func(r *SessionRequest) { r.Environment = map[string]string{"A-B": "1"} },
		"unknown group":     func(r *SessionRequest) { r.ScalingGroup = "nosuch" },
		"GPU type w/o GPUs": func(r *SessionRequest) { r.GPUType = "a100" },
		"GPUs on cpu group": func(r *SessionRequest) { r.GPUs = 1 },
		"batch w/o command": func(r *SessionRequest) { r.Command = "" },
		"foreign project":   func(r *SessionRequest) { r.Project = "other/proj" },
		"unknown preset":    func(r *SessionRequest) { r.Preset = "huge" },
	}
	for name, mutate := range bad {
		req := w.batch("true")
		mutate(&req)
		_, err := w.b.CreateSession(ctx, w.alice, req)
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindInvalid || e.Message == "" {
			t.Errorf("%s: %v; want an invalid-request error", name, err)
		}
	}
	var n int
	w.b.db.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d sessions written by refused requests, want 0", n)
	}
}

func TestSessionIdempotencyKey(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	req := w.batch("true")
	req.IdempotencyKey = "retry-me"
	a, err := w.b.CreateSession(t.Context(), w.alice, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.b.CreateSession(t.Context(), w.alice, req)
	if err != nil || b.ID != a.ID {
		t.Fatalf("retry returned %s (%v), want the first session %s", b.ID, err, a.ID)
	}
	if jobs := w.jobsFor(t, a.ID); len(jobs) != 1 {
		t.Fatalf("%d jobs for an idempotent create, want 1", len(jobs))
	}
}

// CreateSession returns the session without reading it back: what it
// returns must be the row as stored, and it must leave no session lock held.
func TestSessionCreateReturnsTheStoredRow(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	req := w.batch("sleep 30")
	req.Name, req.Project, req.IdempotencyKey, req.MaxWaitS = "stored", w.project.Path(), "stored-1", 600
	req.Environment = map[string]string{"ALPHA": "1", "BETA": "two words"}
	got, err := w.b.CreateSession(ctx, w.alice, req)
	if err != nil {
		t.Fatal(err)
	}
	if got.JobID == nil || got.SubState != subQueued {
		t.Fatalf("created session: job %v sub-state %q, want submitted", got.JobID, got.SubState)
	}
	stored, err := w.b.sessionByID(ctx, got.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.CreatedAt.Equal(stored.CreatedAt) {
		t.Errorf("created_at %v, stored %v", got.CreatedAt, stored.CreatedAt)
	}
	got.CreatedAt = stored.CreatedAt
	if !reflect.DeepEqual(got, stored) {
		t.Errorf("CreateSession returned\n%+v\nthe row reads\n%+v", got, stored)
	}
	var locks, agents int
	if err := w.b.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 8 AND database =
			(SELECT oid FROM pg_database WHERE datname = current_database())),
		(SELECT count(*) FROM session_agents WHERE session_id = $1)`, got.ID).Scan(&locks, &agents); err != nil {
		t.Fatal(err)
	}
	if locks != 0 || agents != 1 {
		t.Errorf("after create: %d session locks held (want 0), %d agent secrets (want 1)", locks, agents)
	}
}

// Whoever takes a session's lock after CreateSession gives it up must see the
// job recorded: the reconciler, holding the lock and seeing the session
// still submitting, would submit a second job.
func TestSessionLockIsGivenUpAfterTheJobIsCommitted(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	var seen *int64
	waited := make(chan error, 1)
	w.b.hooks.afterSubmit = func(id string) error {
		conn, err := w.b.db.Acquire(ctx)
		if err != nil {
			return err
		}
		go func() {
			defer conn.Release()
			// One pipeline: the read's snapshot is taken the moment the lock
			// is granted, with no round trip in between.
			batch := &pgx.Batch{}
			batch.Queue(`SELECT pg_advisory_lock(8, $1::int)`, sessionLockKey(id))
			batch.Queue(`SELECT job_id FROM sessions WHERE id = $1`, id).QueryRow(func(r pgx.Row) error { return r.Scan(&seen) })
			batch.Queue(`SELECT pg_advisory_unlock(8, $1::int)`, sessionLockKey(id))
			waited <- conn.SendBatch(ctx, batch).Close()
		}()
		for range 500 {
			var waiting bool
			if err := w.b.db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 8
				AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`).Scan(&waiting); err != nil {
				return err
			}
			if waiting {
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return errors.New("the second connection never waited for the session lock")
	}
	s, err := w.b.CreateSession(ctx, w.alice, w.batch("sleep 30"))
	w.b.hooks.afterSubmit = nil
	if err != nil || s.JobID == nil {
		t.Fatalf("create: %v, job %v", err, s.JobID)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if seen == nil || *seen != *s.JobID {
		t.Fatalf("the next holder of the session lock saw job %v, want %d: the lock was given up before the job was committed", seen, *s.JobID)
	}
}

// A held job cannot start until released: the fresh-job poll drops it the
// first time it sees it, and leaves it to the tick.
func TestFreshPollDropsHeldJobs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	w.b.hooks.beforeSubmit = func(spec *slurmctl.JobSpec) { spec.Hold = true }
	s, err := w.b.CreateSession(ctx, w.alice, w.batch("sleep 300"))
	if err != nil || s.JobID == nil {
		t.Fatalf("create: %v, job %v", err, s.JobID)
	}
	t.Cleanup(func() { w.slurm.Cancel(context.Background(), "alice", slurmctl.JobID(*s.JobID)) })
	watched := func() bool {
		f := &w.b.recon.fresh
		f.mu.Lock()
		defer f.mu.Unlock()
		_, ok := f.jobs[s.ID]
		return ok
	}
	if !watched() {
		t.Fatal("a just-submitted job is not on the fresh watch list")
	}
	if err := w.b.pollFreshOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if watched() {
		j, _ := w.slurm.Job(ctx, "alice", slurmctl.JobID(*s.JobID))
		t.Fatalf("a held job (%s, reason %s) is still watched after a poll saw it", j.State, j.Reason)
	}
	// The tick follows it: the reason recorded, with one event however
	// many ticks see it.
	for range 2 {
		if _, err := w.b.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, err := w.b.Session(ctx, w.alice, s.ID)
	if err != nil || got.SlurmReason != "JobHeldUser" || got.StatusMessage == "" {
		t.Fatalf("held session: %v, reason %q, message %q; want JobHeldUser, explained", err, got.SlurmReason, got.StatusMessage)
	}
	events, err := w.b.SessionEvents(ctx, w.alice, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	waiting := 0
	for _, e := range events {
		if e.Kind == "waiting" {
			waiting++
			if e.Message != got.StatusMessage {
				t.Errorf("waiting event says %q, the session %q", e.Message, got.StatusMessage)
			}
		}
	}
	if waiting != 1 {
		t.Errorf("%d waiting events after two ticks, want 1: %+v", waiting, events)
	}
}

func TestReconcileConditionalListingSeesScancel(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	s, err := w.b.CreateSession(ctx, w.alice, w.batch("sleep 300"))
	if err != nil {
		t.Fatal(err)
	}
	w.waitState(t, w.alice, s.ID, time.Minute, StateRunning)
	// The world's passes so far listed everything once, then conditionally.
	st, err := w.b.ReconcileOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Listing == ListingFull || st.SlurmRequests != 1 {
		t.Errorf("a pass after the first: %s listing, %d Slurm requests; want a conditional one, 1 request", st.Listing, st.SlurmRequests)
	}
	// Cancelled behind the gateway's back: a conditional listing must see it.
	w.env.Run(t, "scancel", fmt.Sprint(*s.JobID))
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := w.b.ReconcileOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := w.b.Session(ctx, w.alice, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == StateTerminated {
			if got.StatusMessage != "cancelled in Slurm (scancel)" {
				t.Errorf("scancelled session: %q", got.StatusMessage)
			}
			if st.Listing == ListingFull {
				t.Errorf("the scancel was seen by a full listing; want the conditional one to see it")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("session stayed %s after scancel (%s)", got.State, got.StatusMessage)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestFreshJobsStartWithoutWaitingForTheTick(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	// A tick far longer than the test: only the fresh-job poll can move the
	// sessions once the first pass has run.
	w.b.cfg.ReconcileInterval = time.Hour
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.b.RunReconciler(ctx)
	}()
	defer func() { stop(); <-done }()
	for w.b.LastReconcile().Took == 0 {
		time.Sleep(10 * time.Millisecond)
	}

	// Two at once (one listing per poll for both, or a request for each on a
	// cluster busy with other tests' jobs), then one alone (its job).
	var ids []string
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := w.b.CreateSession(ctx, w.alice, w.batch("sleep 300"))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			ids = append(ids, s.ID)
			mu.Unlock()
		}()
	}
	wg.Wait()
	s, err := w.b.CreateSession(ctx, w.bob, w.batch("sleep 300"))
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, s.ID)

	// Other tests share the cluster: a job that Slurm itself starts late
	// (after the fresh window) says nothing about the poll and is left to the
	// tick; every job that starts within the window must show at once.
	checked := 0
	for _, id := range ids {
		sess, err := w.b.Session(ctx, w.admin, id)
		if err != nil || sess.JobID == nil {
			t.Fatalf("session %s: %v, job %v", id, err, sess.JobID)
		}
		var started time.Time
		for deadline := time.Now().Add(time.Minute); started.IsZero(); {
			j, err := w.slurm.Job(ctx, sess.Owner, slurmctl.JobID(*sess.JobID))
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case j.State == slurmctl.JobRunning:
				started = time.Now()
			case j.State != slurmctl.JobPending || time.Now().After(deadline):
				t.Fatalf("job %d of session %s is %s (%s)", j.ID, id, j.State, j.Reason)
			default:
				time.Sleep(20 * time.Millisecond)
			}
		}
		// The poll may list every job when it watches several: with hundreds
		// left by other tests, under -race, that takes a second or two.
		const lag = 5 * time.Second
		if started.Sub(sess.CreatedAt) > freshWindow-lag {
			t.Logf("session %s: Slurm started its job %v after the submit, beyond the fresh window; not checked",
				id, started.Sub(sess.CreatedAt).Round(time.Millisecond))
			continue
		}
		checked++
		for deadline := started.Add(lag); ; {
			got, err := w.b.Session(ctx, w.admin, id)
			if err != nil {
				t.Fatal(err)
			}
			// A started agent job is PREPARING until its agent reports
			// ready: either shows the poll saw the start.
			if got.State == StatePreparing || got.State == StateRunning {
				break
			}
			if got.State != StatePending || time.Now().After(deadline) {
				t.Fatalf("session %s is %s (%s) %v after Slurm started its job; the fresh-job poll should have moved it",
					id, got.State, got.StatusMessage, lag)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if checked == 0 {
		t.Fatal("the cluster was too busy to start any of the jobs within the fresh window; rerun the test alone")
	}
}
