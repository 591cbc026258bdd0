package bridge

// Virtual folders: their records, who may use them (owners, project
// members, invited users, admins), policy limits (how many, how big, on
// which hosts), quota reservation for writes, resumable uploads, and the
// resolution of a session's mounts. The disks themselves are package
// vfolder's.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/user"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/vfolder"
)

// VFolder is a folder on a storage host, owned by a user or a project.
type VFolder struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Host      string `json:"host"`
	Owner     string `json:"owner"`      // the owning user's name or the project's "domain/project"
	OwnerKind string `json:"owner_kind"` // "user" or "project"
	UserID    *int64 `json:"user_id,omitempty"`
	ProjectID *int64 `json:"project_id,omitempty"`
	UsageMode string `json:"usage_mode"` // general, data or model
	// Permission is what a project's members may do (ro, rw, rw-delete).
	Permission string `json:"permission"`
	// Access is what the caller may do: ro, rw, rw-delete, or owner (all,
	// including sharing and deleting the folder).
	Access        string     `json:"access"`
	QuotaBytes    *int64     `json:"quota_bytes,omitempty"`
	UsageBytes    int64      `json:"usage_bytes"`
	ScannedAt     *time.Time `json:"scanned_at,omitempty"`
	Status        string     `json:"status"` // ready, deleting or error
	StatusMessage string     `json:"status_message,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// NewVFolder is what creating a folder takes. Project, "domain/project",
// makes a project folder; without it the folder is the caller's own.
type NewVFolder struct {
	Name       string `json:"name"`
	Host       string `json:"host"`
	Project    string `json:"project,omitempty"`
	UsageMode  string `json:"usage_mode,omitempty"`
	Permission string `json:"permission,omitempty"`
	QuotaBytes *int64 `json:"quota_bytes,omitempty"`
}

// Access levels, weakest first; owner includes managing the folder.
const (
	AccessRO       = "ro"
	AccessRW       = "rw"
	AccessRWDelete = "rw-delete"
	AccessOwner    = "owner"
)

var accessRank = map[string]int{AccessRO: 1, AccessRW: 2, AccessRWDelete: 3, AccessOwner: 4}

func checkPermission(field, p string) error {
	if p != AccessRO && p != AccessRW && p != AccessRWDelete {
		return invalid(field, "%s %q: want ro, rw or rw-delete", field, p)
	}
	return nil
}

var vfolderName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// VFolderHosts returns the configured storage hosts' names and options.
func (b *Bridge) VFolderHosts() []vfolder.HostConfig {
	out := make([]vfolder.HostConfig, 0, len(b.cfg.VFolderHosts))
	for _, h := range b.cfg.VFolderHosts {
		out = append(out, h.Config())
	}
	return out
}

func (b *Bridge) vhost(name string) (*vfolder.Host, error) {
	for _, h := range b.cfg.VFolderHosts {
		if h.Name() == name {
			return h, nil
		}
	}
	if len(b.cfg.VFolderHosts) == 0 {
		return nil, &Error{Kind: KindUnavailable, Message: "no vfolder storage hosts are configured; an operator adds [[vfolder.hosts]] to the gateway's configuration"}
	}
	names := make([]string, 0, len(b.cfg.VFolderHosts))
	for _, h := range b.cfg.VFolderHosts {
		names = append(names, h.Name())
	}
	return nil, invalid("host", "vfolder host %q is not configured; hosts: %s", name, strings.Join(names, ", "))
}

const vfolderCols = `v.id::text, v.name, v.host, COALESCE(u.username, d.name || '/' || p.name),
	CASE WHEN v.user_id IS NULL THEN 'project' ELSE 'user' END, v.user_id, v.project_id, v.usage_mode, v.permission,
	v.quota_bytes, v.usage_bytes, v.scanned_at, v.status, v.status_message, v.created_at, v.updated_at, v.domain_id`

const vfolderFrom = ` FROM vfolders v LEFT JOIN users u ON u.id = v.user_id
	LEFT JOIN projects p ON p.id = v.project_id LEFT JOIN domains d ON d.id = p.domain_id`

// vfolderRow is a folder with what access rules need.
type vfolderRow struct {
	VFolder
	domainID int64
}

func scanVFolder(r pgx.Row) (vfolderRow, error) {
	var v vfolderRow
	err := r.Scan(&v.ID, &v.Name, &v.Host, &v.Owner, &v.OwnerKind, &v.UserID, &v.ProjectID, &v.UsageMode, &v.Permission,
		&v.QuotaBytes, &v.UsageBytes, &v.ScannedAt, &v.Status, &v.StatusMessage, &v.CreatedAt, &v.UpdatedAt, &v.domainID)
	return v, err
}

// access returns what a can do with v, or not found when a may not know it.
func (b *Bridge) access(ctx context.Context, q querier, a Actor, v vfolderRow) (string, error) {
	if a.adminsDomain(v.domainID) {
		return AccessOwner, nil
	}
	if v.UserID != nil {
		if *v.UserID == a.UserID {
			return AccessOwner, nil
		}
		var perm string
		err := q.QueryRow(ctx, `SELECT permission FROM vfolder_shares WHERE vfolder_id = $1 AND user_id = $2 AND state = 'accepted'`,
			v.ID, a.UserID).Scan(&perm)
		if err == nil {
			return perm, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return "", err
		}
		return "", notFound("vfolder", v.ID)
	}
	role, _, err := projectRole(ctx, q, a, *v.ProjectID)
	if err != nil {
		return "", notFound("vfolder", v.ID)
	}
	switch role {
	case "project-admin":
		return AccessOwner, nil
	case "member":
		return v.Permission, nil
	}
	return "", notFound("vfolder", v.ID)
}

// vfolderFor loads a folder and checks that a has at least need on it.
// Someone who may see it but not do this gets forbidden, naming what they
// have.
func (b *Bridge) vfolderFor(ctx context.Context, a Actor, id, need string) (vfolderRow, error) {
	v, err := b.vfolderAccess(ctx, a, id, need)
	if err != nil {
		return vfolderRow{}, err
	}
	if v.Status != "ready" && need != AccessRO {
		return vfolderRow{}, conflict("vfolder %s is %s: %s", v.Name, v.Status, v.StatusMessage)
	}
	return v, nil
}

// vfolderAccess is vfolderFor whatever the folder's status.
func (b *Bridge) vfolderAccess(ctx context.Context, a Actor, id, need string) (vfolderRow, error) {
	if !isUUID(id) {
		return vfolderRow{}, notFound("vfolder", id)
	}
	v, err := scanVFolder(b.db.QueryRow(ctx, `SELECT `+vfolderCols+vfolderFrom+` WHERE v.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return vfolderRow{}, notFound("vfolder", id)
	}
	if err != nil {
		return vfolderRow{}, err
	}
	acc, err := b.access(ctx, b.db, a, v)
	if err != nil {
		return vfolderRow{}, err
	}
	v.Access = acc
	if accessRank[acc] < accessRank[need] {
		return vfolderRow{}, forbidden("vfolder %s: you have %s access; this needs %s", v.Name, acc, need)
	}
	return v, nil
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func isUUID(s string) bool { return uuidRe.MatchString(s) }

