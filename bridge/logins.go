package bridge

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/puddle/v2"
)

// Portal logins: the server-side sessions behind the portal's cookie (only
// the cookie value's SHA-256 is stored, with its CSRF token, idle and
// absolute expiry), provisioning a user from an identity package sso
// vouched for, local password hashes, and OIDC logins in flight.
// Revocations are announced on a PostgreSQL channel, so every replica's app
// proxy can close what a logout ended (LoginRevocations).

// PortalSession is one browser's login.
type PortalSession struct {
	ID       string `json:"id"`
	UserID   int64  `json:"user_id"`
	Username string `json:"username"`
	Source   string `json:"source"` // "local", "ldap" or "oidc"
	// CSRFToken must come back in X-CSRF-Token on every state change.
	CSRFToken     string    `json:"-"`
	IDToken       string    `json:"-"` // OIDC only: the logout hint
	CreatedAt     time.Time `json:"created_at"`
	ExpiresAt     time.Time `json:"expires_at"`      // absolute
	IdleExpiresAt time.Time `json:"idle_expires_at"` // if unused until then
}

// NewPortalSession is what CreatePortalSession takes.
type NewPortalSession struct {
	UserID      int64
	Source      string
	IDToken     string
	IdleTimeout time.Duration
	Lifetime    time.Duration
}

// portalTokenPrefix marks cookie values, as tokenPrefix marks bearer tokens.
const portalTokenPrefix = "sgp_"

// CreatePortalSession logs a user in: it returns the cookie value (shown
// once; only its hash is kept) and the session.
func (b *Bridge) CreatePortalSession(ctx context.Context, ns NewPortalSession) (token string, s PortalSession, err error) {
	if ns.IdleTimeout <= 0 || ns.Lifetime <= 0 {
		return "", PortalSession{}, invalid("timeout", "portal sessions need an idle timeout and a lifetime")
	}
	token = portalTokenPrefix + rand.Text() + rand.Text() // 256 bits
	csrf := rand.Text() + rand.Text()
	now := b.now().Truncate(time.Microsecond)
	err = b.db.QueryRow(ctx, `INSERT INTO portal_sessions (token_hash, user_id, csrf_token, source, id_token,
			created_at, last_seen_at, idle_timeout_s, expires_at)
		SELECT $1, u.id, $3, $4, $5, $6, $6, $7, $8 FROM users u WHERE u.id = $2
		RETURNING id::text, (SELECT username FROM users WHERE id = $2)`,
		tokenHash(token), ns.UserID, csrf, ns.Source, ns.IDToken, now, int64(ns.IdleTimeout.Seconds()), now.Add(ns.Lifetime)).
		Scan(&s.ID, &s.Username)
	if err != nil {
		return "", PortalSession{}, dbError(err, fmt.Sprintf("portal session of user %d", ns.UserID))
	}
	s.UserID, s.Source, s.CSRFToken, s.IDToken = ns.UserID, ns.Source, csrf, ns.IDToken
	s.CreatedAt, s.ExpiresAt = now, now.Add(ns.Lifetime)
	s.IdleExpiresAt = earlier(now.Add(ns.IdleTimeout), s.ExpiresAt)
	// Sessions a day past their end only keep the table large.
	if _, err := b.db.Exec(ctx, `DELETE FROM portal_sessions WHERE user_id = $1 AND expires_at < now() - interval '1 day'`, ns.UserID); err != nil {
		b.log.Warn("purging old portal sessions", "user_id", ns.UserID, "err", err)
	}
	return token, s, nil
}

