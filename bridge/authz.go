package bridge

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The rules, in one place:
//   - superadmins may do anything;
//   - domain admins administer their own domain: its projects, users,
//     memberships and the policies of its projects and users (not the
//     domain's own policy, which bounds them);
//   - project admins manage their project's memberships;
//   - users see themselves, the projects they belong to, and their own
//     sessions.
// Whatever an actor may not see is reported as not found, never as
// forbidden, so ids cannot be probed.

// querier is what both a pool and a transaction offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (a Actor) isSuperadmin() bool { return a.Role == RoleSuperadmin }

func (a Actor) adminsDomain(domainID int64) bool {
	return a.isSuperadmin() || (a.Role == RoleDomainAdmin && a.DomainID == domainID)
}

// projectRole returns the actor's membership role in a project ("" if none)
// and the project's domain.
func projectRole(ctx context.Context, q querier, a Actor, projectID int64) (role string, domainID int64, err error) {
	err = q.QueryRow(ctx, `
		SELECT p.domain_id, COALESCE(m.role, '')
		FROM projects p LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = $2
		WHERE p.id = $1`, projectID, a.UserID).Scan(&domainID, &role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, notFound("project", projectID)
	}
	return role, domainID, err
}

// canSeeProject: admins of its domain and its members.
func canSeeProject(ctx context.Context, q querier, a Actor, projectID int64) error {
	role, domainID, err := projectRole(ctx, q, a, projectID)
	if err != nil {
		return err
	}
	if role == "" && !a.adminsDomain(domainID) {
		return notFound("project", projectID)
	}
	return nil
}

// canManageMembers: admins of its domain and the project's own admins.
func canManageMembers(ctx context.Context, q querier, a Actor, projectID int64) error {
	role, domainID, err := projectRole(ctx, q, a, projectID)
	if err != nil {
		return err
	}
	switch {
	case a.adminsDomain(domainID), role == "project-admin":
		return nil
	case role != "":
		return forbidden("only project admins and domain admins manage project members")
	}
	return notFound("project", projectID)
}

func requireSuperadmin(a Actor, what string) error {
	if !a.isSuperadmin() {
		return forbidden("only superadmins may %s", what)
	}
	return nil
}
