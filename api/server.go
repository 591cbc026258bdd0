package api

import (
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/sso"
	"github.com/slurmgate/slurmgate/tunnel"
)

// Options configures a Server; the zero value is usable.
type Options struct {
	// PublicURL is the gateway's address as people reach it
	// (server.public_url), for links the API hands out such as the device
	// login page; empty means the request's own Host and scheme.
	PublicURL string
	// Logger receives the access log and the errors behind 500s; nil means
	// slog.Default().
	Logger *slog.Logger
	// Registry holds the server's metrics and is what GET /metrics serves;
	// nil means a new registry with the Go runtime and process collectors.
	Registry *prometheus.Registry
	// MaxBodyBytes bounds request bodies; 0 means 1 MiB.
	MaxBodyBytes int64
	// ClockSkew bounds how far a signed request's X-SG-Date may be from the
	// server's clock, either way; 0 means 5 minutes.
	ClockSkew time.Duration
	// Now is the clock signed requests are checked against; nil means
	// time.Now.
	Now func() time.Time
	// SSO authenticates portal logins (login.go); nil offers none, and
	// only keypairs and bearer tokens authenticate.
	SSO *sso.Service
	// AppsDomain turns on the app proxy's subdomain mode:
	// {app}--{session}.<AppsDomain> (a wildcard DNS name and certificate
	// pointing at the gateway). Empty serves apps under /s/ only.
	AppsDomain string
	// TunnelKeepalive tunes the agent tunnels' keepalive; zero values take
	// package tunnel's defaults.
	TunnelKeepalive tunnel.Keepalive
	// LogAppRequests logs every app request at info. Otherwise only app
	// requests that fail (4xx, 5xx) or open a WebSocket are, and the rest
	// at debug: a notebook page is a hundred requests, each as authorized
	// as the first, and formatting their lines cost the proxy about 6%.
	LogAppRequests bool
	// TrustedProxies are the load balancers in front of the gateway
	// (server.trusted_proxies): a request from one of them is attributed,
	// for login throttling, to the address it put in X-Forwarded-For.
	// Empty believes no such header.
	TrustedProxies []netip.Prefix
}

// Server is the REST API as an http.Handler.
type Server struct {
	b        *bridge.Bridge
	log      *slog.Logger
	registry *prometheus.Registry
	maxBody  int64
	skew     time.Duration
	now      func() time.Time

	loginThrottle loginThrottle // loginthrottle.go
	loginStarts   loginStarts   // startlimit.go
	duration      *prometheus.HistogramVec
	routes        []*route
	mux           *http.ServeMux
	openapi       []byte // the OpenAPI document, rendered once from routes
	sso           *sso.Service
	// apps is the app proxy (appproxy.go), served beside the API.
	apps *appProxy
	// forwarder sends requests for sessions whose agent another replica
	// holds to that replica (replicas.go).
	forwarder       *replicaForwarder
	tunnelKeepalive tunnel.Keepalive
	// logins closes connections whose portal login is revoked (revocation.go).
	logins loginWatch
	// publicURL is Options.PublicURL without a trailing slash.
	publicURL string
}

// New returns the API over b. Its metrics are registered in
// opts.Registry, so one registry serves one Server.
func New(b *bridge.Bridge, opts Options) *Server {
	s := &Server{
		b:         b,
		log:       opts.Logger,
		registry:  opts.Registry,
		maxBody:   opts.MaxBodyBytes,
		skew:      opts.ClockSkew,
		now:       opts.Now,
		sso:       opts.SSO,
		mux:       http.NewServeMux(),
		publicURL: strings.TrimSuffix(opts.PublicURL, "/"),
	}
	s.loginThrottle.trusted = opts.TrustedProxies
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.registry == nil {
		s.registry = prometheus.NewRegistry()
		s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if s.skew <= 0 {
		s.skew = 5 * time.Minute
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.apps = newAppProxy(s, opts.AppsDomain)
	s.forwarder = newReplicaForwarder(s)
	s.apps.logAll = opts.LogAppRequests
	s.tunnelKeepalive = opts.TunnelKeepalive
	s.duration = newDurationMetric(s.registry)
	s.registry.MustRegister(newDomainCollector(b))
	for _, rt := range s.routeTable() {
		if rt.method == "" || rt.summary == "" || rt.handler == nil {
			panic("api: route " + rt.pattern + " needs a method, a summary and a handler")
		}
		s.routes = append(s.routes, &rt)
		s.mux.Handle(rt.method+" "+rt.pattern, s.guard(&rt))
	}
	s.openapi = s.renderOpenAPI()
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if session, app, ok := s.apps.match(r); ok {
		s.apps.serve(w, r, session, app)
		return
	}
	s.serve(w, r)
}

// routeTable is every operation the API serves. Each resource contributes
// its routes from its own file; add a resource by adding its method here.
func (s *Server) routeTable() []route {
	return slices.Concat(
		s.systemRoutes(),
		s.credentialRoutes(),
		s.sessionRoutes(),
		s.sessionStreamRoutes(),
		s.clusterRoutes(),
		s.orgRoutes(),
		s.catalogRoutes(),
		s.loginRoutes(),
		s.appHandoffRoutes(),
		s.deviceLoginRoutes(),
		s.vfolderRoutes(),
		s.agentRoutes(),
		s.runtimeRoutes(),
		s.terminalRoutes(),
	)
}

// route is one operation: how it is matched, who may call it, and what the
// OpenAPI document says about it.
type route struct {
	method  string // "GET", "POST", …; required
	pattern string // a ServeMux path pattern without the method: "/api/v1/keypairs/{access_key}"
	summary string // one line for the OpenAPI document
	access  access
	handler http.HandlerFunc

	// For the OpenAPI document only:
	status   int     // the success status; 0 means 200
	request  any     // a value of the request body's type; nil when there is no body
	response any     // a value of the response body's type; nil when there is none (or it is not JSON)
	query    []param // query parameters
}

// param documents a query parameter.
type param struct {
	name, typ, description string // typ is a JSON Schema type: "string", "integer", "boolean"
}

// access says who may call a route.
type access int

const (
	public        access = iota // anyone; credentials are not even read
	authenticated               // any active user, by keypair signature or bearer token
	// Any active user, by keypair signature only: for routes that mint
	// credentials, so that a leaked bearer token cannot be turned into
	// credentials that outlive it.
	keypairSigned
	domainAdmin       // domain admins and superadmins
	superadmin        // superadmins only
	localOrSuperadmin // clients on the loopback interface without credentials, else superadmins
)

func (a access) String() string {
	return [...]string{"public", "authenticated", "keypair-signed", "domain-admin", "superadmin", "loopback-or-superadmin"}[a]
}

// guard wraps a route's handler with what its access level requires, and
// tells the outer middleware which route matched.
func (s *Server) guard(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateFrom(r.Context())
		st.route = rt
		if s.authorize(w, r, st, rt.access) {
			rt.handler(w, r)
		}
	})
}