// diskID is a folder's or an upload's id as package vfolder names it.
func diskID(id string) string { return strings.ReplaceAll(id, "-", "") }

// CreateVFolder creates a folder for the actor or, with Project set, for a
// project the actor administers (project admins and domain admins). Policy
// limits apply: the owner's and the domain's allowed hosts, max folders and
// quota.
func (b *Bridge) CreateVFolder(ctx context.Context, a Actor, nv NewVFolder) (VFolder, error) {
	if !vfolderName.MatchString(nv.Name) {
		return VFolder{}, invalid("name", "vfolder name %q: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit", nv.Name)
	}
	nv.UsageMode = cmpOr(nv.UsageMode, "general")
	if nv.UsageMode != "general" && nv.UsageMode != "data" && nv.UsageMode != "model" {
		return VFolder{}, invalid("usage_mode", "usage_mode %q: want general, data or model", nv.UsageMode)
	}
	nv.Permission = cmpOr(nv.Permission, AccessRW)
	if err := checkPermission("permission", nv.Permission); err != nil {
		return VFolder{}, err
	}
	if nv.QuotaBytes != nil && *nv.QuotaBytes < 0 {
		return VFolder{}, invalid("quota_bytes", "quota_bytes must not be negative")
	}
	host, err := b.vhost(nv.Host)
	if err != nil {
		return VFolder{}, err
	}

	var (
		owner    vfolder.Owner
		ownerCol string
		ownerID  int64
		domainID int64
		label    string
		scopes   []scope
	)
	if nv.Project == "" {
		u, err := b.userByID(ctx, b.db, a.UserID)
		if err != nil {
			return VFolder{}, forbidden("only users with a POSIX account own folders")
		}
		gid, err := primaryGID(u)
		if err != nil {
			return VFolder{}, err
		}
		owner = vfolder.Owner{UID: u.UID, GID: gid}
		ownerCol, ownerID, domainID, label = "user_id", u.ID, u.DomainID, u.Username
		scopes = []scope{{"user", u.Username, "user_id", u.ID}, {"domain", u.Domain, "domain_id", u.DomainID}}
	} else {
		p, err := b.ProjectByPath(ctx, a, nv.Project)
		if err != nil {
			return VFolder{}, err
		}
		if err := canManageMembers(ctx, b.db, a, p.ID); err != nil {
			return VFolder{}, forbidden("only project admins and domain admins create %s's folders", p.Path())
		}
		var gid *int
		if err := b.db.QueryRow(ctx, `SELECT gid FROM projects WHERE id = $1`, p.ID).Scan(&gid); err != nil {
			return VFolder{}, err
		}
		if gid == nil {
			return VFolder{}, invalid("project", "project %s has no POSIX group; an admin sets its gid (PATCH the project) before it can have folders, so that its members' jobs can use them", p.Path())
		}
		// Members' jobs reach the folder through the project's group:
		// ro takes its write bit off on disk too (rw and rw-delete are
		// both group rwx; the file system cannot tell them apart).
		owner = vfolder.Owner{GID: *gid, Project: true, ReadOnly: nv.Permission == AccessRO}
		ownerCol, ownerID, domainID, label = "project_id", p.ID, p.DomainID, p.Path()
		scopes = []scope{{"project", p.Path(), "project_id", p.ID}, {"domain", p.Domain, "domain_id", p.DomainID}}
	}

	id := newSessionID()
	err = pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		// Serialise creations by the same owner so the count below stays true.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, fmt.Sprintf("vfolder-create/%s/%d", ownerCol, ownerID)); err != nil {
			return err
		}
		var count int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM vfolders WHERE `+ownerCol+` = $1`, ownerID).Scan(&count); err != nil {
			return err
		}
		for _, s := range scopes {
			pol, err := scanPolicy(tx.QueryRow(ctx, `SELECT `+policyCols+` FROM policies WHERE `+s.col+` = $1`, s.id))
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			if pol.AllowedVfolderHosts != nil && !contains(pol.AllowedVfolderHosts, nv.Host) {
				return &Error{Kind: KindQuota, Message: fmt.Sprintf("the %s policy of %s does not allow vfolder host %s; allowed: %s",
					s.name, s.label, nv.Host, strings.Join(pol.AllowedVfolderHosts, ", "))}
			}
			if pol.MaxVfolders != nil && count+1 > int64(*pol.MaxVfolders) {
				return &Error{Kind: KindQuota, Message: fmt.Sprintf("%s owns %d vfolders; the %s policy of %s allows %d",
					label, count, s.name, s.label, *pol.MaxVfolders),
					Quota: &QuotaExceeded{Scope: s.name, ScopeName: s.label, Limit: "max_vfolders", Max: int64(*pol.MaxVfolders), InUse: count, Requested: 1}}
			}
			if q := pol.VfolderQuotaBytes; q != nil {
				switch {
				case nv.QuotaBytes == nil:
					nv.QuotaBytes = q
				case *nv.QuotaBytes > *q:
					return &Error{Kind: KindQuota, Message: fmt.Sprintf("quota_bytes %d exceeds the %s policy of %s (%d)", *nv.QuotaBytes, s.name, s.label, *q),
						Quota: &QuotaExceeded{Scope: s.name, ScopeName: s.label, Limit: "vfolder_quota_bytes", Max: *q, Requested: *nv.QuotaBytes}}
				}
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO vfolders (id, name, host, `+ownerCol+`, domain_id, usage_mode, permission, quota_bytes, scanned_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())`, id, nv.Name, nv.Host, ownerID, domainID, nv.UsageMode, nv.Permission, nv.QuotaBytes)
		if err != nil {
			return dbError(err, fmt.Sprintf("vfolder %s of %s", nv.Name, label))
		}
		// The directory is made inside the transaction: if it cannot be,
		// no record claims a folder that does not exist.
		if err := host.Create(diskID(id), owner); err != nil {
			return fmt.Errorf("creating vfolder %s on host %s: %w", nv.Name, nv.Host, err)
		}
		if nv.QuotaBytes != nil {
			return host.Quota().SetLimit(ctx, host.Path(diskID(id)), *nv.QuotaBytes)
		}
		return nil
	})
	if err != nil {
		return VFolder{}, err
	}
	return b.VFolder(ctx, a, id)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// primaryGID is the user's primary group from the system's user database
