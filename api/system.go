package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// systemRoutes: health, metrics and the API's own description.
func (s *Server) systemRoutes() []route {
	metrics := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
	return []route{
		{method: "GET", pattern: "/healthz", summary: "Liveness: the gateway process answers HTTP",
			access: public, handler: healthz, response: healthResponse{}},
		// Prometheus scrapes without credentials from this host; from
		// elsewhere a superadmin's credentials are needed. The metrics hold
		// route patterns, counts and timings, no user data.
		{method: "GET", pattern: "/metrics", summary: "Prometheus metrics (text exposition format)",
			access: localOrSuperadmin, handler: metrics.ServeHTTP},
		{method: "GET", pattern: "/api/v1/openapi.json", summary: "This API's OpenAPI 3.1 document",
			access: public, handler: s.serveOpenAPI, response: map[string]any{}},
	}
}

type healthResponse struct {
	Status string `json:"status"`
}

// healthz answers as long as the process serves HTTP. It deliberately does
// not probe PostgreSQL: a load balancer would then drop every replica at
// once during a database blip, which no replica can fix, while requests
// that need the database fail on their own meanwhile.
func healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, r, http.StatusOK, healthResponse{Status: "ok"})
}
