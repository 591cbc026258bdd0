package bridge

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/slurmctl"
)

// How sessions find their jobs, and what happens to jobs no session
// watches: a stranger's job carrying a session's comment, a job a create
// submitted but did not record, a job whose session has ended.

// heldSession creates a session of a's whose job is held, so it stays
// pending for as long as the test needs.
func (w *world) heldSession(t *testing.T, a Actor) Session {
	t.Helper()
	w.b.hooks.beforeSubmit = func(spec *slurmctl.JobSpec) { spec.Hold = true }
	defer func() { w.b.hooks.beforeSubmit = nil }()
	s, err := w.b.CreateSession(t.Context(), a, w.batch("sleep 300"))
	if err != nil || s.JobID == nil {
		t.Fatalf("create: %v (job %v)", err, s.JobID)
	}
	return s
}

// unrecordedSession creates a session of a's whose create "crashes" after
// Slurm took the (held) job and before its id was recorded.
func (w *world) unrecordedSession(t *testing.T, a Actor) Session {
	t.Helper()
	w.b.hooks.beforeSubmit = func(spec *slurmctl.JobSpec) { spec.Hold = true }
	w.b.hooks.afterSubmit = func(string) error { return errors.New("simulated crash") }
	defer func() { w.b.hooks.beforeSubmit, w.b.hooks.afterSubmit = nil, nil }()
	s, err := w.b.CreateSession(t.Context(), a, w.batch("sleep 300"))
	if err != nil || s.JobID != nil || s.SubState != subSubmitting {
		t.Fatalf("create with a crash after submit: %v (job %v, %q)", err, s.JobID, s.SubState)
	}
	if jobs := w.jobsFor(t, s.ID); len(jobs) != 1 {
		t.Fatalf("%d jobs for the crashed create, want 1", len(jobs))
	}
	return s
}

// strangersJob submits, as user, a job carrying s's comment.
func (w *world) strangersJob(t *testing.T, user string, s Session, hold bool) slurmctl.JobID {
	t.Helper()
	id, err := w.slurm.Submit(t.Context(), user, slurmctl.JobSpec{
		Name: "stranger", Comment: jobComment(s.ID), Account: w.project.Account(), Partition: "cpu",
		Script: "#!/bin/sh\ntrue\n", Environment: map[string]string{"PATH": "/usr/bin:/bin"}, Nodes: 1, Tasks: 1,
		CPUsPerTask: 1, MemoryMB: 64, TimeLimit: time.Minute, WorkDir: "/tmp", StdOut: "/dev/null", StdErr: "/dev/null", Hold: hold,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.slurm.Cancel(context.Background(), user, id) })
	return id
}

