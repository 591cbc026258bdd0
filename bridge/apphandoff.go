package bridge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// App handoffs: the login that carries a person from the portal's origin to
// an app's own origin in subdomain mode ({app}--{session}.<apps_domain>),
// where the portal's host-only cookie is never sent. The portal's origin
// mints a one-time code for one app host (CreateAppHandoff); the app host
// redeems it (RedeemAppHandoff) for an app credential that authenticates
// requests to that host only (ActorForAppCredential) and ends with the
// portal login it came from. Codes and credentials are random and only
// their SHA-256 is stored.

const (
	// AppHandoffTTL is how long a code may wait to be redeemed: the browser
	// follows the redirect at once.
	AppHandoffTTL = 60 * time.Second
	// MaxAppCredentialTTL bounds an app credential that no portal login
	// bounds (one minted for a bearer token or keypair caller).
	MaxAppCredentialTTL = 12 * time.Hour

	appCodePrefix  = "sgh_"
	appTokenPrefix = "sga_"
)

// AppHandoff is what a code is bound to.
type AppHandoff struct {
	// PortalSessionID is the portal login that asked (PortalSession.ID),
	// or "" when the caller used a bearer token or keypair.
	PortalSessionID string
	SessionID       string
	// AppHost is the app's host name, without port: "web--<id>.apps.example.org".
	AppHost string
	// Until is the latest the credential may live (a bearer token's
	// expiry); zero means MaxAppCredentialTTL from redemption. A portal
	// login's end bounds it anyway.
	Until time.Time
}

// AppCredential is an app host's credential, as resolved for a request.
type AppCredential struct {
	ID              string
	SessionID       string
	AppHost         string
	PortalSessionID string    // "" when no portal login bounds it
	ExpiresAt       time.Time // the credential's or its portal login's end, whichever is sooner
	// IdleExpiresAt is its portal login's idle expiry (zero when none):
	// using the app counts as using the login, so asking again then may
	// find it moved.
	IdleExpiresAt time.Time
}

