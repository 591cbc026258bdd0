package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/sso"
)

// Portal login: a password (local account or LDAP) or OpenID Connect
// authenticates a person through package sso; the bridge provisions their
// user and a server-side portal session, whose token travels in an
// HttpOnly, SameSite=Lax cookie (Secure under TLS). The session's CSRF token
// is returned in the body, never in a cookie, and must come back in the
// X-CSRF-Token header on every state-changing request that the cookie
// authenticates (auth.go).

const (
	sessionCookie = "sg_session"
	// oidcStateCookie binds an OIDC login to the browser that started it:
	// a callback whose state is not this browser's is refused, so nobody
	// can log a victim in as themselves with a link.
	oidcStateCookie = "sg_oidc_state"
	oidcCookiePath  = "/api/v1/auth/oidc/"
	csrfHeader      = "X-CSRF-Token"
	// oidcFlowTTL is how long a person may take at the provider's login page.
	oidcFlowTTL = 10 * time.Minute
)

func (s *Server) loginRoutes() []route {
	return []route{
		{method: "POST", pattern: "/api/v1/auth/login", summary: "Log in to the portal with a user name and password (local account, then LDAP); sets the session cookie",
			access: public, handler: s.passwordLogin, request: loginRequest{}, response: portalSessionResponse{}},
		{method: "GET", pattern: "/api/v1/auth/oidc/login", summary: "Start an OpenID Connect login: redirects to the identity provider",
			access: public, handler: s.oidcLogin, status: http.StatusFound,
			query: []param{{"return_to", "string", "a path on this gateway to land on after login; / when absent"}}},
		{method: "GET", pattern: "/api/v1/auth/oidc/callback", summary: "Where the identity provider returns the browser; sets the session cookie and redirects",
			access: public, handler: s.oidcCallback, status: http.StatusSeeOther,
			query: []param{{"state", "string", "the login's state"}, {"code", "string", "the authorization code"},
				{"error", "string", "the provider's error, when it refused"}}},
		{method: "POST", pattern: "/api/v1/auth/logout", summary: "End the caller's portal session (and say where to end the identity provider's)",
			access: authenticated, handler: s.logout, response: logoutResponse{}},
		{method: "GET", pattern: "/api/v1/auth/session", summary: "The caller's portal session: user, CSRF token and expiry",
			access: authenticated, handler: s.portalSession, response: portalSessionResponse{}},
		{method: "GET", pattern: "/api/v1/auth/providers", summary: "The ways to log in that this gateway offers, for the login page",
			access: public, handler: s.loginProviders, response: sso.Providers{}},
	}
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type portalSessionResponse struct {
	User bridge.User `json:"user"`
	// Auth is how this request authenticated: "cookie", "keypair" or "token".
	Auth string `json:"auth"`
	// The fields below describe a portal session; empty for other credentials.
	Source        string     `json:"source,omitempty"`
	CSRFToken     string     `json:"csrf_token,omitempty"`
	ExpiresAt     *time.Time `json:"expires_at,omitempty"`
	IdleExpiresAt *time.Time `json:"idle_expires_at,omitempty"`
}

type logoutResponse struct {
	// LogoutURL, when set, ends the identity provider's session too
	// (RP-initiated logout): the portal sends the browser there.
	LogoutURL string `json:"logout_url,omitempty"`
}

func (s *Server) passwordLogin(w http.ResponseWriter, r *http.Request) {
	var in loginRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	// One spelling per user: " alice" and "Alice" are alice, for the
	// directory and for the throttle's count alike.
	in.Username = strings.ToLower(strings.TrimSpace(in.Username))
	if in.Username == "" || in.Password == "" {
		p := invalidRequest.with("give a username and a password")
		p.Field = "username"
		writeProblem(w, r, p)
		return
	}
	if !sso.IsPOSIXName(in.Username) {
		// Such a name can have no POSIX account to log in as; refusing it
		// here keeps it away from the directory.
		p := invalidRequest.with("%q is not a user name (lower-case letters, digits, '_' and '-', at most 32)", in.Username)
		p.Field = "username"
		writeProblem(w, r, p)
		return
	}
	if s.sso == nil || !s.sso.Providers().Password {
		writeProblem(w, r, notFoundProblem.with("password login is not configured on this gateway (sso.local_accounts or [sso.ldap])"))
		return
	}
	if s.throttled(w, r, in.Username) {
		return
	}
	id, err := s.sso.Password(r.Context(), in.Username, in.Password)
	if err != nil {
		if sso.ReasonOf(err) != sso.BadCredentials {
			s.loginThrottle.done(in.Username, r, false)
		}
		s.loginRefused(w, r, err)
		return
	}
	s.loginThrottle.done(in.Username, r, true)
	ps, u, ok := s.startPortalSession(w, r, id, "")
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, sessionResponse(u, ps))
}

