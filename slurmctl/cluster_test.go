package slurmctl_test

// Integration tests against the one-machine test cluster (testdata/cluster):
// real slurmctld, slurmd, slurmdbd and slurmrestd. They fail, never skip,
// when the cluster is missing.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

type counter struct{ calls map[string]*atomic.Int64 }

func (c counter) get(op string) int64 { return c.calls[op].Load() }

func newClient(t *testing.T) (*slurmctl.Client, *cluster.Env, counter) {
	t.Helper()
	env := cluster.Require(t)
	cnt := counter{calls: map[string]*atomic.Int64{}}
	for _, op := range []string{"jobs", "submit", "job", "sacctmgr", "associations", "cancel", "signal"} {
		cnt.calls[op] = new(atomic.Int64)
	}
	c, err := slurmctl.New(slurmctl.Config{
		URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf,
		Observe: func(op string, _ time.Duration, _ error) {
			if n, ok := cnt.calls[op]; ok {
				n.Add(1)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, env, cnt
}

// uniq returns a name no earlier test run used, so runs never collide.
func uniq(prefix string) string {
	return fmt.Sprintf("%s%x", prefix, time.Now().UnixNano()&0xffffffff)
}

// waitJob polls until cond holds for the job, or fails after limit.
func waitJob(t *testing.T, c *slurmctl.Client, user string, id slurmctl.JobID, limit time.Duration, what string, cond func(slurmctl.Job) bool) slurmctl.Job {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last slurmctl.Job
	for time.Now().Before(deadline) {
		j, err := c.Job(t.Context(), user, id)
		if err != nil {
			t.Fatalf("job %d: %v", id, err)
		}
		if cond(j) {
			return j
		}
		last = j
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("job %d never became %s; last state %s (reason %s)", id, what, last.State, last.Reason)
	return last
}

// deleteAccountLater removes an account when the test ends, retrying while
// the test's cancelled jobs finish (Slurm refuses to delete an account with
// active jobs).
func deleteAccountLater(t *testing.T, c *slurmctl.Client, names ...string) {
	t.Cleanup(func() {
		for _, name := range names {
			for try := 0; try < 50; try++ {
				err := c.DeleteAccount(context.Background(), name)
				if err == nil || errors.Is(err, slurmctl.ErrNotFound) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	})
}

func terminal(j slurmctl.Job) bool { return j.State.Terminal() && !hasFlag(j, "COMPLETING") }

func hasFlag(j slurmctl.Job, f string) bool {
	for _, x := range j.Flags {
		if x == f {
			return true
		}
	}
	return false
}

func script(body string) string { return "#!/bin/bash\n" + body + "\n" }

func cancelAll(t *testing.T, c *slurmctl.Client, user string, ids ...slurmctl.JobID) {
	t.Cleanup(func() {
		for _, id := range ids {
			_ = c.Cancel(context.Background(), user, id)
		}
	})
}

func TestClusterPing(t *testing.T) {
	c, _, _ := newClient(t)
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestClusterSubmitRunsAsUserInAccountAndPartition(t *testing.T) {
	c, env, _ := newClient(t)
	dir := env.UserDir(t, "alice")
	out := filepath.Join(dir, "out.txt")
	id, err := c.Submit(t.Context(), "alice", slurmctl.JobSpec{
		Name: "sg-test-run", Comment: "sg:test", Account: "testlab", Partition: "cpu",
		Script:      script("id -u; id -un; hostname; echo \"$SLURM_JOB_ACCOUNT $SLURM_JOB_PARTITION $GREETING\""),
		Environment: map[string]string{"PATH": "/usr/bin:/bin", "GREETING": "hello"},
		CPUsPerTask: 2, MemoryMB: 256, TimeLimit: 2 * time.Minute, StdOut: out, WorkDir: dir,
	})
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, c, "alice", id, time.Minute, "finished", terminal)
	if j.State != slurmctl.JobCompleted || j.ExitCode != 0 {
		t.Fatalf("job ended %s exit %d, want COMPLETED 0", j.State, j.ExitCode)
	}
	if j.User != "alice" || j.UID != 2001 || j.Account != "testlab" || j.Partition != "cpu" || j.Name != "sg-test-run" || j.Comment != "sg:test" {
		t.Errorf("job = user %s uid %d account %s partition %s name %s comment %s", j.User, j.UID, j.Account, j.Partition, j.Name, j.Comment)
	}
	if j.TimeLimit != 2*time.Minute || j.TRES["cpu"] != 2 || j.TRES["mem"] != 256 {
		t.Errorf("time limit %v, TRES %v; want 2m, cpu=2, mem=256", j.TimeLimit, j.TRES)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || lines[0] != "2001" || lines[1] != "alice" || lines[2] != j.Nodes || lines[3] != "testlab cpu hello" {
		t.Fatalf("job output %q; want alice's uid and name, the node name %q, account and partition", lines, j.Nodes)
	}
	if st, err := os.Stat(out); err != nil || st.Sys().(*syscall.Stat_t).Uid != 2001 {
		t.Errorf("output file not owned by alice: %v", err)
	}
}

func TestClusterGPUJobSeesItsDevices(t *testing.T) {
	c, env, _ := newClient(t)
	dir := env.UserDir(t, "alice")
	id, err := c.Submit(t.Context(), "alice", slurmctl.JobSpec{
		Account: "testlab", Partition: "gpu", GRES: []slurmctl.GRES{{Name: "gpu", Type: "a100", Count: 2}},
		Script: script("hostname; echo $CUDA_VISIBLE_DEVICES"), StdOut: dir + "/gpu.out", WorkDir: dir,
		TimeLimit: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, c, "alice", id, time.Minute, "finished", terminal)
	if j.State != slurmctl.JobCompleted {
		t.Fatalf("GPU job ended %s (%s)", j.State, j.Reason)
	}
	if j.TRES["gres/gpu"] != 2 {
		t.Errorf("allocated TRES %v, want gres/gpu=2", j.TRES)
	}
	b, _ := os.ReadFile(dir + "/gpu.out")
	got := strings.Fields(string(b))
	if len(got) != 2 || got[0] != "g1" || len(strings.Split(got[1], ",")) != 2 {
		t.Fatalf("GPU job printed %q; want host g1 and two CUDA_VISIBLE_DEVICES", got)
	}
}

func TestClusterCancelPendingJob(t *testing.T) {
	c, env, _ := newClient(t)
	dir := env.UserDir(t, "alice")
	id, err := c.Submit(t.Context(), "alice", slurmctl.JobSpec{
		Account: "testlab", Hold: true, Script: script("true"), WorkDir: dir, StdOut: "/dev/null",
	})
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.Job(t.Context(), "alice", id)
	if err != nil || j.State != slurmctl.JobPending || j.Reason != "JobHeldUser" {
		t.Fatalf("held job: %+v %v; want PENDING with reason JobHeldUser", j.State, err)
	}
	if err := c.Cancel(t.Context(), "alice", id); err != nil {
		t.Fatal(err)
	}
	waitJob(t, c, "alice", id, 30*time.Second, "CANCELLED", func(j slurmctl.Job) bool { return j.State == slurmctl.JobCancelled })
}

func TestClusterListFiftyJobsInOneCall(t *testing.T) {
	c, env, cnt := newClient(t)
	dir := env.UserDir(t, "alice")
	tag := uniq("sg-list-")
	var ids []slurmctl.JobID
	for i := range 50 {
		id, err := c.Submit(t.Context(), "alice", slurmctl.JobSpec{
			Name: fmt.Sprintf("%s-%d", tag, i), Comment: tag, Account: "testlab", Hold: true,
			Script: script("true"), WorkDir: dir, StdOut: "/dev/null",
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	cancelAll(t, c, "alice", ids...)
	before := cnt.get("jobs")
	jobs, err := c.AllJobs(t.Context(), slurmctl.JobFilter{CommentPrefix: tag})
	if err != nil {
		t.Fatal(err)
	}
	if n := cnt.get("jobs") - before; n != 1 {
		t.Errorf("listing took %d slurmrestd requests, want 1", n)
	}
	if len(jobs) != 50 {
		t.Fatalf("listed %d jobs with comment %s, want 50", len(jobs), tag)
	}
	byName, err := c.Jobs(t.Context(), "alice", slurmctl.JobFilter{NamePrefix: tag + "-4", User: "alice"})
	if err != nil || len(byName) != 11 { // -4 and -40…-49
		t.Fatalf("name-prefix filter found %d jobs (%v), want 11", len(byName), err)
	}
	// Nothing changed since a time in the future: one cheap answer, no list.
	none, err := c.AllJobs(t.Context(), slurmctl.JobFilter{CommentPrefix: tag, ChangedSince: time.Now().Add(time.Hour)})
	if !errors.Is(err, slurmctl.ErrNoChange) || len(none) != 0 {
		t.Fatalf("ChangedSince in the future: %d jobs, %v; want ErrNoChange", len(none), err)
	}
	// Something changed since an hour ago: the whole list.
	all, err := c.AllJobs(t.Context(), slurmctl.JobFilter{CommentPrefix: tag, ChangedSince: time.Now().Add(-time.Hour)})
	if err != nil || len(all) != 50 {
		t.Fatalf("ChangedSince an hour ago: %d jobs, %v; want 50", len(all), err)
	}
}

func TestClusterSignalRunningJob(t *testing.T) {
	c, env, _ := newClient(t)
	dir := env.UserDir(t, "alice")
	id, err := c.Submit(t.Context(), "alice", slurmctl.JobSpec{
		Account: "testlab", StdOut: dir + "/sig.out", WorkDir: dir, TimeLimit: time.Minute,
		Script: script(`trap 'echo got USR1; exit 7' USR1; echo ready; for i in $(seq 600); do sleep 0.1; done`),
	})
	if err != nil {
		t.Fatal(err)
	}
	cancelAll(t, c, "alice", id)
	waitJob(t, c, "alice", id, 30*time.Second, "RUNNING", func(j slurmctl.Job) bool { return j.State == slurmctl.JobRunning })
	// The trap exists only once the script printed "ready".
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(dir + "/sig.out"); strings.Contains(string(b), "ready") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("job never started its script")
		}
	}
	if err := c.Signal(t.Context(), "alice", id, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, c, "alice", id, 30*time.Second, "finished", terminal)
	b, _ := os.ReadFile(dir + "/sig.out")
	if j.ExitCode != 7 || !strings.Contains(string(b), "got USR1") {
		t.Fatalf("after SIGUSR1: state %s exit %d output %q; want exit 7 and the trap's message", j.State, j.ExitCode, b)
	}
}

func TestClusterNodesAndPartitions(t *testing.T) {
	c, _, _ := newClient(t)
	nodes, err := c.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 3 {
		t.Fatalf("%d nodes, want c1, c2, g1", len(nodes))
	}
	parts, err := c.Partitions(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]slurmctl.Partition{}
	for _, p := range parts {
		got[p.Name] = p
	}
	cpu, gpu := got["cpu"], got["gpu"]
	if !cpu.Default || gpu.Default || len(cpu.Nodes) != 2 || cpu.TotalCPUs != 8 || cpu.MaxTime != 7*24*time.Hour {
		t.Errorf("cpu partition = %+v; want default, 2 nodes, 8 CPUs, 7-day limit", cpu)
	}
	if a := gpu.GPUs["a100"]; a.Total != 4 || a.Free < 0 || a.Free > 4 || len(gpu.Nodes) != 1 || gpu.Nodes[0] != "g1" {
		t.Errorf("gpu partition = %+v; want g1 with 4 a100 GPUs", gpu)
	}
}

func TestClusterAccountsLimitsAndEnforcement(t *testing.T) {
	c, env, _ := newClient(t)
	ctx := t.Context()
	domain := uniq("sgd")
	project := domain + ".vision"
	deleteAccountLater(t, c, project, domain)
	if err := c.CreateAccount(ctx, slurmctl.Account{Name: domain, Description: "domain", Organization: "slurmgate"}); err != nil {
		t.Fatal(err)
	}
	limits := slurmctl.Limits{GrpTRES: slurmctl.TRES{"gres/gpu": 2, "cpu": 8}, GrpJobs: 5, GrpSubmitJobs: 10, MaxWall: 2 * time.Hour}
	if err := c.CreateAccount(ctx, slurmctl.Account{Name: project, Parent: domain, Description: "project", Organization: "slurmgate", Limits: limits}); err != nil {
		t.Fatal(err)
	}
	err := c.CreateAccount(ctx, slurmctl.Account{Name: project, Parent: domain})
	if !errors.Is(err, slurmctl.ErrAlreadyExists) {
		t.Errorf("creating %s twice: %v, want ErrAlreadyExists", project, err)
	}
	if err := c.CreateAssociation(ctx, slurmctl.Association{Account: project, User: "alice"}); err != nil {
		t.Fatal(err)
	}

	got, err := c.Account(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	if got.Parent != domain || got.Description != "project" || !got.Limits.GrpTRES.Equal(limits.GrpTRES) ||
		got.Limits.GrpJobs != 5 || got.Limits.GrpSubmitJobs != 10 || got.Limits.MaxWall != 2*time.Hour {
		t.Fatalf("read back %+v; want parent %s and limits %+v", got, domain, limits)
	}

	// Three 1-GPU jobs against GrpTRES=gres/gpu=2: the third pends on the limit.
	dir := env.UserDir(t, "alice")
	var ids []slurmctl.JobID
	for range 3 {
		id, err := c.Submit(ctx, "alice", slurmctl.JobSpec{
			Account: project, Partition: "gpu", GRES: []slurmctl.GRES{{Name: "gpu", Count: 1}},
			Script: script("sleep 120"), WorkDir: dir, StdOut: "/dev/null", TimeLimit: 5 * time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	cancelAll(t, c, "alice", ids...)
	for _, id := range ids[:2] {
		waitJob(t, c, "alice", id, 30*time.Second, "RUNNING", func(j slurmctl.Job) bool { return j.State == slurmctl.JobRunning })
	}
	third := waitJob(t, c, "alice", ids[2], 30*time.Second, "pending on AssocGrpGRES",
		func(j slurmctl.Job) bool { return j.Reason == "AssocGrpGRES" })
	if third.State != slurmctl.JobPending {
		t.Fatalf("third job %s, want PENDING", third.State)
	}
	msg := slurmctl.ExplainPending(third, slurmctl.PendingContext{
		LimitScope: "project", Limits: got.Limits, InUse: slurmctl.TRES{"gres/gpu": 2},
	})
	if !strings.Contains(msg, "2 GPUs") || !strings.Contains(msg, "project") {
		t.Errorf("explanation %q does not name the project's 2-GPU limit", msg)
	}

	// Changing a limit and clearing another reaches slurmdbd.
	limits.GrpTRES = slurmctl.TRES{"gres/gpu": 3}
	limits.GrpJobs = 0
	if err := c.UpdateAccount(ctx, slurmctl.Account{Name: project, Parent: domain, Description: "project", Organization: "slurmgate", Limits: limits}); err != nil {
		t.Fatal(err)
	}
	got, err = c.Account(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Limits.GrpTRES.Equal(slurmctl.TRES{"gres/gpu": 3}) || got.Limits.GrpJobs != 0 {
		t.Errorf("after update: GrpTRES %v GrpJobs %d; want gres/gpu=3 and no job limit", got.Limits.GrpTRES, got.Limits.GrpJobs)
	}
	// The freed GPU slot lets the third job start.
	waitJob(t, c, "alice", ids[2], 60*time.Second, "RUNNING", func(j slurmctl.Job) bool { return j.State == slurmctl.JobRunning })

	// Per-user association limits, read back and removed.
	if err := c.UpdateAssociation(ctx, slurmctl.Association{Account: project, User: "alice", Limits: slurmctl.Limits{MaxJobs: 4}}); err != nil {
		t.Fatal(err)
	}
	assocs, err := c.Associations(ctx, slurmctl.AssociationFilter{Account: project, User: "alice"})
	if err != nil || len(assocs) != 1 || assocs[0].Limits.MaxJobs != 4 {
		t.Fatalf("alice's association: %+v %v; want MaxJobs 4", assocs, err)
	}
}

func TestClusterTypedErrors(t *testing.T) {
	c, env, _ := newClient(t)
	ctx := t.Context()
	dir := env.UserDir(t, "alice")
	spec := slurmctl.JobSpec{Script: script("true"), WorkDir: dir, StdOut: "/dev/null"}

	// alice has no association with root's children other than testlab.
	other := uniq("sgo")
	if err := c.CreateAccount(ctx, slurmctl.Account{Name: other}); err != nil {
		t.Fatal(err)
	}
	deleteAccountLater(t, c, other)
	s := spec
	s.Account = other
	if _, err := c.Submit(ctx, "alice", s); !errors.Is(err, slurmctl.ErrInvalidAccount) {
		t.Errorf("submit to an account alice is not in: %v, want ErrInvalidAccount", err)
	} else if !strings.Contains(err.Error(), "account") {
		t.Errorf("error %q lost Slurm's message", err)
	}

	s = spec
	s.Account, s.Partition = "testlab", "nosuchpartition"
	if _, err := c.Submit(ctx, "alice", s); !errors.Is(err, slurmctl.ErrInvalidPartition) {
		t.Errorf("submit to a missing partition: %v, want ErrInvalidPartition", err)
	}

	// bob cannot cancel alice's job.
	s = spec
	s.Account, s.Hold = "testlab", true
	id, err := c.Submit(ctx, "alice", s)
	if err != nil {
		t.Fatal(err)
	}
	cancelAll(t, c, "alice", id)
	if err := c.Cancel(ctx, "bob", id); !errors.Is(err, slurmctl.ErrPermissionDenied) {
		t.Errorf("bob cancelling alice's job: %v, want ErrPermissionDenied", err)
	}
	if j, _ := c.Job(ctx, "alice", id); j.State != slurmctl.JobPending {
		t.Errorf("alice's job is %s after bob's attempt, want still PENDING", j.State)
	}

	// A token signed with the wrong key is refused.
	bad, err := slurmctl.New(slurmctl.Config{URL: env.RestURL, Cluster: env.Name, JWTKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Job(ctx, "alice", id); err == nil {
		t.Error("a token signed with the wrong key was accepted")
	}

	// Nothing listens here: Slurm unavailable.
	down, _ := slurmctl.New(slurmctl.Config{URL: "http://127.0.0.1:1", Cluster: env.Name, JWTKey: env.JWTKey(t)})
	if err := down.Ping(ctx); !errors.Is(err, slurmctl.ErrUnavailable) {
		t.Errorf("ping of a closed port: %v, want ErrUnavailable", err)
	}
}