// ActorForPortalSession returns the actor a portal cookie acts as, and its
// session. An unknown, revoked, idle-expired or expired session is not
// found; one whose user is not active is forbidden. Use extends the idle
// expiry, written at most once per tenth of the idle timeout so that a busy
// portal costs no row churn: the idle timeout is honoured to within 10%.
func (b *Bridge) ActorForPortalSession(ctx context.Context, token string) (Actor, PortalSession, error) {
	if !strings.HasPrefix(token, portalTokenPrefix) {
		return Actor{}, PortalSession{}, &Error{Kind: KindNotFound, Message: "not a Slurmgate portal session; log in again"}
	}
	var s PortalSession
	var lastSeen time.Time
	var idleS int64
	var revoked *time.Time
	var owner credentialOwner
	err := b.db.QueryRow(ctx, `
		SELECT p.id::text, p.source, p.csrf_token, p.id_token, p.created_at, p.last_seen_at, p.idle_timeout_s, p.expires_at, p.revoked_at,
		       `+credentialOwnerCols+`
		FROM portal_sessions p JOIN users u ON u.id = p.user_id JOIN domains d ON d.id = u.domain_id
		WHERE p.token_hash = $1`, tokenHash(token)).
		Scan(append([]any{&s.ID, &s.Source, &s.CSRFToken, &s.IDToken, &s.CreatedAt, &lastSeen, &idleS, &s.ExpiresAt, &revoked}, owner.dest()...)...)
	now := b.now()
	idle := time.Duration(idleS) * time.Second
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Actor{}, PortalSession{}, &Error{Kind: KindNotFound, Message: "unknown portal session; log in again"}
	case err != nil:
		return Actor{}, PortalSession{}, err
	case revoked != nil:
		return Actor{}, PortalSession{}, &Error{Kind: KindNotFound, Message: "this portal session was logged out at " + revoked.UTC().Format(time.RFC3339) + "; log in again"}
	case !now.Before(s.ExpiresAt):
		return Actor{}, PortalSession{}, &Error{Kind: KindNotFound, Message: "this portal session ended at " + s.ExpiresAt.UTC().Format(time.RFC3339) + " (sessions last at most " + s.ExpiresAt.Sub(s.CreatedAt).String() + "); log in again"}
	case !now.Before(lastSeen.Add(idle)):
		return Actor{}, PortalSession{}, &Error{Kind: KindNotFound, Message: "this portal session was unused for " + idle.String() + " and has ended; log in again"}
	}
	a, err := owner.check()
	if err != nil {
		return Actor{}, PortalSession{}, err
	}
	if now.Sub(lastSeen) > idle/10 {
		if _, err := b.db.Exec(ctx, `UPDATE portal_sessions SET last_seen_at = $2 WHERE token_hash = $1`, tokenHash(token), now); err != nil {
			b.log.Warn("recording portal session use", "session", s.ID, "err", err)
		} else {
			lastSeen = now
		}
	}
	s.UserID, s.Username = a.UserID, a.Username
	s.IdleExpiresAt = earlier(lastSeen.Add(idle), s.ExpiresAt)
	return a, s, nil
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// RevokePortalSession logs a portal session out (the cookie's holder
// logging out). Revoking twice is not an error.
func (b *Bridge) RevokePortalSession(ctx context.Context, token string) error {
	_, err := b.revokePortalSessions(ctx, `token_hash = $1`, tokenHash(token))
	return err
}

// RevokeUserPortalSessions logs all of a user's portal sessions out: users
// may do it to their own, admins to those of users they manage. It returns
// how many were live.
func (b *Bridge) RevokeUserPortalSessions(ctx context.Context, a Actor, userID int64) (int, error) {
	if _, err := b.manageCredentials(ctx, a, userID); err != nil {
		return 0, err
	}
	return b.revokePortalSessions(ctx, `user_id = $1`, userID)
}

// loginRevokedChannel carries a LoginRevocation as JSON for every revoked
// portal session, to every replica.
const loginRevokedChannel = "slurmgate_login_revoked"

func (b *Bridge) revokePortalSessions(ctx context.Context, where string, arg any) (int, error) {
	var n int
	// The notification is sent at commit, so no replica hears of a
	// revocation that did not happen.
	err := b.db.QueryRow(ctx, `
		WITH revoked AS (
			UPDATE portal_sessions SET revoked_at = now()
			WHERE `+where+` AND revoked_at IS NULL AND expires_at > now()
			RETURNING id, user_id)
		SELECT count(*) FROM (SELECT pg_notify($2, json_build_object('session_id', id::text, 'user_id', user_id)::text) FROM revoked) n`,
		arg, loginRevokedChannel).Scan(&n)
	return n, err
}

// LoginRevocation says that a portal session ended before its time.
type LoginRevocation struct {
	SessionID string `json:"session_id"` // PortalSession.ID; empty when Resync is set
	UserID    int64  `json:"user_id"`
	// Resync means revocations may have been missed (the database
	// connection was re-established): recheck every open connection's
	// session with ActorForPortalSession.
	Resync bool `json:"-"`
}

