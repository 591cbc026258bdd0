package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Domain is a top-level organisation; it becomes a Slurm account under root.
type Domain struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Active      bool      `json:"active"`
	CreatedAt   time.Time `json:"created_at"`
}

// Project is a group of users inside a domain; it becomes the Slurm account
// "<domain>.<project>" whose parent is the domain's account.
type Project struct {
	ID          int64  `json:"id"`
	DomainID    int64  `json:"domain_id"`
	Domain      string `json:"domain"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Active      bool   `json:"active"`
	// GID is the project's POSIX group: its folders belong to it (mode
	// 2770), so its members' jobs share them through the file system. Nil
	// until an admin sets it; a project without one cannot have folders.
	GID       *int      `json:"gid"`
	CreatedAt time.Time `json:"created_at"`
}

// Account is the project's Slurm account name.
func (p Project) Account() string { return p.Domain + "." + p.Name }

// Path is the project's human name, "domain/project".
func (p Project) Path() string { return p.Domain + "/" + p.Name }

// User is a person who runs sessions, as their POSIX account on the cluster.
type User struct {
	ID        int64     `json:"id"`
	Username  string    `json:"username"`
	UID       int       `json:"uid"`
	Email     string    `json:"email"`
	FullName  string    `json:"full_name"`
	DomainID  int64     `json:"domain_id"`
	Domain    string    `json:"domain"`
	Role      Role      `json:"role"`
	Status    string    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
}

// Actor returns the actor acting as u.
func (u User) Actor() Actor {
	return Actor{UserID: u.ID, Username: u.Username, Role: u.Role, DomainID: u.DomainID}
}

// Membership places a user in a project with a project role.
type Membership struct {
	ProjectID int64  `json:"project_id"`
	Project   string `json:"project"`
	UserID    int64  `json:"user_id"`
	Username  string `json:"username"`
	Role      string `json:"role"`
}

var orgName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,30}$`)

func checkOrgName(field, name string) error {
	if !orgName.MatchString(name) {
		return invalid(field, "%s %q: use 1-31 lower-case letters, digits, '_' or '-', starting with a letter or digit (it becomes a Slurm account name)", field, name)
	}
	return nil
}

// dbError turns constraint violations into domain errors a user can act on.
func dbError(err error, what string) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			return conflict("%s already exists", what)
		case "23503":
			return conflict("%s is still referenced (%s)", what, pg.ConstraintName)
		case "23514", "22P02", "22003":
			return &Error{Kind: KindInvalid, Message: fmt.Sprintf("%s: value out of range (%s)", what, pg.ConstraintName), Err: err}
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound(what, "")
	}
	return err
}

// --- domains ----------------------------------------------------------------

// CreateDomain adds a domain. Superadmins only.
func (b *Bridge) CreateDomain(ctx context.Context, a Actor, name, description string) (Domain, error) {
	if err := requireSuperadmin(a, "create domains"); err != nil {
		return Domain{}, err
	}
	if err := checkOrgName("name", name); err != nil {
		return Domain{}, err
	}
	var d Domain
	err := b.db.QueryRow(ctx, `INSERT INTO domains (name, description) VALUES ($1, $2)
		RETURNING id, name, description, active, created_at`, name, description).
		Scan(&d.ID, &d.Name, &d.Description, &d.Active, &d.CreatedAt)
	if err != nil {
		return Domain{}, dbError(err, "domain "+name)
	}
	b.notifyOrgChange()
	return d, nil
}

// Domains lists the domains the actor may see: all for superadmins, their own otherwise.
func (b *Bridge) Domains(ctx context.Context, a Actor) ([]Domain, error) {
	rows, _ := b.db.Query(ctx, `SELECT id, name, description, active, created_at FROM domains
		WHERE $1 OR id = $2 ORDER BY name`, a.isSuperadmin(), a.DomainID)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Domain, error) {
		var d Domain
		return d, r.Scan(&d.ID, &d.Name, &d.Description, &d.Active, &d.CreatedAt)
	})
}

// DomainByName returns a domain the actor may see.
func (b *Bridge) DomainByName(ctx context.Context, a Actor, name string) (Domain, error) {
	var d Domain
	err := b.db.QueryRow(ctx, `SELECT id, name, description, active, created_at FROM domains WHERE name = $1`, name).
		Scan(&d.ID, &d.Name, &d.Description, &d.Active, &d.CreatedAt)
	if err != nil || (!a.isSuperadmin() && a.DomainID != d.ID) {
		return Domain{}, notFound("domain", name)
	}
	return d, nil
}

