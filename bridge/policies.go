package bridge

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Policy limits what a domain, a project or a user may use. A nil field means
// "no limit at this level"; the effective limit for a session is the tightest
// of its user's, project's and domain's policies.
type Policy struct {
	Scope    string `json:"scope"`     // "domain", "project" or "user"
	TargetID int64  `json:"target_id"` // the domain, project or user id
	// Slots shared by all running and pending sessions.
	MaxCPUs     *int   `json:"max_cpus,omitempty"`
	MaxMemoryMB *int64 `json:"max_memory_mb,omitempty"`
	// MaxGPUs by GPU type; the key "" bounds GPUs of all types together.
	MaxGPUs               map[string]int `json:"max_gpus,omitempty"`
	MaxConcurrentSessions *int           `json:"max_concurrent_sessions,omitempty"`
	MaxPendingSessions    *int           `json:"max_pending_sessions,omitempty"`
	MaxSessionLifetimeS   *int64         `json:"max_session_lifetime_s,omitempty"`
	IdleTimeoutS          *int64         `json:"idle_timeout_s,omitempty"`
	// Allowed lists; nil allows all.
	AllowedScalingGroups []string  `json:"allowed_scaling_groups,omitempty"`
	AllowedVfolderHosts  []string  `json:"allowed_vfolder_hosts,omitempty"`
	MaxVfolders          *int      `json:"max_vfolders,omitempty"`
	VfolderQuotaBytes    *int64    `json:"vfolder_quota_bytes,omitempty"`
	UpdatedAt            time.Time `json:"updated_at"`
}

// maxLifetime caps any policy's session lifetime: a year is already far
// beyond any partition limit a site would configure.
const maxLifetime = 366 * 24 * time.Hour

func (p Policy) validate() error {
	nonNeg := map[string]*int64{}
	if p.MaxCPUs != nil {
		v := int64(*p.MaxCPUs)
		nonNeg["max_cpus"] = &v
	}
	nonNeg["max_memory_mb"] = p.MaxMemoryMB
	if p.MaxConcurrentSessions != nil {
		v := int64(*p.MaxConcurrentSessions)
		nonNeg["max_concurrent_sessions"] = &v
	}
	if p.MaxPendingSessions != nil {
		v := int64(*p.MaxPendingSessions)
		nonNeg["max_pending_sessions"] = &v
	}
	if p.MaxVfolders != nil {
		v := int64(*p.MaxVfolders)
		nonNeg["max_vfolders"] = &v
	}
	nonNeg["vfolder_quota_bytes"] = p.VfolderQuotaBytes
	for _, k := range slices.Sorted(maps.Keys(nonNeg)) {
		if v := nonNeg[k]; v != nil && *v < 0 {
			return invalid(k, "%s must not be negative (got %d)", k, *v)
		}
	}
	for t, n := range p.MaxGPUs {
		if n < 0 {
			return invalid("max_gpus", "max_gpus[%q] must not be negative (got %d)", t, n)
		}
	}
	for field, v := range map[string]*int64{"max_session_lifetime_s": p.MaxSessionLifetimeS, "idle_timeout_s": p.IdleTimeoutS} {
		if v != nil && (*v <= 0 || time.Duration(*v)*time.Second > maxLifetime) {
			return invalid(field, "%s must be between 1 second and %d days (got %d s)", field, int(maxLifetime.Hours()/24), *v)
		}
	}
	return nil
}

// policyTarget checks that the actor may administer the policy's target and
// returns the column holding its id.
func (b *Bridge) policyTarget(ctx context.Context, a Actor, scope string, id int64, write bool) (string, error) {
	switch scope {
	case "domain":
		if a.isSuperadmin() || (!write && a.DomainID == id) {
			return "domain_id", nil
		}
		if a.DomainID == id {
			return "", forbidden("only superadmins change a domain's policy")
		}
		return "", notFound("domain", id)
	case "project":
		p, err := b.Project(ctx, a, id)
		if err != nil {
			return "", err
		}
		if write && !a.adminsDomain(p.DomainID) {
			return "", forbidden("only admins of domain %s change its projects' policies", p.Domain)
		}
		return "project_id", nil
	case "user":
		u, err := b.User(ctx, a, id)
		if err != nil {
			return "", err
		}
		if write && !a.adminsDomain(u.DomainID) {
			return "", forbidden("only admins of domain %s change its users' policies", u.Domain)
		}
		return "user_id", nil
	}
	return "", invalid("scope", "policy scope %q: want domain, project or user", scope)
}