// (the gateway resolves users the way the nodes do: NSS, LDAP through sssd);
// without an entry, the group named like the uid.
func primaryGID(u User) (int, error) {
	pu, err := user.LookupId(strconv.Itoa(u.UID))
	if err != nil {
		return 0, &Error{Kind: KindUnavailable, Message: fmt.Sprintf("user %s (uid %d) is not known to the gateway host's user database; it must resolve users as the compute nodes do (NSS/sssd)", u.Username, u.UID), Err: err}
	}
	return strconv.Atoi(pu.Gid)
}

// VFolder returns a folder the actor may use, with the actor's access.
func (b *Bridge) VFolder(ctx context.Context, a Actor, id string) (VFolder, error) {
	v, err := b.vfolderFor(ctx, a, id, AccessRO)
	return v.VFolder, err
}

// VFolderFilter selects folders to list.
type VFolderFilter struct {
	// All lists every folder an admin administers, not only those the
	// actor owns, belongs to or was shared.
	All bool
}

// VFolders lists the folders the actor may use: their own, their projects',
// those shared with them (accepted), and with All every folder of the
// domains they administer. Sorted by name, then id.
func (b *Bridge) VFolders(ctx context.Context, a Actor, f VFolderFilter) ([]VFolder, error) {
	rows, err := b.db.Query(ctx, `SELECT `+vfolderCols+vfolderFrom+`
		WHERE v.user_id = $1
		   OR v.project_id IN (SELECT project_id FROM memberships WHERE user_id = $1)
		   OR v.id IN (SELECT vfolder_id FROM vfolder_shares WHERE user_id = $1 AND state = 'accepted')
		   OR ($2 AND ($3 OR v.domain_id = $4))
		ORDER BY v.name, v.id`, a.UserID, f.All && (a.isSuperadmin() || a.Role == RoleDomainAdmin), a.isSuperadmin(), a.DomainID)
	if err != nil {
		return nil, err
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (vfolderRow, error) { return scanVFolder(r) })
	if err != nil {
		return nil, err
	}
	out := make([]VFolder, 0, len(vs))
	for _, v := range vs {
		acc, err := b.access(ctx, b.db, a, v)
		if err != nil {
			continue
		}
		v.Access = acc
		out = append(out, v.VFolder)
	}
	return out, nil
}

// DeleteVFolder removes a folder and everything in it. The caller must
// confirm with the folder's name: a deletion cannot be undone. A folder
// whose deletion failed (status error) or was cut short (deleting, after a
// crash) can be deleted again.
func (b *Bridge) DeleteVFolder(ctx context.Context, a Actor, id, confirm string) error {
	v, err := b.vfolderAccess(ctx, a, id, AccessOwner)
	if err != nil {
		return err
	}
	if confirm != v.Name {
		return invalid("confirm", "deleting vfolder %s removes all its files; confirm with its name (confirm=%s)", v.Name, v.Name)
	}
	host, err := b.vhost(v.Host)
	if err != nil {
		return err
	}
	if _, err := b.db.Exec(ctx, `UPDATE vfolders SET status = 'deleting', updated_at = now() WHERE id = $1`, id); err != nil {
		return err
	}
	if err := host.Destroy(diskID(id)); err != nil {
		b.db.Exec(context.WithoutCancel(ctx), `UPDATE vfolders SET status = 'error', status_message = $2, updated_at = now() WHERE id = $1`,
			id, "deletion failed: "+err.Error())
		return fmt.Errorf("deleting vfolder %s: %w", v.Name, err)
	}
	_, err = b.db.Exec(ctx, `DELETE FROM vfolders WHERE id = $1`, id)
	return err
}

// --- sharing ------------------------------------------------------------------

