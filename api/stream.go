package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// sessionStreamRoutes: live session updates as Server-Sent Events, so the
// portal and the CLI see state changes as they commit instead of polling.
func (s *Server) sessionStreamRoutes() []route {
	return []route{
		{method: "GET", pattern: "/api/v1/sessions/stream",
			summary: "Server-Sent Events: a `session` event with the session's JSON whenever one the caller may see changes; `resync` when changes may have been missed (re-list)",
			access:  authenticated, handler: s.streamSessions,
			query: []param{
				{"id", "string", "only this session; repeat for several"},
				{"all", "boolean", "every session the caller may see, not only their own"},
				{"max_s", "number", "end the stream after this many seconds (default: until the client goes away)"},
			}},
	}
}

// streamKeepalive is how often an idle stream carries a comment line, well
// under the idle timeouts of common proxies (60 s in nginx).
const streamKeepalive = 15 * time.Second

func (s *Server) streamSessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	actor := ActorFrom(r.Context())
	ids := map[string]bool{}
	for _, id := range q["id"] {
		ids[id] = true
	}
	all := false
	if v := q.Get("all"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			p := badRequest.with("all %q: want true or false", v)
			p.Field = "all"
			writeProblem(w, r, p)
			return
		}
		all = b
	}
	// The stream outlives the check at its start: end it when the
	// credential that opened it ends (logout, revocation, expiry), as
	// terminals and app WebSockets do.
	ctx, cancelCred := s.credentialContext(r.Context(), r)
	defer cancelCred()
	if v := q.Get("max_s"); v != "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil || secs <= 0 || secs > 86400 {
			p := badRequest.with("max_s %q: want a number of seconds between 0 and 86400", v)
			p.Field = "max_s"
			writeProblem(w, r, p)
			return
		}
		var cancel func()
		ctx, cancel = context.WithTimeout(ctx, time.Duration(secs*float64(time.Second)))
		defer cancel()
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeProblem(w, r, serverFault(stateFrom(r.Context()).id))
		return
	}
	// Subscribe before answering, so that nothing committed after the client
	// sees the answer's headers is missed.
	changes := s.b.WatchSessions(ctx)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	flusher.Flush()

	keepalive := time.NewTicker(streamKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-keepalive.C:
			fmt.Fprint(w, ": keepalive\n\n")
		case c, open := <-changes:
			if !open {
				return
			}
			if c.Resync {
				fmt.Fprint(w, "event: resync\ndata: {}\n\n")
				break
			}
			if len(ids) > 0 && !ids[c.ID] {
				continue
			}
			sess, err := s.b.Session(ctx, actor, c.ID)
			if err != nil {
				continue // not the caller's to see, or gone
			}
			if !all && len(ids) == 0 && sess.Owner != actor.Username {
				continue
			}
			data, err := json.Marshal(sess)
			if err != nil {
				continue
			}
			fmt.Fprintf(w, "event: session\nid: %s\ndata: %s\n\n", sess.ID, data)
		}
		flusher.Flush()
	}
}
