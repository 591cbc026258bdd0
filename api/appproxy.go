package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/slurmgate/slurmgate/api/sign"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/tunnel"
)

// The app proxy: a session's web apps (Jupyter, TensorBoard, code-server)
// reached through the gateway, over the agent's tunnel, with no inbound
// port on the compute node.
//
//   - Path mode: /s/{session}/{app}/… is forwarded with the prefix kept,
//     for apps that take a base URL (the agent starts Jupyter with
//     --NotebookApp.base_url=/s/{session}/jupyter/).
//   - Subdomain mode, when Options.AppsDomain is set:
//     {app}--{session}.<AppsDomain> is forwarded with its path unchanged,
//     for apps that insist on being served at "/".
//
// Path mode shares the portal's origin: a script in an app's page (code of
// the session's owner, or a notebook someone shared) can call the API with
// the visitor's portal cookie, and the gateway cannot tell it from the
// portal. Only subdomain mode isolates apps from the portal, which is why
// the sample configuration recommends it. The portal cookie is host-only,
// so browsers reach app hosts through the login handoff (apphandoff.go),
// which gives each app host a cookie of its own (sg_app) valid there only.
// Whatever the mode, an app's response never sets the gateway's cookies
// (dropGatewayCookies).
//
// Every request and every WebSocket upgrade is authenticated and authorized
// (bridge.UseSession: the session's owner only; admins who may see the
// session get 403, everyone else 404). The gateway's own credentials (the
// Authorization header, its cookies, X-SG-* headers) are removed before the
// app sees the request. It is served outside the API's middleware because
// app requests are not API calls: bodies of any size stream through, and
// they are not in the OpenAPI document.

// appProxy holds the reverse proxy and a transport per (agent tunnel,
// service): each keeps that service's idle tunnel streams for the next
// request, so one must never mix tunnels or services.
type appProxy struct {
	s      *Server
	domain string // the wildcard base domain, e.g. "apps.example.org"; "" disables subdomain mode
	logAll bool   // Options.LogAppRequests
	proxy  *httputil.ReverseProxy

	mu         sync.Mutex
	transports map[transportKey]*tunnel.HTTPTransport
}

type transportKey struct {
	conn    *tunnel.Conn
	service string
	shaped  bool
}

// appTarget is what a request addresses, set by the front for Rewrite and
// the transport.
type appTarget struct {
	agent   *bridge.Agent
	service string
	// shape, when the agent asks for it, is done to the request here so
	// that the agent can pass it to the app unparsed.
	shape *tunnel.HTTPShape
}

type appTargetKey struct{}

func newAppProxy(s *Server, domain string) *appProxy {
	p := &appProxy{s: s, domain: strings.ToLower(strings.TrimPrefix(domain, ".")), transports: map[transportKey]*tunnel.HTTPTransport{}}
	p.proxy = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: dropGatewayCookies,
		Transport:      roundTripperFunc(p.roundTrip),
		// Responses of unknown length (server-sent events, streamed
		// output) are flushed on every write by ReverseProxy itself;
		// one of known length goes out in as few writes as it fits.
		FlushInterval: 0,
		BufferPool:    copyBuffers,
		ErrorHandler:  p.proxyError,
		ErrorLog:      slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	return p
}

// copyBuffers are the proxy's body copy buffers: without a pool, each
// response would allocate (and the collector clear) 32 KiB.
var copyBuffers = &bufferPool{sync.Pool{New: func() any { return new([32 << 10]byte) }}}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte { return b.p.Get().(*[32 << 10]byte)[:] }

