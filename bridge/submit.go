package bridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/apptainer"
	"github.com/slurmgate/slurmgate/slurmctl"
)

// jobComment tags a session's job so the reconciler can find it by comment
// even when the gateway died before recording the job id.
func jobComment(sessionID string) string { return "slurmgate:" + sessionID }

// jobCommentPrefix matches every session job.
const jobCommentPrefix = "slurmgate:"

// sessionLockKey is the second key of a session's advisory lock (the first
// is 8): a hash of its id.
func sessionLockKey(id string) int32 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return int32(h.Sum64())
}

// withSessionLock runs fn while holding a PostgreSQL advisory lock for the
// session on a dedicated connection, so only one gateway replica (or one
// goroutine) submits a given session. It reports false if another holds it.
func (b *Bridge) withSessionLock(ctx context.Context, id string, fn func() error) (bool, error) {
	conn, err := b.db.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	key := sessionLockKey(id)
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(8, $1::int)`, key).Scan(&got); err != nil {
		return false, err
	}
	if !got {
		return false, nil
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(8, $1::int)`, key)
	return true, fn()
}

// submitAdmitted submits a session CreateSession has just admitted, under
// the session lock admit took: the row is as admit wrote it, so nothing is
// read back. It returns the session as submitted, or ok false when the
// submit did not happen (it failed, or another goroutine or replica holds
// the session); either way it releases the admission.
func (b *Bridge) submitAdmitted(ctx context.Context, p *sessionPlan, ad *admission) (s Session, ok bool, err error) {
	defer ad.release(ctx)
	if !ad.locked {
		return ad.session, false, nil
	}
	s = ad.session
	spec, err := b.renderJob(ctx, s, p.image, p.sg, ad.secret)
	if err != nil {
		return s, false, b.cannotPrepare(ctx, s, err)
	}
	jobID, err := b.submitSpec(ctx, s, spec)
	if err != nil || jobID == 0 {
		return s, false, err
	}
	// The job and its event committed, then the lock given up, in one round
	// trip. The unlock must follow the commit (an advisory unlock takes
	// effect at once, not at commit): whoever takes the lock next must see
	// the job, or the reconciler could submit a second one. Hence the
	// explicit transaction: in one implicit transaction the unlock would
	// come before the commit. A failure leaves the connection's transaction
	// aborted, so release drops the connection, and the lock with it.
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN`)
	batch.Queue(submittedSQL+` SELECT 1`, submittedArgs(s.ID, jobID, "submitted as job %d")...)
	batch.Queue(`COMMIT`)
	batch.Queue(`SELECT pg_advisory_unlock(8, $1::int)`, ad.lockKey)
	if err := ad.conn.SendBatch(ctx, batch).Close(); err != nil {
		return s, false, err
	}
	ad.locked = false
	b.recon.fresh.add(s.ID, s.Owner, jobID, b.now())
	j := int64(jobID)
	s.JobID, s.SubState, s.StatusMessage = &j, subQueued, queuedMessage
	return s, true, nil
}

// submitSpec hands a session's job to Slurm. It returns 0 and no error when
// Slurm refused the job for good (the session is failed), and an error when
// the reconciler is to retry.
func (b *Bridge) submitSpec(ctx context.Context, s Session, spec slurmctl.JobSpec) (slurmctl.JobID, error) {
	if b.hooks.beforeSubmit != nil {
		b.hooks.beforeSubmit(&spec)
	}
	jobID, err := b.slurm.Submit(ctx, s.Owner, spec)
	if errors.Is(err, slurmctl.ErrInvalidAccount) && spec.Account != "" {
		// The project or the membership may be newer than the account
		// sync's last pass (it follows each change, but takes seconds of
		// sacctmgr): create what this job needs now, and try once more.
		if n, serr := b.NewAccountSync().EnsureFor(ctx, spec.Account, s.Owner); serr != nil {
			b.log.Warn("creating a session's Slurm account after Slurm refused it", "session", s.ID, "account", spec.Account, "err", serr)
		} else if n > 0 {
			jobID, err = b.slurm.Submit(ctx, s.Owner, spec)
		}
	}
	if err != nil {
		if errors.Is(err, slurmctl.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return 0, err // the reconciler retries
		}
		return 0, b.fail(ctx, s, "Slurm refused the job: "+err.Error())
	}
	if b.hooks.afterSubmit != nil {
		if err := b.hooks.afterSubmit(s.ID); err != nil {
			return 0, err
		}
	}
	return jobID, nil
}

// submitOrAdopt submits a session still marked "submitting", unless a job
// for it already exists (known, when the caller has just listed Slurm's
// jobs). The reconciler calls it for sessions whose create did not finish.
// listedAt is when the caller's listing was taken (zero: no listing).
func (b *Bridge) submitOrAdopt(ctx context.Context, id string, existing *slurmctl.Job, listedAt time.Time) (Session, error) {
	select {
	case b.submits <- struct{}{}:
		defer func() { <-b.submits }()
	case <-ctx.Done():
		return Session{}, ctx.Err()
	}
	var out Session
	_, err := b.withSessionLock(ctx, id, func() error {
		s, err := b.sessionByID(ctx, id)
		if err != nil || s.State != StatePending || s.SubState != subSubmitting {
			return err // someone else finished it meanwhile
		}
		if existing == nil && s.CreatedAt.After(listedAt.Add(-unrecordedRecheck)) {
			// The caller's listing may predate the submit of a create
			// whose record then failed (it dropped the lock as it
			// failed): now that the session is locked, ask Slurm once
			// more, so that such a job is adopted, not doubled. A full
			// listing, so only for a session young enough for its
			// create's submit to have come after the caller's listing.
			jobs, err := b.unrecordedJobs(ctx, s)
			if err != nil {
				return err
			}
			if len(jobs) > 0 {
				existing = &jobs[0]
			}
		}
		if existing != nil {
			return b.recordSubmitted(ctx, s, existing.ID, "adopted job %d found by its comment after a gateway restart")
		}
		spec, err := b.jobSpec(ctx, s)
		if err != nil {
			return b.cannotPrepare(ctx, s, err)
		}
		jobID, err := b.submitSpec(ctx, s, spec)
		if err != nil || jobID == 0 {
			return err
		}
		if err := b.recordSubmitted(ctx, s, jobID, "submitted as job %d"); err != nil {
			return err
		}
		b.recon.fresh.add(s.ID, s.Owner, jobID, b.now())
		j := int64(jobID)
		s.JobID, s.SubState, s.StatusMessage = &j, subQueued, queuedMessage
		out = s
		return nil
	})
	return out, err
}

// unrecordedRecheck bounds how long after a session's row was written its
// create may still submit its job: the slurmrestd client's timeout (30 s)
// for the submit, and again for the retry after an account is created,
// with room to spare. A listing taken later than that after the row holds
// the create's job, if there is one.
const unrecordedRecheck = 2 * time.Minute

// unrecordedJobs lists the jobs Slurm holds for a session whose job id was
// never recorded, found by comment among its owner's jobs, oldest first.
// It is one listing of every job: for the paths that run only when a
// create did not finish.
func (b *Bridge) unrecordedJobs(ctx context.Context, s Session) ([]slurmctl.Job, error) {
	jobs, err := b.slurm.Jobs(ctx, s.Owner, slurmctl.JobFilter{CommentPrefix: jobComment(s.ID), User: s.Owner})
	if err != nil {
		return nil, err
	}
	jobs = slices.DeleteFunc(jobs, func(j slurmctl.Job) bool { return j.Comment != jobComment(s.ID) })
	slices.SortFunc(jobs, func(x, y slurmctl.Job) int { return cmp.Compare(x.ID, y.ID) })
	return jobs, nil
}

const queuedMessage = "queued in Slurm"

// recordSubmitted records the job and its event in one statement: a single
// statement is atomic, and on the create path every round trip counts.
func (b *Bridge) recordSubmitted(ctx context.Context, s Session, jobID slurmctl.JobID, format string) error {
	_, err := b.db.Exec(ctx, submittedSQL+` SELECT 1`, submittedArgs(s.ID, jobID, format)...)
	return err
}

// submittedSQL is the WITH clause of a statement that records a session's
// job and its event; the caller adds the statement's body.
const submittedSQL = `WITH s AS (
		UPDATE sessions SET job_id = $2, sub_state = $3, status_message = $4, updated_at = now() WHERE id = $1 RETURNING id),
	e AS (INSERT INTO session_events (session_id, kind, from_state, to_state, message)
		SELECT id, 'submitted', $5, $5, $6 FROM s)`

func submittedArgs(id string, jobID slurmctl.JobID, format string) []any {
	return []any{id, int64(jobID), subQueued, queuedMessage, string(StatePending), fmt.Sprintf(format, jobID)}
}

// fail ends a session in ERROR with a message the user can act on.
func (b *Bridge) fail(ctx context.Context, s Session, msg string) error {
	return b.transition(ctx, s, StateError, "error", msg, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE sessions SET sub_state = '', ended_at = now() WHERE id = $1`, s.ID)
		return err
	})
}

