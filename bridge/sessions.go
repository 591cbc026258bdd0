package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"path/filepath"
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
	// policies may bind the session (admit picks its scopes'); existing is
	// the session already created with req.IdempotencyKey, if any.
	policies []Policy
	existing *Session
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

	r, err := b.resolveReads(ctx, a, req)
	if err != nil {
		return nil, err
	}
	p.policies, p.existing = r.policies, r.existing

	// Resources: a preset, overridden by explicit values.
	if req.Preset != "" {
		if r.preset == nil {
			return nil, invalid("preset", "preset %q does not exist; `GET /api/v1/presets` lists them", req.Preset)
		}
		pr := *r.preset
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

	if r.user == nil {
		return nil, forbidden("only registered users run sessions")
	}
	if r.user.Status != "active" {
		return nil, forbidden("user %s is %s", r.user.Username, r.user.Status)
	}
	p.user = *r.user

	if req.Project == "" {
		if len(r.projects) != 1 {
			return nil, invalid("project", "you belong to %d projects; say which one with project (domain/project)", len(r.projects))
		}
		p.project = r.projects[0].Project
	} else {
		// Visible to its members and its domain's admins; only members run
		// sessions in it.
		if len(r.projects) == 0 || (r.projects[0].role == "" && !a.adminsDomain(r.projects[0].DomainID)) {
			return nil, invalid("project", "project %q does not exist or you are not a member", req.Project)
		}
		if r.projects[0].role == "" {
			return nil, invalid("project", "you are not a member of project %s; sessions run in a project you belong to", r.projects[0].Path())
		}
		p.project = r.projects[0].Project
	}
	if !p.project.Active {
		return nil, invalid("project", "project %s is deactivated", p.project.Path())
	}

	if req.ScalingGroup == "" {
		return nil, invalid("scaling_group", "scaling_group is required; `GET /api/v1/scaling-groups` lists them")
	}
	if r.sg == nil {
		return nil, invalid("scaling_group", "scaling group %q does not exist", req.ScalingGroup)
	}
	sg := *r.sg
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
	if r.image == nil {
		return nil, invalid("image", "image %q is not in the catalogue; `GET /api/v1/images` lists them", req.Image)
	}
	p.image = *r.image
	p.runtime = cmpOr(p.image.Runtime, sg.Runtime)
	if p.mounts, err = b.sessionMounts(ctx, a, p.runtime, req.Mounts); err != nil {
		return nil, err
	}
	return p, nil
}

// resolved is what resolve reads from the database; nil (or empty) where a
// row does not exist.
type resolved struct {
	preset   *Preset
	user     *User
	projects []memberProject // the named project, or the user's active ones
	sg       *ScalingGroup
	image    *Image
	// policies are every policy that may bind the session: the user's and
	// those of the projects the user belongs to and of their domains. admit
	// picks the session's own.
	policies []Policy
	existing *Session // the session holding req.IdempotencyKey
}

// memberProject is a project with the actor's role in it ("" if none).
type memberProject struct {
	Project
	role string
}

// resolveReads reads everything resolve needs in one pipelined round trip:
// on the create path each round trip costs the gateway and PostgreSQL a
// wakeup apiece, and the create waits for every one. resolve checks the
// results afterwards in the order a person would fix them.
func (b *Bridge) resolveReads(ctx context.Context, a Actor, req SessionRequest) (resolved, error) {
	var r resolved
	batch := &pgx.Batch{}
	if req.Preset != "" {
		batch.Queue(presetSelect+` WHERE name = $1`, req.Preset).Query(func(rows pgx.Rows) error {
			return optional(&r.preset)(pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Preset]))
		})
	}
	batch.Queue(`SELECT `+userCols+` FROM users u JOIN domains d ON d.id = u.domain_id WHERE u.id = $1`, a.UserID).
		Query(func(rows pgx.Rows) error {
			return optional(&r.user)(pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) }))
		})
	scanMember := func(row pgx.CollectableRow) (memberProject, error) {
		var m memberProject
		var err error
		m.Project, err = scanProject(extraCols{row, []any{&m.role}})
		return m, err
	}
	collectProjects := func(rows pgx.Rows) (err error) {
		r.projects, err = pgx.CollectRows(rows, scanMember)
		return err
	}
	if req.Project == "" {
		batch.Queue(`SELECT `+projectCols+`, m.role FROM projects p JOIN domains d ON d.id = p.domain_id
			JOIN memberships m ON m.project_id = p.id WHERE m.user_id = $1 AND p.active ORDER BY d.name, p.name`, a.UserID).
			Query(collectProjects)
	} else {
		domain, name, ok := strings.Cut(req.Project, "/")
		if !ok {
			return r, invalid("project", "project %q does not exist or you are not a member", req.Project)
		}
		batch.Queue(`SELECT `+projectCols+`, COALESCE(m.role, '') FROM projects p JOIN domains d ON d.id = p.domain_id
			LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = $3 WHERE d.name = $1 AND p.name = $2`,
			domain, name, a.UserID).Query(collectProjects)
	}
	if req.ScalingGroup != "" {
		batch.Queue(scalingGroupSelect+` WHERE name = $1`, req.ScalingGroup).Query(func(rows pgx.Rows) error {
			return optional(&r.sg)(pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[ScalingGroup]))
		})
	}
	if req.Image != "" {
		name, tag := splitImageRef(req.Image)
		batch.Queue(imageSelect+` WHERE name = $1 AND tag = $2`, name, tag).Query(func(rows pgx.Rows) error {
			return optional(&r.image)(pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Image]))
		})
	}
	// A session runs in a project its owner belongs to, and a user's
	// projects are all in the user's domain (SetMembership refuses others).
	batch.Queue(`SELECT `+policyCols+` FROM policies WHERE user_id = $1
			OR project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)
			OR domain_id IN (SELECT p.domain_id FROM memberships m JOIN projects p ON p.id = m.project_id WHERE m.user_id = $1)`,
		a.UserID).Query(func(rows pgx.Rows) (err error) {
		r.policies, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Policy, error) { return scanPolicy(r) })
		return err
	})
	if req.IdempotencyKey != "" {
		batch.Queue(`SELECT `+sessionCols+sessionFrom+` WHERE s.user_id = $1 AND s.idempotency_key = $2`, a.UserID, req.IdempotencyKey).
			Query(func(rows pgx.Rows) error {
				return optional(&r.existing)(pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (Session, error) { return scanSession(r) }))
			})
	}
	return r, b.db.SendBatch(ctx, batch).Close()
}

