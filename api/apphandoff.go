package api

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slurmgate/slurmgate/bridge"
)

// The login handoff to app origins. In subdomain mode each app is its own
// origin ({app}--{session}.<apps_domain>), where the portal's host-only
// cookie is never sent. So a browser navigating to an app host without a
// credential is sent to the portal's origin:
//
//  1. GET /api/v1/auth/app-handoff?to=<app URL> (portal cookie, or any
//     credential) checks the caller may use the session and mints a
//     one-time code for that app host, valid bridge.AppHandoffTTL, then
//     redirects to <app host>/.slurmgate/handoff?code=…&next=<path>.
//  2. The app host redeems the code once for an app credential in the
//     sg_app cookie: host-only, HttpOnly, SameSite=Lax. It authenticates
//     requests to that host only (never the API, path-mode apps or another
//     session's or app's host), and ends when the portal login it came from
//     ends or is revoked (its WebSockets too).
//
// sg_app is a gateway cookie (gatewayCookie): the app never sees it and
// cannot set it. The path /.slurmgate/handoff of an app host is the
// gateway's, never the app's.

const (
	appCookie   = "sg_app"
	handoffPath = "/.slurmgate/handoff"
	// appHandoffPath is the route on the portal's origin.
	appHandoffPath = "/api/v1/auth/app-handoff"
)

func (s *Server) appHandoffRoutes() []route {
	return []route{
		{method: "GET", pattern: appHandoffPath, summary: "Log the browser in to an app's own origin (subdomain mode): redirects to the app host with a one-time code",
			access: authenticated, handler: s.appHandoff, status: http.StatusSeeOther,
			query: []param{{"to", "string", "the app URL to open: http(s)://{app}--{session}.<apps_domain>[:port]/path"}}},
	}
}

// appHost splits an app host name (without port) into session and app; ok
// is false when it is not one under the apps domain.
func (p *appProxy) appHost(host string) (session, app string, ok bool) {
	if p.domain == "" {
		return "", "", false
	}
	label, found := strings.CutSuffix(strings.ToLower(host), "."+p.domain)
	if !found || strings.Contains(label, ".") {
		return "", "", false
	}
	app, session, found = strings.Cut(label, "--")
	return session, app, found && app != "" && session != ""
}

// hostName is a Host header without its port.
func hostName(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return strings.ToLower(h)
	}
	return strings.ToLower(hostport)
}

func (s *Server) appHandoff(w http.ResponseWriter, r *http.Request) {
	if s.apps.domain == "" {
		writeProblem(w, r, notFoundProblem.with("apps have no hosts of their own on this gateway (sessions.apps_domain is empty): open them under /s/{session}/{app}/"))
		return
	}
	raw := r.URL.Query().Get("to")
	to, err := url.Parse(raw)
	var session string
	if err == nil && (to.Scheme == "http" || to.Scheme == "https") && to.User == nil && to.Opaque == "" {
		session, _, _ = s.apps.appHost(to.Hostname())
	}
	if session == "" {
		p := badRequest.with("to=%q is not an app URL: want http(s)://{app}--{session}.%s/path", raw, s.apps.domain)
		p.Field = "to"
		writeProblem(w, r, p)
		return
	}
	st := stateFrom(r.Context())
	h := bridge.AppHandoff{SessionID: session, AppHost: strings.ToLower(to.Hostname())}
	switch {
	case st.cred.method == "cookie" && st.cred.portal != nil:
		h.PortalSessionID = st.cred.portal.ID
	case st.cred.method == "token":
		h.Until = st.cred.expires
	}
	code, err := s.b.CreateAppHandoff(r.Context(), st.actor, h)
	if err != nil {
		writeError(w, r, err)
		return
	}
	next := to.EscapedPath()
	if next == "" {
		next = "/"
	}
	if to.RawQuery != "" {
		next += "?" + to.RawQuery
	}
	// A portal reached over TLS hands off over TLS only: the code must
	// not cross the network in the clear because a link said http.
	scheme := to.Scheme
	if secureRequest(r) {
		scheme = "https"
	}
	dest := url.URL{Scheme: scheme, Host: strings.ToLower(to.Host), Path: handoffPath,
		RawQuery: url.Values{"code": {code}, "next": {next}}.Encode()}
	noStore(w)
	http.Redirect(w, r, dest.String(), http.StatusSeeOther)
}