// LoginRevocations delivers every portal session revocation (logout, an
// admin's revocation), made on any gateway replica, within milliseconds of
// its commit, until ctx ends; the channel is then closed. It is for code
// holding connections open on a portal session's authority (the app proxy's
// WebSockets, terminals), which must close them. Expiry is not announced:
// such code knows PortalSession.ExpiresAt and checks the idle expiry itself.
//
// Each call holds one database connection in LISTEN, so call it once per
// process and fan out. The connection is taken out of the pool, so it never
// keeps the pool from closing; once the pool is closed and the connection
// lost, the channel is closed too. A slow reader delays its own
// deliveries, never the bridge; PostgreSQL queues notifications meanwhile.
func (b *Bridge) LoginRevocations(ctx context.Context) <-chan LoginRevocation {
	ch := make(chan LoginRevocation, 64)
	ready := make(chan struct{})
	go func() {
		defer close(ch)
		backoff := 100 * time.Millisecond
		for first := true; ctx.Err() == nil; first = false {
			if !first {
				select {
				case ch <- LoginRevocation{Resync: true}:
				case <-ctx.Done():
					return
				}
			}
			err := b.listenRevocations(ctx, ch, ready)
			if ctx.Err() != nil || errors.Is(err, puddle.ErrClosedPool) {
				return
			}
			b.log.Warn("login revocations: listening failed; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	// Returning once LISTEN is in place means no revocation committed after
	// this call is missed.
	select {
	case <-ready:
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	return ch
}

func (b *Bridge) listenRevocations(ctx context.Context, ch chan<- LoginRevocation, ready chan struct{}) error {
	pc, err := b.db.Acquire(ctx)
	if err != nil {
		return err
	}
	// Hijacked: held for as long as the subscriber lives, it must not keep
	// the pool from closing, and having LISTENed it goes back to no pool.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+loginRevokedChannel); err != nil {
		return err
	}
	select {
	case <-ready:
	default:
		close(ready)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var r LoginRevocation
		if err := json.Unmarshal([]byte(n.Payload), &r); err != nil {
			b.log.Warn("login revocations: malformed notification", "payload", n.Payload, "err", err)
			continue
		}
		select {
		case ch <- r:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// --- provisioning -------------------------------------------------------------

// LoginIdentity is a person package sso authenticated and resolved to a
// POSIX account, as the bridge needs it.
type LoginIdentity struct {
	Username string
	UID      int
	Email    string
	FullName string
	Source   string
	// Subject is who the source says this is, independent of the name:
	// the LDAP entry's DN or the OIDC "sub". ProvisionLogin binds a user to
	// the first one per source (see bindSubject); local logins have none.
	Subject string
	// Projects are "domain/project" paths with a project role, from the
	// directory's groups.
	Projects []LoginGrant
	// ProvisionDomain is where to create a user seen for the first time;
	// empty means only existing users may log in.
	ProvisionDomain string
}

// LoginGrant is a project role a login's groups give.
type LoginGrant struct {
	Project string // "domain/project"
	Role    string // "member" or "project-admin"
}

// ProvisionLogin returns the Slurmgate user for an identity, creating it in
// ProvisionDomain on first login, updating e-mail and name, and adding the
// memberships its groups grant. Grants only add or raise a role: a
// membership an admin gave is never lowered or removed here. Grants naming
// a project that does not exist, or one in another domain, are skipped and
// returned as notes for the log.
func (b *Bridge) ProvisionLogin(ctx context.Context, id LoginIdentity) (u User, notes []string, err error) {
	changed := false
	err = pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		notes, changed = nil, false
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userCols+` FROM users u JOIN domains d ON d.id = u.domain_id
			WHERE u.username = $1 FOR UPDATE OF u`, id.Username))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if u, err = b.provisionUser(ctx, tx, id); err != nil {
				return err
			}
			changed = true
		case err != nil:
			return err
		default:
			if u.UID != id.UID {
				return forbidden("Slurmgate user %s has uid %d but the POSIX account has uid %d: an administrator must correct the user before %s can log in", u.Username, u.UID, id.UID, u.Username)
			}
			if u.Status != "active" {
				return forbidden("Slurmgate user %s is %s; ask an administrator of domain %s", u.Username, u.Status, u.Domain)
			}
			var active bool
			if err := tx.QueryRow(ctx, `SELECT active FROM domains WHERE id = $1`, u.DomainID).Scan(&active); err != nil {
				return err
			}
			if !active {
				return forbidden("domain %s of user %s is inactive", u.Domain, u.Username)
			}
			if _, err := tx.Exec(ctx, `UPDATE users SET email = CASE WHEN $2 = '' THEN email ELSE $2 END,
				full_name = CASE WHEN $3 = '' THEN full_name ELSE $3 END, updated_at = now()
				WHERE id = $1 AND ((email <> $2 AND $2 <> '') OR (full_name <> $3 AND $3 <> ''))`, u.ID, id.Email, id.FullName); err != nil {
				return dbError(err, "user "+u.Username)
			}
		}
		if err := b.bindSubject(ctx, tx, u, id); err != nil {
			return err
		}
		for _, g := range id.Projects {
			domain, name, _ := strings.Cut(g.Project, "/")
			if domain != u.Domain {
				notes = append(notes, fmt.Sprintf("group grant %s skipped: user %s is in domain %s", g.Project, u.Username, u.Domain))
				continue
			}
			role := g.Role
			if role != "project-admin" {
				role = "member"
			}
			tag, err := tx.Exec(ctx, `INSERT INTO memberships (project_id, user_id, role)
				SELECT p.id, $3, $4 FROM projects p WHERE p.domain_id = $1 AND p.name = $2
				ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role
				WHERE memberships.role = 'member' AND EXCLUDED.role = 'project-admin'`, u.DomainID, name, u.ID, role)
			if err != nil {
				return err
			}
			if tag.RowsAffected() > 0 {
				changed = true
				continue
			}
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM projects WHERE domain_id = $1 AND name = $2)`, u.DomainID, name).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				notes = append(notes, fmt.Sprintf("group grant %s skipped: no such project", g.Project))
			}
		}
		return nil
	})
	if err != nil {
		return User{}, nil, err
	}
	if changed {
		b.notifyOrgChange()
	}
	u, err = b.userByID(ctx, b.db, u.ID)
	return u, notes, err
}

// bindSubject ties an LDAP or OIDC login's user to the subject (DN, OIDC
// "sub") of their first login through that source, and refuses a later one
// from another subject: the name alone says nothing about who logs in (two
// provider accounts can both claim preferred_username=alice). A subject
// already bound to another user is refused too. Local logins, checked
// against a password the user set, bind nothing.
func (b *Bridge) bindSubject(ctx context.Context, tx pgx.Tx, u User, id LoginIdentity) error {
	if id.Source != "ldap" && id.Source != "oidc" {
		return nil
	}
	if id.Subject == "" {
		return forbidden("the %s login of %s names no subject to tie the account to; refused", id.Source, u.Username)
	}
	var bound, owner string
	err := tx.QueryRow(ctx, `SELECT subject FROM sso_subjects WHERE user_id = $1 AND source = $2`, u.ID, id.Source).Scan(&bound)
	switch {
	case err == nil && bound == id.Subject:
		return nil
	case err == nil:
		b.log.Warn("login refused: another subject claims a bound user", "user", u.Username, "source", id.Source, "bound", bound, "subject", id.Subject)
		return forbidden("Slurmgate user %s is tied to another %s account than the one you logged in with (%s): ask an administrator; if the account really changed, they remove the old tie (sso_subjects)", u.Username, id.Source, id.Subject)
	case !errors.Is(err, pgx.ErrNoRows):
		return err
	}
	err = tx.QueryRow(ctx, `SELECT u.username FROM sso_subjects s JOIN users u ON u.id = s.user_id
		WHERE s.source = $1 AND s.subject = $2`, id.Source, id.Subject).Scan(&owner)
	if err == nil {
		return forbidden("this %s account (%s) is already tied to Slurmgate user %s and cannot log in as %s: ask an administrator", id.Source, id.Subject, owner, u.Username)
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sso_subjects (user_id, source, subject) VALUES ($1, $2, $3)`, u.ID, id.Source, id.Subject); err != nil {
		return dbError(err, fmt.Sprintf("the %s subject of user %s", id.Source, u.Username))
	}
	b.log.Info("user tied to their first login's subject", "user", u.Username, "source", id.Source, "subject", id.Subject)
	return nil
}

func (b *Bridge) provisionUser(ctx context.Context, tx pgx.Tx, id LoginIdentity) (User, error) {
	if id.ProvisionDomain == "" {
		return User{}, forbidden("%s has no Slurmgate account, and this gateway creates none on first login (sso.provision_domain is empty): an administrator must add user %s (uid %d)", id.Username, id.Username, id.UID)
	}
	var domainID int64
	var active bool
	err := tx.QueryRow(ctx, `SELECT id, active FROM domains WHERE name = $1`, id.ProvisionDomain).Scan(&domainID, &active)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !active) {
		return User{}, forbidden("new users are provisioned into domain %s, which does not exist or is inactive: an administrator must create it or change sso.provision_domain", id.ProvisionDomain)
	} else if err != nil {
		return User{}, err
	}
	var other string
	if err := tx.QueryRow(ctx, `SELECT username FROM users WHERE uid = $1`, id.UID).Scan(&other); err == nil {
		return User{}, forbidden("uid %d of %s already belongs to Slurmgate user %s: an administrator must correct one of them", id.UID, id.Username, other)
	}
	var uid int64
	if err := tx.QueryRow(ctx, `INSERT INTO users (username, uid, email, full_name, domain_id, role)
		VALUES ($1, $2, $3, $4, $5, 'user') RETURNING id`, id.Username, id.UID, id.Email, id.FullName, domainID).Scan(&uid); err != nil {
		return User{}, dbError(err, fmt.Sprintf("user %s (uid %d)", id.Username, id.UID))
	}
	b.log.Info("provisioned user on first login", "user", id.Username, "uid", id.UID, "domain", id.ProvisionDomain, "source", id.Source)
	return b.userByID(ctx, tx, uid)
}

// --- local passwords -----------------------------------------------------------

// SetLocalPassword stores a local password hash (package sso makes it) for
// a user: superadmins for anyone, users for themselves. An empty hash
// removes the local password.
func (b *Bridge) SetLocalPassword(ctx context.Context, a Actor, userID int64, hash string) error {
	if a.UserID != userID {
		if err := requireSuperadmin(a, "set other users' local passwords"); err != nil {
			return err
		}
	}
	if _, err := b.userByID(ctx, b.db, userID); err != nil {
		return err
	}
	var err error
	if hash == "" {
		_, err = b.db.Exec(ctx, `DELETE FROM local_passwords WHERE user_id = $1`, userID)
	} else {
		_, err = b.db.Exec(ctx, `INSERT INTO local_passwords (user_id, hash) VALUES ($1, $2)
			ON CONFLICT (user_id) DO UPDATE SET hash = EXCLUDED.hash, updated_at = now()`, userID, hash)
	}
	return err
}

// LocalPasswordHash returns a user's local password hash and uid; a user
// without one (or unknown) is not found.
func (b *Bridge) LocalPasswordHash(ctx context.Context, username string) (hash string, uid int, err error) {
	err = b.db.QueryRow(ctx, `SELECT l.hash, u.uid FROM local_passwords l JOIN users u ON u.id = l.user_id
		WHERE u.username = $1`, username).Scan(&hash, &uid)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, notFound("local password of user", username)
	}
	return hash, uid, err
}