// VFolderShare is one user's access to a user folder.
type VFolderShare struct {
	VFolderID  string     `json:"vfolder_id"`
	VFolder    string     `json:"vfolder"`
	Owner      string     `json:"owner"`
	UserID     int64      `json:"user_id"`
	Username   string     `json:"username"`
	Permission string     `json:"permission"`
	State      string     `json:"state"` // pending or accepted
	CreatedAt  time.Time  `json:"created_at"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
}

const shareCols = `s.vfolder_id::text, v.name, ou.username, s.user_id, u.username, s.permission, s.state, s.created_at, s.accepted_at`
const shareFrom = ` FROM vfolder_shares s JOIN vfolders v ON v.id = s.vfolder_id JOIN users u ON u.id = s.user_id
	JOIN users ou ON ou.id = v.user_id`

// ShareVFolder invites a user (of the folder's domain) to a user folder
// with a permission, or changes the permission of an existing share. Owners
// and admins only. Project folders are shared by project membership. A
// changed permission of an accepted share reaches the disk at once (see
// [Bridge.AnswerVFolderInvitation]).
func (b *Bridge) ShareVFolder(ctx context.Context, a Actor, id, username, permission string) (VFolderShare, error) {
	if err := checkPermission("permission", permission); err != nil {
		return VFolderShare{}, err
	}
	v, err := b.vfolderFor(ctx, a, id, AccessOwner)
	if err != nil {
		return VFolderShare{}, err
	}
	if v.UserID == nil {
		return VFolderShare{}, invalid("vfolder", "vfolder %s belongs to project %s: its members have %s access; add users to the project instead", v.Name, v.Owner, v.Permission)
	}
	var uid, domainID int64
	err = b.db.QueryRow(ctx, `SELECT id, domain_id FROM users WHERE username = $1`, username).Scan(&uid, &domainID)
	if err != nil || domainID != v.domainID {
		return VFolderShare{}, notFound("user", username)
	}
	if uid == *v.UserID {
		return VFolderShare{}, invalid("username", "%s owns vfolder %s already", username, v.Name)
	}
	err = pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `INSERT INTO vfolder_shares (vfolder_id, user_id, permission, invited_by)
			VALUES ($1, $2, $3, NULLIF($4, 0)) ON CONFLICT (vfolder_id, user_id) DO UPDATE SET permission = EXCLUDED.permission
			RETURNING state`, id, uid, permission, a.UserID).Scan(&state)
		if err != nil {
			return dbError(err, "share")
		}
		if state != "accepted" {
			return nil // a pending invitation reaches the disk when accepted
		}
		return b.shareOnDisk(ctx, tx, id, uid, permission)
	})
	if err != nil {
		return VFolderShare{}, err
	}
	return b.share(ctx, id, uid)
}

func (b *Bridge) share(ctx context.Context, id string, userID int64) (VFolderShare, error) {
	row := b.db.QueryRow(ctx, `SELECT `+shareCols+shareFrom+` WHERE s.vfolder_id = $1 AND s.user_id = $2`, id, userID)
	var s VFolderShare
	err := row.Scan(&s.VFolderID, &s.VFolder, &s.Owner, &s.UserID, &s.Username, &s.Permission, &s.State, &s.CreatedAt, &s.AcceptedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, notFound("invitation to vfolder", id)
	}
	return s, err
}

func (b *Bridge) shares(ctx context.Context, where string, args ...any) ([]VFolderShare, error) {
	rows, _ := b.db.Query(ctx, `SELECT `+shareCols+shareFrom+` WHERE `+where+` ORDER BY v.name, u.username`, args...)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (VFolderShare, error) {
		var s VFolderShare
		err := r.Scan(&s.VFolderID, &s.VFolder, &s.Owner, &s.UserID, &s.Username, &s.Permission, &s.State, &s.CreatedAt, &s.AcceptedAt)
		return s, err
	})
}

// VFolderShares lists who has access to a user folder by invitation
// (pending and accepted). Owners and admins only.
func (b *Bridge) VFolderShares(ctx context.Context, a Actor, id string) ([]VFolderShare, error) {
	if _, err := b.vfolderFor(ctx, a, id, AccessOwner); err != nil {
		return nil, err
	}
	return b.shares(ctx, `s.vfolder_id = $1`, id)
}

// RevokeVFolderShare ends a user's access (or withdraws an invitation).
// Owners and admins, and the invited user themselves (leaving a share).
func (b *Bridge) RevokeVFolderShare(ctx context.Context, a Actor, id string, userID int64) error {
	if a.UserID != userID {
		if _, err := b.vfolderFor(ctx, a, id, AccessOwner); err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		var state string
		err := tx.QueryRow(ctx, `DELETE FROM vfolder_shares WHERE vfolder_id = $1 AND user_id = $2 RETURNING state`, id, userID).Scan(&state)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("share of vfolder "+id+" with user", userID)
		}
		if err != nil || state != "accepted" {
			return err
		}
		return b.shareOnDisk(ctx, tx, id, userID, "")
	})
}

// VFolderInvitations lists the invitations waiting for the actor's answer.
func (b *Bridge) VFolderInvitations(ctx context.Context, a Actor) ([]VFolderShare, error) {
	return b.shares(ctx, `s.user_id = $1 AND s.state = 'pending'`, a.UserID)
}

// AnswerVFolderInvitation accepts or declines an invitation to a folder.
// Declining deletes it, so the owner can invite again. Accepting makes the
// share effective on disk too, so the user's jobs can use a mounted copy:
// their uid gets POSIX ACL entries on the folder's tree (package vfolder's
// "Shares on disk"). A pending invitation never touched the disk, so
// declining has nothing to undo there.
func (b *Bridge) AnswerVFolderInvitation(ctx context.Context, a Actor, id string, accept bool) (VFolderShare, error) {
	if !isUUID(id) {
		return VFolderShare{}, notFound("invitation to vfolder", id)
	}
	if !accept {
		tag, err := b.db.Exec(ctx, `DELETE FROM vfolder_shares WHERE vfolder_id = $1 AND user_id = $2 AND state = 'pending'`, id, a.UserID)
		if err == nil && tag.RowsAffected() == 0 {
			err = notFound("invitation to vfolder", id)
		}
		return VFolderShare{}, err
	}
	err := pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		var perm string
		err := tx.QueryRow(ctx, `UPDATE vfolder_shares SET state = 'accepted', accepted_at = now()
			WHERE vfolder_id = $1 AND user_id = $2 AND state = 'pending' RETURNING permission`, id, a.UserID).Scan(&perm)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("invitation to vfolder", id)
		}
		if err != nil {
			return err
		}
		return b.shareOnDisk(ctx, tx, id, a.UserID, perm)
	})
	if err != nil {
		return VFolderShare{}, err
	}
	return b.share(ctx, id, a.UserID)
}

// shareOnDisk gives the user's uid perm on the folder's tree, or with perm
// "" takes it away. Callers run it inside the transaction that records the
// change, with the share's row locked: if the disk cannot follow, the record
// does not change either and the caller can retry, and two changes to the
// same share are applied in the order they are recorded. The row lock is
// held for the walk of the tree, which reads each directory once, in
// parallel.
//
// Changes of different users' shares of one folder are serialised too,
// by a transaction-scoped advisory lock on the folder: each rewrites every
// directory's whole ACL (read, modify, write), so a grant walking beside a
// revoke could write back the revoked user's entry it read a moment
// before. An advisory lock, not FOR UPDATE of the folder's row, so that
// uploads settling their usage on that row do not wait for a walk.
func (b *Bridge) shareOnDisk(ctx context.Context, q pgx.Tx, id string, userID int64, perm string) error {
	if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "vfolder-acl/"+id); err != nil {
		return err
	}
	var hostName, status string
	var uid int
	err := q.QueryRow(ctx, `SELECT v.host, v.status, u.uid FROM vfolders v, users u WHERE v.id = $1 AND u.id = $2`, id, userID).
		Scan(&hostName, &status, &uid)
	if err != nil {
		return err
	}
	host, err := b.vhost(hostName)
	if err != nil {
		return err
	}
	if perm == "" {
		err = host.Revoke(ctx, diskID(id), uid)
		if errors.Is(err, fs.ErrNotExist) && status != "ready" {
			return nil // the folder is being deleted: nothing left to revoke
		}
	} else {
		err = host.Grant(ctx, diskID(id), uid, accessRank[perm] >= accessRank[AccessRW])
	}
	if err != nil {
		return fmt.Errorf("applying the share of vfolder %s with uid %d on host %s: %w", id, uid, hostName, err)
	}
	return nil
}

// --- files --------------------------------------------------------------------

// FileError maps package vfolder's and the file system's errors to
// domain errors that name the path.
func FileError(err error, p string) error {
	var pe *vfolder.PathError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		e := invalid("path", "%s", pe.Error())
		e.Err = err
		return e
	case errors.Is(err, vfolder.ErrEscapes):
		return &Error{Kind: KindInvalid, Field: "path", Message: fmt.Sprintf("path %q leads outside the folder through a symbolic link; it is refused", p), Err: err}
	case errors.Is(err, fs.ErrNotExist):
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf("%q does not exist in the folder", p), Err: err}
	case errors.Is(err, fs.ErrExist):
		return &Error{Kind: KindConflict, Message: fmt.Sprintf("%q exists already", p), Err: err}
	case errors.Is(err, vfolder.ErrNotEmpty):
		return &Error{Kind: KindConflict, Message: fmt.Sprintf("%q: %v", p, err), Err: err}
	case errors.Is(err, vfolder.ErrNotDir), errors.Is(err, vfolder.ErrIsDir), errors.Is(err, vfolder.ErrNotRegular):
		return &Error{Kind: KindConflict, Message: fmt.Sprintf("%q: %v", p, err), Err: err}
	}
	return err
}

// FileOp is one file operation on a folder, for [Bridge.VFolderFiles].
type FileOp int

// Access each kind of file operation needs.
const (
	FileRead   FileOp = iota // list, stat, download
	FileWrite                // mkdir, copy, upload
	FileDelete               // delete, rename
)

var opNeeds = [...]string{FileRead: AccessRO, FileWrite: AccessRW, FileDelete: AccessRWDelete}

// VFolderFiles opens a folder's files for the actor if they may perform op,
// acting as the actor's uid. The caller closes the FS.
func (b *Bridge) VFolderFiles(ctx context.Context, a Actor, id string, op FileOp) (*vfolder.FS, VFolder, error) {
	v, err := b.vfolderFor(ctx, a, id, opNeeds[op])
	if err != nil {
		return nil, VFolder{}, err
	}
	host, err := b.vhost(v.Host)
	if err != nil {
		return nil, VFolder{}, err
	}
	uid := 0
	if op != FileRead {
		u, err := b.userByID(ctx, b.db, a.UserID)
		if err != nil {
			return nil, VFolder{}, forbidden("only users with a POSIX account write to folders")
		}
		uid = u.UID
	}
	fsys, err := host.Open(diskID(id), uid)
	if err != nil {
		return nil, VFolder{}, fmt.Errorf("opening vfolder %s on host %s: %w", v.Name, v.Host, err)
	}
	return fsys, v.VFolder, nil
}

// ListVFolderFiles lists a directory of a folder, sorted by name.
func (b *Bridge) ListVFolderFiles(ctx context.Context, a Actor, id, dir, after string, limit int) ([]vfolder.Entry, bool, error) {
	fsys, _, err := b.VFolderFiles(ctx, a, id, FileRead)
	if err != nil {
		return nil, false, err
	}
	defer fsys.Close()
	es, more, err := fsys.List(dir, after, limit)
	return es, more, FileError(err, dir)
}

// StatVFolderFile describes one path of a folder.
func (b *Bridge) StatVFolderFile(ctx context.Context, a Actor, id, p string) (vfolder.Entry, error) {
	fsys, _, err := b.VFolderFiles(ctx, a, id, FileRead)
	if err != nil {
		return vfolder.Entry{}, err
	}
	defer fsys.Close()
	e, err := fsys.Stat(p)
	return e, FileError(err, p)
}

// MkdirVFolder creates a directory (with parents, its missing parents).
func (b *Bridge) MkdirVFolder(ctx context.Context, a Actor, id, p string, parents bool) (vfolder.Entry, error) {
	fsys, _, err := b.VFolderFiles(ctx, a, id, FileWrite)
	if err != nil {
		return vfolder.Entry{}, err
	}
	defer fsys.Close()
	e, err := fsys.Mkdir(p, parents)
	return e, FileError(err, p)
}

// RenameVFolderFile moves a file or directory within a folder.
func (b *Bridge) RenameVFolderFile(ctx context.Context, a Actor, id, from, to string) (vfolder.Entry, error) {
	fsys, _, err := b.VFolderFiles(ctx, a, id, FileDelete)
	if err != nil {
		return vfolder.Entry{}, err
	}
	defer fsys.Close()
	if err := fsys.Rename(from, to); err != nil {
		return vfolder.Entry{}, FileError(err, to)
	}
	e, err := fsys.Stat(to)
	return e, FileError(err, to)
}

// DeleteVFolderFile removes a file, an empty directory, or with recursive a
// whole tree; usage drops by what was freed.
func (b *Bridge) DeleteVFolderFile(ctx context.Context, a Actor, id, p string, recursive bool) error {
	fsys, _, err := b.VFolderFiles(ctx, a, id, FileDelete)
	if err != nil {
		return err
	}
	defer fsys.Close()
	freed, err := fsys.Remove(p, recursive)
	if freed > 0 {
		b.db.Exec(context.WithoutCancel(ctx), `UPDATE vfolders SET usage_bytes = GREATEST(usage_bytes - $2, 0) WHERE id = $1`, id, freed)
	}
	return FileError(err, p)
}

// CopyVFolderFile copies a file or tree within a folder. Its size is
// reserved against the quota before a byte is copied.
func (b *Bridge) CopyVFolderFile(ctx context.Context, a Actor, id, from, to string) (vfolder.Entry, error) {
	fsys, _, err := b.VFolderFiles(ctx, a, id, FileWrite)
	if err != nil {
		return vfolder.Entry{}, err
	}
	defer fsys.Close()
	u, err := fsys.Usage(from)
	if err != nil {
		return vfolder.Entry{}, FileError(err, from)
	}
	if err := b.reserve(ctx, id, u.Bytes); err != nil {
		return vfolder.Entry{}, err
	}
	n, err := fsys.Copy(from, to)
	b.settle(id, u.Bytes, n)
	if err != nil {
		return vfolder.Entry{}, FileError(err, to)
	}
	e, err := fsys.Stat(to)
	return e, FileError(err, to)
}

// reserve promises n bytes of the folder's quota to a write in progress,
// refusing if usage and other reservations leave too little. One UPDATE
// with the check in its WHERE clause: concurrent writers cannot both pass.
func (b *Bridge) reserve(ctx context.Context, id string, n int64) error {
	var quota *int64
	var used, reserved int64
	err := b.db.QueryRow(ctx, `UPDATE vfolders SET reserved_bytes = reserved_bytes + $2
		WHERE id = $1 AND (quota_bytes IS NULL OR usage_bytes + reserved_bytes + $2 <= quota_bytes)
		RETURNING quota_bytes, usage_bytes, reserved_bytes`, id, n).Scan(&quota, &used, &reserved)
	if err == nil {
		return nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	var name string
	if err := b.db.QueryRow(ctx, `SELECT name, quota_bytes, usage_bytes, reserved_bytes FROM vfolders WHERE id = $1`, id).
		Scan(&name, &quota, &used, &reserved); err != nil {
		return err
	}
	return &Error{Kind: KindQuota,
		Message: fmt.Sprintf("vfolder %s: writing %d bytes would exceed its quota of %d bytes (%d used, %d promised to uploads in progress); delete files or ask an admin for a larger quota",
			name, n, *quota, used, reserved),
		Quota: &QuotaExceeded{Scope: "vfolder", ScopeName: name, Limit: "vfolder_quota_bytes", Max: *quota, InUse: used + reserved, Requested: n}}
}

// settle releases a reservation and records what was really written.
func (b *Bridge) settle(id string, reserved, written int64) {
	b.db.Exec(context.Background(), `UPDATE vfolders SET reserved_bytes = GREATEST(reserved_bytes - $2, 0),
		usage_bytes = GREATEST(usage_bytes + $3, 0), updated_at = now() WHERE id = $1`, id, reserved, written)
}

// ScanVFolderUsage measures a folder on disk and records its usage: what
// jobs wrote directly is counted from then on. Owners and admins; the
// gateway also runs it periodically.
func (b *Bridge) ScanVFolderUsage(ctx context.Context, a Actor, id string) (VFolder, error) {
	v, err := b.vfolderFor(ctx, a, id, AccessRO)
	if err != nil {
		return VFolder{}, err
	}
	host, err := b.vhost(v.Host)
	if err != nil {
		return VFolder{}, err
	}
	u, err := host.Usage(ctx, diskID(id))
	if err != nil {
		return VFolder{}, fmt.Errorf("measuring vfolder %s: %w", v.Name, err)
	}
	if _, err := b.db.Exec(ctx, `UPDATE vfolders SET usage_bytes = $2, scanned_at = now() WHERE id = $1`, id, u.Bytes); err != nil {
		return VFolder{}, err
	}
	return b.VFolder(ctx, a, id)
}

// --- uploads ------------------------------------------------------------------

// Upload is a resumable upload into a folder (the tus protocol's resource).
type Upload struct {
	ID        string    `json:"id"`
	VFolderID string    `json:"vfolder_id"`
	Path      string    `json:"path"`
	Length    int64     `json:"length"`
	Offset    int64     `json:"offset"`
	ExpiresAt time.Time `json:"expires_at"`
	// Token authorises appending to this upload and nothing else; it is
	// returned once, by CreateUpload, and stored only as a hash.
	Token  string `json:"token,omitempty"`
	userID int64
	uid    int
}

// uploadLifetime bounds how long an unfinished upload keeps its staged bytes
// and its reservation.
const uploadLifetime = 24 * time.Hour

// CreateUpload starts an upload of length bytes to path in a folder. The
// whole length is reserved against the quota now, so an upload that could
// not fit is refused before any byte is sent, and concurrent uploads cannot
// overshoot together.
func (b *Bridge) CreateUpload(ctx context.Context, a Actor, id, p string, length int64) (Upload, error) {
	if length < 0 {
		return Upload{}, invalid("length", "Upload-Length must not be negative")
	}
	clean, err := vfolder.CleanPath(p)
	if err != nil {
		return Upload{}, FileError(err, p)
	}
	if clean == "." {
		return Upload{}, invalid("path", "the upload needs a file name: a path inside the folder")
	}
	fsys, v, err := b.VFolderFiles(ctx, a, id, FileWrite)
	if err != nil {
		return Upload{}, err
	}
	defer fsys.Close()
	host, _ := b.vhost(v.Host)
	if max := host.Config().MaxFileSize; max > 0 && length > max {
		return Upload{}, &Error{Kind: KindQuota, Message: fmt.Sprintf("the file is %d bytes; host %s takes files of at most %d bytes", length, v.Host, max),
			Quota: &QuotaExceeded{Scope: "host", ScopeName: v.Host, Limit: "max_file_size", Max: max, Requested: length}}
	}
	// The destination's directory must exist and be inside the folder.
	if dir := path.Dir(clean); dir != "." {
		e, err := fsys.Stat(dir)
		if err == nil && e.Type != "dir" {
			err = fmt.Errorf("%s %w", dir, vfolder.ErrNotDir)
		}
		if err != nil {
			return Upload{}, FileError(err, dir)
		}
	}
	u, err := b.userByID(ctx, b.db, a.UserID)
	if err != nil {
		return Upload{}, err
	}
	if err := b.reserve(ctx, id, length); err != nil {
		return Upload{}, err
	}
	up := Upload{ID: newSessionID(), VFolderID: id, Path: clean, Length: length, ExpiresAt: b.now().Add(uploadLifetime), Token: rand.Text(),
		userID: a.UserID, uid: u.UID}
	hash := sha256.Sum256([]byte(up.Token))
	if err := host.StageCreate(diskID(id), diskID(up.ID), u.UID); err != nil {
		b.settle(id, length, 0)
		return Upload{}, fmt.Errorf("staging the upload: %w", err)
	}
	_, err = b.db.Exec(ctx, `INSERT INTO vfolder_uploads (id, vfolder_id, user_id, path, length, token_hash, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, up.ID, id, a.UserID, clean, length, hash[:], up.ExpiresAt)
	if err != nil {
		host.StageRemove(diskID(id), diskID(up.ID))
		b.settle(id, length, 0)
		return Upload{}, err
	}
	if length == 0 {
		// Nothing will be appended: complete it now.
		return b.completeUpload(ctx, up)
	}
	return up, nil
}

