package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/slurmgate/slurmgate/bridge"
)

// problem is an RFC 9457 problem details object, the body of every error
// response (Content-Type: application/problem+json).
type problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the request field at fault, for 400 and 422.
	Field string `json:"field,omitempty"`
	// Quota names the limit, the request and what is in use, for refusals
	// by a resource policy.
	Quota *bridge.QuotaExceeded `json:"quota,omitempty"`
	// RequestID is also in the X-Request-Id header and the server's log.
	RequestID string `json:"request_id,omitempty"`
}

// problemKind is one problem type: a stable URI clients switch on, its title
// and its status. Every problem the API answers is one of these.
type problemKind struct {
	slug   string
	title  string
	status int
}

// problemTypeBase prefixes the problem type URIs. They are URNs, not URLs:
// stable identifiers that promise no documentation page behind them.
const problemTypeBase = "urn:slurmgate:problem:"

var (
	// The request cannot be read: malformed JSON, an unknown field, a bad
	// query parameter.
	badRequest = problemKind{"bad-request", "Malformed request", http.StatusBadRequest}
	// The request is well-formed but breaks a rule of the domain
	// (bridge.KindInvalid). 422, not 400, so clients can tell "fix your
	// program" from "fix your input".
	invalidRequest   = problemKind{"invalid", "Invalid request", http.StatusUnprocessableEntity}
	unauthenticated  = problemKind{"unauthenticated", "Authentication failed", http.StatusUnauthorized}
	forbiddenProblem = problemKind{"forbidden", "Not allowed", http.StatusForbidden}
	// A resource policy refuses the request. 403 rather than 429: the
	// refusal stands until usage or the policy changes, and clients must not
	// retry it automatically as they would a 429.
	quotaExceeded    = problemKind{"quota-exceeded", "Resource limit reached", http.StatusForbidden}
	notFoundProblem  = problemKind{"not-found", "Not found", http.StatusNotFound}
	methodNotAllowed = problemKind{"method-not-allowed", "Method not allowed", http.StatusMethodNotAllowed}
	conflictProblem  = problemKind{"conflict", "Conflict", http.StatusConflict}
	tooLarge         = problemKind{"too-large", "Request body too large", http.StatusRequestEntityTooLarge}
	unsupportedType  = problemKind{"unsupported-media-type", "Unsupported content type", http.StatusUnsupportedMediaType}
	internalProblem  = problemKind{"internal", "Internal server error", http.StatusInternalServerError}
	unavailable      = problemKind{"unavailable", "Service unavailable", http.StatusServiceUnavailable}
)

// problemKinds lists every kind, for the OpenAPI document.
var problemKinds = []problemKind{badRequest, invalidRequest, unauthenticated, forbiddenProblem, quotaExceeded,
	notFoundProblem, methodNotAllowed, conflictProblem, tooLarge, unsupportedType, internalProblem, unavailable}

func (k problemKind) uri() string { return problemTypeBase + k.slug }

// with returns a problem of this kind with a detail for the person who asked.
func (k problemKind) with(format string, args ...any) *problem {
	return &problem{Type: k.uri(), Title: k.title, Status: k.status, Detail: fmt.Sprintf(format, args...)}
}

// writeProblem answers the request with p, adding the request's path and id.
func writeProblem(w http.ResponseWriter, r *http.Request, p *problem) {
	st := stateFrom(r.Context())
	p.Instance = r.URL.Path
	p.RequestID = st.id
	st.problem = p.Detail
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, r, p.Status, p)
}

// writeError answers with the problem that err maps to: a bridge.Error by
// its kind, an oversized body 413, anything else 500 with a generic detail
// (the error itself goes only to the log, with the request id).
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var be *bridge.Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeProblem(w, r, tooLarge.with("the request body is larger than %d bytes", tooBig.Limit))
	case errors.As(err, &be) && be.Kind != bridge.KindInternal:
		if be.Kind == bridge.KindUnavailable {
			stateFrom(r.Context()).logger().Warn("dependency unavailable", "err", err)
		}
		writeProblem(w, r, domainProblem(be))
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer, and it is no
		// server error. 499 is the status proxies log for this.
		stateFrom(r.Context()).logger().Info("client closed the request", "err", err)
		w.WriteHeader(499)
	default:
		st := stateFrom(r.Context())
		st.logger().Error("request failed", "err", err)
		writeProblem(w, r, serverFault(st.id))
	}
}

// serverFault is the answer to a failure of the server's own: the cause
// stays in the log, where the request id finds it.
func serverFault(requestID string) *problem {
	return internalProblem.with("the server failed to answer; the operators can find why in its log under request id %s", requestID)
}

// domainProblem maps a bridge error kind to its problem.
func domainProblem(e *bridge.Error) *problem {
	var k problemKind
	switch e.Kind {
	case bridge.KindInvalid:
		k = invalidRequest
	case bridge.KindNotFound:
		k = notFoundProblem
	case bridge.KindForbidden:
		k = forbiddenProblem
	case bridge.KindConflict:
		k = conflictProblem
	case bridge.KindQuota:
		k = quotaExceeded
	case bridge.KindUnavailable:
		k = unavailable
	default:
		k = internalProblem
	}
	p := k.with("%s", e.Message)
	p.Field = e.Field
	p.Quota = e.Quota
	return p
}
