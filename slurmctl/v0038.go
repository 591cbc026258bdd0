package slurmctl

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// v0038 is slurmrestd's openapi/v0.0.38 and openapi/dbv0.0.38, served by
// Slurm 22.05 (Debian 12). Quirks it absorbs:
//   - job.environment is mandatory (error 2127);
//   - without current_working_directory a job inherits slurmrestd's cwd;
//   - time limits are whole minutes, with NO_VAL and INFINITE as sentinels;
//   - association limits are nested under max.{jobs,tres}: GrpJobs is
//     max.jobs.per.count, MaxJobs is max.jobs.active, and so on;
//   - dbv0.0.38 cannot write an account-level association (it insists on a
//     user), so accounting writes go through sacctmgr (see accounting.go).
type v0038 struct{}

func (v0038) version() string { return "v0.0.38" }

const (
	v0038Slurm = "/slurm/v0.0.38"
	v0038DB    = "/slurmdb/v0.0.38"
	// Slurm's "no value" and "infinite" sentinels for 32-bit fields.
	slurmNoVal    = 0xfffffffe
	slurmInfinite = 0xffffffff
)

func (v0038) ping(ctx context.Context, c *Client, user string) error {
	var resp struct {
		Pings []struct {
			Hostname string `json:"hostname"`
			Ping     string `json:"ping"`
		} `json:"pings"`
	}
	if err := c.call(ctx, "ping", user, "GET", v0038Slurm+"/ping", nil, nil, &resp); err != nil {
		return err
	}
	for _, p := range resp.Pings {
		if p.Ping == "UP" {
			return nil
		}
	}
	return &Error{Op: "ping", Kind: ErrUnavailable, Message: "slurmrestd is up but no slurmctld answers"}
}

// v0038JobProperties is the subset of v0.0.38_job_properties we send.
type v0038JobProperties struct {
	Name        string            `json:"name,omitempty"`
	Comment     string            `json:"comment,omitempty"`
	Account     string            `json:"account,omitempty"`
	Partition   string            `json:"partition,omitempty"`
	QOS         string            `json:"qos,omitempty"`
	Environment map[string]string `json:"environment"`
	Nodes       []int             `json:"nodes,omitempty"`
	Tasks       int               `json:"tasks,omitempty"`
	CPUsPerTask int               `json:"cpus_per_task,omitempty"`
	MemPerNode  int64             `json:"memory_per_node,omitempty"`
	MemPerCPU   int64             `json:"memory_per_cpu,omitempty"`
	GRES        string            `json:"gres,omitempty"`
	GPUs        string            `json:"gpus,omitempty"`
	GPUsPerNode string            `json:"gpus_per_node,omitempty"`
	TimeLimit   int64             `json:"time_limit,omitempty"`
	StdOut      string            `json:"standard_output,omitempty"`
	StdErr      string            `json:"standard_error,omitempty"`
	WorkDir     string            `json:"current_working_directory"`
	Constraints string            `json:"constraints,omitempty"`
	Exclusive   string            `json:"exclusive,omitempty"`
	Dependency  string            `json:"dependency,omitempty"`
	BeginTime   int64             `json:"begin_time,omitempty"`
	Hold        bool              `json:"hold,omitempty"`
}

func (v0038) submit(ctx context.Context, c *Client, user string, spec JobSpec) (JobID, error) {
	p := v0038JobProperties{
		Name: spec.Name, Comment: spec.Comment, Account: spec.Account, Partition: spec.Partition,
		QOS: spec.QOS, Environment: spec.Environment, Tasks: spec.Tasks, CPUsPerTask: spec.CPUsPerTask,
		MemPerNode: spec.MemoryMB, MemPerCPU: spec.MemoryPerCPUMB, GRES: formatGRESList(spec.GRES),
		StdOut: spec.StdOut, StdErr: spec.StdErr, WorkDir: spec.WorkDir, Constraints: spec.Constraint,
		Dependency: spec.Dependency, Hold: spec.Hold,
	}
	if len(p.Environment) == 0 {
		p.Environment = map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin"}
	}
	if spec.Nodes > 0 {
		p.Nodes = []int{spec.Nodes, spec.Nodes}
	}
	if spec.GPUs != nil {
		p.GPUs = formatGPURequest(*spec.GPUs)
	}
	if spec.GPUsPerNode != nil {
		p.GPUsPerNode = formatGPURequest(*spec.GPUsPerNode)
	}
	if spec.TimeLimit > 0 {
		// Slurm counts whole minutes; round up so a job never gets less than asked.
		p.TimeLimit = int64(math.Ceil(spec.TimeLimit.Minutes()))
	}
	if spec.Exclusive {
		p.Exclusive = "true"
	}
	if !spec.Begin.IsZero() {
		p.BeginTime = spec.Begin.Unix()
	}
	var resp struct {
		errorEnvelope
		JobID int64 `json:"job_id"`
	}
	body := struct {
		Script string             `json:"script"`
		Job    v0038JobProperties `json:"job"`
	}{spec.Script, p}
	err := c.call(ctx, "submit", user, "POST", v0038Slurm+"/job/submit", nil, body, &resp)
	var se *Error
	// A held job is accepted with ESLURM_JOB_HELD (2042) reported as an error.
	if err != nil && !(spec.Hold && resp.JobID > 0 && errors.As(err, &se) && se.Code == 2042) {
		return 0, err
	}
	if resp.JobID <= 0 {
		return 0, &Error{Op: "submit", Kind: ErrUnavailable, Message: "slurmrestd accepted the job but returned no job id"}
	}
	return JobID(resp.JobID), nil
}

