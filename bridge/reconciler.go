package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/slurmctl"
)

// The session reconciler is level-triggered: every tick it reads all live
// sessions from PostgreSQL and all session jobs from Slurm in one request,
// and moves each session to where its job says it is. It never relies on
// having seen an event, so a gateway restart, a missed tick or a job changed
// behind its back (scancel on a login node) all heal the same way.
//
// Listing every job costs slurmrestd about half a millisecond per job (1.1 s
// for 2,000), so between full listings a tick asks conditionally
// (update_time): slurmctld answers 304 when no job changed, and the pass
// reuses the jobs it saw last. Slurm 22.05 answers a changed listing with
// every job, not the changed ones, so a 200 replaces the cache whole. A full,
// unconditional listing still runs on the first pass, after any failed
// listing and at least every fullListingEvery: the conditional answer rests
// on the gateway's and slurmctld's clocks agreeing, and level-triggered means
// not trusting anything for long.

// ListingKind says how a reconcile pass learned the state of Slurm's jobs.
type ListingKind string

const (
	// ListingFull: an unconditional listing of every job.
	ListingFull ListingKind = "full"
	// ListingChanged: a conditional listing that found changes, and so
	// returned every job.
	ListingChanged ListingKind = "changed"
	// ListingUnchanged: a conditional listing that slurmctld answered with
	// "no change" (HTTP 304); the pass used the jobs it saw last.
	ListingUnchanged ListingKind = "unchanged"
)

// ReconcileStats describes one reconcile pass.
type ReconcileStats struct {
	Live          int           // live sessions examined
	SlurmRequests int           // Slurm requests made
	Listing       ListingKind   // how the jobs were listed; empty when nothing was live
	Transitions   int           // state changes recorded
	Updated       int           // sessions whose pending details changed
	Took          time.Duration // wall time
}

// fullListingEvery bounds how long the reconciler relies on conditional
// listings before it lists every job unconditionally again.
const fullListingEvery = time.Minute

// listingSlack is subtracted from the time of the last listing when asking
// what changed since: slurmctld keeps whole seconds, so a change in the same
// second as the listing must still count, and a slurmctld clock up to a
// second behind the gateway's is tolerated.
const listingSlack = time.Second

type reconcileState struct {
	mu sync.Mutex
	// last is the latest pass's statistics: apart from mu, which a pass
	// holds throughout, so that /metrics never waits for a pass.
	last atomic.Pointer[ReconcileStats]
	// jobs is Slurm's session jobs as the last successful listing saw them;
	// listedAt is when that listing started (gateway clock) and fullAt when
	// the last unconditional one did. jobs == nil forces a full listing.
	jobs             []slurmctl.Job
	listedAt, fullAt time.Time
	// partitions caches partition capacity for pending-reason sentences;
	// refreshed at most every partitionTTL, and only when a sentence needs it.
	partitions   []slurmctl.Partition
	partitionsAt time.Time
	accounts     map[string]slurmctl.Account
	accountsAt   time.Time
	// fresh holds just-submitted jobs, polled fast until they start.
	fresh freshJobs
}

// partitionTTL bounds how stale the capacity and limits quoted in pending
// reasons may be; they cost extra Slurm requests, made only when needed.
const partitionTTL = 30 * time.Second

// LastReconcile returns the statistics of the most recent pass.
func (b *Bridge) LastReconcile() ReconcileStats {
	if st := b.recon.last.Load(); st != nil {
		return *st
	}
	return ReconcileStats{}
}

