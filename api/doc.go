// Package api is Slurmgate's REST API: the route table, authentication
// and access checks, RFC 9457 problem responses, the OpenAPI document
// generated from the routes, and the handlers that turn HTTP into calls on
// the domain (package bridge). It holds no state of its own.
//
// # Adding a resource
//
// Write api/<resource>.go with a method returning its routes, and add that
// method to the list in routeTable (server.go):
//
//	func (s *Server) sessionRoutes() []route {
//		return []route{{method: "GET", pattern: "/api/v1/sessions/{id}", summary: "Get a session",
//			access: authenticated, handler: s.getSession, response: bridge.Session{}}}
//	}
//
//	func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
//		sess, err := s.b.Session(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
//		if err != nil {
//			writeError(w, r, err)
//			return
//		}
//		writeJSON(w, r, http.StatusOK, sess)
//	}
//
// Handlers read the caller with [ActorFrom], bodies with decodeJSON (which
// answers the client itself when it returns false), a list's ?cursor and
// ?limit with readPage and its answer with newPage (pagination.go), and
// answer with writeJSON or, for any error, writeError. The OpenAPI document
// and its coverage test pick the route up by themselves. Every route goes
// through the table; nothing registers on the mux directly, so the document
// is complete by construction. The typed client's methods for the resource go
// in api/client/<resource>.go, on top of (*Client).do.
//
// # Authentication
//
// Programs sign each request with a keypair (SG-HMAC-SHA256; the algorithm
// and its headers X-SG-Date, X-SG-Nonce and X-SG-Content-SHA256 are in
// package api/sign). The server checks the date within ±Options.ClockSkew,
// the body against its hash, the HMAC in constant time, and accepts each
// signature once. A keypair-signed request may mint a bearer token
// (Authorization: Bearer sgt_…, at most 24 hours); tokens cannot mint
// tokens or keypairs, so a leaked token dies at its expiry. Failures are 401
// with a WWW-Authenticate challenge for each scheme and a detail that says
// what to fix.
//
// # Replicas
//
// Several servers may share one database behind a load balancer. A request
// for a session whose agent tunnel another replica holds is forwarded to
// it (replicas.go) once the caller is known to be allowed; the holder
// authenticates and authorizes it again, like any request.
//
// # Errors
//
// Every error is application/problem+json with a type URI
// urn:slurmgate:problem:<slug>, the request path as instance, and the
// request id (also in the X-Request-Id header and the log). Statuses:
//
//	400 bad-request             unreadable request: malformed JSON, unknown field, bad query parameter ("field" names it)
//	401 unauthenticated         missing, malformed or refused credentials
//	403 forbidden               authenticated, but not allowed
//	403 quota-exceeded          a resource policy refuses it; "quota" names the limit, the request and the usage
//	404 not-found               absent, or not visible to the caller (never 403 for what they may not see)
//	405 method-not-allowed      with the Allow header
//	409 conflict                exists already, or its state forbids the change
//	413 too-large               body over Options.MaxBodyBytes
//	415 unsupported-media-type  a body that is not application/json
//	422 invalid                 well-formed but breaks a domain rule (bridge.KindInvalid; "field" names it)
//	500 internal                anything unexpected; the detail gives only the request id, the log the cause
//	503 unavailable             Slurm or another dependency is down
//
// Quota refusals are 403, not 429: they stand until usage or policy
// changes, and clients must not retry them automatically as they would a
// 429.
//
// # Operations
//
// GET /healthz is liveness. GET /metrics (Prometheus) is open to clients on
// the loopback interface and to superadmins elsewhere; the request latency
// histogram slurmgate_http_request_duration_seconds is labelled by method,
// route pattern (never the raw path) and status class. The access log
// records method, path, route, status, size, duration, peer, user and
// access key, never headers, query strings, tokens, secrets or signatures.
package api
