package slurmctl

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Ping checks that slurmrestd answers and slurmctld is up behind it.
func (c *Client) Ping(ctx context.Context) error {
	return c.dialect.ping(ctx, c, c.cfg.AdminUser)
}

// Submit submits spec as a batch job owned by user (a POSIX user name).
func (c *Client) Submit(ctx context.Context, user string, spec JobSpec) (JobID, error) {
	if err := validateSpec(spec); err != nil {
		return 0, &Error{Op: "submit", Kind: ErrInvalidRequest, Message: err.Error()}
	}
	return c.dialect.submit(ctx, c, user, spec)
}

func validateSpec(s JobSpec) error {
	switch {
	case !strings.HasPrefix(s.Script, "#!"):
		return fmt.Errorf("batch script must start with #! (an interpreter line)")
	case s.WorkDir == "" || !strings.HasPrefix(s.WorkDir, "/"):
		return fmt.Errorf("working directory must be an absolute path, got %q", s.WorkDir)
	case s.Nodes < 0 || s.Tasks < 0 || s.CPUsPerTask < 0 || s.MemoryMB < 0 || s.MemoryPerCPUMB < 0 || s.TimeLimit < 0:
		return fmt.Errorf("counts, sizes and time limit must not be negative")
	case s.MemoryMB > 0 && s.MemoryPerCPUMB > 0:
		return fmt.Errorf("memory per node and memory per CPU are mutually exclusive")
	}
	for _, g := range s.GRES {
		if g.Name == "" || g.Count <= 0 {
			return fmt.Errorf("gres %q: want a name and a count of at least 1", g.String())
		}
	}
	return nil
}

// Job returns one job as user sees it.
func (c *Client) Job(ctx context.Context, user string, id JobID) (Job, error) {
	return c.dialect.job(ctx, c, user, id)
}

// JobFilter narrows [Client.Jobs]. Empty fields match everything.
type JobFilter struct {
	NamePrefix    string
	CommentPrefix string
	User          string
	// ChangedSince makes the listing conditional (update_time): slurmctld
	// answers with every job if any job changed at or after this time's
	// second, and otherwise with nothing, which Jobs reports as ErrNoChange.
	// Every job, not the changed ones: slurmctld compares the time with one
	// cluster-wide "last job update" stamp (measured on Slurm 22.05; see
	// TestClusterChangedSinceListsEveryJobOrNone). It is slurmctld's clock
	// that counts, in whole seconds: callers step back a second or so.
	ChangedSince time.Time
}

func (f JobFilter) match(j Job) bool {
	return strings.HasPrefix(j.Name, f.NamePrefix) && strings.HasPrefix(j.Comment, f.CommentPrefix) &&
		(f.User == "" || j.User == f.User)
}

// Jobs lists, in one slurmrestd request, the jobs slurmctld still holds that
// match f. Jobs finished more than MinJobAge ago are gone from slurmctld; the
// caller consults accounting for those.
func (c *Client) Jobs(ctx context.Context, asUser string, f JobFilter) ([]Job, error) {
	all, err := c.dialect.jobs(ctx, c, asUser, f.ChangedSince)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, j := range all {
		if f.match(j) {
			out = append(out, j)
		}
	}
	return out, nil
}

// AllJobs lists, as the admin identity, every job matching f: what a
// reconciler needs to see all sessions' jobs in one request.
func (c *Client) AllJobs(ctx context.Context, f JobFilter) ([]Job, error) {
	return c.Jobs(ctx, c.cfg.AdminUser, f)
}

// Cancel cancels a job as user, like scancel. Slurm refuses to let one user
// cancel another's job ([ErrPermissionDenied]).
func (c *Client) Cancel(ctx context.Context, user string, id JobID) error {
	return c.dialect.signal(ctx, c, user, id, "")
}

// Signal sends sig to all steps of a running job as user, like scancel -s.
func (c *Client) Signal(ctx context.Context, user string, id JobID, sig syscall.Signal) error {
	if sig <= 0 || sig > 64 {
		return &Error{Op: "signal", Kind: ErrInvalidRequest, Message: fmt.Sprintf("signal %d is out of range", int(sig))}
	}
	// Slurm's sig_name2num takes plain numbers as well as names.
	return c.dialect.signal(ctx, c, user, id, strconv.Itoa(int(sig)))
}

// EstimatedStarts returns the backfill scheduler's start estimates for user's
// pending jobs, from `squeue --start --json`. The REST API of Slurm 22.05
// reports the same start_time field for pending jobs only once the backfill
// scheduler has run for them, and has no equivalent of squeue --start's
// filter; jobs without an estimate are absent from the result.
func (c *Client) EstimatedStarts(ctx context.Context, user string) (map[JobID]time.Time, error) {
	start := time.Now()
	out, err := c.cli.run(ctx, "squeue-start", user, "squeue", "--start", "--json", "--user", user)
	c.observe("squeue-start", start, err)
	if err != nil {
		return nil, err
	}
	// Slurm 22.05's squeue --json prints the openapi/v0.0.38 job list.
	var resp v0038JobsResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("slurm squeue --start: decoding: %w", err)
	}
	starts := map[JobID]time.Time{}
	for _, j := range resp.Jobs {
		if t := unixTime(j.StartTime); !t.IsZero() && j.State == string(JobPending) {
			starts[JobID(j.JobID)] = t
		}
	}
	return starts, nil
}