// CreateAppHandoff mints a one-time code, valid for AppHandoffTTL, that the
// app host h.AppHost redeems for a credential acting as a. a must be allowed
// to use the session the way UseSession allows (its owner only; an admin
// who may see it is forbidden, everyone else does not find it).
func (b *Bridge) CreateAppHandoff(ctx context.Context, a Actor, h AppHandoff) (code string, err error) {
	if h.AppHost == "" || strings.ContainsAny(h.AppHost, ":/ ") {
		return "", invalid("to", "app host %q is not a host name", h.AppHost)
	}
	s, err := b.Session(ctx, a, h.SessionID)
	if err != nil {
		return "", err
	}
	if s.userID != a.UserID {
		return "", forbidden("only the owner (%s) uses session %s's apps, terminals and commands; admins may see and end it", s.Owner, h.SessionID)
	}
	if !s.State.Live() || s.State == StateTerminating {
		return "", conflict("session %s is %s", h.SessionID, s.State)
	}
	now := b.now()
	until := now.Add(MaxAppCredentialTTL)
	if !h.Until.IsZero() && h.Until.Before(until) {
		until = h.Until
	}
	var portal *string
	if h.PortalSessionID != "" {
		portal = &h.PortalSessionID
	}
	code = appCodePrefix + rand.Text() + rand.Text()
	if _, err := b.db.Exec(ctx, `INSERT INTO app_handoffs (code_hash, user_id, portal_session_id, session_id, app_host, credential_until, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		tokenHash(code), a.UserID, portal, h.SessionID, strings.ToLower(h.AppHost), until, now.Add(AppHandoffTTL)); err != nil {
		return "", dbError(err, "app handoff for session "+h.SessionID)
	}
	// Codes nobody redeemed only keep the table large.
	if _, err := b.db.Exec(ctx, `DELETE FROM app_handoffs WHERE expires_at < now() - interval '1 minute'`); err != nil {
		b.log.Warn("purging stale app handoffs", "err", err)
	}
	return code, nil
}

// errHandoffRefused is the one answer to a code that does not work: which
// of unknown, used, expired or another host's it was helps nobody but a
// guesser.
var errHandoffRefused = &Error{Kind: KindForbidden, Message: "this app login link is unknown, was already used, has expired, or is for another app; open the app again from the portal"}

// RedeemAppHandoff takes a code once, on the app host it was minted for
// (host without port), and returns a new app credential's token (shown
// once) and the credential. An unknown, used or expired code, one for
// another host, or one whose portal login has since ended is forbidden.
func (b *Bridge) RedeemAppHandoff(ctx context.Context, code, host string) (token string, c AppCredential, err error) {
	if !strings.HasPrefix(code, appCodePrefix) {
		return "", AppCredential{}, errHandoffRefused
	}
	host = strings.ToLower(host)
	var h AppHandoff
	var userID int64
	var portal *string
	var expires time.Time
	// Deleted in its own statement whatever follows: a code is tried once,
	// and of two redemptions racing, one finds nothing.
	err = b.db.QueryRow(ctx, `DELETE FROM app_handoffs WHERE code_hash = $1
		RETURNING user_id, portal_session_id::text, session_id::text, app_host, credential_until, expires_at`, tokenHash(code)).
		Scan(&userID, &portal, &h.SessionID, &h.AppHost, &h.Until, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "", AppCredential{}, errHandoffRefused
	case err != nil:
		return "", AppCredential{}, err
	case !b.now().Before(expires) || h.AppHost != host:
		return "", AppCredential{}, errHandoffRefused
	}
	token = appTokenPrefix + rand.Text() + rand.Text()
	if _, err := b.db.Exec(ctx, `INSERT INTO app_credentials (token_hash, user_id, portal_session_id, session_id, app_host, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		tokenHash(token), userID, portal, h.SessionID, h.AppHost, h.Until); err != nil {
		return "", AppCredential{}, dbError(err, "app credential for session "+h.SessionID)
	}
	// The new credential must work now: its portal login may have ended
	// between the code's minting and its redemption.
	if _, c, err = b.ActorForAppCredential(ctx, token, host); err != nil {
		if KindOf(err) == KindNotFound {
			err = errHandoffRefused
		}
		return "", AppCredential{}, err
	}
	if _, err := b.db.Exec(ctx, `DELETE FROM app_credentials WHERE expires_at < now() - interval '1 day'`); err != nil {
		b.log.Warn("purging expired app credentials", "err", err)
	}
	return token, c, nil
}

// ActorForAppCredential returns the actor an app credential acts as on
// host (without port), and the credential. One that is unknown, expired,
// for another host, or whose portal login is revoked or ended is not
// found; one whose user is not active is forbidden. Like a portal cookie,
// its use keeps its portal login from idling out.
func (b *Bridge) ActorForAppCredential(ctx context.Context, token, host string) (Actor, AppCredential, error) {
	if !strings.HasPrefix(token, appTokenPrefix) {
		return Actor{}, AppCredential{}, &Error{Kind: KindNotFound, Message: "not a Slurmgate app credential; open the app from the portal"}
	}
	var c AppCredential
	var portal *string
	var pRevoked, pExpires, pLastSeen *time.Time
	var pIdleS *int64
	var owner credentialOwner
	err := b.db.QueryRow(ctx, `
		SELECT c.id::text, c.session_id::text, c.app_host, c.expires_at, c.portal_session_id::text,
		       p.revoked_at, p.expires_at, p.last_seen_at, p.idle_timeout_s, `+credentialOwnerCols+`
		FROM app_credentials c JOIN users u ON u.id = c.user_id JOIN domains d ON d.id = u.domain_id
		LEFT JOIN portal_sessions p ON p.id = c.portal_session_id
		WHERE c.token_hash = $1`, tokenHash(token)).
		Scan(append([]any{&c.ID, &c.SessionID, &c.AppHost, &c.ExpiresAt, &portal, &pRevoked, &pExpires, &pLastSeen, &pIdleS}, owner.dest()...)...)
	now := b.now()
	gone := func(why string) (Actor, AppCredential, error) {
		return Actor{}, AppCredential{}, &Error{Kind: KindNotFound, Message: why + "; open the app again from the portal"}
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return gone("unknown app credential")
	case err != nil:
		return Actor{}, AppCredential{}, err
	case c.AppHost != strings.ToLower(host):
		return gone(fmt.Sprintf("this app credential is for %s, not %s", c.AppHost, host))
	case !now.Before(c.ExpiresAt):
		return gone("this app credential expired at " + c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if portal != nil {
		c.PortalSessionID = *portal
		if pExpires == nil {
			return gone("the portal login this app credential came from has ended")
		}
		idle := time.Duration(*pIdleS) * time.Second
		switch {
		case pRevoked != nil:
			return gone("the portal login this app credential came from was logged out at " + pRevoked.UTC().Format(time.RFC3339))
		case !now.Before(*pExpires):
			return gone("the portal login this app credential came from ended at " + pExpires.UTC().Format(time.RFC3339))
		case !now.Before(pLastSeen.Add(idle)):
			return gone("the portal login this app credential came from was unused for " + idle.String() + " and has ended")
		}
		lastSeen := *pLastSeen
		if now.Sub(lastSeen) > idle/10 {
			if _, err := b.db.Exec(ctx, `UPDATE portal_sessions SET last_seen_at = $2 WHERE id = $1`, c.PortalSessionID, now); err != nil {
				b.log.Warn("recording portal session use", "session", c.PortalSessionID, "err", err)
			} else {
				lastSeen = now
			}
		}
		c.ExpiresAt = earlier(c.ExpiresAt, *pExpires)
		c.IdleExpiresAt = earlier(lastSeen.Add(idle), c.ExpiresAt)
	}
	a, err := owner.check()
	if err != nil {
		return Actor{}, AppCredential{}, err
	}
	return a, c, nil
}