// v0038Job is the subset of v0.0.38_job_response_properties we read.
type v0038Job struct {
	JobID       int64    `json:"job_id"`
	Name        string   `json:"name"`
	Comment     string   `json:"comment"`
	UserName    string   `json:"user_name"`
	UserID      int      `json:"user_id"`
	Account     string   `json:"account"`
	Partition   string   `json:"partition"`
	QOS         string   `json:"qos"`
	State       string   `json:"job_state"`
	Reason      string   `json:"state_reason"`
	ExitCode    int      `json:"exit_code"`
	Nodes       string   `json:"nodes"`
	NodeCount   int      `json:"node_count"`
	CPUs        int      `json:"cpus"`
	TRESReq     string   `json:"tres_req_str"`
	TRESAlloc   string   `json:"tres_alloc_str"`
	SubmitTime  int64    `json:"submit_time"`
	StartTime   int64    `json:"start_time"`
	EndTime     int64    `json:"end_time"`
	TimeLimit   int64    `json:"time_limit"`
	Priority    int64    `json:"priority"`
	StdOut      string   `json:"standard_output"`
	StdErr      string   `json:"standard_error"`
	WorkDir     string   `json:"current_working_directory"`
	Flags       []string `json:"flags"`
	BatchFlag   bool     `json:"batch_flag"`
	LastSchedAt int64    `json:"last_sched_evaluation"`
}

type v0038JobsResponse struct {
	errorEnvelope
	Jobs []v0038Job `json:"jobs"`
}

func (v0038) job(ctx context.Context, c *Client, user string, id JobID) (Job, error) {
	var resp v0038JobsResponse
	path := fmt.Sprintf("%s/job/%d", v0038Slurm, id)
	if err := c.call(ctx, "job", user, "GET", path, nil, nil, &resp); err != nil {
		return Job{}, err
	}
	for _, j := range resp.Jobs {
		if JobID(j.JobID) == id {
			return j.toJob(), nil
		}
	}
	return Job{}, &Error{Op: "job", Kind: ErrNotFound, Message: fmt.Sprintf("job %d is not known to slurmctld (finished more than MinJobAge ago?)", id)}
}

func (v0038) jobs(ctx context.Context, c *Client, user string, since time.Time) ([]Job, error) {
	var q url.Values
	if !since.IsZero() {
		q = url.Values{"update_time": {strconv.FormatInt(since.Unix(), 10)}}
	}
	var resp v0038JobsResponse
	if err := c.call(ctx, "jobs", user, "GET", v0038Slurm+"/jobs", q, nil, &resp); err != nil {
		return nil, err
	}
	jobs := make([]Job, len(resp.Jobs))
	for i, j := range resp.Jobs {
		jobs[i] = j.toJob()
	}
	return jobs, nil
}

// stateFlags are the names job_state_string() prints instead of the base
// state while a flag is set; the base state is then not reported at all.
var v0038StateFlags = map[string]bool{
	"COMPLETING": true, "CONFIGURING": true, "REQUEUED": true, "RESIZING": true,
	"SIGNALING": true, "STAGE_OUT": true, "STOPPED": true, "RESV_DEL_HOLD": true,
	"REQUEUE_FED": true, "REQUEUE_HOLD": true, "SPECIAL_EXIT": true, "REVOKED": true,
	"UPDATE_DB": true, "POWER_UP_NODE": true,
}