// optional stores a row read as exactly one in *dst, leaves *dst nil for
// none, and passes other errors on.
func optional[T any](dst **T) func(T, error) error {
	return func(v T, err error) error {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err == nil {
			*dst = &v
		}
		return err
	}
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

// CreateSession admits, records and submits a session. The row is durable
// before Slurm hears of it; if the gateway dies in between, the reconciler
// adopts the job by its comment or submits it once.
//
// A create costs three database round trips: resolve's reads, admission
// with the insert (one commit), and the job id with the event (the second
// commit).
func (b *Bridge) CreateSession(ctx context.Context, a Actor, req SessionRequest) (Session, error) {
	p, err := b.resolve(ctx, a, req)
	if err != nil {
		return Session{}, err
	}
	if p.existing != nil {
		return *p.existing, nil
	}
	// Taken before admit's connection: a create holding a connection never
	// waits here, so creates beyond the limit cannot drain the pool.
	select {
	case b.submits <- struct{}{}:
		defer func() { <-b.submits }()
	case <-ctx.Done():
		return Session{}, ctx.Err()
	}
	if b.hooks.beforeAdmit != nil {
		b.hooks.beforeAdmit()
	}
	ad, err := b.admit(ctx, p)
	if err != nil {
		return Session{}, err
	}
	if b.hooks.afterAdmit != nil {
		if err := b.hooks.afterAdmit(ad.id); err != nil {
			ad.release(ctx)
			return Session{}, err
		}
	}
	s, ok, err := b.submitAdmitted(ctx, p, ad)
	if err != nil {
		b.log.Warn("session submit deferred to the reconciler", "session", ad.id, "err", err)
	}
	if ok {
		return s, nil
	}
	return b.sessionByID(ctx, ad.id)
}

// session is the row admit wrote for p, as sessionByID would read it.
func (p *sessionPlan) session(id string, createdAt time.Time, env map[string]string, key *string, maxWait *int64, outDir string) Session {
	return Session{
		ID: id, Name: p.req.Name, Owner: p.user.Username, OwnerUID: p.user.UID, Project: p.project.Path(),
		ScalingGroup: p.sg.Name, Partition: p.sg.Partitions[0], Type: p.req.Type, Image: p.image.Ref(),
		CPUs: p.req.CPUs, MemoryMB: p.req.MemoryMB, GPUs: p.req.GPUs, GPUType: p.req.GPUType, TimeLimitS: p.req.TimeLimitS,
		Environment: env, Command: p.req.Command, Mounts: p.mounts, State: StatePending, SubState: subSubmitting,
		MaxWaitS: maxWait, CreatedAt: createdAt,
		userID: p.user.ID, projectID: p.project.ID, domainID: p.project.DomainID,
		stdoutPath: filepath.Join(outDir, id+".out"), stderrPath: filepath.Join(outDir, id+".err"), idempotencyKey: key,
	}
}

// testHooks lets tests inject crashes at the points that matter.
type testHooks struct {
	// beforeAdmit runs between a create's reads and its admission.
	beforeAdmit func()
	afterAdmit  func(id string) error
	afterSubmit func(id string) error
	// beforeSubmit may adjust a job before it goes to Slurm (benchmarks
	// hold their jobs so as not to fill the cluster).
	beforeSubmit func(spec *slurmctl.JobSpec)
}
