package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/apptainer"
	"github.com/slurmgate/slurmgate/slurmctl"
)

// SessionState is a session's place in its lifecycle:
// PENDING → PREPARING → RUNNING → TERMINATING → TERMINATED, plus ERROR and
// CANCELLED.
type SessionState string

const (
	StatePending     SessionState = "PENDING"
	StatePreparing   SessionState = "PREPARING"
	StateRunning     SessionState = "RUNNING"
	StateTerminating SessionState = "TERMINATING"
	StateTerminated  SessionState = "TERMINATED"
	StateError       SessionState = "ERROR"
	StateCancelled   SessionState = "CANCELLED"
)

// Live reports whether the session still holds or awaits resources.
func (s SessionState) Live() bool {
	switch s {
	case StatePending, StatePreparing, StateRunning, StateTerminating:
		return true
	}
	return false
}

var liveStates = []string{string(StatePending), string(StatePreparing), string(StateRunning), string(StateTerminating)}

// Sub-states of PENDING that say where a session is before Slurm queues it.
const (
	subSubmitting = "submitting" // written, not yet known to Slurm
	subQueued     = "queued"     // Slurm holds the job
)

// Session is one compute session: one Slurm job.
type Session struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Owner        string            `json:"owner"`
	OwnerUID     int               `json:"owner_uid"`
	Project      string            `json:"project"`
	ScalingGroup string            `json:"scaling_group"`
	Partition    string            `json:"partition"`
	Type         string            `json:"type"`
	Image        string            `json:"image"`
	CPUs         int               `json:"cpus"`
	MemoryMB     int64             `json:"memory_mb"`
	GPUs         int               `json:"gpus"`
	GPUType      string            `json:"gpu_type,omitempty"`
	TimeLimitS   int64             `json:"time_limit_s"`
	Environment  map[string]string `json:"environment"`
	Command      string            `json:"command"`
	Mounts       []SessionMount    `json:"mounts"`
	State        SessionState      `json:"state"`
	SubState     string            `json:"sub_state,omitempty"`
	// StatusMessage says in plain words why the session is where it is:
	// the translated pending reason, the error, the end result.
	StatusMessage  string     `json:"status_message,omitempty"`
	JobID          *int64     `json:"job_id,omitempty"`
	SlurmState     string     `json:"slurm_state,omitempty"`
	SlurmReason    string     `json:"slurm_reason,omitempty"`
	EstimatedStart *time.Time `json:"estimated_start,omitempty"`
	QueuePosition  *int       `json:"queue_position,omitempty"`
	Node           string     `json:"node,omitempty"`
	ExitCode       *int       `json:"exit_code,omitempty"`
	MaxWaitS       *int64     `json:"max_wait_s,omitempty"`
	CreatedAt      time.Time  `json:"created_at"`
	StartedAt      *time.Time `json:"started_at,omitempty"`
	EndedAt        *time.Time `json:"ended_at,omitempty"`

	userID, projectID, domainID int64
	stdoutPath, stderrPath      string
	idempotencyKey              *string
}

// Mount asks for a vfolder in a session: VFolder by name or id, at Target
// (default /home/work/<name>), read-only if ReadOnly. See
// [Bridge.ResolveMounts] for how names are chosen among visible folders.
type Mount struct {
	VFolder  string `json:"vfolder"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only"`
}

// SessionMount is a vfolder as a session has it: resolved when the session
// was created, so what the job binds does not change if a folder of the same
// name appears later. It is stored in the session's row, which is what the
// job is rendered from, also by the reconciler after a crash.
type SessionMount struct {
	VFolder   string `json:"vfolder"` // the folder's name
	VFolderID string `json:"vfolder_id"`
	Target    string `json:"target"`
	ReadOnly  bool   `json:"read_only"`
	// HostPath is the folder's directory on the storage host, which the
	// job binds; researchers may also reach it there from login nodes.
	HostPath string `json:"host_path"`
}