// noStore keeps a response carrying a one-time code out of caches and
// Referer headers.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// redeemHandoff serves GET /.slurmgate/handoff on an app host: the code
// becomes the sg_app cookie, and the browser goes on to next, a path on
// this host.
func (p *appProxy) redeemHandoff(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeProblem(w, r, methodNotAllowed.with("%s is the gateway's login handoff and takes GET only", handoffPath))
		return
	}
	q := r.URL.Query()
	token, _, err := p.s.b.RedeemAppHandoff(r.Context(), q.Get("code"), hostName(r.Host))
	if err != nil {
		writeError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: appCookie, Value: token, Path: "/", HttpOnly: true,
		Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
	noStore(w)
	http.Redirect(w, r, safeReturnTo(q.Get("next")), http.StatusSeeOther)
}

// navigation reports whether r is a browser loading a page, which can be
// sent through the login handoff; other requests (scripts, programs) get
// 401.
func navigation(r *http.Request) bool {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.Header.Get("Upgrade") != "" {
		return false
	}
	return r.Header.Get("Sec-Fetch-Mode") == "navigate" || strings.Contains(r.Header.Get("Accept"), "text/html")
}

// toHandoff sends a browser without a credential for this app host to the
// portal's origin, which logs it in here and brings it back.
func (p *appProxy) toHandoff(w http.ResponseWriter, r *http.Request) {
	if p.s.publicURL == "" {
		p.s.unauthorized(w, r, "a browser logs in to an app's own host through the portal, and this gateway does not know the portal's address: an administrator must set server.public_url; meanwhile open the app under /s/{session}/{app}/ or send Authorization: Bearer <token>")
		return
	}
	scheme := "http"
	if secureRequest(r) {
		scheme = "https"
	}
	here := scheme + "://" + r.Host + r.URL.RequestURI()
	noStore(w)
	http.Redirect(w, r, p.s.publicURL+appHandoffPath+"?"+url.Values{"to": {here}}.Encode(), http.StatusSeeOther)
}

// authenticateApp resolves the sg_app cookie on app host host (without
// port) for session; a dead one is dropped, and a browser navigation goes
// through the handoff again.
func (p *appProxy) authenticateApp(w http.ResponseWriter, r *http.Request, st *requestState, token, session, host string) bool {
	actor, c, err := p.s.b.ActorForAppCredential(r.Context(), token, host)
	if err == nil && c.SessionID != session {
		err = &bridge.Error{Kind: bridge.KindNotFound, Message: "this app credential is for another session"}
	}
	if err != nil {
		k := bridge.KindOf(err)
		if k != bridge.KindNotFound && k != bridge.KindForbidden {
			writeError(w, r, err)
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: appCookie, Path: "/", MaxAge: -1, HttpOnly: true, Secure: secureRequest(r), SameSite: http.SameSiteLaxMode})
		if navigation(r) {
			p.toHandoff(w, r)
			return false
		}
		p.s.credentialRefused(w, r, err)
		return false
	}
	st.actor, st.cred = actor, credential{method: "app", app: &c}
	if why := crossOrigin(r); why != "" {
		writeProblem(w, r, forbiddenProblem.with("%s %s came with the app's login cookie from a page of another origin (%s): apps take changes and WebSockets with the cookie only from their own pages",
			r.Method, r.URL.Path, why))
		return false
	}
	return true
}

// appCredentialContext is credentialContext for an app credential: it ends
// when the credential or its portal login expires, and when that login is
// revoked (loginWatch), or its idle expiry passes unused.
func (s *Server) appCredentialContext(ctx context.Context, r *http.Request, c *bridge.AppCredential) (context.Context, context.CancelFunc) {
	if c.PortalSessionID == "" {
		return context.WithDeadlineCause(ctx, c.ExpiresAt, errCredentialExpired)
	}
	token, host := "", hostName(r.Host)
	if ck, err := r.Cookie(appCookie); err == nil {
		token = ck.Value
	}
	ctx, cancelCause := context.WithCancelCause(ctx)
	lw := &s.logins
	wc := &watchedConn{cancel: cancelCause}
	ready := lw.add(s, c.PortalSessionID, wc)
	cancel := func() {
		cancelCause(nil)
		lw.remove(c.PortalSessionID, wc)
	}
	// A revocation between authentication and listening would be missed:
	// once listening, check once more.
	select {
	case <-ready:
	case <-ctx.Done():
	}
	_, cur, err := s.b.ActorForAppCredential(ctx, token, host)
	if err != nil {
		cancelCause(errSignedOut)
		return ctx, cancel
	}
	ctx, cancelDeadline := context.WithDeadlineCause(ctx, cur.ExpiresAt, errCredentialExpired)
	go s.recheck(ctx, cancelCause, errCredentialExpired, cur.IdleExpiresAt, func(ctx context.Context) (time.Time, error) {
		_, cur, err := s.b.ActorForAppCredential(ctx, token, host)
		return cur.IdleExpiresAt, err
	})
	return ctx, func() {
		cancelDeadline()
		cancel()
	}
}
