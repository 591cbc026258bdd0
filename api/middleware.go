package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slurmgate/slurmgate/bridge"
)

// requestState is what the server learns about a request while serving it:
// set by the outer middleware (id, logger), the route guard (route, actor,
// credential) and problem writers (problem), and read back for the access
// log and metrics. One pointer in the context carries it, so layers that
// run inside ServeMux can report to those outside it.
type requestState struct {
	id      string
	base    *slog.Logger                // the server's logger
	log     atomic.Pointer[slog.Logger] // base with the request id; see logger
	route   *route                      // nil when no route matched
	actor   bridge.Actor
	cred    credential
	problem string // the detail of the problem answered, if any
	// rawBody is the request body without the server's size limit, for the
	// routes that stream uploads and bound them themselves (vfolders.go).
	rawBody io.ReadCloser
}

type stateKey struct{}

// stateFrom returns the request's state. Outside the server (a handler
// called directly in a test) it returns a throwaway state, so helpers that
// log or record never need to check.
func stateFrom(ctx context.Context) *requestState {
	if st, ok := ctx.Value(stateKey{}).(*requestState); ok {
		return st
	}
	return &requestState{base: slog.Default()}
}

// logger is the request's logger, which names the request id. It is made
// on first use: most requests log nothing but their access line, which
// adds the id itself.
func (st *requestState) logger() *slog.Logger {
	if l := st.log.Load(); l != nil {
		return l
	}
	l := st.base.With("request_id", st.id)
	if !st.log.CompareAndSwap(nil, l) {
		return st.log.Load()
	}
	return l
}

// ActorFrom returns the authenticated actor of the request that ctx belongs
// to: the zero Actor on public routes, where nobody is authenticated.
func ActorFrom(ctx context.Context) bridge.Actor { return stateFrom(ctx).actor }

// requestIDHeader carries the request id in both directions: a well-formed
// id from a proxy in front is kept, so one id follows a request across logs.
const requestIDHeader = "X-Request-Id"

func requestID(r *http.Request) string {
	id := r.Header.Get(requestIDHeader)
	if len(id) == 0 || len(id) > 64 {
		return rand.Text()
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return rand.Text()
		}
	}
	return id
}

// serve is the middleware around the route table: request id, body size
// limit, panic recovery, metrics and the access log. Authentication is per
// route (see guard), because what a route needs differs.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	st := &requestState{id: requestID(r), base: s.log}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	rec := &recorder{ResponseWriter: w, req: r, st: st}
	rec.Header().Set(requestIDHeader, st.id)
	// The original writer, not rec: it is what lets net/http close the
	// connection after an oversized body.
	st.rawBody = r.Body
	r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)

	defer func() {
		v := recover()
		abort := v != nil && (v == http.ErrAbortHandler || rec.status != 0)
		if v != nil && v != http.ErrAbortHandler {
			st.logger().Error("handler panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if rec.status == 0 {
				writeProblem(rec, r, serverFault(st.id))
			}
		}
		s.logRequest(r, rec, st, time.Since(start))
		if abort {
			// The response was under way, or the handler asked to abort:
			// let net/http break the connection so the client cannot
			// mistake a truncated response for a whole one.
			panic(http.ErrAbortHandler)
		}
	}()
	s.mux.ServeHTTP(rec, r)
}

// logRequest writes the access log line and observes the latency. It logs
// no headers and no query string: credentials never reach the log.
func (s *Server) logRequest(r *http.Request, rec *recorder, st *requestState, elapsed time.Duration) {
	s.logRequestAt(slog.LevelInfo, r, rec, st, elapsed)
}

// logRequestAt observes the request's latency and logs its access line at
// level, if that level is logged.
func (s *Server) logRequestAt(level slog.Level, r *http.Request, rec *recorder, st *requestState, elapsed time.Duration) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK // the handler wrote nothing at all
	}
	method, pattern := r.Method, "unmatched"
	if st.route != nil {
		pattern = st.route.pattern
	} else if !knownMethod(method) {
		method = "other" // a client must not be able to mint label values
	}
	s.duration.WithLabelValues(method, pattern, strconv.Itoa(status/100)+"xx").Observe(elapsed.Seconds())
	if !st.base.Enabled(r.Context(), level) {
		return
	}

	attrs := []slog.Attr{
		slog.String("request_id", st.id),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("route", pattern),
		slog.Int("status", status),
		slog.Int64("bytes", rec.bytes),
		slog.Duration("duration", elapsed),
		slog.String("remote", r.RemoteAddr),
	}
	if st.actor.Username != "" {
		attrs = append(attrs, slog.String("user", st.actor.Username))
	}
	if st.cred.method != "" {
		attrs = append(attrs, slog.String("auth", st.cred.String()))
	}
	if st.problem != "" {
		attrs = append(attrs, slog.String("problem", st.problem))
	}
	st.base.LogAttrs(r.Context(), level, "request", attrs...)
}

func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

// newDurationMetric is the request latency histogram, labelled by route
// pattern rather than path so that ids in paths do not explode the series.
func newDurationMetric(reg prometheus.Registerer) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "slurmgate",
		Subsystem: "http",
		Name:      "request_duration_seconds",
		Help:      "Time to answer API requests, by method, route pattern and status class.",
		Buckets:   []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"method", "route", "status"})
	reg.MustRegister(h)
	return h
}

// recorder remembers the status and size of a response for the access log.
// It also turns ServeMux's own plain-text 404 and 405 answers, given when no
// route matches, into problems like every other error.
type recorder struct {
	http.ResponseWriter
	req       *http.Request
	st        *requestState
	status    int
	bytes     int64
	rewriting bool // writing the problem that replaces ServeMux's answer
	swallow   bool // discard ServeMux's own body
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status != 0 {
		return
	}
	if rec.st.route == nil && !rec.rewriting && (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) {
		rec.rewriting = true
		r := rec.req
		if code == http.StatusNotFound {
			writeProblem(rec, r, notFoundProblem.with("no API route matches %s %s", r.Method, r.URL.Path))
		} else {
			writeProblem(rec, r, methodNotAllowed.with("%s does not allow %s; it allows %s", r.URL.Path, r.Method, rec.Header().Get("Allow")))
		}
		rec.swallow = true
		return
	}
	rec.status = code
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.swallow {
		return len(p), nil
	}
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	n, err := rec.ResponseWriter.Write(p)
	rec.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// full duplex) through the recorder.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// Flush and Hijack are here for code that asserts the interfaces directly
// (streamed logs, WebSocket libraries) instead of using ResponseController.
func (rec *recorder) Flush() {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	http.NewResponseController(rec.ResponseWriter).Flush()
}

func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(rec.ResponseWriter).Hijack()
	if err == nil && rec.status == 0 {
		rec.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}
