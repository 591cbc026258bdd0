package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/slurmctl"
)

// Idle culling and the lifetime backstop. A RUNNING session whose policy
// (the tightest of its user's, project's and domain's idle_timeout_s) sets
// an idle timeout is idle when nothing was proxied to it and its utilisation
// stayed below Config.IdleThreshold for that long; it is then ended with
// reason "idle". Activity is measured from the agent's readiness, the
// gateway's own proxy (Agent.Touch) and the agent's reports, and kept in
// PostgreSQL so that any replica can cull.
//
// Slurm ends a session at its time limit (--time); the gateway also ends a
// session still live lifetimeGrace past that limit, in case Slurm did not
// (a job stuck in completing, a node that stopped answering).

// lifetimeGrace is how long past its time limit a session may stay live
// before the gateway ends it itself: Slurm's KillWait plus slack.
const lifetimeGrace = 2 * time.Minute

// CullStats says what one culling pass did.
type CullStats struct {
	Idle     []string // sessions ended for idleness
	Overdue  []string // sessions ended past their lifetime
	Examined int
}

// RunCuller looks for idle and overdue sessions every Config.CullInterval
// until ctx ends.
func (b *Bridge) RunCuller(ctx context.Context) {
	t := time.NewTicker(b.cfg.CullInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st, err := b.CullOnce(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("culling idle sessions", "err", err)
		} else if len(st.Idle)+len(st.Overdue) > 0 {
			b.log.Info("culled sessions", "idle", st.Idle, "overdue", st.Overdue)
		}
	}
}

// CullOnce runs one pass: it records this gateway's latest activity, then
// ends every idle or overdue session.
func (b *Bridge) CullOnce(ctx context.Context) (CullStats, error) {
	var st CullStats
	for _, l := range b.agents.all() {
		b.flushActivity(ctx, l)
	}
	rows, _ := b.db.Query(ctx, `SELECT `+sessionCols+`, a.last_activity_at, a.ready_at, t.idle`+sessionFrom+`
		LEFT JOIN session_agents a ON a.session_id = s.id
		CROSS JOIN LATERAL (SELECT min(idle_timeout_s) AS idle FROM policies pol
			WHERE pol.user_id = s.user_id OR pol.project_id = s.project_id OR pol.domain_id = s.domain_id) t
		WHERE s.state IN ('PREPARING', 'RUNNING')`)
	type candidate struct {
		s               Session
		activity, ready *time.Time
		idleTimeoutS    *int64
	}
	cands, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (candidate, error) {
		var c candidate
		s, err := scanSession(extraCols{r, []any{&c.activity, &c.ready, &c.idleTimeoutS}})
		c.s = s
		return c, err
	})
	if err != nil {
		return st, err
	}
	now := b.now()
	var errs []error
	for _, c := range cands {
		st.Examined++
		s := c.s
		if s.StartedAt != nil && now.Sub(*s.StartedAt) > time.Duration(s.TimeLimitS)*time.Second+lifetimeGrace {
			limit := time.Duration(s.TimeLimitS) * time.Second
			msg := fmt.Sprintf("ended by the gateway: past its lifetime of %s and Slurm had not ended it", limit)
			if err := b.endSession(ctx, s, "lifetime", msg); err != nil {
				errs = append(errs, fmt.Errorf("session %s: %w", s.ID, err))
			} else {
				st.Overdue = append(st.Overdue, s.ID)
			}
			continue
		}
		if c.idleTimeoutS == nil || s.State != StateRunning {
			continue
		}
		// Idleness counts from the last activity, or from readiness, or
		// (neither recorded) from the job's start.
		since := s.StartedAt
		for _, t := range []*time.Time{c.ready, c.activity} {
			if t != nil && (since == nil || t.After(*since)) {
				since = t
			}
		}
		timeout := time.Duration(*c.idleTimeoutS) * time.Second
		if since == nil || now.Sub(*since) < timeout {
			continue
		}
		msg := fmt.Sprintf("idle: no app traffic and utilisation below %.0f%% for %s (the policy's idle timeout is %s)",
			b.cfg.IdleThreshold*100, now.Sub(*since).Round(time.Second), timeout)
		if err := b.endSession(ctx, s, "idle", msg); err != nil {
			errs = append(errs, fmt.Errorf("session %s: %w", s.ID, err))
		} else {
			st.Idle = append(st.Idle, s.ID)
		}
	}
	return st, errors.Join(errs...)
}

// extraCols scans a session followed by more columns.
type extraCols struct {
	r     pgx.Row
	extra []any
}

func (e extraCols) Scan(dest ...any) error { return e.r.Scan(append(dest, e.extra...)...) }

// endSession ends a running session on the gateway's own initiative, with
// reason as the event kind and msg as its status message: the agent is
// asked to stop, the job cancelled, and the session TERMINATING until Slurm
// confirms the end.
func (b *Bridge) endSession(ctx context.Context, s Session, reason, msg string) error {
	if _, err := b.db.Exec(ctx, `UPDATE session_agents SET end_reason = $2 WHERE session_id = $1`, s.ID, reason); err != nil {
		return err
	}
	b.stopAgent(ctx, s.ID, reason)
	if s.JobID == nil {
		return b.transition(ctx, s, StateTerminated, reason, msg, endUpdate(s.ID, "", nil))
	}
	err := b.slurm.Cancel(ctx, s.Owner, slurmctl.JobID(*s.JobID))
	if err != nil && !errors.Is(err, slurmctl.ErrNotFound) && !alreadyFinished(err) {
		return &Error{Kind: KindUnavailable, Message: "Slurm did not cancel the job", Err: err}
	}
	return b.transition(ctx, s, StateTerminating, reason, msg, nil)
}

// SessionEndReason is why the gateway ended a session ("idle", "lifetime"),
// or "" when it did not.
func (b *Bridge) SessionEndReason(ctx context.Context, a Actor, id string) (string, error) {
	if _, err := b.Session(ctx, a, id); err != nil {
		return "", err
	}
	var reason string
	err := b.db.QueryRow(ctx, `SELECT end_reason FROM session_agents WHERE session_id = $1`, id).Scan(&reason)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return reason, err
}
