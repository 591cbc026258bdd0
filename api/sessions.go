package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/slurmgate/slurmgate/bridge"
)

// sessionRoutes: create, list, get and destroy sessions, and read their
// timelines and job output.
func (s *Server) sessionRoutes() []route {
	return []route{
		{method: "POST", pattern: "/api/v1/sessions", summary: "Create a session and submit its job; an Idempotency-Key header (or idempotency_key) makes retries safe",
			access: authenticated, handler: s.createSession, status: http.StatusCreated,
			request: bridge.SessionRequest{}, response: bridge.Session{}},
		{method: "GET", pattern: "/api/v1/sessions", summary: "List sessions, newest first: the caller's own, or with all=true every one they may see",
			access: authenticated, handler: s.listSessions, response: page[bridge.Session]{},
			query: append([]param{
				{"state", "string", "only sessions in this state (PENDING, RUNNING, …); repeat for several"},
				{"project", "string", `only sessions of this project, "domain/project"`},
				{"owner", "string", "only this user's sessions (admins for others')"},
				{"type", "string", "interactive or batch"},
				{"all", "boolean", "every session the caller may see, not only their own"},
			}, pageParams...)},
		{method: "GET", pattern: "/api/v1/sessions/{id}", summary: "Get a session",
			access: authenticated, handler: s.getSession, response: bridge.Session{}},
		{method: "DELETE", pattern: "/api/v1/sessions/{id}", summary: "Destroy a session: cancel its job; it ends asynchronously",
			access: authenticated, handler: s.destroySession, status: http.StatusAccepted, response: bridge.Session{}},
		{method: "GET", pattern: "/api/v1/sessions/{id}/events", summary: "A session's timeline, oldest first",
			access: authenticated, handler: s.sessionEvents, response: []bridge.Event{}},
		{method: "GET", pattern: "/api/v1/sessions/{id}/logs", summary: "A session's job output as text/plain, optionally followed as it grows",
			access: authenticated, handler: s.sessionLogs,
			query: []param{
				{"stream", "string", "stdout (default) or stderr"},
				{"tail", "integer", "start at the last N lines"},
				{"follow", "boolean", "keep streaming until the session ends"},
			}},
	}
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) {
	var in bridge.SessionRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	// The header is the usual HTTP convention; the body field serves
	// clients that cannot set headers. The body wins when both are given.
	if in.IdempotencyKey == "" {
		in.IdempotencyKey = r.Header.Get("Idempotency-Key")
	}
	sess, err := s.b.CreateSession(r.Context(), ActorFrom(r.Context()), in)
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/api/v1/sessions/"+sess.ID)
	writeJSON(w, r, http.StatusCreated, sess)
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request) {
	pr, ok := readPage(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	f := bridge.SessionFilter{Owner: q.Get("owner"), Project: q.Get("project"), Type: q.Get("type"), Limit: pr.Limit}
	for _, v := range q["state"] {
		// A misspelt state would silently match nothing; say so instead.
		st := bridge.SessionState(strings.ToUpper(v))
		if !slices.Contains(sessionStates, st) {
			p := badRequest.with("state %q: want one of %v", v, sessionStates)
			p.Field = "state"
			writeProblem(w, r, p)
			return
		}
		f.States = append(f.States, st)
	}
	if v := q.Get("all"); v != "" {
		all, err := strconv.ParseBool(v)
		if err != nil {
			p := badRequest.with("all %q: want true or false", v)
			p.Field = "all"
			writeProblem(w, r, p)
			return
		}
		f.All = all
	}
	if pr.After != nil {
		f.After = &bridge.SessionCursor{CreatedAt: pr.After.CreatedAt, ID: pr.After.ID}
	}
	ss, err := s.b.ListSessions(r.Context(), ActorFrom(r.Context()), f)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, newPage(ss, pr, func(s bridge.Session) position {
		return position{CreatedAt: s.CreatedAt, ID: s.ID}
	}))
}

// sessionStates are the values ?state= accepts.
var sessionStates = []bridge.SessionState{bridge.StatePending, bridge.StatePreparing, bridge.StateRunning,
	bridge.StateTerminating, bridge.StateTerminated, bridge.StateError, bridge.StateCancelled}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	sess, err := s.b.Session(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusOK, sess)
}

// destroySession answers 202: the job is cancelled, but the session ends
// only when the reconciler sees Slurm confirm it.
func (s *Server) destroySession(w http.ResponseWriter, r *http.Request) {
	sess, err := s.b.DestroySession(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, r, http.StatusAccepted, sess)
}

func (s *Server) sessionEvents(w http.ResponseWriter, r *http.Request) {
	evs, err := s.b.SessionEvents(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	if evs == nil {
		evs = []bridge.Event{}
	}
	writeJSON(w, r, http.StatusOK, evs)
}

func (s *Server) sessionLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opt := bridge.LogOptions{Stream: q.Get("stream")}
	if v := q.Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			p := badRequest.with("tail %q: want a non-negative integer", v)
			p.Field = "tail"
			writeProblem(w, r, p)
			return
		}
		opt.Tail = n
	}
	if v := q.Get("follow"); v != "" {
		follow, err := strconv.ParseBool(v)
		if err != nil {
			p := badRequest.with("follow %q: want true or false", v)
			p.Field = "follow"
			writeProblem(w, r, p)
			return
		}
		opt.Follow = follow
	}
	lw := &logWriter{w: w}
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	ctx := r.Context()
	if opt.Follow {
		// A followed log outlives the check at its start: end it when
		// the credential that opened it ends (logout, revocation).
		var cancel context.CancelFunc
		ctx, cancel = s.credentialContext(ctx, r)
		defer cancel()
	}
	err := s.b.SessionLog(ctx, ActorFrom(r.Context()), r.PathValue("id"), opt, lw, flush)
	switch {
	case err != nil && !lw.started:
		writeError(w, r, err)
	case err != nil:
		// The status is sent; all that is left is to cut the stream short
		// and say why in the log.
		stateFrom(r.Context()).logger().Warn("log stream ended early", "err", err)
	case !lw.started:
		lw.start() // an empty log is a 200 with an empty body
	}
}

// logWriter commits to a 200 text/plain answer only at the first byte, so
// that an error found before any output (not found, a bad stream) can still
// be a problem response.
type logWriter struct {
	w       http.ResponseWriter
	started bool
}

func (l *logWriter) start() {
	l.started = true
	h := l.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff") // job output is never HTML to a browser
	l.w.WriteHeader(http.StatusOK)
}

func (l *logWriter) Write(p []byte) (int, error) {
	if !l.started {
		l.start()
	}
	return l.w.Write(p)
}
