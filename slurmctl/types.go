package slurmctl

import (
	"time"
)

// JobID is Slurm's numeric job identifier.
type JobID int64

// JobState is a job's base state as Slurm names it (flags such as
// COMPLETING are reported separately in [Job.Flags]).
type JobState string

// The base job states of Slurm 22.05 (slurm.h JOB_STATE_BASE names).
const (
	JobPending     JobState = "PENDING"
	JobRunning     JobState = "RUNNING"
	JobSuspended   JobState = "SUSPENDED"
	JobCompleted   JobState = "COMPLETED"
	JobCancelled   JobState = "CANCELLED"
	JobFailed      JobState = "FAILED"
	JobTimeout     JobState = "TIMEOUT"
	JobNodeFail    JobState = "NODE_FAIL"
	JobPreempted   JobState = "PREEMPTED"
	JobBootFail    JobState = "BOOT_FAIL"
	JobDeadline    JobState = "DEADLINE"
	JobOutOfMemory JobState = "OUT_OF_MEMORY"
)

// Terminal reports whether a job in this state will never run again.
func (s JobState) Terminal() bool {
	switch s {
	case JobPending, JobRunning, JobSuspended, "":
		return false
	}
	return true
}

// Job is what Slurm reports about one job, in our own terms.
type Job struct {
	ID        JobID
	Name      string
	Comment   string
	User      string
	UID       int
	Account   string
	Partition string
	QOS       string
	State     JobState
	// Flags holds state flags such as COMPLETING, CONFIGURING, REQUEUED.
	Flags []string
	// Reason is Slurm's raw state reason ("Resources", "AssocGrpGRES", "None").
	Reason string
	// ExitCode and Signal are the batch script's result once terminal.
	ExitCode int
	Signal   int
	// Nodes is the allocated node list in Slurm's compact form ("c[1-2]").
	Nodes     string
	NodeCount int
	CPUs      int
	// TRES holds the allocated resources once running, else the requested ones.
	TRES       TRES
	SubmitTime time.Time
	// StartTime is the actual start, or Slurm's estimate while pending (zero when unknown).
	StartTime time.Time
	EndTime   time.Time
	TimeLimit time.Duration
	// Priority is the scheduling priority; higher runs first.
	Priority int64
	StdOut   string
	StdErr   string
	WorkDir  string
}

// GRES is one generic-resource request or inventory entry: "gpu:a100:2" is
// {Name: "gpu", Type: "a100", Count: 2}. Type is empty when any type will do.
type GRES struct {
	Name  string
	Type  string
	Count int64
}

// JobSpec describes a batch job to submit. Zero values mean "Slurm's default".
type JobSpec struct {
	Name      string
	Comment   string
	Account   string
	Partition string
	QOS       string
	// Script is the whole batch script, starting with "#!".
	Script string
	// Environment is the job's complete environment; Slurm 22.05's REST API
	// requires at least one entry, so the client adds a minimal PATH if empty.
	Environment map[string]string
	Nodes       int
	Tasks       int
	CPUsPerTask int
	// MemoryMB is memory per node; MemoryPerCPUMB is the alternative per CPU.
	MemoryMB       int64
	MemoryPerCPUMB int64
	// GRES are per-node generic resources (--gres).
	GRES []GRES
	// GPUs is the per-job GPU request (--gpus); GPUsPerNode is --gpus-per-node.
	GPUs        *GRES
	GPUsPerNode *GRES
	TimeLimit   time.Duration
	StdOut      string
	StdErr      string
	// WorkDir must be given: without it slurmrestd runs the job in its own cwd.
	WorkDir    string
	Constraint string
	Exclusive  bool
	Dependency string
	Begin      time.Time
	// Hold submits the job held (priority 0) until released.
	Hold bool
}

// NodeState is the base state of a node ("IDLE", "MIXED", "ALLOCATED", "DOWN", …).
type NodeState string

// Node is one compute node.
type Node struct {
	Name          string
	State         NodeState
	Flags         []string // DRAIN, NOT_RESPONDING, …
	Reason        string
	Partitions    []string
	CPUs          int
	AllocCPUs     int
	RealMemoryMB  int64
	AllocMemoryMB int64
	GRES          []GRES // configured
	GRESUsed      []GRES // allocated
}

// GPUCount is the number of GPUs of one type in a partition.
type GPUCount struct {
	Total int64
	Free  int64
}

// Partition is one Slurm partition with its capacity.
type Partition struct {
	Name      string
	State     string // UP, DOWN, DRAIN, INACTIVE
	Default   bool
	Nodes     []string
	TotalCPUs int
	FreeCPUs  int
	// MaxTime is the partition's time limit; zero means unlimited.
	MaxTime time.Duration
	// GPUs maps a GPU type ("a100"; "" for untyped) to its totals and free counts.
	GPUs map[string]GPUCount
}

// Limits are association limits. A zero field means "no limit": Slurm's
// GrpJobs=0 (block everything) is deliberately not expressible, suspend an
// account by other means.
type Limits struct {
	GrpTRES       TRES
	GrpJobs       int
	GrpSubmitJobs int
	MaxJobs       int
	MaxSubmitJobs int
	MaxTRESPerJob TRES
	MaxWall       time.Duration
}

// Account is a Slurm bank account together with the limits of its
// account-level association.
type Account struct {
	Name         string
	Description  string
	Organization string
	Parent       string
	Limits       Limits
}

// Association ties a user (or, with User empty, the account itself) to an
// account on a cluster, optionally restricted to one partition.
type Association struct {
	Cluster   string
	Account   string
	User      string
	Partition string
	Parent    string
	Limits    Limits
}

// User is a Slurm user record.
type User struct {
	Name           string
	DefaultAccount string
	AdminLevel     string
}