// UpdateDomain changes a domain's description or deactivates it (its Slurm
// account is then removed by the sync). Superadmins only.
func (b *Bridge) UpdateDomain(ctx context.Context, a Actor, name string, description *string, active *bool) (Domain, error) {
	if err := requireSuperadmin(a, "change domains"); err != nil {
		return Domain{}, err
	}
	var d Domain
	err := b.db.QueryRow(ctx, `UPDATE domains SET description = COALESCE($2, description),
		active = COALESCE($3, active), updated_at = now() WHERE name = $1
		RETURNING id, name, description, active, created_at`, name, description, active).
		Scan(&d.ID, &d.Name, &d.Description, &d.Active, &d.CreatedAt)
	if err != nil {
		return Domain{}, dbError(err, "domain "+name)
	}
	b.notifyOrgChange()
	return d, nil
}

// --- projects ---------------------------------------------------------------

const projectCols = `p.id, p.domain_id, d.name, p.name, p.description, p.active, p.gid, p.created_at`

func scanProject(r pgx.Row) (Project, error) {
	var p Project
	err := r.Scan(&p.ID, &p.DomainID, &p.Domain, &p.Name, &p.Description, &p.Active, &p.GID, &p.CreatedAt)
	return p, err
}

// NewProject is what creating a project takes; GID is optional.
type NewProject struct {
	Domain      string `json:"domain"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	GID         *int   `json:"gid,omitempty"`
}

// CreateProject adds a project without a POSIX group to a domain.
// Superadmins and the domain's admins.
func (b *Bridge) CreateProject(ctx context.Context, a Actor, domain, name, description string) (Project, error) {
	return b.CreateProjectFrom(ctx, a, NewProject{Domain: domain, Name: name, Description: description})
}

// CreateProjectFrom adds a project to a domain, with its POSIX group when
// np.GID is set (see [CheckProjectGID]). Superadmins and the domain's admins.
func (b *Bridge) CreateProjectFrom(ctx context.Context, a Actor, np NewProject) (Project, error) {
	d, err := b.DomainByName(ctx, a, np.Domain)
	if err != nil {
		return Project{}, err
	}
	if !a.adminsDomain(d.ID) {
		return Project{}, forbidden("only admins of domain %s may create projects in it", np.Domain)
	}
	if err := checkOrgName("name", np.Name); err != nil {
		return Project{}, err
	}
	if np.GID != nil {
		if err := CheckProjectGID(*np.GID); err != nil {
			return Project{}, err
		}
	}
	var id int64
	err = b.db.QueryRow(ctx, `INSERT INTO projects (domain_id, name, description, gid) VALUES ($1, $2, $3, $4) RETURNING id`,
		d.ID, np.Name, np.Description, np.GID).Scan(&id)
	if err != nil {
		return Project{}, dbError(err, "project "+np.Domain+"/"+np.Name)
	}
	b.notifyOrgChange()
	return b.projectByID(ctx, b.db, id)
}

// minProjectGID is the lowest group id a project may take: below it are
// the system's own groups (Debian's and Red Hat's GID_MIN is 1000). Giving
// a project "disk", "shadow" or "sudo" would hand every file its members
// write to that group, and every member of it the project's folders.
const minProjectGID = 1000

// CheckProjectGID checks that gid can be a project's POSIX group: an
// ordinary (not a system) group that the gateway host resolves, as the
// compute nodes must (files, LDAP through sssd). A gid unknown here would
// make folders that no member's job can open, since membership is what
// grants access to a 2770 folder.
func CheckProjectGID(gid int) error {
	if gid <= 0 {
		return invalid("gid", "gid %d: give the project's POSIX group id, a positive number", gid)
	}
	if gid < minProjectGID {
		return invalid("gid", "gid %d is a system group (below %d); create a group for the project (groupadd PROJECT) and give its gid", gid, minProjectGID)
	}
	if gid == 65534 {
		return invalid("gid", "gid 65534 is nogroup; create a group for the project (groupadd PROJECT) and give its gid")
	}
	_, err := user.LookupGroupId(strconv.Itoa(gid))
	var unknown user.UnknownGroupIdError
	if errors.As(err, &unknown) {
		return invalid("gid", "no group has gid %d on the gateway host; create it (groupadd -g %d PROJECT) or make the directory that holds it known to the gateway (NSS/sssd), as it is to the compute nodes; `getent group %d` must find it", gid, gid, gid)
	}
	if err != nil {
		return &Error{Kind: KindUnavailable, Message: fmt.Sprintf("looking up gid %d in the gateway host's group database failed; check NSS/sssd", gid), Err: err}
	}
	return nil
}

func (b *Bridge) projectByID(ctx context.Context, q querier, id int64) (Project, error) {
	p, err := scanProject(q.QueryRow(ctx, `SELECT `+projectCols+` FROM projects p JOIN domains d ON d.id = p.domain_id WHERE p.id = $1`, id))
	if err != nil {
		return Project{}, notFound("project", id)
	}
	return p, nil
}

// ProjectByPath resolves "domain/project" for an actor who may see it.
func (b *Bridge) ProjectByPath(ctx context.Context, a Actor, path string) (Project, error) {
	domain, name, ok := strings.Cut(path, "/")
	if !ok {
		return Project{}, invalid("project", "project %q: want domain/project", path)
	}
	p, err := scanProject(b.db.QueryRow(ctx, `SELECT `+projectCols+` FROM projects p JOIN domains d ON d.id = p.domain_id
		WHERE d.name = $1 AND p.name = $2`, domain, name))
	if err != nil {
		return Project{}, notFound("project", path)
	}
	if err := canSeeProject(ctx, b.db, a, p.ID); err != nil {
		return Project{}, notFound("project", path)
	}
	return p, nil
}

// Project returns a project by id for an actor who may see it.
func (b *Bridge) Project(ctx context.Context, a Actor, id int64) (Project, error) {
	if err := canSeeProject(ctx, b.db, a, id); err != nil {
		return Project{}, err
	}
	return b.projectByID(ctx, b.db, id)
}

// Projects lists the projects the actor may see.
func (b *Bridge) Projects(ctx context.Context, a Actor) ([]Project, error) {
	rows, _ := b.db.Query(ctx, `SELECT `+projectCols+` FROM projects p JOIN domains d ON d.id = p.domain_id
		WHERE $1 OR ($2 AND p.domain_id = $3)
		   OR EXISTS (SELECT 1 FROM memberships m WHERE m.project_id = p.id AND m.user_id = $4)
		ORDER BY d.name, p.name`, a.isSuperadmin(), a.Role == RoleDomainAdmin, a.DomainID, a.UserID)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Project, error) { return scanProject(r) })
}

// ProjectUpdate holds the fields an update may change; nil leaves a field
// alone. A project's group, once set, can be changed but not removed.
type ProjectUpdate struct {
	Description *string `json:"description,omitempty"`
	Active      *bool   `json:"active,omitempty"`
	GID         *int    `json:"gid,omitempty"`
}

// UpdateProject changes a project's description or POSIX group, or
// deactivates it. Its group can change only while it has no folders: the
// files in them keep the group they were written with, and a new group's
// members could not reach them.
func (b *Bridge) UpdateProject(ctx context.Context, a Actor, id int64, up ProjectUpdate) (Project, error) {
	p, err := b.Project(ctx, a, id)
	if err != nil {
		return Project{}, err
	}
	if !a.adminsDomain(p.DomainID) {
		return Project{}, forbidden("only admins of domain %s may change its projects", p.Domain)
	}
	if up.GID != nil {
		if err := CheckProjectGID(*up.GID); err != nil {
			return Project{}, err
		}
	}
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return Project{}, err
	}
	defer tx.Rollback(ctx)
	if up.GID != nil {
		// FOR UPDATE: of two concurrent changes, the second sees the first.
		var old *int
		var folders int
		err := tx.QueryRow(ctx, `SELECT gid, (SELECT count(*) FROM vfolders WHERE project_id = p.id)
			FROM projects p WHERE id = $1 FOR UPDATE`, id).Scan(&old, &folders)
		if err != nil {
			return Project{}, dbError(err, "project "+p.Path())
		}
		if old != nil && *old != *up.GID && folders > 0 {
			return Project{}, conflict("project %s has %d folder(s) whose files belong to gid %d; a new group's members could not use them. Delete the folders first, or change the group on disk (chgrp -R) and ask an operator to update the project", p.Path(), folders, *old)
		}
	}
	_, err = tx.Exec(ctx, `UPDATE projects SET description = COALESCE($2, description),
		active = COALESCE($3, active), gid = COALESCE($4, gid), updated_at = now() WHERE id = $1`, id, up.Description, up.Active, up.GID)
	if err != nil {
		return Project{}, dbError(err, "project "+p.Path())
	}
	if err := tx.Commit(ctx); err != nil {
		return Project{}, err
	}
	b.notifyOrgChange()
	return b.projectByID(ctx, b.db, id)
}

// --- users ------------------------------------------------------------------

const userCols = `u.id, u.username, u.uid, u.email, u.full_name, u.domain_id, d.name, u.role, u.status, u.created_at`

func scanUser(r pgx.Row) (User, error) {
	var u User
	err := r.Scan(&u.ID, &u.Username, &u.UID, &u.Email, &u.FullName, &u.DomainID, &u.Domain, &u.Role, &u.Status, &u.CreatedAt)
	return u, err
}

var posixName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// NewUser is what creating a user takes.
type NewUser struct {
	Username string `json:"username"`
	UID      int    `json:"uid"`
	Email    string `json:"email"`
	FullName string `json:"full_name"`
	Domain   string `json:"domain"`
	Role     Role   `json:"role"`
}

// CreateUser registers a POSIX user. Superadmins, or domain admins in their
// own domain (who cannot grant roles above user).
func (b *Bridge) CreateUser(ctx context.Context, a Actor, nu NewUser) (User, error) {
	if !posixName.MatchString(nu.Username) {
		return User{}, invalid("username", "username %q is not a valid POSIX user name (lower-case letters, digits, '_' and '-', at most 32)", nu.Username)
	}
	if nu.UID <= 0 || nu.UID == 65534 {
		return User{}, invalid("uid", "uid %d: give the user's POSIX uid from the cluster's directory", nu.UID)
	}
	if nu.Email != "" {
		if _, err := mail.ParseAddress(nu.Email); err != nil {
			return User{}, invalid("email", "email %q is not an address", nu.Email)
		}
	}
	if nu.Role == "" {
		nu.Role = RoleUser
	}
	switch nu.Role {
	case RoleUser, RoleDomainAdmin, RoleSuperadmin:
	default:
		return User{}, invalid("role", "role %q: want user, domain-admin or superadmin", nu.Role)
	}
	d, err := b.DomainByName(ctx, a, nu.Domain)
	if err != nil {
		return User{}, err
	}
	if !a.adminsDomain(d.ID) {
		return User{}, forbidden("only admins of domain %s may add users to it", d.Name)
	}
	if nu.Role != RoleUser && !a.isSuperadmin() {
		return User{}, forbidden("only superadmins grant the %s role", nu.Role)
	}
	var id int64
	err = b.db.QueryRow(ctx, `INSERT INTO users (username, uid, email, full_name, domain_id, role)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`, nu.Username, nu.UID, nu.Email, nu.FullName, d.ID, nu.Role).Scan(&id)
	if err != nil {
		return User{}, dbError(err, fmt.Sprintf("user %s (uid %d)", nu.Username, nu.UID))
	}
	return b.userByID(ctx, b.db, id)
}

func (b *Bridge) userByID(ctx context.Context, q querier, id int64) (User, error) {
	u, err := scanUser(q.QueryRow(ctx, `SELECT `+userCols+` FROM users u JOIN domains d ON d.id = u.domain_id WHERE u.id = $1`, id))
	if err != nil {
		return User{}, notFound("user", id)
	}
	return u, nil
}

// canSeeUser: the user, and admins of the user's domain.
func (a Actor) canSeeUser(u User) bool { return a.UserID == u.ID || a.adminsDomain(u.DomainID) }

// User returns a user the actor may see.
func (b *Bridge) User(ctx context.Context, a Actor, id int64) (User, error) {
	u, err := b.userByID(ctx, b.db, id)
	if err != nil || !a.canSeeUser(u) {
		return User{}, notFound("user", id)
	}
	return u, nil
}

// UserByName returns a user the actor may see, by POSIX user name.
func (b *Bridge) UserByName(ctx context.Context, a Actor, username string) (User, error) {
	u, err := scanUser(b.db.QueryRow(ctx, `SELECT `+userCols+` FROM users u JOIN domains d ON d.id = u.domain_id WHERE u.username = $1`, username))
	if err != nil || !a.canSeeUser(u) {
		return User{}, notFound("user", username)
	}
	return u, nil
}

// Users lists the users the actor may see.
func (b *Bridge) Users(ctx context.Context, a Actor) ([]User, error) {
	rows, _ := b.db.Query(ctx, `SELECT `+userCols+` FROM users u JOIN domains d ON d.id = u.domain_id
		WHERE $1 OR ($2 AND u.domain_id = $3) OR u.id = $4 ORDER BY u.username`,
		a.isSuperadmin(), a.Role == RoleDomainAdmin, a.DomainID, a.UserID)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
}

// UserUpdate holds the fields an update may change; nil leaves a field alone.
type UserUpdate struct {
	Email    *string `json:"email"`
	FullName *string `json:"full_name"`
	Status   *string `json:"status"`
	Role     *Role   `json:"role"`
}

// UpdateUser changes a user. Users may change their own e-mail and name;
// status is for their domain's admins; roles for superadmins.
func (b *Bridge) UpdateUser(ctx context.Context, a Actor, id int64, up UserUpdate) (User, error) {
	u, err := b.User(ctx, a, id)
	if err != nil {
		return User{}, err
	}
	if up.Status != nil {
		switch *up.Status {
		case "active", "inactive", "locked":
		default:
			return User{}, invalid("status", "status %q: want active, inactive or locked", *up.Status)
		}
		if !a.adminsDomain(u.DomainID) {
			return User{}, forbidden("only admins of domain %s change a user's status", u.Domain)
		}
	}
	if up.Role != nil && !a.isSuperadmin() {
		return User{}, forbidden("only superadmins change roles")
	}
	if up.Email != nil && *up.Email != "" {
		if _, err := mail.ParseAddress(*up.Email); err != nil {
			return User{}, invalid("email", "email %q is not an address", *up.Email)
		}
	}
	_, err = b.db.Exec(ctx, `UPDATE users SET email = COALESCE($2, email), full_name = COALESCE($3, full_name),
		status = COALESCE($4, status), role = COALESCE($5, role), updated_at = now() WHERE id = $1`,
		id, up.Email, up.FullName, up.Status, up.Role)
	if err != nil {
		return User{}, dbError(err, "user "+u.Username)
	}
	if up.Status != nil {
		b.notifyOrgChange()
	}
	return b.userByID(ctx, b.db, id)
}

// --- memberships ------------------------------------------------------------

// SetMembership adds a user to a project or changes their project role.
func (b *Bridge) SetMembership(ctx context.Context, a Actor, projectID, userID int64, role string) (Membership, error) {
	if role == "" {
		role = "member"
	}
	if role != "member" && role != "project-admin" {
		return Membership{}, invalid("role", "project role %q: want member or project-admin", role)
	}
	if err := canManageMembers(ctx, b.db, a, projectID); err != nil {
		return Membership{}, err
	}
	p, err := b.projectByID(ctx, b.db, projectID)
	if err != nil {
		return Membership{}, err
	}
	u, err := b.userByID(ctx, b.db, userID)
	if err != nil || (u.DomainID != p.DomainID && !a.isSuperadmin()) {
		return Membership{}, notFound("user", userID)
	}
	if u.DomainID != p.DomainID {
		return Membership{}, invalid("user_id", "user %s belongs to domain %s, project %s to domain %s", u.Username, u.Domain, p.Path(), p.Domain)
	}
	_, err = b.db.Exec(ctx, `INSERT INTO memberships (project_id, user_id, role) VALUES ($1, $2, $3)
		ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role`, projectID, userID, role)
	if err != nil {
		return Membership{}, dbError(err, "membership")
	}
	b.notifyOrgChange()
	return Membership{ProjectID: p.ID, Project: p.Path(), UserID: u.ID, Username: u.Username, Role: role}, nil
}

// RemoveMembership takes a user out of a project.
func (b *Bridge) RemoveMembership(ctx context.Context, a Actor, projectID, userID int64) error {
	if err := canManageMembers(ctx, b.db, a, projectID); err != nil {
		return err
	}
	tag, err := b.db.Exec(ctx, `DELETE FROM memberships WHERE project_id = $1 AND user_id = $2`, projectID, userID)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("membership of user", userID)
	}
	b.notifyOrgChange()
	return nil
}

// Members lists a project's members for an actor who may see the project.
func (b *Bridge) Members(ctx context.Context, a Actor, projectID int64) ([]Membership, error) {
	if err := canSeeProject(ctx, b.db, a, projectID); err != nil {
		return nil, err
	}
	rows, _ := b.db.Query(ctx, `SELECT m.project_id, d.name || '/' || p.name, m.user_id, u.username, m.role
		FROM memberships m JOIN projects p ON p.id = m.project_id JOIN domains d ON d.id = p.domain_id
		JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY u.username`, projectID)
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Membership])
}