func (b *bufferPool) Put(x []byte) {
	if len(x) == 32<<10 {
		b.p.Put((*[32 << 10]byte)(x))
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// match reports whether r is for an app rather than the API, and which
// session and app it addresses.
func (p *appProxy) match(r *http.Request) (session, app string, ok bool) {
	if rest, found := strings.CutPrefix(r.URL.Path, "/s/"); found {
		session, rest, _ = strings.Cut(rest, "/")
		app, _, _ = strings.Cut(rest, "/")
		return session, app, true
	}
	if p.domain == "" {
		return "", "", false
	}
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, found := strings.CutSuffix(host, "."+p.domain)
	if !found || strings.Contains(label, ".") {
		return "", "", false
	}
	app, session, found = strings.Cut(label, "--")
	return session, app, found
}

// serve is the front of the proxy: request id, authentication,
// authorization, then the reverse proxy.
func (p *appProxy) serve(w http.ResponseWriter, r *http.Request, session, app string) {
	start := time.Now()
	st := &requestState{id: requestID(r), base: p.s.log}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	rec := &recorder{ResponseWriter: w, req: r, st: st}
	// A route of its own for the access log and metrics, which label by
	// pattern: ids in paths must not mint series.
	st.route = &appRoute
	defer func() {
		level := slog.LevelInfo
		if !p.logAll && rec.status < 400 && r.Header.Get("Upgrade") == "" {
			level = slog.LevelDebug
		}
		p.s.logRequestAt(level, r, rec, st, time.Since(start))
	}()
	w = rec
	w.Header().Set(requestIDHeader, st.id)

	if strings.HasPrefix(r.URL.Path, "/s/") && r.URL.Path == "/s/"+session+"/"+app {
		// Relative links of an app under a prefix resolve only below
		// the slash.
		http.Redirect(w, r, r.URL.Path+"/"+queryOf(r), http.StatusMovedPermanently)
		return
	}
	if session == "" || app == "" {
		writeProblem(w, r, notFoundProblem.with("app URLs look like /s/{session}/{app}/ or {app}--{session}.%s", cmpOr(p.domain, "<apps domain>")))
		return
	}
	if strings.HasPrefix(r.Header.Get("Authorization"), sign.Scheme+" ") {
		// A signed request's body is read whole to check its hash.
		r.Body = http.MaxBytesReader(w, r.Body, p.s.maxBody)
	}
	appHost := "" // the host in subdomain mode; "" in path mode
	if !strings.HasPrefix(r.URL.Path, "/s/") {
		appHost = hostName(r.Host)
		if r.URL.Path == handoffPath {
			p.redeemHandoff(w, r)
			return
		}
	}
	if !p.authenticate(w, r, st, session, appHost) {
		return
	}
	ag, err := p.s.b.UseSession(r.Context(), st.actor, session)
	if err != nil {
		if p.s.forwardIfElsewhere(w, r, err) {
			return
		}
		if bridge.KindOf(err) == bridge.KindUnavailable {
			writeProblem(w, r, badGateway.with("%v", err))
			return
		}
		writeError(w, r, err)
		return
	}
	shape, err := ag.Service(app)
	if err != nil {
		if bridge.KindOf(err) == bridge.KindUnavailable {
			writeProblem(w, r, badGateway.with("%v", err))
			return
		}
		writeError(w, r, err)
		return
	}
	ag.Touch()
	ctx := context.WithValue(r.Context(), appTargetKey{}, appTarget{agent: ag, service: app, shape: shape})
	if r.Header.Get("Upgrade") != "" {
		// An upgraded connection lives on after this check: end it when
		// the credential that opened it expires or is revoked.
		var cancel context.CancelFunc
		if st.cred.app != nil {
			ctx, cancel = p.s.appCredentialContext(ctx, r, st.cred.app)
		} else {
			ctx, cancel = p.s.credentialContext(ctx, r)
		}
		defer cancel()
	}
	p.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// authenticate is the API's, except that a portal cookie needs no CSRF
// header: the app's own pages cannot send the gateway's token. The cookie
// alone does not show that the app's page sent the request, and apps cannot
// be relied on to check (the gateway authenticates to Jupyter with a token,
// and jupyter_server skips its _xsrf check for token-authenticated
// requests); SameSite=Lax keeps the cookie from cross-site pages but not
// from same-site ones, such as another user's app in subdomain mode. So a
// cookie-authenticated state change or WebSocket upgrade from a page of
// another origin is refused (crossOrigin).
// Cookies and bearer tokens are resolved through the credential cache
// (revocation.go): a page load is dozens of requests, and logouts are
// heard at once. Signed requests are not: each signature is new, and must
// be remembered against replay anyway.
//
// On an app host (subdomain mode; appHost is its name) the app's own
// cookie, sg_app, is taken too, for that host only (apphandoff.go), and a
// browser's page load without a credential is sent through the login
// handoff rather than answered 401.
func (p *appProxy) authenticate(w http.ResponseWriter, r *http.Request, st *requestState, session, appHost string) bool {
	method, secret := "", ""
	header := r.Header.Get("Authorization")
	if scheme, rest, _ := strings.Cut(header, " "); strings.EqualFold(scheme, "Bearer") {
		method, secret = "token", strings.TrimSpace(rest)
	} else if header == "" {
		if c, err := r.Cookie(appCookie); err == nil && c.Value != "" && appHost != "" {
			return p.authenticateApp(w, r, st, c.Value, session, appHost)
		}
		if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
			method, secret = "cookie", c.Value
		}
	}
	if method == "" {
		if header == "" && appHost != "" && navigation(r) {
			p.toHandoff(w, r)
			return false
		}
		return p.s.authenticate(w, r, st)
	}
	actor, cred, err := p.s.cachedActor(r.Context(), method, secret)
	if err != nil {
		p.s.credentialRefused(w, r, err)
		return false
	}
	st.actor, st.cred = actor, cred
	if method == "cookie" {
		if why := crossOrigin(r); why != "" {
			writeProblem(w, r, forbiddenProblem.with("%s %s came with the portal's session cookie from a page of another origin (%s): apps take changes and WebSockets with the cookie only from their own pages; a program should send Authorization: Bearer <token> or sign the request with a keypair",
				r.Method, r.URL.Path, why))
			return false
		}
	}
	return true
}

// crossOrigin says why r, when it may change state (anything but GET, HEAD
// and OPTIONS) or is an upgrade, came from a page of another origin than
// the one it addresses; it is "" otherwise. A browser says where a request
// came from in Sec-Fetch-Site or Origin; a request with neither is not a
// browser's, and a program holding the cookie needs no page to misuse it.
func crossOrigin(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		if r.Header.Get("Upgrade") == "" {
			return ""
		}
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site: " + site
	}
	if !sameOrigin(r) {
		return "Origin " + r.Header.Get("Origin") + ", Host " + r.Host
	}
	return ""
}

// appRoute labels app requests in the access log and metrics.
var appRoute = route{method: "ANY", pattern: "/s/{session}/{app}/"}

func queryOf(r *http.Request) string {
	if r.URL.RawQuery == "" {
		return ""
	}
	return "?" + r.URL.RawQuery
}

// rewrite shapes the request the app sees: the path as the browser sent it
// (the app knows its prefix), the Host as the browser sent it (apps such as
// Jupyter compare Origin with Host on WebSocket upgrades), X-Forwarded-*
// set, and none of the gateway's credentials.
func (p *appProxy) rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(appTargetKey{}).(appTarget)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = t.service
	pr.Out.Host = pr.In.Host
	setXForwarded(pr)
	h := pr.Out.Header
	h.Del("Authorization")
	h.Del(forwardedHeader)
	for name := range h {
		if strings.HasPrefix(strings.ToLower(name), "x-sg-") {
			h.Del(name)
		}
	}
	stripGatewayCookies(pr.Out)
	if t.shape != nil {
		t.shape.Apply(pr.Out, t.agent.SessionID, t.service)
	}
}