// loginRefused answers a login that package sso refused: the message is
// for the person, the cause goes to the log.
func (s *Server) loginRefused(w http.ResponseWriter, r *http.Request, err error) {
	var e *sso.Error
	if !errors.As(err, &e) {
		writeError(w, r, err)
		return
	}
	st := stateFrom(r.Context())
	st.logger().Warn("login refused", "reason", string(e.Reason), "err", err)
	switch e.Reason {
	case sso.BadCredentials, sso.Refused:
		writeProblem(w, r, unauthenticated.with("%s", e.Message))
	case sso.Locked, sso.NoPOSIXUser:
		writeProblem(w, r, forbiddenProblem.with("%s", e.Message))
	default:
		writeProblem(w, r, unavailable.with("%s", e.Message))
	}
}

// startPortalSession provisions the identity's user and opens a portal
// session with its cookie; otherwise it answers and returns false.
func (s *Server) startPortalSession(w http.ResponseWriter, r *http.Request, id sso.Identity, idToken string) (bridge.PortalSession, bridge.User, bool) {
	cfg := s.sso.Config()
	li := bridge.LoginIdentity{Username: id.Username, UID: id.UID, Email: id.Email, FullName: id.FullName,
		Source: id.Source, Subject: id.Subject, ProvisionDomain: cfg.ProvisionDomain}
	for _, g := range id.Projects {
		li.Projects = append(li.Projects, bridge.LoginGrant{Project: g.Project, Role: g.Role})
	}
	u, notes, err := s.b.ProvisionLogin(r.Context(), li)
	if err != nil {
		writeError(w, r, err)
		return bridge.PortalSession{}, bridge.User{}, false
	}
	// A new login replaces the browser's old session rather than leaving it
	// alive behind the new cookie.
	if old, err := r.Cookie(sessionCookie); err == nil && old.Value != "" {
		if err := s.b.RevokePortalSession(r.Context(), old.Value); err != nil {
			writeError(w, r, err)
			return bridge.PortalSession{}, bridge.User{}, false
		}
	}
	st := stateFrom(r.Context())
	for _, n := range notes {
		st.logger().Warn("login: "+n, "user", u.Username)
	}
	token, ps, err := s.b.CreatePortalSession(r.Context(), bridge.NewPortalSession{UserID: u.ID, Source: id.Source, IDToken: idToken,
		IdleTimeout: cfg.SessionIdleTimeout, Lifetime: cfg.SessionLifetime})
	if err != nil {
		writeError(w, r, err)
		return bridge.PortalSession{}, bridge.User{}, false
	}
	st.actor = u.Actor()
	st.cred = credential{method: "cookie", portal: &ps}
	// A session cookie (no Expires): closing the browser ends it too.
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", HttpOnly: true,
		Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
	return ps, u, true
}

// secureRequest: the cookie is Secure when the browser reached us over
// TLS, directly or through a TLS-terminating proxy that says so.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func sessionResponse(u bridge.User, ps bridge.PortalSession) portalSessionResponse {
	return portalSessionResponse{User: u, Auth: "cookie", Source: ps.Source, CSRFToken: ps.CSRFToken,
		ExpiresAt: &ps.ExpiresAt, IdleExpiresAt: &ps.IdleExpiresAt}
}

// safeReturnTo keeps post-login redirects on this gateway: a path with an
// optional query, never "//host" or "/\host" (which browsers read as
// another host), nor anything with a scheme, host or control character.
func safeReturnTo(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(v, "/") ||
		strings.HasPrefix(v, "//") || strings.ContainsAny(v, "\\\r\n\t") {
		return "/"
	}
	return v
}

func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	if s.sso == nil || s.sso.OIDC() == nil {
		writeProblem(w, r, notFoundProblem.with("OpenID Connect login is not configured on this gateway ([sso.oidc])"))
		return
	}
	if s.loginStartLimited(w, r) {
		return
	}
	authURL, f, err := s.sso.OIDC().Begin(r.Context())
	if err != nil {
		s.loginRefused(w, r, err)
		return
	}
	err = s.b.SaveOIDCFlow(r.Context(), bridge.OIDCFlow{State: f.State, Nonce: f.Nonce, Verifier: f.Verifier,
		ReturnTo: safeReturnTo(r.URL.Query().Get("return_to"))}, oidcFlowTTL)
	if err != nil {
		writeError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Value: f.State, Path: oidcCookiePath, MaxAge: int(oidcFlowTTL.Seconds()),
		HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, authURL, http.StatusFound)
}