// SessionRequest is what creating a session takes.
type SessionRequest struct {
	Name         string `json:"name"`
	Type         string `json:"type"` // interactive or batch
	Image        string `json:"image"`
	Project      string `json:"project"` // "domain/project"; default: the user's only project
	ScalingGroup string `json:"scaling_group"`
	// Either a preset, or explicit resources (explicit values override the preset's).
	Preset      string            `json:"preset,omitempty"`
	CPUs        int               `json:"cpus,omitempty"`
	MemoryMB    int64             `json:"memory_mb,omitempty"`
	GPUs        int               `json:"gpus,omitempty"`
	GPUType     string            `json:"gpu_type,omitempty"`
	TimeLimitS  int64             `json:"time_limit_s,omitempty"`
	Environment map[string]string `json:"environment,omitempty"`
	Command     string            `json:"command,omitempty"`
	Mounts      []Mount           `json:"mounts,omitempty"`
	// IdempotencyKey makes retries safe: a second create with the same key
	// returns the first session instead of making another.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// MaxWaitS cancels the session if Slurm has not started it by then.
	MaxWaitS int64 `json:"max_wait_s,omitempty"`
}

const (
	defaultTimeLimit = time.Hour
	maxEnvEntries    = 128
	maxMounts        = 32
)

var (
	envName        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	sessionName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	reservedEnvPfx = []string{"SLURM_", "SLURMGATE_", "CUDA_VISIBLE_DEVICES", "LD_PRELOAD"}
)

// newSessionID returns a random (version 4) UUID.
func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// sessionPlan is a validated request resolved against the catalogue.
type sessionPlan struct {
	req     SessionRequest
	user    User
	project Project
	sg      ScalingGroup
	image   Image
	runtime string
	mounts  []SessionMount // never nil: the row's mounts column is NOT NULL
}

