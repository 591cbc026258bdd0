package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

const sessionCols = `s.id, s.name, u.username, u.uid, d.name || '/' || p.name, s.scaling_group, s.partition, s.type,
	s.image, s.cpus, s.memory_mb, s.gpus, s.gpu_type, s.time_limit_s, s.environment, s.command, s.mounts,
	s.state, s.sub_state, s.status_message, s.job_id, s.slurm_state, s.slurm_reason, s.estimated_start,
	s.queue_position, s.node, s.exit_code, s.max_wait_s, s.created_at, s.started_at, s.ended_at,
	s.user_id, s.project_id, s.domain_id, s.stdout_path, s.stderr_path, s.idempotency_key`

const sessionFrom = ` FROM sessions s JOIN users u ON u.id = s.user_id JOIN projects p ON p.id = s.project_id
	JOIN domains d ON d.id = s.domain_id`

func scanSession(r pgx.Row) (Session, error) {
	var s Session
	err := r.Scan(&s.ID, &s.Name, &s.Owner, &s.OwnerUID, &s.Project, &s.ScalingGroup, &s.Partition, &s.Type,
		&s.Image, &s.CPUs, &s.MemoryMB, &s.GPUs, &s.GPUType, &s.TimeLimitS, &s.Environment, &s.Command, &s.Mounts,
		&s.State, &s.SubState, &s.StatusMessage, &s.JobID, &s.SlurmState, &s.SlurmReason, &s.EstimatedStart,
		&s.QueuePosition, &s.Node, &s.ExitCode, &s.MaxWaitS, &s.CreatedAt, &s.StartedAt, &s.EndedAt,
		&s.userID, &s.projectID, &s.domainID, &s.stdoutPath, &s.stderrPath, &s.idempotencyKey)
	return s, err
}

func (b *Bridge) sessionByID(ctx context.Context, id string) (Session, error) {
	s, err := scanSession(b.db.QueryRow(ctx, `SELECT `+sessionCols+sessionFrom+` WHERE s.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, notFound("session", id)
	}
	return s, err
}

func (b *Bridge) sessionByKey(ctx context.Context, userID int64, key string) (Session, error) {
	s, err := scanSession(b.db.QueryRow(ctx, `SELECT `+sessionCols+sessionFrom+` WHERE s.user_id = $1 AND s.idempotency_key = $2`, userID, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, notFound("session with idempotency key", key)
	}
	return s, err
}

// canSeeSession: the owner, admins of the session's project, admins of its
// domain, superadmins.
func (b *Bridge) canSeeSession(ctx context.Context, a Actor, s Session) bool {
	if a.UserID == s.userID || a.adminsDomain(s.domainID) {
		return true
	}
	role, _, err := projectRole(ctx, b.db, a, s.projectID)
	return err == nil && role == "project-admin"
}

// Session returns a session the actor may see; others get not found.
func (b *Bridge) Session(ctx context.Context, a Actor, id string) (Session, error) {
	if !validUUID(id) {
		return Session{}, notFound("session", id)
	}
	s, err := b.sessionByID(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if !b.canSeeSession(ctx, a, s) {
		return Session{}, notFound("session", id)
	}
	return s, nil
}

func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdef", c):
			return false
		}
	}
	return true
}

// SessionFilter narrows ListSessions.
type SessionFilter struct {
	// Owner limits to one user's sessions (admins only for others').
	Owner string
	// Project limits to "domain/project".
	Project string
	States  []SessionState
	Type    string
	// All lists every session the actor may see, not only their own.
	All bool
	// After continues a listing: sessions created before this one.
	After *SessionCursor
	Limit int
}

// SessionCursor is the position of a session in the newest-first order.
type SessionCursor struct {
	CreatedAt time.Time
	ID        string
}

// ListSessions lists sessions newest first, one page at a time.
func (b *Bridge) ListSessions(ctx context.Context, a Actor, f SessionFilter) ([]Session, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	switch {
	case f.Owner != "":
		where = append(where, "u.username = "+arg(f.Owner))
	case !f.All:
		where = append(where, "s.user_id = "+arg(a.UserID))
	}
	// Visibility: what the actor may see at all.
	switch {
	case a.isSuperadmin():
	case a.Role == RoleDomainAdmin:
		where = append(where, "s.domain_id = "+arg(a.DomainID))
	default:
		where = append(where, fmt.Sprintf(`(s.user_id = %s OR EXISTS (SELECT 1 FROM memberships m
			WHERE m.project_id = s.project_id AND m.user_id = %s AND m.role = 'project-admin'))`, arg(a.UserID), arg(a.UserID)))
	}
	if f.Project != "" {
		dom, proj, _ := strings.Cut(f.Project, "/")
		where = append(where, "d.name = "+arg(dom)+" AND p.name = "+arg(proj))
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
		}
		where = append(where, "s.state = ANY("+arg(states)+")")
	}
	if f.Type != "" {
		where = append(where, "s.type = "+arg(f.Type))
	}
	if f.After != nil {
		where = append(where, fmt.Sprintf("(s.created_at, s.id) < (%s, %s)", arg(f.After.CreatedAt), arg(f.After.ID)))
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	sql := `SELECT ` + sessionCols + sessionFrom
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY s.created_at DESC, s.id DESC LIMIT " + arg(f.Limit)
	rows, _ := b.db.Query(ctx, sql, args...)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) { return scanSession(r) })
}

// Event is one entry of a session's timeline.
type Event struct {
	ID      int64        `json:"id"`
	At      time.Time    `json:"at"`
	Kind    string       `json:"kind"`
	From    SessionState `json:"from,omitempty"`
	To      SessionState `json:"to,omitempty"`
	Message string       `json:"message"`
}

// SessionEvents returns a session's timeline, oldest first.
func (b *Bridge) SessionEvents(ctx context.Context, a Actor, id string) ([]Event, error) {
	if _, err := b.Session(ctx, a, id); err != nil {
		return nil, err
	}
	rows, _ := b.db.Query(ctx, `SELECT id, at, kind, from_state, to_state, message FROM session_events
		WHERE session_id = $1 ORDER BY id`, id)
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Event])
}

// SessionCounts counts sessions by state, every state present (for metrics).
func (b *Bridge) SessionCounts(ctx context.Context) (map[SessionState]int, error) {
	counts := map[SessionState]int{}
	for _, st := range []SessionState{StatePending, StatePreparing, StateRunning, StateTerminating, StateTerminated, StateError, StateCancelled} {
		counts[st] = 0
	}
	rows, _ := b.db.Query(ctx, `SELECT state, count(*) FROM sessions GROUP BY state`)
	defer rows.Close()
	for rows.Next() {
		var st SessionState
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[st] = n
	}
	return counts, rows.Err()
}