// setXForwarded is pr.SetXForwarded, except that a request that reached the
// gateway over TLS as secureRequest sees it (a TLS-terminating load
// balancer says so in X-Forwarded-Proto, and a forward between replicas
// keeps what the first replica saw) is forwarded as https: SetXForwarded
// looks only at the connection it came in on, and apps that believe http
// build http:// links.
func setXForwarded(pr *httputil.ProxyRequest) {
	pr.SetXForwarded()
	if secureRequest(pr.In) {
		pr.Out.Header.Set("X-Forwarded-Proto", "https")
	}
}

// gatewayCookie reports whether a cookie is the gateway's own (the portal
// session and its CSRF token); those never reach an app, which could
// otherwise act as the user on the gateway.
func gatewayCookie(name string) bool {
	n := strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(name, "__Host-"), "__Secure-"))
	return strings.HasPrefix(n, "slurmgate") || strings.HasPrefix(n, "sg_") || strings.HasPrefix(n, "sg-")
}

func stripGatewayCookies(r *http.Request) {
	cookies := r.Cookies()
	if len(cookies) == 0 {
		return
	}
	r.Header.Del("Cookie")
	for _, c := range cookies {
		if !gatewayCookie(c.Name) {
			r.AddCookie(c)
		}
	}
}

// dropGatewayCookies removes the Set-Cookie headers of an app's response
// that name a gateway cookie: an app (any user's code) could otherwise set
// sg_session to a token of its owner's and, in path mode where it shares
// the portal's origin, log the visitor into the app owner's account.
func dropGatewayCookies(resp *http.Response) error {
	set := resp.Header.Values("Set-Cookie")
	if len(set) == 0 {
		return nil
	}
	resp.Header.Del("Set-Cookie")
	for _, line := range set {
		if c, err := http.ParseSetCookie(line); err == nil && !gatewayCookie(c.Name) {
			resp.Header.Add("Set-Cookie", line)
		}
	}
	return nil
}