func TestSessionIgnoresAnotherUsersJobWithItsComment(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()

	// A recorded job: bob's job with alice's session's comment runs and
	// completes; alice's session keeps following its own held job.
	s := w.heldSession(t, w.alice)
	bobs := w.strangersJob(t, "bob", s, false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := w.slurm.Job(ctx, "bob", bobs)
		if err == nil && j.State.Terminal() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's job did not finish: %+v %v", j, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	w.b.invalidateJobs()
	for range 3 {
		if _, err := w.b.ReconcileOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := w.b.Session(ctx, w.alice, s.ID)
	if got.State != StatePending || got.JobID == nil || *got.JobID != *s.JobID {
		t.Fatalf("alice's session is %s (%s); want PENDING with its own job %d", got.State, got.StatusMessage, *s.JobID)
	}

	// An unrecorded job: the create of alice's second session died after
	// Slurm took its job; bob has planted a job with its comment. The
	// reconciler adopts alice's job, never bob's.
	u := w.unrecordedSession(t, w.alice)
	planted := w.strangersJob(t, "bob", u, true)
	w.b.invalidateJobs()
	if _, err := w.b.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ = w.b.Session(ctx, w.alice, u.ID)
	if got.JobID == nil || *got.JobID == int64(planted) {
		t.Fatalf("alice's unrecorded session records job %v; bob's planted job is %d", got.JobID, planted)
	}
	if j, err := w.slurm.Job(ctx, "alice", slurmctl.JobID(*got.JobID)); err != nil || j.User != "alice" {
		t.Fatalf("the adopted job %d: %+v %v; want alice's", *got.JobID, j, err)
	}
}

func TestUnrecordedJobIsAdoptedNotDoubled(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	s := w.unrecordedSession(t, w.alice)
	// As the reconciler does with a listing taken before the create
	// submitted: it passes no job.
	got, err := w.b.submitOrAdopt(ctx, s.ID, nil, time.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	jobs := w.jobsFor(t, s.ID)
	if len(jobs) != 1 {
		t.Fatalf("%d jobs for one session, want 1", len(jobs))
	}
	got, _ = w.b.Session(ctx, w.alice, s.ID)
	if got.JobID == nil || *got.JobID != int64(jobs[0].ID) || got.SubState == subSubmitting {
		t.Fatalf("session records job %v (%q); Slurm has %d", got.JobID, got.SubState, jobs[0].ID)
	}
}

func TestJobsOfEndedSessionsAreCancelled(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()

	// Destroying a session whose create died before recording its job
	// cancels that job too.
	u := w.unrecordedSession(t, w.alice)
	job := w.jobsFor(t, u.ID)[0].ID
	d, err := w.b.DestroySession(ctx, w.alice, u.ID)
	if err != nil || d.State != StateCancelled || !strings.Contains(d.StatusMessage, "never recorded") {
		t.Fatalf("destroy: %s %q %v", d.State, d.StatusMessage, err)
	}
	if j, err := w.slurm.Job(ctx, "alice", job); err == nil && !j.State.Terminal() {
		t.Fatalf("the unrecorded job %d is still %s after its session was destroyed", job, j.State)
	}

	// A job still in Slurm after its session ended (here: ended behind the
	// gateway's back) is cancelled by the next pass that lists jobs.
	s := w.heldSession(t, w.alice)
	w.heldSession(t, w.bob) // something live, so that the pass lists jobs
	if _, err := w.b.db.Exec(ctx, `UPDATE sessions SET state = 'ERROR' WHERE id = $1`, s.ID); err != nil {
		t.Fatal(err)
	}
	w.b.invalidateJobs()
	if _, err := w.b.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if j, err := w.slurm.Job(ctx, "alice", slurmctl.JobID(*s.JobID)); err == nil && !j.State.Terminal() {
		t.Fatalf("the ended session's job %d is still %s", *s.JobID, j.State)
	}
	evs, err := w.b.SessionEvents(ctx, w.alice, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Kind != "stray-job" {
		t.Fatalf("last event %+v; want the stray job's cancellation", last)
	}
}

func TestSlurmNotAnsweringFailsNoSession(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	s := w.heldSession(t, w.alice)
	// The same gateway, but slurmrestd does not answer.
	dead, err := slurmctl.New(slurmctl.Config{URL: "http://127.0.0.1:1", Cluster: w.env.Name, JWTKey: w.env.JWTKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	b := New(w.b.db, dead, w.b.cfg, slog.New(slog.DiscardHandler))
	if err := b.jobVanished(ctx, s); err == nil {
		t.Fatal("jobVanished with slurmrestd down: no error")
	}
	if got, _ := w.b.Session(ctx, w.alice, s.ID); got.State != StatePending {
		t.Fatalf("session is %s (%s) after slurmrestd failed to answer; want still PENDING", got.State, got.StatusMessage)
	}
}

func TestReusedJobIDDoesNotStickASession(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	s := w.heldSession(t, w.alice)
	old := w.heldSession(t, w.alice)
	if _, err := w.b.db.Exec(ctx, `UPDATE sessions SET state = 'TERMINATED', job_id = 999999 WHERE id = $1`, old.ID); err != nil {
		t.Fatal(err)
	}
	// Slurm hands the ended session's job id to a new job of another session.
	if err := w.b.recordSubmitted(ctx, s, 999999, "submitted as job %d"); err != nil {
		t.Fatalf("recording a job id an ended session had: %v", err)
	}
	// Two live sessions still cannot share one.
	live := w.heldSession(t, w.bob)
	if err := w.b.recordSubmitted(ctx, live, 999999, "submitted as job %d"); err == nil {
		t.Fatal("two live sessions recorded the same job id")
	}
}

func TestPassingFailureToPrepareAJobIsRetried(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	// The job output directory cannot be made (a file stands where it
	// goes): a passing failure, as of a shared file system.
	dir := t.TempDir()
	blocked := filepath.Join(dir, "out")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	w.b.cfg.JobOutputDir = blocked
	w.b.hooks.beforeSubmit = func(spec *slurmctl.JobSpec) { spec.Hold = true }
	s, err := w.b.CreateSession(ctx, w.alice, w.batch("sleep 300"))
	if err != nil {
		t.Fatal(err)
	}
	if s.State != StatePending || s.SubState != subSubmitting || !strings.Contains(s.StatusMessage, "retrying") {
		t.Fatalf("after a passing failure: %s/%s %q; want PENDING, submitting, saying it retries", s.State, s.SubState, s.StatusMessage)
	}
	// Fixed: the next pass submits it.
	os.Remove(blocked)
	os.Chmod(dir, 0o755)
	if _, err := w.b.ReconcileOnce(ctx); err != nil {
		t.Logf("reconcile: %v", err)
	}
	got, _ := w.b.Session(ctx, w.alice, s.ID)
	if got.JobID == nil || got.State != StatePending {
		t.Fatalf("after the fix: %s job %v (%s); want submitted", got.State, got.JobID, got.StatusMessage)
	}
}

func TestUsageCountsUntypedGPUsAgainstEachType(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	if _, err := w.b.SetPolicy(ctx, w.admin, Policy{Scope: "project", TargetID: w.project.ID, MaxGPUs: map[string]int{"a100": 4}}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.db.Exec(ctx, `INSERT INTO sessions (id, user_id, project_id, domain_id, scaling_group, partition, type,
		image, cpus, memory_mb, gpus, gpu_type, time_limit_s, state)
		VALUES (gen_random_uuid(), $1, $2, $3, 'gpu', 'gpu', 'batch', 'host:latest', 1, 128, 1, '', 60, 'RUNNING')`,
		w.alice.UserID, w.project.ID, w.project.DomainID); err != nil {
		t.Fatal(err)
	}
	use, err := w.b.Usage(ctx, w.alice)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range use {
		if u.Scope == "project" && (u.InUse.GPUs["a100"] != 1 || u.InUse.GPUs[""] != 1) {
			t.Fatalf("project usage %+v: an untyped GPU counts against the a100 limit, as admission counts it", u.InUse)
		}
	}
}

// A retry that overlaps its first attempt (it read before the first
// committed, and is admitted after) finds the quota full of that very
// session: the answer is the session, not a quota refusal.
func TestIdempotentRetryOverlappingItsFirstAttempt(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	ctx := t.Context()
	one := 1
	if _, err := w.b.SetPolicy(ctx, w.admin, Policy{Scope: "user", TargetID: w.alice.UserID, MaxConcurrentSessions: &one}); err != nil {
		t.Fatal(err)
	}
	req := w.batch("sleep 30")
	req.IdempotencyKey = "overlap"
	reached, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool // only the retry (the first to get here) waits
	w.b.hooks.beforeAdmit = func() {
		if first.CompareAndSwap(false, true) {
			close(reached)
			<-release
		}
	}
	w.b.hooks.beforeSubmit = func(spec *slurmctl.JobSpec) { spec.Hold = true }
	type result struct {
		s   Session
		err error
	}
	retry := make(chan result, 1)
	go func() {
		s, err := w.b.CreateSession(ctx, w.alice, req) // read, then held before admission
		retry <- result{s, err}
	}()
	<-reached
	orig, err := w.b.CreateSession(ctx, w.alice, req)
	if err != nil {
		t.Fatal(err)
	}
	close(release)
	r := <-retry
	if r.err != nil || r.s.ID != orig.ID {
		t.Fatalf("the overlapping retry: %v (session %q); want the first attempt's session %s", r.err, r.s.ID, orig.ID)
	}
}