func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	if s.sso == nil || s.sso.OIDC() == nil {
		writeProblem(w, r, notFoundProblem.with("OpenID Connect login is not configured on this gateway ([sso.oidc])"))
		return
	}
	q := r.URL.Query()
	state := q.Get("state")
	// The state cookie is single-use whatever happens next.
	http.SetCookie(w, &http.Cookie{Name: oidcStateCookie, Path: oidcCookiePath, MaxAge: -1, HttpOnly: true,
		Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
	var flow bridge.OIDCFlow
	var err error
	if state != "" {
		// Taken even when refused below, so a state is never tried twice.
		flow, err = s.b.TakeOIDCFlow(r.Context(), state)
	}
	if e := q.Get("error"); e != "" {
		detail := e
		if d := q.Get("error_description"); d != "" {
			detail += ": " + d
		}
		writeProblem(w, r, unauthenticated.with("the identity provider refused the login (%s)", detail))
		return
	}
	c, cerr := r.Cookie(oidcStateCookie)
	switch {
	case state == "" || cerr != nil || c.Value != state:
		writeProblem(w, r, unauthenticated.with("this login's state does not match the one this browser started: start the login again at /api/v1/auth/oidc/login (and do not follow login links from others)"))
		return
	case bridge.KindOf(err) == bridge.KindNotFound:
		writeProblem(w, r, unauthenticated.with("%v", err))
		return
	case err != nil:
		writeError(w, r, err)
		return
	}
	id, raw, err := s.sso.FinishOIDC(r.Context(), sso.Flow{State: flow.State, Nonce: flow.Nonce, Verifier: flow.Verifier}, state, q.Get("code"))
	if err != nil {
		s.loginRefused(w, r, err)
		return
	}
	if _, _, ok := s.startPortalSession(w, r, id, raw); !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, safeReturnTo(flow.ReturnTo), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	st := stateFrom(r.Context())
	if st.cred.method != "cookie" {
		writeProblem(w, r, invalidRequest.with("logout ends a portal session, and this request authenticated with a %s: revoke keypairs with DELETE /api/v1/keypairs/{access_key}; bearer tokens expire on their own", st.cred.method))
		return
	}
	c, _ := r.Cookie(sessionCookie)
	if err := s.b.RevokePortalSession(r.Context(), c.Value); err != nil {
		writeError(w, r, err)
		return
	}
	s.forget("cookie", c.Value) // other replicas hear of it (revocation.go)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
	var out logoutResponse
	if st.cred.portal.Source == "oidc" && s.sso != nil && s.sso.OIDC() != nil {
		out.LogoutURL = s.sso.OIDC().LogoutURL(st.cred.portal.IDToken)
	}
	writeJSON(w, r, http.StatusOK, out)
}

func (s *Server) portalSession(w http.ResponseWriter, r *http.Request) {
	st := stateFrom(r.Context())
	u, err := s.b.User(r.Context(), st.actor, st.actor.UserID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := portalSessionResponse{User: u, Auth: st.cred.method}
	if st.cred.portal != nil {
		out = sessionResponse(u, *st.cred.portal)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, r, http.StatusOK, out)
}

func (s *Server) loginProviders(w http.ResponseWriter, r *http.Request) {
	var p sso.Providers
	if s.sso != nil {
		p = s.sso.Providers()
	}
	writeJSON(w, r, http.StatusOK, p)
}

// passwordStore lets package sso read local password hashes from the bridge.
type passwordStore struct{ b *bridge.Bridge }

// NewPasswordStore is the sso.PasswordStore over the bridge's local
// passwords, for sso.New.
func NewPasswordStore(b *bridge.Bridge) sso.PasswordStore { return passwordStore{b} }

func (p passwordStore) LocalPasswordHash(ctx context.Context, username string) (string, int, error) {
	hash, uid, err := p.b.LocalPasswordHash(ctx, username)
	if bridge.KindOf(err) == bridge.KindNotFound {
		return "", 0, sso.ErrNoLocalPassword
	}
	return hash, uid, err
}
