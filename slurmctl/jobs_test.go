package slurmctl_test

import (
	"errors"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/slurmctl"
)

// The bridge's reconciler caches the last listing and replaces it whole with
// a changed one, which is right only if a changed answer lists every job, not
// just those that changed. This pins what Slurm 22.05 (v0.0.38) does.
func TestClusterChangedSinceListsEveryJobOrNone(t *testing.T) {
	c, env, _ := newClient(t)
	dir := env.UserDir(t, "alice")
	tag := uniq("sg-since-")
	var ids []slurmctl.JobID
	for range 2 {
		id, err := c.Submit(t.Context(), "alice", slurmctl.JobSpec{
			Name: tag, Comment: tag, Account: "testlab", Hold: true, Script: script("true"), WorkDir: dir, StdOut: "/dev/null",
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	defer cancelAll(t, c, "alice", ids...)

	// slurmctld keeps whole seconds: let one pass so that "since" is after
	// the submits, then change one job only.
	time.Sleep(1100 * time.Millisecond)
	since := time.Now()
	time.Sleep(1100 * time.Millisecond)
	if err := c.Cancel(t.Context(), "alice", ids[0]); err != nil {
		t.Fatal(err)
	}
	jobs, err := c.AllJobs(t.Context(), slurmctl.JobFilter{CommentPrefix: tag, ChangedSince: since})
	if errors.Is(err, slurmctl.ErrNoChange) {
		t.Fatal("a job was cancelled after ChangedSince, yet slurmctld answered no change")
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 {
		t.Fatalf("changed listing returned %d of the 2 jobs; the reconciler assumes every job (Slurm 22.05)", len(jobs))
	}
	// Asked again from after the cancel, nothing has changed (other tests'
	// jobs may change meanwhile; then the answer is again the whole list).
	time.Sleep(1100 * time.Millisecond)
	jobs, err = c.AllJobs(t.Context(), slurmctl.JobFilter{CommentPrefix: tag, ChangedSince: time.Now()})
	if err != nil && !errors.Is(err, slurmctl.ErrNoChange) || err == nil && len(jobs) != 2 {
		t.Fatalf("listing changes since now: %d jobs, %v; want no change, or every job", len(jobs), err)
	}
}