func (j v0038Job) toJob() Job {
	out := Job{
		ID: JobID(j.JobID), Name: j.Name, Comment: j.Comment, User: j.UserName, UID: j.UserID,
		Account: j.Account, Partition: j.Partition, QOS: j.QOS, State: JobState(j.State),
		Reason: j.Reason, Nodes: j.Nodes, NodeCount: j.NodeCount, CPUs: j.CPUs,
		SubmitTime: unixTime(j.SubmitTime), StartTime: unixTime(j.StartTime), EndTime: unixTime(j.EndTime),
		TimeLimit: minutes(j.TimeLimit), Priority: j.Priority, StdOut: j.StdOut, StdErr: j.StdErr,
		WorkDir: j.WorkDir,
	}
	if v0038StateFlags[j.State] {
		// A flag hides the base state; every one of them belongs to a job that
		// has been allocated and not yet finished, or is being requeued.
		out.Flags = append(out.Flags, j.State)
		out.State = JobRunning
		if j.State == "REQUEUED" || j.State == "REQUEUE_HOLD" || j.State == "REQUEUE_FED" {
			out.State = JobPending
		}
	}
	// exit_code is the raw wait(2) status of the batch script.
	if j.ExitCode != slurmNoVal && j.ExitCode >= 0 {
		out.ExitCode = (j.ExitCode >> 8) & 0xff
		out.Signal = j.ExitCode & 0x7f
	}
	tres := j.TRESAlloc
	if tres == "" {
		tres = j.TRESReq
	}
	if t, err := ParseTRES(tres); err == nil {
		out.TRES = t
	}
	if out.State == JobPending {
		out.EndTime = time.Time{}
	}
	return out
}

func (v0038) signal(ctx context.Context, c *Client, user string, id JobID, sig string) error {
	var q url.Values
	op := "cancel"
	if sig != "" {
		q = url.Values{"signal": {sig}}
		op = "signal"
	}
	return c.call(ctx, op, user, "DELETE", fmt.Sprintf("%s/job/%d", v0038Slurm, id), q, nil, nil)
}

type v0038Node struct {
	Name        string   `json:"name"`
	State       string   `json:"state"`
	StateFlags  []string `json:"state_flags"`
	Reason      string   `json:"reason"`
	Partitions  []string `json:"partitions"`
	CPUs        int      `json:"cpus"`
	AllocCPUs   int      `json:"alloc_cpus"`
	RealMemory  int64    `json:"real_memory"`
	AllocMemory int64    `json:"alloc_memory"`
	GRES        string   `json:"gres"`
	GRESUsed    string   `json:"gres_used"`
}

func (v0038) nodes(ctx context.Context, c *Client, user string) ([]Node, error) {
	var resp struct {
		Nodes []v0038Node `json:"nodes"`
	}
	if err := c.call(ctx, "nodes", user, "GET", v0038Slurm+"/nodes", nil, nil, &resp); err != nil {
		return nil, err
	}
	nodes := make([]Node, len(resp.Nodes))
	for i, n := range resp.Nodes {
		nodes[i] = Node{
			Name: n.Name, State: NodeState(strings.ToUpper(n.State)), Flags: n.StateFlags, Reason: n.Reason,
			Partitions: n.Partitions, CPUs: n.CPUs, AllocCPUs: n.AllocCPUs, RealMemoryMB: n.RealMemory,
			AllocMemoryMB: n.AllocMemory, GRES: parseGRESInventory(n.GRES), GRESUsed: parseGRESInventory(n.GRESUsed),
		}
	}
	return nodes, nil
}

func (v0038) partitions(ctx context.Context, c *Client, user string) ([]Partition, error) {
	var resp struct {
		Partitions []struct {
			Name         string   `json:"name"`
			State        string   `json:"state"`
			Flags        []string `json:"flags"`
			TotalCPUs    int      `json:"total_cpus"`
			MaxTimeLimit int64    `json:"max_time_limit"`
		} `json:"partitions"`
	}
	if err := c.call(ctx, "partitions", user, "GET", v0038Slurm+"/partitions", nil, nil, &resp); err != nil {
		return nil, err
	}
	parts := make([]Partition, len(resp.Partitions))
	for i, p := range resp.Partitions {
		parts[i] = Partition{
			Name: p.Name, State: strings.ToUpper(p.State), TotalCPUs: p.TotalCPUs,
			MaxTime: minutes(p.MaxTimeLimit), Default: slices.Contains(p.Flags, "default"),
		}
	}
	return parts, nil
}