// roundTrip sends the request over the session's tunnel with the
// Transport of its (tunnel, service).
func (p *appProxy) roundTrip(r *http.Request) (*http.Response, error) {
	t := r.Context().Value(appTargetKey{}).(appTarget)
	return p.transport(transportKey{t.agent.Conn, t.service, t.shape != nil}).RoundTrip(r)
}

func (p *appProxy) transport(key transportKey) *tunnel.HTTPTransport {
	conn := key.conn
	p.mu.Lock()
	defer p.mu.Unlock()
	if tr := p.transports[key]; tr != nil {
		return tr
	}
	tr := &tunnel.HTTPTransport{
		Open: func(ctx context.Context) (net.Conn, error) {
			return conn.OpenStream(ctx, tunnel.Header{Kind: tunnel.KindHTTP, Service: key.service, Shaped: key.shaped})
		},
		// Browsers open several connections per app; each kept one is
		// a tunnel stream, cheap to keep.
		MaxIdle: 64,
	}
	p.transports[key] = tr
	first := true
	for k := range p.transports {
		if k.conn == conn && k != key {
			first = false
			break
		}
	}
	if first {
		// Forget the tunnel's transports once it is gone.
		go func() {
			<-conn.Done()
			p.mu.Lock()
			defer p.mu.Unlock()
			for k, tr := range p.transports {
				if k.conn == conn {
					tr.Close()
					delete(p.transports, k)
				}
			}
		}()
	}
	return tr
}

// badGateway is the answer when the app cannot be reached: the agent is not
// connected, the service is not ready, or it failed to answer.
var badGateway = problemKind{"bad-gateway", "The app cannot be reached", http.StatusBadGateway}

// proxyError explains why the app did not answer.
func (p *appProxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	t := r.Context().Value(appTargetKey{}).(appTarget)
	var se *tunnel.StreamError
	switch {
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		w.WriteHeader(499) // the client went away
		return
	case errors.As(err, &se):
		writeProblem(w, r, badGateway.with("the agent of session %s could not reach service %s: %s", t.agent.SessionID, t.service, se.Reason))
	case isClosed(t.agent.Conn):
		writeProblem(w, r, badGateway.with("the agent of session %s disconnected; it reconnects within seconds if the session is still running", t.agent.SessionID))
	default:
		stateFrom(r.Context()).logger().Info("app did not answer", "session", t.agent.SessionID, "service", t.service, "err", err)
		writeProblem(w, r, badGateway.with("service %s of session %s did not answer: %v", t.service, t.agent.SessionID, err))
	}
}

func isClosed(c *tunnel.Conn) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

// appURLs are where an app of a session is served: the path, and the
// subdomain URL when subdomain mode is on.
func (p *appProxy) appURLs(r *http.Request, session, app string) (path, subdomain string) {
	path = fmt.Sprintf("/s/%s/%s/", session, app)
	if p.domain != "" {
		scheme := "http"
		if secureRequest(r) {
			scheme = "https"
		}
		subdomain = fmt.Sprintf("%s://%s--%s.%s/", scheme, app, session, p.domain)
	}
	return path, subdomain
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