// resolve validates req for actor and fills in defaults. It writes nothing.
func (b *Bridge) resolve(ctx context.Context, a Actor, req SessionRequest) (*sessionPlan, error) {
	p := &sessionPlan{req: req}
	switch req.Type {
	case "":
		p.req.Type = "interactive"
	case "interactive", "batch":
	default:
		return nil, invalid("type", "session type %q: want interactive or batch", req.Type)
	}
	if req.Name != "" && !sessionName.MatchString(req.Name) {
		return nil, invalid("name", "session name %q: letters, digits, '_', '.', '-', at most 64", req.Name)
	}
	if p.req.Type == "batch" && strings.TrimSpace(req.Command) == "" {
		return nil, invalid("command", "a batch session needs a command")
	}
	if len(req.Command) > 64<<10 {
		return nil, invalid("command", "command is longer than 64 KiB; put it in a script in your vfolder")
	}
	if len(req.Environment) > maxEnvEntries {
		return nil, invalid("environment", "at most %d environment variables", maxEnvEntries)
	}
	for _, k := range slices.Sorted(maps.Keys(req.Environment)) {
		if !envName.MatchString(k) {
			return nil, invalid("environment", "environment variable name %q is not valid", k)
		}
		for _, pfx := range reservedEnvPfx {
			if strings.HasPrefix(k, pfx) {
				return nil, invalid("environment", "environment variable %s is set by Slurm or Slurmgate and cannot be overridden", k)
			}
		}
		if strings.ContainsRune(req.Environment[k], 0) {
			return nil, invalid("environment", "environment variable %s contains a NUL byte", k)
		}
	}
	if req.IdempotencyKey != "" && len(req.IdempotencyKey) > 128 {
		return nil, invalid("idempotency_key", "idempotency_key is longer than 128 characters")
	}
	if req.MaxWaitS < 0 {
		return nil, invalid("max_wait_s", "max_wait_s must not be negative")
	}

	// Resources: a preset, overridden by explicit values.
	if req.Preset != "" {
		pr, err := b.preset(ctx, req.Preset)
		if err != nil {
			return nil, err
		}
		p.req.CPUs = cmpOr(req.CPUs, pr.CPUs)
		p.req.MemoryMB = cmpOr(req.MemoryMB, pr.MemoryMB)
		if req.GPUs == 0 {
			p.req.GPUs = pr.GPUs
		}
		p.req.GPUType = cmpOr(req.GPUType, pr.GPUType)
		if req.TimeLimitS == 0 && pr.TimeLimitS != nil {
			p.req.TimeLimitS = *pr.TimeLimitS
		}
	}
	switch {
	case p.req.CPUs < 0:
		return nil, invalid("cpus", "cpus must be at least 1 (got %d)", p.req.CPUs)
	case p.req.MemoryMB < 0:
		return nil, invalid("memory_mb", "memory_mb must be at least 1 (got %d)", p.req.MemoryMB)
	case p.req.GPUs < 0:
		return nil, invalid("gpus", "gpus must not be negative (got %d)", p.req.GPUs)
	case p.req.TimeLimitS < 0:
		return nil, invalid("time_limit_s", "time_limit_s must not be negative (got %d)", p.req.TimeLimitS)
	case time.Duration(p.req.TimeLimitS)*time.Second > maxLifetime:
		return nil, invalid("time_limit_s", "time_limit_s %d is more than a year; ask for what the job needs (the partition and your policy cap it further)", p.req.TimeLimitS)
	}
	p.req.CPUs = cmpOr(p.req.CPUs, 1)
	p.req.MemoryMB = cmpOr(p.req.MemoryMB, 1024)
	p.req.TimeLimitS = cmpOr(p.req.TimeLimitS, int64(defaultTimeLimit/time.Second))

	user, err := b.userByID(ctx, b.db, a.UserID)
	if err != nil {
		return nil, forbidden("only registered users run sessions")
	}
	if user.Status != "active" {
		return nil, forbidden("user %s is %s", user.Username, user.Status)
	}
	p.user = user

	if req.Project == "" {
		projects, err := b.memberProjects(ctx, a.UserID)
		if err != nil {
			return nil, err
		}
		if len(projects) != 1 {
			return nil, invalid("project", "you belong to %d projects; say which one with project (domain/project)", len(projects))
		}
		p.project = projects[0]
	} else {
		pr, err := b.ProjectByPath(ctx, a, req.Project)
		if err != nil {
			return nil, invalid("project", "project %q does not exist or you are not a member", req.Project)
		}
		p.project = pr
	}
	if role, _, err := projectRole(ctx, b.db, a, p.project.ID); err != nil || role == "" {
		return nil, invalid("project", "you are not a member of project %s; sessions run in a project you belong to", p.project.Path())
	}
	if !p.project.Active {
		return nil, invalid("project", "project %s is deactivated", p.project.Path())
	}

	if req.ScalingGroup == "" {
		return nil, invalid("scaling_group", "scaling_group is required; `GET /api/v1/scaling-groups` lists them")
	}
	sg, err := b.ScalingGroup(ctx, req.ScalingGroup)
	if err != nil {
		return nil, invalid("scaling_group", "scaling group %q does not exist", req.ScalingGroup)
	}
	p.sg = sg
	if p.req.GPUs > 0 {
		if len(sg.GPUTypes) == 0 {
			return nil, invalid("gpus", "scaling group %s has no GPUs", sg.Name)
		}
		if p.req.GPUType != "" && !slices.Contains(sg.GPUTypes, p.req.GPUType) {
			return nil, invalid("gpu_type", "scaling group %s offers GPU types %s, not %q", sg.Name, strings.Join(sg.GPUTypes, ", "), p.req.GPUType)
		}
	} else if p.req.GPUType != "" {
		return nil, invalid("gpu_type", "gpu_type given without gpus")
	}

	if req.Image == "" {
		return nil, invalid("image", "image is required; `GET /api/v1/images` lists them")
	}
	img, err := b.Image(ctx, req.Image)
	if err != nil {
		return nil, invalid("image", "image %q is not in the catalogue; `GET /api/v1/images` lists them", req.Image)
	}
	p.image = img
	p.runtime = cmpOr(img.Runtime, sg.Runtime)
	if p.mounts, err = b.sessionMounts(ctx, a, p.runtime, req.Mounts); err != nil {
		return nil, err
	}
	return p, nil
}