type v0038TRES struct {
	Type  string `json:"type"`
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

func v0038TRESSet(list []v0038TRES) TRES {
	if len(list) == 0 {
		return nil
	}
	t := TRES{}
	for _, e := range list {
		k := e.Type
		if e.Name != "" {
			k += "/" + e.Name
		}
		t[k] = e.Count
	}
	return t
}

// v0038Count is an optional limit: null (unset) or a number.
type v0038Count *int64

type v0038Association struct {
	Account   string `json:"account"`
	Cluster   string `json:"cluster"`
	User      string `json:"user"`
	Partition string `json:"partition"`
	Parent    string `json:"parent_account"`
	Max       struct {
		Jobs struct {
			Per struct {
				Count     v0038Count `json:"count"`
				Submitted v0038Count `json:"submitted"`
				WallClock v0038Count `json:"wall_clock"`
			} `json:"per"`
			Active v0038Count `json:"active"`
			Total  v0038Count `json:"total"`
		} `json:"jobs"`
		TRES struct {
			Total []v0038TRES `json:"total"`
			Per   struct {
				Job []v0038TRES `json:"job"`
			} `json:"per"`
		} `json:"tres"`
	} `json:"max"`
}

func count(c v0038Count) int64 {
	if c == nil || *c == slurmNoVal || *c == slurmInfinite {
		return 0
	}
	return *c
}

func (a v0038Association) toAssociation() Association {
	m := a.Max
	return Association{
		Cluster: a.Cluster, Account: a.Account, User: a.User, Partition: a.Partition, Parent: a.Parent,
		Limits: Limits{
			GrpTRES:       v0038TRESSet(m.TRES.Total),
			GrpJobs:       int(count(m.Jobs.Per.Count)),
			GrpSubmitJobs: int(count(m.Jobs.Per.Submitted)),
			MaxJobs:       int(count(m.Jobs.Active)),
			MaxSubmitJobs: int(count(m.Jobs.Total)),
			MaxTRESPerJob: v0038TRESSet(m.TRES.Per.Job),
			MaxWall:       time.Duration(count(m.Jobs.Per.WallClock)) * time.Minute,
		},
	}
}

func (v0038) associations(ctx context.Context, c *Client, user string, f AssociationFilter) ([]Association, error) {
	q := url.Values{"cluster": {c.cfg.Cluster}}
	if f.Account != "" {
		q.Set("account", f.Account)
	}
	if f.User != "" {
		q.Set("user", f.User)
	}
	var resp struct {
		Associations []v0038Association `json:"associations"`
	}
	if err := c.call(ctx, "associations", user, "GET", v0038DB+"/associations", q, nil, &resp); err != nil {
		return nil, err
	}
	out := make([]Association, 0, len(resp.Associations))
	for _, a := range resp.Associations {
		out = append(out, a.toAssociation())
	}
	return out, nil
}

func (v0038) accounts(ctx context.Context, c *Client, user string) ([]Account, error) {
	var resp struct {
		Accounts []struct {
			Name         string `json:"name"`
			Description  string `json:"description"`
			Organization string `json:"organization"`
		} `json:"accounts"`
	}
	if err := c.call(ctx, "accounts", user, "GET", v0038DB+"/accounts", nil, nil, &resp); err != nil {
		return nil, err
	}
	out := make([]Account, len(resp.Accounts))
	for i, a := range resp.Accounts {
		out[i] = Account{Name: a.Name, Description: a.Description, Organization: a.Organization}
	}
	return out, nil
}

func (v0038) users(ctx context.Context, c *Client, user string) ([]User, error) {
	var resp struct {
		Users []struct {
			Name       string `json:"name"`
			AdminLevel string `json:"administrator_level"`
			Default    struct {
				Account string `json:"account"`
			} `json:"default"`
		} `json:"users"`
	}
	if err := c.call(ctx, "users", user, "GET", v0038DB+"/users", nil, nil, &resp); err != nil {
		return nil, err
	}
	out := make([]User, len(resp.Users))
	for i, u := range resp.Users {
		out[i] = User{Name: u.Name, DefaultAccount: u.Default.Account, AdminLevel: u.AdminLevel}
	}
	return out, nil
}

func unixTime(s int64) time.Time {
	if s <= 0 || s >= slurmNoVal {
		return time.Time{}
	}
	return time.Unix(s, 0)
}

func minutes(m int64) time.Duration {
	if m <= 0 || m >= slurmNoVal {
		return 0
	}
	return time.Duration(m) * time.Minute
}
