package bridge

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slurmgate/slurmgate/slurmctl"
)

// DestroySession cancels a session's job. A pending session ends CANCELLED
// at once; a running one is TERMINATING until Slurm confirms the job ended.
// Destroying a session that has already ended changes nothing.
func (b *Bridge) DestroySession(ctx context.Context, a Actor, id string) (Session, error) {
	// Whoever may see a session (its owner and its admins) may end it.
	s, err := b.Session(ctx, a, id)
	if err != nil {
		return Session{}, err
	}
	if !s.State.Live() || s.State == StateTerminating {
		return s, nil
	}
	// The session lock keeps a submit in flight from racing the cancel.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := b.withSessionLock(ctx, id, func() error { return b.destroyLocked(ctx, id) })
		if err != nil {
			return Session{}, err
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			return Session{}, &Error{Kind: KindUnavailable, Message: "the session is being submitted; try again in a moment"}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return b.sessionByID(ctx, id)
}

func (b *Bridge) destroyLocked(ctx context.Context, id string) error {
	s, err := b.sessionByID(ctx, id)
	if err != nil || !s.State.Live() || s.State == StateTerminating {
		return err
	}
	if s.JobID == nil {
		// No job recorded; but a create that died between Slurm's answer
		// and the record leaves one behind, which would otherwise run
		// to its time limit unwatched.
		jobs, err := b.unrecordedJobs(ctx, s)
		if err != nil {
			return &Error{Kind: KindUnavailable, Message: "Slurm did not say whether the session's job exists; try again", Err: err}
		}
		for _, j := range jobs {
			if err := b.slurm.Cancel(ctx, s.Owner, j.ID); err != nil && !errors.Is(err, slurmctl.ErrNotFound) && !alreadyFinished(err) {
				return &Error{Kind: KindUnavailable, Message: "Slurm did not cancel the job", Err: err}
			}
		}
		msg := "cancelled before it was submitted"
		if len(jobs) > 0 {
			msg = fmt.Sprintf("cancelled; job %d, submitted but never recorded, was cancelled too", jobs[0].ID)
		}
		return b.transition(ctx, s, StateCancelled, "cancelled", msg, endUpdate(s.ID, "", nil))
	}
	// The gateway has authorised the actor; Slurm lets only the owner (or an
	// operator) cancel, so the cancel is done as the owner.
	err = b.slurm.Cancel(ctx, s.Owner, slurmctl.JobID(*s.JobID))
	if err != nil && !errors.Is(err, slurmctl.ErrNotFound) && !alreadyFinished(err) {
		return &Error{Kind: KindUnavailable, Message: "Slurm did not cancel the job", Err: err}
	}
	if s.State == StatePending {
		return b.transition(ctx, s, StateCancelled, "cancelled", "cancelled before it started", endUpdate(s.ID, slurmctl.JobCancelled, nil))
	}
	return b.transition(ctx, s, StateTerminating, "terminating", "termination requested; waiting for Slurm to end the job", nil)
}

// alreadyFinished recognises Slurm's answer for cancelling a finished job.
func alreadyFinished(err error) bool {
	var e *slurmctl.Error
	return errors.As(err, &e) && e.Code == 2021 // ESLURM_ALREADY_DONE
}
