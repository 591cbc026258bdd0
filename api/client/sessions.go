package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// SessionRequest asks for a session. Resources come from Preset, from the
// explicit fields, or both (explicit fields win).
type SessionRequest struct {
	Name         string `json:"name,omitempty"`
	Type         string `json:"type"` // "interactive" or "batch"
	Image        string `json:"image"`
	Project      string `json:"project,omitempty"` // "domain/project"; default: the caller's only project
	ScalingGroup string `json:"scaling_group"`

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
	// returns the first session instead of submitting another job.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
	// MaxWaitS cancels the session if it is still pending after this long.
	MaxWaitS int64 `json:"max_wait_s,omitempty"`
}

// Mount puts a vfolder into a session's container.
type Mount struct {
	VFolder  string `json:"vfolder"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only"`
}

// Session is a session as the gateway reports it.
type Session struct {
	ID             string            `json:"id"`
	Name           string            `json:"name"`
	Owner          string            `json:"owner"`
	OwnerUID       int               `json:"owner_uid"`
	Project        string            `json:"project"`
	ScalingGroup   string            `json:"scaling_group"`
	Partition      string            `json:"partition"`
	Type           string            `json:"type"`
	Image          string            `json:"image"`
	CPUs           int               `json:"cpus"`
	MemoryMB       int64             `json:"memory_mb"`
	GPUs           int               `json:"gpus"`
	GPUType        string            `json:"gpu_type"`
	TimeLimitS     int64             `json:"time_limit_s"`
	Environment    map[string]string `json:"environment"`
	Command        string            `json:"command"`
	Mounts         []Mount           `json:"mounts"`
	State          string            `json:"state"` // PENDING, PREPARING, RUNNING, TERMINATING, TERMINATED, ERROR, CANCELLED
	SubState       string            `json:"sub_state"`
	StatusMessage  string            `json:"status_message"`
	JobID          *int64            `json:"job_id"`
	SlurmState     string            `json:"slurm_state"`
	SlurmReason    string            `json:"slurm_reason"`
	EstimatedStart *time.Time        `json:"estimated_start"`
	QueuePosition  *int              `json:"queue_position"`
	Node           string            `json:"node"`
	ExitCode       *int              `json:"exit_code"`
	MaxWaitS       *int64            `json:"max_wait_s"`
	CreatedAt      time.Time         `json:"created_at"`
	StartedAt      *time.Time        `json:"started_at"`
	EndedAt        *time.Time        `json:"ended_at"`
}

// Event is one entry of a session's timeline.
type Event struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	From    string    `json:"from"`
	To      string    `json:"to"`
	Message string    `json:"message"`
}

// CreateSession creates a session and submits its job.
func (c *Client) CreateSession(ctx context.Context, req SessionRequest) (*Session, error) {
	var s Session
	if err := c.do(ctx, http.MethodPost, "/api/v1/sessions", req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// SessionListOptions narrows ListSessions; the zero value lists the
// caller's own sessions.
type SessionListOptions struct {
	ListOptions
	States  []string
	Project string // "domain/project"
	Owner   string
	Type    string
	// All lists every session the caller may see, not only their own.
	All bool
}

// ListSessions lists one page of sessions, newest first.
func (c *Client) ListSessions(ctx context.Context, opts SessionListOptions) (*Page[Session], error) {
	q := url.Values{}
	for _, s := range opts.States {
		q.Add("state", s)
	}
	for k, v := range map[string]string{"project": opts.Project, "owner": opts.Owner, "type": opts.Type} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if opts.All {
		q.Set("all", "true")
	}
	var page Page[Session]
	if err := c.do(ctx, http.MethodGet, withQuery("/api/v1/sessions", opts.values(q)), nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// Session returns one session.
func (c *Client) Session(ctx context.Context, id string) (*Session, error) {
	var s Session
	if err := c.do(ctx, http.MethodGet, "/api/v1/sessions/"+url.PathEscape(id), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// DestroySession cancels a session's job and returns the session as it
// stands; it ends asynchronously.
func (c *Client) DestroySession(ctx context.Context, id string) (*Session, error) {
	var s Session
	if err := c.do(ctx, http.MethodDelete, "/api/v1/sessions/"+url.PathEscape(id), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// SessionEvents returns a session's timeline, oldest first.
func (c *Client) SessionEvents(ctx context.Context, id string) ([]Event, error) {
	var evs []Event
	if err := c.do(ctx, http.MethodGet, "/api/v1/sessions/"+url.PathEscape(id)+"/events", nil, &evs); err != nil {
		return nil, err
	}
	return evs, nil
}

// LogOptions selects a session's output: Stream is "stdout" (default) or
// "stderr"; Tail > 0 starts at the last Tail lines; Follow keeps the
// stream open until the session ends or ctx is done.
type LogOptions struct {
	Stream string
	Tail   int
	Follow bool
}

// SessionLog copies a session's job output to w as it arrives. A followed
// log needs a client whose HTTP timeout (WithHTTPClient) allows for it.
func (c *Client) SessionLog(ctx context.Context, id string, opts LogOptions, w io.Writer) error {
	q := url.Values{}
	if opts.Stream != "" {
		q.Set("stream", opts.Stream)
	}
	if opts.Tail > 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	if opts.Follow {
		q.Set("follow", "true")
	}
	path := withQuery("/api/v1/sessions/"+url.PathEscape(id)+"/logs", q)
	resp, err := c.send(ctx, http.MethodGet, path, nil, "text/plain, application/problem+json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return readProblem(resp)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("reading the log of session %s: %w", id, err)
	}
	return nil
}