// transition moves s to state "to" with an event, plus any extra updates, in
// one transaction. It is a no-op if s already left its recorded state.
func (b *Bridge) transition(ctx context.Context, s Session, to SessionState, kind, msg string, extra func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE sessions SET state = $3, status_message = $4, updated_at = now()
			WHERE id = $1 AND state = $2`, s.ID, s.State, to, msg)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return recordEvent(ctx, tx, s.ID, kind, s.State, to, msg)
	})
}

// jobSpec renders the session's Slurm job through its container runtime.
func (b *Bridge) jobSpec(ctx context.Context, s Session) (slurmctl.JobSpec, error) {
	img, err := b.Image(ctx, s.Image)
	if KindOf(err) == KindNotFound {
		return slurmctl.JobSpec{}, permanent(fmt.Errorf("image %s left the catalogue", s.Image))
	}
	if err != nil {
		return slurmctl.JobSpec{}, err
	}
	sg, err := b.ScalingGroup(ctx, s.ScalingGroup)
	if KindOf(err) == KindNotFound {
		return slurmctl.JobSpec{}, permanent(fmt.Errorf("scaling group %s was deleted", s.ScalingGroup))
	}
	if err != nil {
		return slurmctl.JobSpec{}, err
	}
	return b.renderJob(ctx, s, img, sg, "")
}

// permanentError is a failure to prepare a session's job that trying again
// cannot heal (the image is gone, the runtime refuses the job): the session
// fails with it. Any other failure (the database, the shared file system
// the job's output goes to) leaves the session to be submitted by a later
// reconciler pass, saying why it waits, for up to submitRetryFor.
type permanentError struct{ err error }

func permanent(err error) error         { return &permanentError{err} }
func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// submitRetryFor is how long a session whose job cannot be prepared for a
// passing reason is tried again before it fails.
const submitRetryFor = 10 * time.Minute

// cannotPrepare handles a failure to prepare s's job: a permanent one, or
// one that has lasted submitRetryFor, fails the session; otherwise the
// session says why it waits, and the error is returned for a retry.
func (b *Bridge) cannotPrepare(ctx context.Context, s Session, err error) error {
	if isPermanent(err) || b.now().Sub(s.CreatedAt) > submitRetryFor {
		return b.fail(ctx, s, "cannot prepare the job: "+err.Error())
	}
	if _, uerr := b.db.Exec(ctx, `UPDATE sessions SET status_message = $2, updated_at = now() WHERE id = $1 AND sub_state = $3`,
		s.ID, "not submitted yet, retrying: "+err.Error(), subSubmitting); uerr != nil {
		b.log.Warn("recording why a session waits", "session", s.ID, "err", uerr)
	}
	return err
}

// renderJob is jobSpec with the image and scaling group already read, and
// the agent's secret when admit issued it with the row ("" issues one). With
// Config.AgentBinary set (as the gateway always sets it) the job's one step
// is the agent; without it the job runs the command directly through the
// runtime's own script, with no apps, terminals or exec (runtimes that need
// the agent, such as charliecloud, refuse).
func (b *Bridge) renderJob(ctx context.Context, s Session, img Image, sg ScalingGroup, secret string) (slurmctl.JobSpec, error) {
	var script string
	if b.cfg.AgentBinary == "" {
		rt, err := apptainer.Lookup(cmpOr(img.Runtime, sg.Runtime))
		if err != nil {
			return slurmctl.JobSpec{}, permanent(err)
		}
		script, err = rt.JobScript(apptainer.Job{
			SessionID: s.ID, Interactive: s.Type == "interactive", Image: img.Location, Command: s.Command, GPUs: s.GPUs,
		})
		if err != nil {
			return slurmctl.JobSpec{}, permanent(err)
		}
	}
	outDir := filepath.Dir(s.stdoutPath)
	if err := ensureUserDir(outDir, s.OwnerUID); err != nil {
		return slurmctl.JobSpec{}, err
	}
	env := map[string]string{
		"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "USER": s.Owner, "LOGNAME": s.Owner,
		"HOME": homeOf(s.Owner), "SLURMGATE_SESSION_ID": s.ID,
	}
	for k, v := range s.Environment {
		env[k] = v
	}
	spec := slurmctl.JobSpec{
		Name: "sg-" + s.ID[:8], Comment: jobComment(s.ID), Account: projectAccount(s.Project),
		Partition: s.Partition, Script: script, Environment: env, Nodes: 1, Tasks: 1, CPUsPerTask: s.CPUs,
		MemoryMB: s.MemoryMB, TimeLimit: time.Duration(s.TimeLimitS) * time.Second,
		StdOut: s.stdoutPath, StdErr: s.stderrPath, WorkDir: outDir,
	}
	if s.GPUs > 0 {
		spec.GRES = []slurmctl.GRES{{Name: "gpu", Type: s.GPUType, Count: int64(s.GPUs)}}
	}
	if b.cfg.AgentBinary != "" {
		// After ensureUserDir: the agent's config goes beside the output.
		var err error
		if secret == "" {
			spec.Script, err = b.agentScript(ctx, s, img, sg)
		} else {
			spec.Script, err = b.agentScriptWith(s, img, sg, secret)
		}
		if err != nil {
			return slurmctl.JobSpec{}, err
		}
	}
	return spec, nil
}

// projectAccount maps "domain/project" to its Slurm account "domain.project".
func projectAccount(path string) string {
	for i := range len(path) {
		if path[i] == '/' {
			return path[:i] + "." + path[i+1:]
		}
	}
	return path
}

// ensureUserDir makes the per-user job output directory: owned by the user,
// mode 0700, so only the user (and the gateway, as root) read session output.
func ensureUserDir(dir string, uid int) error {
	// Already so, as it is for every session but a user's first: a stat,
	// not a chown and a chmod, each of which would dirty the inode.
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() && fi.Mode().Perm() == 0o700 {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
			return nil
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("job output directory: %w", err)
	}
	if err := os.Chown(dir, uid, -1); err != nil {
		return fmt.Errorf("job output directory %s: giving it to uid %d: %w (the gateway runs as root to do this)", dir, uid, err)
	}
	return os.Chmod(dir, 0o700)
}

// homeOf is the user's home directory, for the job's HOME. The lookup goes
// through NSS (cgo, and LDAP or sssd on a real cluster), so answers are kept
// for homeTTL: a home directory moves rarely, and a stale one for a minute
// costs a job its HOME, not its security (the job runs as the user anyway).
func homeOf(username string) string {
	homes.mu.Lock()
	h, ok := homes.m[username]
	homes.mu.Unlock()
	if ok && time.Since(h.at) < homeTTL {
		return h.dir
	}
	u, err := user.Lookup(username)
	if err != nil || u.HomeDir == "" {
		return "/tmp" // not kept: the next job looks again
	}
	homes.mu.Lock()
	if homes.m == nil || len(homes.m) >= 4096 {
		homes.m = map[string]homeEntry{}
	}
	homes.m[username] = homeEntry{u.HomeDir, time.Now()}
	homes.mu.Unlock()
	return u.HomeDir
}

const homeTTL = time.Minute

type homeEntry struct {
	dir string
	at  time.Time
}

var homes struct {
	mu sync.Mutex
	m  map[string]homeEntry
}