// --- OIDC logins in flight ----------------------------------------------------

// OIDCFlow is an OIDC authorization request between the redirect to the
// provider and the callback.
type OIDCFlow struct {
	State, Nonce, Verifier string
	ReturnTo               string // a path on this gateway
}

// SaveOIDCFlow keeps a flow for ttl.
func (b *Bridge) SaveOIDCFlow(ctx context.Context, f OIDCFlow, ttl time.Duration) error {
	if _, err := b.db.Exec(ctx, `INSERT INTO oidc_flows (state, nonce, verifier, return_to, expires_at) VALUES ($1, $2, $3, $4, $5)`,
		f.State, f.Nonce, f.Verifier, f.ReturnTo, b.now().Add(ttl)); err != nil {
		return fmt.Errorf("storing the OIDC login: %w", err)
	}
	if _, err := b.db.Exec(ctx, `DELETE FROM oidc_flows WHERE expires_at < now()`); err != nil {
		b.log.Warn("purging stale OIDC logins", "err", err)
	}
	return nil
}

// TakeOIDCFlow returns a flow and deletes it, so each is used at most once.
// An unknown, used or expired state is not found.
func (b *Bridge) TakeOIDCFlow(ctx context.Context, state string) (OIDCFlow, error) {
	f := OIDCFlow{State: state}
	var expires time.Time
	err := b.db.QueryRow(ctx, `DELETE FROM oidc_flows WHERE state = $1 RETURNING nonce, verifier, return_to, expires_at`, state).
		Scan(&f.Nonce, &f.Verifier, &f.ReturnTo, &expires)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !b.now().Before(expires)) {
		return OIDCFlow{}, &Error{Kind: KindNotFound, Message: "this login is unknown, was already completed, or took too long; start the login again"}
	}
	return f, err
}