// RunReconciler reconciles every Config.ReconcileInterval until ctx ends,
// and meanwhile polls just-submitted jobs fast (see pollFresh) so a session
// shows RUNNING as soon as Slurm starts its job rather than a tick later.
func (b *Bridge) RunReconciler(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.pollFresh(ctx)
	}()
	defer func() { <-done }()
	t := time.NewTicker(b.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		if _, err := b.ReconcileOnce(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("reconcile", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ReconcileOnce runs one pass. Only one pass runs at a time per gateway.
func (b *Bridge) ReconcileOnce(ctx context.Context) (st ReconcileStats, err error) {
	b.recon.mu.Lock()
	defer b.recon.mu.Unlock()
	start := b.now()
	// Named results: the deferred func's Took reaches the caller too.
	defer func() {
		st.Took = time.Since(start)
		b.recon.last.Store(&st)
	}()

	rows, _ := b.db.Query(ctx, `SELECT `+sessionCols+sessionFrom+` WHERE s.state = ANY($1)`, liveStates)
	live, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) { return scanSession(r) })
	if err != nil {
		return st, err
	}
	st.Live = len(live)
	if len(live) == 0 {
		return st, nil
	}
	jobs, err := b.listJobs(ctx, &st)
	if err != nil {
		return st, err
	}
	// A session's job is found by its id once that is recorded, and by its
	// comment only before (a create that died between submit and record),
	// and then only among its owner's jobs: anyone can put any comment on a
	// job of their own, so a comment alone would let one user's job stand
	// in for another's session.
	byID := make(map[slurmctl.JobID]*slurmctl.Job, len(jobs))
	byComment := make(map[ownedComment]*slurmctl.Job)
	for i := range jobs {
		j := &jobs[i]
		byID[j.ID] = j
		k := ownedComment{j.Comment, j.User}
		if first := byComment[k]; first == nil || j.ID < first.ID {
			byComment[k] = j
		}
	}
	positions := queuePositions(jobs)

	var errs []error
	if err := b.cancelStrays(ctx, jobs, live, &st); err != nil {
		errs = append(errs, err)
	}
	for _, s := range live {
		var job *slurmctl.Job
		if s.JobID != nil {
			if j := byID[slurmctl.JobID(*s.JobID)]; j != nil && j.Comment == jobComment(s.ID) {
				job = j
			}
		} else {
			job = byComment[ownedComment{jobComment(s.ID), s.Owner}]
		}
		var err error
		switch {
		case s.SubState == subSubmitting:
			_, err = b.submitOrAdopt(ctx, s.ID, job, b.recon.listedAt)
			if job == nil {
				st.SlurmRequests++
			}
		case job == nil:
			err = b.jobVanished(ctx, s)
			st.SlurmRequests++
			st.Transitions++
		default:
			var changed, moved bool
			changed, moved, err = b.follow(ctx, s, job, positions, &st)
			if moved {
				st.Transitions++
			} else if changed {
				st.Updated++
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", s.ID, err))
		}
	}
	if len(errs) > 0 {
		return st, fmt.Errorf("%d of %d sessions: %w", len(errs), len(live), errs[0])
	}
	return st, nil
}

// cancelStrays cancels the unfinished jobs of sessions that have ended: a
// job a create submitted but died before recording, whose session was then
// destroyed or failed, or a second job of one session. They would run to
// their time limit unwatched and uncounted by admission. Only jobs of this
// gateway's sessions (the comment names a session in its database) that
// belong to the session's owner are touched: other gateways may share the
// cluster, and anyone may write any comment. Strays are found in the passes
// that list jobs, that is while any session is live.
func (b *Bridge) cancelStrays(ctx context.Context, jobs []slurmctl.Job, live []Session, st *ReconcileStats) error {
	isLive := make(map[string]bool, len(live))
	for _, s := range live {
		isLive[s.ID] = true
	}
	var ids []string
	for _, j := range jobs {
		id := strings.TrimPrefix(j.Comment, jobCommentPrefix)
		if !j.State.Terminal() && !isLive[id] && validUUID(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, _ := b.db.Query(ctx, `SELECT s.id::text, u.username FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.id = ANY($1::uuid[]) AND s.state <> ALL($2)`, ids, liveStates)
	ended, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ ID, Owner string }])
	if err != nil {
		return fmt.Errorf("looking up the sessions of unwatched jobs: %w", err)
	}
	owner := make(map[string]string, len(ended))
	for _, e := range ended {
		owner[e.ID] = e.Owner
	}
	var errs []error
	for _, j := range jobs {
		id := strings.TrimPrefix(j.Comment, jobCommentPrefix)
		if o, ok := owner[id]; !ok || o != j.User || j.State.Terminal() {
			continue
		}
		err := b.slurm.Cancel(ctx, j.User, j.ID)
		st.SlurmRequests++
		if err != nil && !errors.Is(err, slurmctl.ErrNotFound) && !alreadyFinished(err) {
			errs = append(errs, fmt.Errorf("cancelling job %d of ended session %s: %w", j.ID, id, err))
			continue
		}
		b.log.Warn("cancelled a job of an ended session", "session", id, "job", j.ID, "user", j.User)
		b.event(ctx, id, "stray-job", fmt.Sprintf("job %d was still in Slurm after the session ended; cancelled", j.ID))
	}
	return errors.Join(errs...)
}

// ownedComment is a job's comment and the user it belongs to.
type ownedComment struct{ comment, user string }

// listJobs returns every session job Slurm holds, in one request: a
// conditional listing answered from the cache when nothing changed, or a full
// one when the cache is missing or older than fullListingEvery. The caller
// holds b.recon.mu; the returned slice must not be modified.
func (b *Bridge) listJobs(ctx context.Context, st *ReconcileStats) ([]slurmctl.Job, error) {
	r := &b.recon
	start := b.now()
	var f slurmctl.JobFilter
	st.Listing = ListingFull
	if r.jobs != nil && start.Sub(r.fullAt) < fullListingEvery {
		f.ChangedSince = r.listedAt.Truncate(time.Second).Add(-listingSlack)
		st.Listing = ListingChanged
	}
	// Every job, filtered here: how many there are is what a listing costs,
	// which the fresh-job poll weighs (see perJobCost).
	all, err := b.slurm.AllJobs(ctx, f)
	st.SlurmRequests++
	jobs := slices.DeleteFunc(all, func(j slurmctl.Job) bool { return !strings.HasPrefix(j.Comment, jobCommentPrefix) })
	switch {
	case errors.Is(err, slurmctl.ErrNoChange):
		st.Listing = ListingUnchanged
		r.listedAt = start
		return r.jobs, nil
	case err != nil:
		r.jobs = nil // whatever happened, the next pass lists everything
		return nil, err
	}
	if jobs == nil {
		jobs = []slurmctl.Job{} // listed, and there are none: still a valid cache
	}
	r.jobs, r.listedAt = jobs, start
	r.fresh.sawListing(len(all))
	if st.Listing == ListingFull {
		r.fullAt = start
	}
	return jobs, nil
}

// invalidateJobs makes the next pass list every job unconditionally.
func (b *Bridge) invalidateJobs() {
	b.recon.mu.Lock()
	defer b.recon.mu.Unlock()
	b.recon.jobs = nil
}

// queuePositions ranks pending jobs per partition the way the scheduler
// considers them: higher priority first, then older first.
func queuePositions(jobs []slurmctl.Job) map[slurmctl.JobID]int {
	byPart := map[string][]*slurmctl.Job{}
	for i := range jobs {
		if j := &jobs[i]; j.State == slurmctl.JobPending {
			byPart[j.Partition] = append(byPart[j.Partition], j)
		}
	}
	pos := map[slurmctl.JobID]int{}
	for _, list := range byPart {
		slices.SortFunc(list, func(a, b *slurmctl.Job) int {
			return cmp.Or(cmp.Compare(b.Priority, a.Priority), a.SubmitTime.Compare(b.SubmitTime), cmp.Compare(a.ID, b.ID))
		})
		for i, j := range list {
			pos[j.ID] = i + 1
		}
	}
	return pos
}

// follow moves s to where job is. It reports whether anything was written
// and whether that was a state transition.
func (b *Bridge) follow(ctx context.Context, s Session, job *slurmctl.Job, positions map[slurmctl.JobID]int, st *ReconcileStats) (changed, moved bool, err error) {
	switch {
	case job.State == slurmctl.JobPending:
		if s.State != StatePending {
			return false, false, nil // requeued; Slurm will start it again
		}
		if s.MaxWaitS != nil && b.now().Sub(s.CreatedAt) > time.Duration(*s.MaxWaitS)*time.Second {
			if err := b.slurm.Cancel(ctx, s.Owner, job.ID); err != nil {
				return false, false, err
			}
			st.SlurmRequests++
			return true, true, b.transition(ctx, s, StateCancelled, "cancelled",
				fmt.Sprintf("did not start within its maximum wait of %s; last reason: %s", time.Duration(*s.MaxWaitS)*time.Second, s.StatusMessage),
				endUpdate(s.ID, slurmctl.JobCancelled, nil))
		}
		return b.updatePending(ctx, s, job, positions[job.ID], st)
	case !job.State.Terminal():
		// RUNNING, SUSPENDED, or allocated and completing.
		if s.State != StatePending {
			return false, false, nil
		}
		msg := "running on " + job.Nodes
		// A session run by an agent is PREPARING until its agent and
		// services report ready (agents.go); then RUNNING.
		to := StateRunning
		if b.runByAgent(ctx, s.ID) {
			to, msg = StatePreparing, msg+"; starting the container and services"
			defer func() {
				if err == nil {
					if p, e := b.sessionByID(ctx, s.ID); e == nil {
						err = b.promoteIfReady(ctx, p)
					}
				}
			}()
		}
		return true, true, b.transition(ctx, s, to, "started", msg, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE sessions SET sub_state = '', slurm_state = $2, slurm_reason = '', node = $3,
				started_at = $4, estimated_start = NULL, queue_position = NULL WHERE id = $1`,
				s.ID, string(job.State), job.Nodes, cmp.Or(job.StartTime, b.now()))
			return err
		})
	}
	to, msg := outcome(s, job)
	var exit *int
	if job.State != slurmctl.JobCancelled || s.State != StatePending {
		exit = &job.ExitCode
	}
	return true, true, b.transition(ctx, s, to, "ended", msg, endUpdate(s.ID, job.State, exit, job))
}

// outcome is where a finished job leaves its session, in words.
func outcome(s Session, job *slurmctl.Job) (SessionState, string) {
	limit := time.Duration(s.TimeLimitS) * time.Second
	switch job.State {
	case slurmctl.JobCompleted:
		return StateTerminated, "completed (exit code 0)"
	case slurmctl.JobFailed:
		if job.Signal != 0 {
			return StateTerminated, fmt.Sprintf("failed: killed by signal %d", job.Signal)
		}
		return StateTerminated, fmt.Sprintf("failed with exit code %d", job.ExitCode)
	case slurmctl.JobTimeout:
		return StateTerminated, fmt.Sprintf("TIMEOUT: stopped at its time limit of %s", limit)
	case slurmctl.JobOutOfMemory:
		return StateTerminated, fmt.Sprintf("OUT_OF_MEMORY: the job used more than its %d MiB", s.MemoryMB)
	case slurmctl.JobNodeFail:
		return StateTerminated, "NODE_FAIL: node " + job.Nodes + " failed while running the session"
	case slurmctl.JobCancelled:
		if s.State == StatePending {
			return StateCancelled, "cancelled before it started"
		}
		if s.State == StateTerminating {
			return StateTerminated, "terminated on request"
		}
		return StateTerminated, "cancelled in Slurm (scancel)"
	case slurmctl.JobPreempted:
		return StateTerminated, "PREEMPTED by a higher-priority job"
	case slurmctl.JobBootFail:
		return StateError, "BOOT_FAIL: node " + job.Nodes + " failed to boot"
	case slurmctl.JobDeadline:
		return StateTerminated, "DEADLINE: could not finish before its deadline"
	}
	return StateTerminated, "ended in Slurm state " + string(job.State)
}

// endUpdate records a session's end: Slurm's final state and the exit code.
func endUpdate(id string, state slurmctl.JobState, exit *int, job ...*slurmctl.Job) func(pgx.Tx) error {
	return func(tx pgx.Tx) error {
		var node string
		var started, ended *time.Time
		if len(job) > 0 {
			node = job[0].Nodes
			if !job[0].StartTime.IsZero() {
				started = &job[0].StartTime
			}
			if !job[0].EndTime.IsZero() {
				ended = &job[0].EndTime
			}
		}
		_, err := tx.Exec(context.Background(), `UPDATE sessions SET sub_state = '', slurm_state = $2, exit_code = $3,
			node = CASE WHEN $4 = '' THEN node ELSE $4 END, started_at = COALESCE(started_at, $5),
			ended_at = COALESCE($6, now()), estimated_start = NULL, queue_position = NULL WHERE id = $1`,
			id, string(state), exit, node, started, ended)
		return err
	}
}

// updatePending refreshes a pending session's reason, estimate and queue
// position, writing only when something a person would see changed.
func (b *Bridge) updatePending(ctx context.Context, s Session, job *slurmctl.Job, pos int, st *ReconcileStats) (bool, bool, error) {
	var est *time.Time
	if !job.StartTime.IsZero() && job.StartTime.After(b.now()) {
		t := job.StartTime.Truncate(time.Second)
		est = &t
	}
	var qpos *int
	if pos > 0 {
		qpos = &pos
	}
	msg := b.explainPending(ctx, s, job, pos, st)
	same := s.SlurmReason == job.Reason && s.StatusMessage == msg && s.SlurmState == string(job.State) &&
		equalPtr(s.QueuePosition, qpos) && equalTimePtr(s.EstimatedStart, est)
	if same {
		return false, false, nil
	}
	// One statement, atomic by itself: a tick may update hundreds of
	// pending sessions whose queue positions moved, and each transaction
	// of its own would cost four round trips. A changed reason is an event.
	_, err := b.db.Exec(ctx, `WITH u AS (
			UPDATE sessions SET slurm_state = $2, slurm_reason = $3, status_message = $4,
				estimated_start = $5, queue_position = $6, updated_at = now() WHERE id = $1 AND state = 'PENDING' RETURNING id)
		INSERT INTO session_events (session_id, kind, from_state, to_state, message)
			SELECT id, 'waiting', 'PENDING', 'PENDING', $4 FROM u WHERE $7`,
		s.ID, string(job.State), job.Reason, msg, est, qpos, s.SlurmReason != job.Reason)
	return true, false, err
}

func equalPtr[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

func equalTimePtr(a, b *time.Time) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && a.Equal(*b))
}

// explainPending turns Slurm's reason into a sentence for the session's
// owner, with the limit and the usage behind it where we know them.
func (b *Bridge) explainPending(ctx context.Context, s Session, job *slurmctl.Job, pos int, st *ReconcileStats) string {
	pc := slurmctl.PendingContext{QueuePosition: pos, LimitScope: "project", Now: b.now()}
	switch {
	case strings.HasPrefix(job.Reason, "Assoc"):
		if limits, inUse, running, err := b.projectLimits(ctx, s.projectID, st); err == nil {
			pc.Limits, pc.InUse, pc.RunningJobs = limits, inUse, running
		}
	case job.Reason == "Resources" || job.Reason == "ReqNodeNotAvail" || strings.HasPrefix(job.Reason, "Partition"):
		if parts := b.cachedPartitions(ctx, st); parts != nil {
			for _, p := range parts {
				if p.Name == job.Partition {
					pc.Partition = &p
				}
			}
		}
	}
	return slurmctl.ExplainPending(*job, pc)
}

// projectLimits returns what Slurm enforces on a project's account and what
// its running sessions hold, for the sentence behind an Assoc* reason. The
// limits are read from Slurm itself: it is Slurm's limit the job waits on,
// whatever the policy says.
func (b *Bridge) projectLimits(ctx context.Context, projectID int64, st *ReconcileStats) (slurmctl.Limits, slurmctl.TRES, int, error) {
	p, err := b.projectByID(ctx, b.db, projectID)
	if err != nil {
		return slurmctl.Limits{}, nil, 0, err
	}
	acct, ok := b.cachedAccounts(ctx, st)[p.Account()]
	if !ok {
		return slurmctl.Limits{}, nil, 0, fmt.Errorf("account %s not found in Slurm", p.Account())
	}
	var running int
	var cpus, mem, gpus int64
	err = b.db.QueryRow(ctx, `SELECT count(*), COALESCE(sum(cpus), 0), COALESCE(sum(memory_mb), 0), COALESCE(sum(gpus), 0)
		FROM sessions WHERE project_id = $1 AND state IN ('PREPARING', 'RUNNING', 'TERMINATING')`, projectID).
		Scan(&running, &cpus, &mem, &gpus)
	return acct.Limits, slurmctl.TRES{"cpu": cpus, "mem": mem, "gres/gpu": gpus}, running, err
}

func (b *Bridge) cachedPartitions(ctx context.Context, st *ReconcileStats) []slurmctl.Partition {
	if b.recon.partitions == nil || b.now().Sub(b.recon.partitionsAt) > partitionTTL {
		parts, err := b.slurm.Partitions(ctx)
		st.SlurmRequests += 2
		if err != nil {
			return b.recon.partitions
		}
		b.recon.partitions, b.recon.partitionsAt = parts, b.now()
	}
	return b.recon.partitions
}

func (b *Bridge) cachedAccounts(ctx context.Context, st *ReconcileStats) map[string]slurmctl.Account {
	if b.recon.accounts == nil || b.now().Sub(b.recon.accountsAt) > partitionTTL {
		accts, err := b.slurm.Accounts(ctx)
		st.SlurmRequests += 2
		if err != nil {
			return b.recon.accounts
		}
		b.recon.accounts = make(map[string]slurmctl.Account, len(accts))
		for _, a := range accts {
			b.recon.accounts[a.Name] = a
		}
		b.recon.accountsAt = b.now()
	}
	return b.recon.accounts
}

// jobVanished handles a recorded job that Slurm no longer lists: it finished
// more than MinJobAge ago (while the gateway was down) or was purged.
func (b *Bridge) jobVanished(ctx context.Context, s Session) error {
	if s.JobID == nil {
		return b.fail(ctx, s, "lost track of the job")
	}
	j, err := b.slurm.Job(ctx, s.Owner, slurmctl.JobID(*s.JobID))
	switch {
	case err == nil && j.Comment == jobComment(s.ID):
		_, _, err = b.follow(ctx, s, &j, nil, &ReconcileStats{})
		return err
	case err == nil:
		// Slurm has given the job's id to another job since.
	case !errors.Is(err, slurmctl.ErrNotFound):
		return err // Slurm did not answer: the next pass asks again
	}
	if s.State == StateTerminating {
		return b.transition(ctx, s, StateTerminated, "ended", "terminated on request", endUpdate(s.ID, slurmctl.JobCancelled, nil))
	}
	return b.fail(ctx, s, fmt.Sprintf("Slurm no longer knows job %d; it ended while the gateway was not watching (see sacct -j %d)", *s.JobID, *s.JobID))
}

// Polling just-submitted jobs. Slurm 22.05 has no event stream, and a job
// that fits usually starts within a second of its submission, so waiting for
// the next tick (2 s by default, and a tick over thousands of jobs takes a
// second itself) would double how long a researcher waits to see a session
// start. For freshWindow after a submit the gateway therefore watches the
// jobs it has just submitted, and only those: every freshFastDelay while
// they are young, backing off to freshSlowDelay. A poll asks Slurm about each
// watched job when they are few against the cluster's jobs (see perJobCost),
// and otherwise makes one conditional listing, which costs next to nothing
// when nothing changed and a listing of every job when something did. A job
// seen pending for a reason only another event lifts (held, a dependency, an
// association limit) leaves the watch at once: polling it fast buys nothing.
const (
	freshWindow    = 10 * time.Second
	freshFastFor   = 2 * time.Second
	freshFastDelay = 50 * time.Millisecond
	freshSlowDelay = 400 * time.Millisecond
	// freshMax bounds the watch list; a burst beyond it waits for the tick.
	freshMax = 512
)

// freshJobs is the watch list of just-submitted jobs, by session id.
type freshJobs struct {
	mu       sync.Mutex
	jobs     map[string]freshJob
	lastPoll time.Time
	// lastTook is how long the last poll's request took; the next waits at
	// least as long, so a listing of thousands of jobs (a second or more)
	// never keeps slurmrestd busy more than half the time.
	lastTook time.Duration
	// listedAt is when the last conditional listing started, for the next
	// one's ChangedSince; zero forces an unconditional one.
	listedAt time.Time
	// listed is how many jobs the last listing (this poll's or the tick's)
	// returned, all of them, not only sessions': what a listing costs,
	// against one request per job. sized says there was one.
	listed int
	sized  bool
	once   sync.Once
	added  chan struct{} // buffered by one: bursts of submits coalesce
}

type freshJob struct {
	owner string
	job   slurmctl.JobID
	since time.Time
}

func (f *freshJobs) wakeup() chan struct{} {
	f.once.Do(func() { f.added = make(chan struct{}, 1) })
	return f.added
}

// add puts a just-submitted job on the watch list and wakes the poller.
func (f *freshJobs) add(session, owner string, job slurmctl.JobID, now time.Time) {
	f.mu.Lock()
	if f.jobs == nil {
		f.jobs = map[string]freshJob{}
	}
	if len(f.jobs) < freshMax {
		f.jobs[session] = freshJob{owner: owner, job: job, since: now}
	}
	f.mu.Unlock()
	select {
	case f.wakeup() <- struct{}{}:
	default:
	}
}

// due drops jobs watched longer than freshWindow and says how long until
// the next poll; ok is false when nothing is watched.
func (f *freshJobs) due(now time.Time) (wait time.Duration, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var newest time.Time
	for id, j := range f.jobs {
		if now.Sub(j.since) >= freshWindow {
			delete(f.jobs, id)
			continue
		}
		if j.since.After(newest) {
			newest = j.since
		}
	}
	if len(f.jobs) == 0 {
		return 0, false
	}
	delay := freshFastDelay
	if age := now.Sub(newest); age >= freshFastFor {
		// Double every further second: 100, 200, 400 ms.
		delay = min(freshSlowDelay, freshFastDelay<<int((age-freshFastFor)/time.Second+1))
	}
	// Never sooner than one delay after the newest submit: it is queued.
	next := f.lastPoll.Add(max(delay, f.lastTook))
	if first := newest.Add(freshFastDelay); first.After(next) {
		next = first
	}
	return max(0, next.Sub(now)), true
}

func (f *freshJobs) snapshot(now time.Time) map[string]freshJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastPoll = now
	out := make(map[string]freshJob, len(f.jobs))
	for id, j := range f.jobs {
		out[id] = j
	}
	return out
}

func (f *freshJobs) sawListing(jobs int) {
	f.mu.Lock()
	f.listed, f.sized = jobs, true
	f.mu.Unlock()
}

// perJobCost is what slurmrestd spends answering for one job, in jobs of a
// listing: listing costs it about 0.2 ms per job, a one-job request 1 to
// 2.5 ms (measured on Slurm 22.05). Watching fewer jobs than a listing's
// worth, one request per job is the cheaper poll; on a cluster of thousands
// of jobs, by far. Before any listing has said how many jobs there are, up
// to perJobMax watched jobs are asked for one by one: a bounded cost, where
// a listing's is not.
const (
	perJobCost = 8
	perJobMax  = 64
)

func (f *freshJobs) remove(session string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.jobs, session)
}

// pollFresh watches just-submitted jobs until ctx ends.
func (b *Bridge) pollFresh(ctx context.Context) {
	f := &b.recon.fresh
	for {
		var timer <-chan time.Time
		if wait, ok := f.due(b.now()); ok {
			timer = time.After(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-f.wakeup():
			continue // a new job: its delay may be shorter
		case <-timer:
		}
		if err := b.pollFreshOnce(ctx); err != nil && ctx.Err() == nil {
			b.log.Debug("polling just-submitted jobs", "err", err)
		}
	}
}

// pollFreshOnce looks at the watched jobs in one Slurm request and moves the
// sessions of those that have left the queue. Pending ones stay watched;
// their reasons and queue positions are the reconciler's business. It needs
// no reconciler lock: every transition is conditional on the state it
// starts from, so a pass racing it finds the work done.
func (b *Bridge) pollFreshOnce(ctx context.Context) error {
	f := &b.recon.fresh
	start := b.now()
	watched := f.snapshot(start)
	if len(watched) == 0 {
		return nil
	}
	defer func() {
		f.mu.Lock()
		f.lastTook = b.now().Sub(start)
		f.mu.Unlock()
	}()
	found := map[slurmctl.JobID]*slurmctl.Job{}
	f.mu.Lock()
	listed, sized := f.listed, f.sized
	f.mu.Unlock()
	n := len(watched)
	if n == 1 || n*perJobCost < listed || (!sized && n <= perJobMax) {
		for id, w := range watched {
			j, err := b.slurm.Job(ctx, w.owner, w.job)
			if errors.Is(err, slurmctl.ErrNotFound) {
				f.remove(id) // gone already: the reconciler's tick settles it
				continue
			}
			if err != nil {
				return err
			}
			found[j.ID] = &j
		}
	} else {
		var filter slurmctl.JobFilter // found is by job id: every job will do
		f.mu.Lock()
		if !f.listedAt.IsZero() && start.Sub(f.listedAt) < freshWindow {
			filter.ChangedSince = f.listedAt.Truncate(time.Second).Add(-listingSlack)
		}
		f.mu.Unlock()
		jobs, err := b.slurm.AllJobs(ctx, filter)
		if errors.Is(err, slurmctl.ErrNoChange) {
			return nil
		}
		if err != nil {
			f.mu.Lock()
			f.listedAt = time.Time{}
			f.mu.Unlock()
			return err
		}
		f.mu.Lock()
		f.listedAt, f.listed, f.sized = start, len(jobs), true
		f.mu.Unlock()
		for i := range jobs {
			found[jobs[i].ID] = &jobs[i]
		}
	}
	var errs []error
	for id, w := range watched {
		job, ok := found[w.job]
		if !ok {
			continue
		}
		if job.State == slurmctl.JobPending {
			if slurmctl.WaitsOnOthers(job.Reason) {
				// Held, or at a limit: it starts when something else
				// happens, not within the second this watch is for.
				// The tick follows it.
				f.remove(id)
			}
			continue
		}
		f.remove(id)
		s, err := b.sessionByID(ctx, id)
		if err == nil && s.JobID != nil && slurmctl.JobID(*s.JobID) == w.job {
			_, _, err = b.follow(ctx, s, job, nil, &ReconcileStats{})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", id, err))
		}
	}
	return errors.Join(errs...)
}