// upload finds an upload by id and checks its token in constant time.
func (b *Bridge) upload(ctx context.Context, id, token string) (Upload, *vfolder.Host, error) {
	if !isUUID(id) {
		return Upload{}, nil, notFound("upload", id)
	}
	var up Upload
	var hash []byte
	var host string
	err := b.db.QueryRow(ctx, `SELECT x.id::text, x.vfolder_id::text, x.path, x.length, x.expires_at, x.token_hash, x.user_id, u.uid, v.host
		FROM vfolder_uploads x JOIN users u ON u.id = x.user_id JOIN vfolders v ON v.id = x.vfolder_id WHERE x.id = $1`, id).
		Scan(&up.ID, &up.VFolderID, &up.Path, &up.Length, &up.ExpiresAt, &hash, &up.userID, &up.uid, &host)
	got := sha256.Sum256([]byte(token))
	if err != nil || subtle.ConstantTimeCompare(got[:], hash) != 1 {
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return Upload{}, nil, err
		}
		return Upload{}, nil, notFound("upload", id)
	}
	if b.now().After(up.ExpiresAt) {
		return Upload{}, nil, notFound("upload (expired)", id)
	}
	h, err := b.vhost(host)
	if err != nil {
		return Upload{}, nil, err
	}
	up.Offset, err = h.StageSize(diskID(up.VFolderID), diskID(up.ID))
	if err != nil {
		return Upload{}, nil, fmt.Errorf("upload %s: staged bytes: %w", id, err)
	}
	return up, h, nil
}

