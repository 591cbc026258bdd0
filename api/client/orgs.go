package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Domain is an organisation: a Slurm account under root.
type Domain struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Active      bool      `json:"active"`
	CreatedAt   time.Time `json:"created_at"`
}

// Project is a group of users in a domain: a Slurm account under it.
type Project struct {
	ID          int64  `json:"id"`
	DomainID    int64  `json:"domain_id"`
	Domain      string `json:"domain"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Active      bool   `json:"active"`
	// GID is the project's POSIX group, which its folders belong to; nil
	// until an admin sets it.
	GID       *int      `json:"gid"`
	CreatedAt time.Time `json:"created_at"`
}

// NewProject is a project to create; GID, when set, must be an existing
// (non-system) group on the gateway host.
type NewProject struct {
	Domain      string `json:"domain"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	GID         *int   `json:"gid,omitempty"`
}

// ProjectUpdate changes a project's fields that are not nil. The group can
// change only while the project has no folders.
type ProjectUpdate struct {
	Description *string `json:"description,omitempty"`
	Active      *bool   `json:"active,omitempty"`
	GID         *int    `json:"gid,omitempty"`
}

// User is a person known to the gateway.
type User struct {
	ID        int64     `json:"id"`
	Username  string    `json:"username"`
	UID       int       `json:"uid"`
	Email     string    `json:"email"`
	FullName  string    `json:"full_name"`
	DomainID  int64     `json:"domain_id"`
	Domain    string    `json:"domain"`
	Role      string    `json:"role"` // "user", "domain-admin" or "superadmin"
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// NewUser is a user to create.
type NewUser struct {
	Username string `json:"username"`
	UID      int    `json:"uid"`
	Email    string `json:"email,omitempty"`
	FullName string `json:"full_name,omitempty"`
	Domain   string `json:"domain"`
	Role     string `json:"role,omitempty"`
}

// UserUpdate changes the fields that are not nil.
type UserUpdate struct {
	Email    *string `json:"email,omitempty"`
	FullName *string `json:"full_name,omitempty"`
	Status   *string `json:"status,omitempty"`
	Role     *string `json:"role,omitempty"`
}

// OrgUpdate changes a domain's or project's fields that are not nil.
type OrgUpdate struct {
	Description *string `json:"description,omitempty"`
	Active      *bool   `json:"active,omitempty"`
}

// Membership is a user's role in a project.
type Membership struct {
	ProjectID int64  `json:"project_id"`
	Project   string `json:"project"`
	UserID    int64  `json:"user_id"`
	Username  string `json:"username"`
	Role      string `json:"role"` // "member" or "project-admin"
}

// Policy is the resource policy of a domain, project or user; nil fields
// are unlimited.
type Policy struct {
	Scope                 string         `json:"scope"` // "domain", "project" or "user"
	TargetID              int64          `json:"target_id"`
	MaxCPUs               *int           `json:"max_cpus,omitempty"`
	MaxMemoryMB           *int64         `json:"max_memory_mb,omitempty"`
	MaxGPUs               map[string]int `json:"max_gpus,omitempty"`
	MaxConcurrentSessions *int           `json:"max_concurrent_sessions,omitempty"`
	MaxPendingSessions    *int           `json:"max_pending_sessions,omitempty"`
	MaxSessionLifetimeS   *int64         `json:"max_session_lifetime_s,omitempty"`
	IdleTimeoutS          *int64         `json:"idle_timeout_s,omitempty"`
	AllowedScalingGroups  []string       `json:"allowed_scaling_groups,omitempty"`
	AllowedVfolderHosts   []string       `json:"allowed_vfolder_hosts,omitempty"`
	MaxVfolders           *int           `json:"max_vfolders,omitempty"`
	VfolderQuotaBytes     *int64         `json:"vfolder_quota_bytes,omitempty"`
	UpdatedAt             *time.Time     `json:"updated_at,omitempty"`
}

// call is do for a single value of type T.
func call[T any](ctx context.Context, c *Client, method, path string, in any) (*T, error) {
	var out T
	if err := c.do(ctx, method, path, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// list is do for an unpaginated list, answered in the page shape.
func list[T any](ctx context.Context, c *Client, path string) ([]T, error) {
	var p Page[T]
	if err := c.do(ctx, http.MethodGet, path, nil, &p); err != nil {
		return nil, err
	}
	return p.Items, nil
}

// idSeg is a numeric id as a path segment.
func idSeg(n int64) string { return strconv.FormatInt(n, 10) }

// CreateDomain creates a domain (superadmins).
func (c *Client) CreateDomain(ctx context.Context, name, description string) (*Domain, error) {
	in := struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
	}{name, description}
	return call[Domain](ctx, c, http.MethodPost, "/api/v1/domains", in)
}

// Domains lists the domains the caller may see.
func (c *Client) Domains(ctx context.Context) ([]Domain, error) {
	return list[Domain](ctx, c, "/api/v1/domains")
}

// Domain returns a domain by name.
func (c *Client) Domain(ctx context.Context, name string) (*Domain, error) {
	return call[Domain](ctx, c, http.MethodGet, "/api/v1/domains/"+url.PathEscape(name), nil)
}

// UpdateDomain changes a domain.
func (c *Client) UpdateDomain(ctx context.Context, name string, up OrgUpdate) (*Domain, error) {
	return call[Domain](ctx, c, http.MethodPatch, "/api/v1/domains/"+url.PathEscape(name), up)
}

// CreateProject creates a project in a domain.
func (c *Client) CreateProject(ctx context.Context, domain, name, description string) (*Project, error) {
	return c.CreateProjectFrom(ctx, NewProject{Domain: domain, Name: name, Description: description})
}

// CreateProjectFrom creates a project, with its POSIX group if np.GID is set.
func (c *Client) CreateProjectFrom(ctx context.Context, np NewProject) (*Project, error) {
	return call[Project](ctx, c, http.MethodPost, "/api/v1/projects", np)
}

// Projects lists the projects the caller may see.
func (c *Client) Projects(ctx context.Context) ([]Project, error) {
	return list[Project](ctx, c, "/api/v1/projects")
}

// Project returns a project by id.
func (c *Client) Project(ctx context.Context, projectID int64) (*Project, error) {
	return call[Project](ctx, c, http.MethodGet, "/api/v1/projects/"+idSeg(projectID), nil)
}

// UpdateProject changes a project's description or activity.
func (c *Client) UpdateProject(ctx context.Context, projectID int64, up OrgUpdate) (*Project, error) {
	return c.PatchProject(ctx, projectID, ProjectUpdate{Description: up.Description, Active: up.Active})
}

// PatchProject changes a project's fields that are set in up, its POSIX
// group included.
func (c *Client) PatchProject(ctx context.Context, projectID int64, up ProjectUpdate) (*Project, error) {
	return call[Project](ctx, c, http.MethodPatch, "/api/v1/projects/"+idSeg(projectID), up)
}

// Members lists a project's members.
func (c *Client) Members(ctx context.Context, projectID int64) ([]Membership, error) {
	return list[Membership](ctx, c, "/api/v1/projects/"+idSeg(projectID)+"/members")
}

// SetMember adds a user to a project or changes their role there ("member"
// or "project-admin"; empty means "member").
func (c *Client) SetMember(ctx context.Context, projectID, userID int64, role string) (*Membership, error) {
	in := struct {
		Role string `json:"role,omitempty"`
	}{role}
	return call[Membership](ctx, c, http.MethodPut, "/api/v1/projects/"+idSeg(projectID)+"/members/"+idSeg(userID), in)
}

// RemoveMember removes a user from a project.
func (c *Client) RemoveMember(ctx context.Context, projectID, userID int64) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/projects/"+idSeg(projectID)+"/members/"+idSeg(userID), nil, nil)
}

// CreateUser creates a user.
func (c *Client) CreateUser(ctx context.Context, nu NewUser) (*User, error) {
	return call[User](ctx, c, http.MethodPost, "/api/v1/users", nu)
}

// Users lists the users the caller may see.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	return list[User](ctx, c, "/api/v1/users")
}