// sessionMounts resolves a session's vfolder mounts within the caller's
// access (a read-only share stays read-only; a folder the caller may not
// use is not found) and checks that the session's runtime can bind them.
func (b *Bridge) sessionMounts(ctx context.Context, a Actor, runtime string, reqs []Mount) ([]SessionMount, error) {
	out := []SessionMount{}
	if len(reqs) == 0 {
		return out, nil
	}
	if len(reqs) > maxMounts {
		return nil, invalid("mounts", "at most %d vfolder mounts per session", maxMounts)
	}
	rt, err := apptainer.Lookup(runtime)
	if err != nil {
		return nil, err
	}
	if !rt.Capabilities().Mounts {
		return nil, invalid("mounts", "the image runs with runtime %s, which cannot bind vfolders at chosen paths; choose an image that runs in a container (apptainer or charliecloud), or reach the folder at its host path", runtime)
	}
	if b.cfg.AgentBinary == "" {
		// Container jobs bind folders through the agent; without it no
		// job script of ours would.
		return nil, &Error{Kind: KindUnavailable, Field: "mounts",
			Message: "this gateway runs sessions without the session agent, which binds vfolders; an operator sets the agent binary in the gateway's configuration"}
	}
	ms, err := b.ResolveMounts(ctx, a, reqs)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		out = append(out, SessionMount{VFolder: m.Name, VFolderID: m.VFolderID, Target: m.Target, ReadOnly: m.ReadOnly, HostPath: m.HostPath})
	}
	return out, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

func (b *Bridge) memberProjects(ctx context.Context, userID int64) ([]Project, error) {
	rows, _ := b.db.Query(ctx, `SELECT `+projectCols+` FROM projects p JOIN domains d ON d.id = p.domain_id
		JOIN memberships m ON m.project_id = p.id WHERE m.user_id = $1 AND p.active ORDER BY d.name, p.name`, userID)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Project, error) { return scanProject(r) })
}

// CreateSession admits, records and submits a session. The row is durable
// before Slurm hears of it; if the gateway dies in between, the reconciler
// adopts the job by its comment or submits it once.
func (b *Bridge) CreateSession(ctx context.Context, a Actor, req SessionRequest) (Session, error) {
	p, err := b.resolve(ctx, a, req)
	if err != nil {
		return Session{}, err
	}
	if req.IdempotencyKey != "" {
		if s, err := b.sessionByKey(ctx, a.UserID, req.IdempotencyKey); err == nil {
			return s, nil
		}
	}
	id, err := b.admit(ctx, p)
	if err != nil {
		return Session{}, err
	}
	if b.hooks.afterAdmit != nil {
		if err := b.hooks.afterAdmit(id); err != nil {
			return Session{}, err
		}
	}
	s, ok, err := b.submitOnce(ctx, id, p)
	if err != nil {
		b.log.Warn("session submit deferred to the reconciler", "session", id, "err", err)
	}
	if ok {
		return s, nil
	}
	return b.sessionByID(ctx, id)
}

// testHooks lets tests inject crashes at the points that matter.
type testHooks struct {
	afterAdmit  func(id string) error
	afterSubmit func(id string) error
	// beforeSubmit may adjust a job before it goes to Slurm (benchmarks
	// hold their jobs so as not to fill the cluster).
	beforeSubmit func(spec *slurmctl.JobSpec)
}