// UploadStatus returns an upload's progress, for a client resuming it.
func (b *Bridge) UploadStatus(ctx context.Context, id, token string) (Upload, error) {
	up, _, err := b.upload(ctx, id, token)
	return up, err
}

// AppendUpload appends r's bytes at offset, up to the upload's length, and
// completes the upload (moves the file into place) when all have arrived.
// Bytes received before r fails are kept; the returned upload's Offset says
// where to resume.
func (b *Bridge) AppendUpload(ctx context.Context, id, token string, offset int64, r io.Reader) (Upload, error) {
	up, h, err := b.upload(ctx, id, token)
	if err != nil {
		return up, err
	}
	if offset != up.Offset {
		return up, conflict("Upload-Offset %d does not match the %d bytes received; resume from %d", offset, up.Offset, up.Offset)
	}
	n, err := h.StageAppend(diskID(up.VFolderID), diskID(up.ID), offset, r, up.Length-offset)
	up.Offset = n
	if errors.Is(err, vfolder.ErrOffset) {
		return up, conflict("%v", err)
	}
	if err != nil {
		return up, err
	}
	if up.Offset < up.Length {
		return up, nil
	}
	return b.completeUpload(ctx, up)
}

// completeUpload moves a fully received upload to its path, checking again
// that its user may still write there.
func (b *Bridge) completeUpload(ctx context.Context, up Upload) (Upload, error) {
	u, err := b.userByID(ctx, b.db, up.userID)
	if err != nil {
		return up, err
	}
	fsys, v, err := b.VFolderFiles(ctx, u.Actor(), up.VFolderID, FileWrite)
	if err != nil {
		return up, err
	}
	defer fsys.Close()
	host, _ := b.vhost(v.Host)
	// Replacing a file deletes it: without delete access the upload may
	// only create a new name (the rename refuses an existing one, so a
	// file appearing meanwhile is not replaced either).
	replace := accessRank[v.Access] >= accessRank[opNeeds[FileDelete]]
	var replaced int64
	if e, err := fsys.Stat(up.Path); err == nil && e.Type == "file" && replace {
		replaced = e.Size
	}
	if _, err := host.StageCommit(diskID(up.VFolderID), diskID(up.ID), fsys, up.Path, replace); err != nil {
		if !replace && errors.Is(err, fs.ErrExist) {
			return up, forbidden("%q exists already in vfolder %s; replacing a file needs %s access and you have %s: upload under another name, or cancel this upload",
				up.Path, v.Name, AccessRWDelete, v.Access)
		}
		return up, FileError(err, up.Path)
	}
	b.settle(up.VFolderID, up.Length, up.Length-replaced)
	_, err = b.db.Exec(ctx, `DELETE FROM vfolder_uploads WHERE id = $1`, up.ID)
	up.Offset = up.Length
	return up, err
}