// User returns a user by id.
func (c *Client) User(ctx context.Context, userID int64) (*User, error) {
	return call[User](ctx, c, http.MethodGet, "/api/v1/users/"+idSeg(userID), nil)
}

// UpdateUser changes a user.
func (c *Client) UpdateUser(ctx context.Context, userID int64, up UserUpdate) (*User, error) {
	return call[User](ctx, c, http.MethodPatch, "/api/v1/users/"+idSeg(userID), up)
}

func policyPath(scope string, targetID int64) string {
	return "/api/v1/policies/" + url.PathEscape(scope) + "/" + idSeg(targetID)
}

// Policy returns the policy of a domain, project or user.
func (c *Client) Policy(ctx context.Context, scope string, targetID int64) (*Policy, error) {
	return call[Policy](ctx, c, http.MethodGet, policyPath(scope, targetID), nil)
}

// SetPolicy replaces the policy named by p.Scope and p.TargetID.
func (c *Client) SetPolicy(ctx context.Context, p Policy) (*Policy, error) {
	in := p
	in.UpdatedAt = nil // the server sets it
	return call[Policy](ctx, c, http.MethodPut, policyPath(p.Scope, p.TargetID), in)
}

// DeletePolicy removes a policy.
func (c *Client) DeletePolicy(ctx context.Context, scope string, targetID int64) error {
	return c.do(ctx, http.MethodDelete, policyPath(scope, targetID), nil, nil)
}