const policyCols = `scope, COALESCE(domain_id, project_id, user_id), max_cpus, max_memory_mb, max_gpus,
	max_concurrent_sessions, max_pending_sessions, max_session_lifetime_s, idle_timeout_s,
	allowed_scaling_groups, allowed_vfolder_hosts, max_vfolders, vfolder_quota_bytes, updated_at`

func scanPolicy(r pgx.Row) (Policy, error) {
	var p Policy
	err := r.Scan(&p.Scope, &p.TargetID, &p.MaxCPUs, &p.MaxMemoryMB, &p.MaxGPUs, &p.MaxConcurrentSessions,
		&p.MaxPendingSessions, &p.MaxSessionLifetimeS, &p.IdleTimeoutS, &p.AllowedScalingGroups,
		&p.AllowedVfolderHosts, &p.MaxVfolders, &p.VfolderQuotaBytes, &p.UpdatedAt)
	return p, err
}

// SetPolicy creates or replaces the policy of a domain, project or user.
func (b *Bridge) SetPolicy(ctx context.Context, a Actor, p Policy) (Policy, error) {
	col, err := b.policyTarget(ctx, a, p.Scope, p.TargetID, true)
	if err != nil {
		return Policy{}, err
	}
	if err := p.validate(); err != nil {
		return Policy{}, err
	}
	if p.MaxGPUs == nil {
		p.MaxGPUs = map[string]int{}
	}
	sql := fmt.Sprintf(`INSERT INTO policies (scope, %[1]s, max_cpus, max_memory_mb, max_gpus,
		max_concurrent_sessions, max_pending_sessions, max_session_lifetime_s, idle_timeout_s,
		allowed_scaling_groups, allowed_vfolder_hosts, max_vfolders, vfolder_quota_bytes)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (%[1]s) WHERE %[1]s IS NOT NULL DO UPDATE SET
		max_cpus = EXCLUDED.max_cpus, max_memory_mb = EXCLUDED.max_memory_mb, max_gpus = EXCLUDED.max_gpus,
		max_concurrent_sessions = EXCLUDED.max_concurrent_sessions, max_pending_sessions = EXCLUDED.max_pending_sessions,
		max_session_lifetime_s = EXCLUDED.max_session_lifetime_s, idle_timeout_s = EXCLUDED.idle_timeout_s,
		allowed_scaling_groups = EXCLUDED.allowed_scaling_groups, allowed_vfolder_hosts = EXCLUDED.allowed_vfolder_hosts,
		max_vfolders = EXCLUDED.max_vfolders, vfolder_quota_bytes = EXCLUDED.vfolder_quota_bytes, updated_at = now()
		RETURNING `+policyCols, col)
	out, err := scanPolicy(b.db.QueryRow(ctx, sql, p.Scope, p.TargetID, p.MaxCPUs, p.MaxMemoryMB, p.MaxGPUs,
		p.MaxConcurrentSessions, p.MaxPendingSessions, p.MaxSessionLifetimeS, p.IdleTimeoutS,
		p.AllowedScalingGroups, p.AllowedVfolderHosts, p.MaxVfolders, p.VfolderQuotaBytes))
	if err != nil {
		return Policy{}, dbError(err, "policy")
	}
	b.notifyOrgChange()
	return out, nil
}

// Policy returns the policy of a domain, project or user; one without a
// policy row has an empty policy (no limits).
func (b *Bridge) Policy(ctx context.Context, a Actor, scope string, id int64) (Policy, error) {
	col, err := b.policyTarget(ctx, a, scope, id, false)
	if err != nil {
		return Policy{}, err
	}
	p, err := scanPolicy(b.db.QueryRow(ctx, `SELECT `+policyCols+` FROM policies WHERE `+col+` = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Policy{Scope: scope, TargetID: id}, nil
	}
	return p, err
}

// DeletePolicy removes a policy, lifting its limits.
func (b *Bridge) DeletePolicy(ctx context.Context, a Actor, scope string, id int64) error {
	col, err := b.policyTarget(ctx, a, scope, id, true)
	if err != nil {
		return err
	}
	if _, err := b.db.Exec(ctx, `DELETE FROM policies WHERE `+col+` = $1`, id); err != nil {
		return err
	}
	b.notifyOrgChange()
	return nil
}