// CancelUpload discards an unfinished upload and its reservation.
func (b *Bridge) CancelUpload(ctx context.Context, id, token string) error {
	up, h, err := b.upload(ctx, id, token)
	if err != nil {
		return err
	}
	tag, err := b.db.Exec(ctx, `DELETE FROM vfolder_uploads WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		b.settle(up.VFolderID, up.Length, 0)
	}
	return h.StageRemove(diskID(up.VFolderID), diskID(up.ID))
}

// --- session mounts -------------------------------------------------------------

// MountRequest asks for a folder in a session (the session request's
// mounts): VFolder by name (the caller's own folder first, then their
// projects', then those shared with them) or by id, at Target (default
// /home/work/<name>), read-only if ReadOnly.
type MountRequest = Mount

// ResolvedMount is a folder's directory on the host, where the session sees
// it, and whether it is read-only.
type ResolvedMount struct {
	VFolderID string `json:"vfolder_id"`
	Name      string `json:"name"`
	HostPath  string `json:"host_path"`
	Target    string `json:"target"`
	ReadOnly  bool   `json:"read_only"`
}

// MountBase is where folders appear in sessions.
const MountBase = "/home/work"

// ResolveMounts turns a session's mount requests into host paths, checking
// the actor may use each folder as asked. Asking to mount read-write a folder
// the actor may only read fails: a session never silently gets less than
// it asked for.
func (b *Bridge) ResolveMounts(ctx context.Context, a Actor, reqs []MountRequest) ([]ResolvedMount, error) {
	var visible []VFolder
	if len(reqs) > 0 {
		var err error
		if visible, err = b.VFolders(ctx, a, VFolderFilter{}); err != nil {
			return nil, err
		}
	}
	targets := map[string]string{}
	out := make([]ResolvedMount, 0, len(reqs))
	for i, r := range reqs {
		field := fmt.Sprintf("mounts[%d]", i)
		v, err := pickVFolder(visible, r.VFolder, field)
		if err != nil {
			return nil, err
		}
		target := r.Target
		if target == "" {
			target = path.Join(MountBase, v.Name)
		}
		clean := path.Clean(target)
		if !strings.HasPrefix(clean, MountBase+"/") || clean != target && clean+"/" != target {
			return nil, invalid(field+".target", "mount point %q must be a clean path under %s/, e.g. %s/%s", target, MountBase, MountBase, v.Name)
		}
		if prev, dup := targets[clean]; dup {
			return nil, invalid(field+".target", "mount point %s is already taken by vfolder %s", clean, prev)
		}
		for t, name := range targets {
			if strings.HasPrefix(t, clean+"/") || strings.HasPrefix(clean, t+"/") {
				return nil, invalid(field+".target", "mount point %s nests with %s (vfolder %s); give folders separate mount points", clean, t, name)
			}
		}
		targets[clean] = v.Name
		if v.Status != "ready" {
			return nil, conflict("vfolder %s is %s and cannot be mounted", v.Name, v.Status)
		}
		if accessRank[v.Access] < accessRank[AccessRW] && !r.ReadOnly {
			return nil, &Error{Kind: KindForbidden, Field: field + ".read_only",
				Message: fmt.Sprintf("vfolder %s is shared with you read-only; mount it with read_only: true", v.Name)}
		}
		host, err := b.vhost(v.Host)
		if err != nil {
			return nil, err
		}
		out = append(out, ResolvedMount{VFolderID: v.ID, Name: v.Name, HostPath: host.Path(diskID(v.ID)), Target: clean, ReadOnly: r.ReadOnly})
	}
	return out, nil
}

// pickVFolder finds a folder by id or name among those visible, preferring
// the caller's own, then project folders, then shared ones.
func pickVFolder(visible []VFolder, name, field string) (VFolder, error) {
	if name == "" {
		return VFolder{}, invalid(field+".vfolder", "%s needs the name or id of a vfolder", field)
	}
	var byKind [3][]VFolder
	for _, v := range visible {
		if v.ID == name {
			return v, nil
		}
		if v.Name != name {
			continue
		}
		switch {
		case v.OwnerKind == "user" && v.Access == AccessOwner:
			byKind[0] = append(byKind[0], v)
		case v.OwnerKind == "project":
			byKind[1] = append(byKind[1], v)
		default:
			byKind[2] = append(byKind[2], v)
		}
	}
	for _, vs := range byKind {
		switch len(vs) {
		case 0:
			continue
		case 1:
			return vs[0], nil
		}
		owners := make([]string, len(vs))
		for i, v := range vs {
			owners[i] = v.Owner + " (" + v.ID + ")"
		}
		return VFolder{}, invalid(field+".vfolder", "several vfolders named %s are visible to you: %s; give the id instead", name, strings.Join(owners, ", "))
	}
	return VFolder{}, &Error{Kind: KindNotFound, Field: field + ".vfolder", Message: fmt.Sprintf("no vfolder %q that you may use; list yours with GET /api/v1/vfolders", name)}
}

// --- maintenance --------------------------------------------------------------

// VFolderScanInterval is how often RunVFolderMaintenance rescans folders.
const VFolderScanInterval = 15 * time.Minute

// RunVFolderMaintenance keeps folders' recorded usage true and uploads'
// reservations honest until ctx ends: every interval it rescans each ready
// folder (counting what jobs wrote directly, which no API write saw) and
// discards expired uploads, releasing their staged bytes and reservations.
// A usage scan reads only metadata, in parallel per folder (package vfolder).
func (b *Bridge) RunVFolderMaintenance(ctx context.Context, interval time.Duration) {
	if len(b.cfg.VFolderHosts) == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := b.VFolderMaintenanceOnce(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("vfolder maintenance", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// VFolderMaintenanceOnce is one pass of [Bridge.RunVFolderMaintenance].
func (b *Bridge) VFolderMaintenanceOnce(ctx context.Context) error {
	rows, _ := b.db.Query(ctx, `SELECT x.id::text, x.vfolder_id::text, x.length, v.host FROM vfolder_uploads x
		JOIN vfolders v ON v.id = x.vfolder_id WHERE x.expires_at < now()`)
	type expired struct {
		id, folder string
		length     int64
		host       string
	}
	ups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (expired, error) {
		var e expired
		return e, r.Scan(&e.id, &e.folder, &e.length, &e.host)
	})
	if err != nil {
		return err
	}
	for _, e := range ups {
		tag, err := b.db.Exec(ctx, `DELETE FROM vfolder_uploads WHERE id = $1`, e.id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 { // another replica may have taken it
			b.settle(e.folder, e.length, 0)
			if h, err := b.vhost(e.host); err == nil {
				h.StageRemove(diskID(e.folder), diskID(e.id))
			}
		}
	}
	rows, _ = b.db.Query(ctx, `SELECT id::text, host FROM vfolders WHERE status = 'ready' ORDER BY scanned_at NULLS FIRST`)
	folders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var f [2]string
		return f, r.Scan(&f[0], &f[1])
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range folders {
		h, err := b.vhost(f[1])
		if err != nil {
			continue // a host no longer configured: its folders wait
		}
		u, err := h.Usage(ctx, diskID(f[0]))
		if err != nil {
			errs = append(errs, fmt.Errorf("vfolder %s: %w", f[0], err))
			continue
		}
		if _, err := b.db.Exec(ctx, `UPDATE vfolders SET usage_bytes = $2, scanned_at = now() WHERE id = $1`, f[0], u.Bytes); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}
