package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/tunnel"
)

// runtimeRoutes: what runs inside a session: its apps and their readiness,
// its resource use, and commands run in its container.
func (s *Server) runtimeRoutes() []route {
	return []route{
		{method: "GET", pattern: "/api/v1/sessions/{id}/apps",
			summary: "The session's apps (services) with their readiness and the URLs that reach them",
			access:  authenticated, handler: s.sessionApps, response: appList{}},
		{method: "GET", pattern: "/api/v1/sessions/{id}/metrics",
			summary: "The session's latest CPU, memory and GPU use as its agent reported it",
			access:  authenticated, handler: s.sessionMetrics, response: sessionMetrics{}},
		{method: "POST", pattern: "/api/v1/sessions/{id}/exec",
			summary: `Run a command in the session's container; the answer streams NDJSON lines {"stream":"stdout"|"stderr","data":…} (or "data_b64" for bytes that are not UTF-8), then {"exit_code":N}`,
			access:  authenticated, handler: s.sessionExec, request: execRequest{}},
	}
}

// appList is the answer of GET …/apps.
type appList struct {
	// AgentConnected says whether the session's agent is connected to this
	// gateway; apps are reachable only when it is.
	AgentConnected bool      `json:"agent_connected"`
	Apps           []appInfo `json:"apps"`
}

type appInfo struct {
	bridge.App
	// URL is the app's path on this gateway (/s/{session}/{app}/).
	URL string `json:"url"`
	// SubdomainURL is the app's own origin, when subdomain mode is on.
	SubdomainURL string `json:"subdomain_url,omitempty"`
}

func (s *Server) sessionApps(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	apps, connected, err := s.b.SessionApps(r.Context(), ActorFrom(r.Context()), id)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := appList{AgentConnected: connected, Apps: make([]appInfo, len(apps))}
	for i, a := range apps {
		path, sub := s.apps.appURLs(r, id, a.Name)
		out.Apps[i] = appInfo{App: a, URL: path, SubdomainURL: sub}
	}
	writeJSON(w, r, http.StatusOK, out)
}

// sessionMetrics is the answer of GET …/metrics.
type sessionMetrics struct {
	bridge.SessionMetrics
	// GPUStatus says, for a session with GPUs, whether GPU metrics are
	// available: "ok" or "GPU metrics unavailable: <reason>".
	GPUStatus string `json:"gpu_status,omitempty"`
}

func (s *Server) sessionMetrics(w http.ResponseWriter, r *http.Request) {
	m, err := s.b.SessionMetrics(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, r, err)
		return
	}
	out := sessionMetrics{SessionMetrics: m}
	if m.Allocated.GPUs > 0 && m.Metrics != nil {
		out.GPUStatus = "ok"
		if len(m.Metrics.GPUs) == 0 {
			reason := "the agent reported none"
			for _, u := range m.Metrics.Unavailable {
				if strings.Contains(strings.ToLower(u), "gpu") || strings.Contains(strings.ToLower(u), "nvml") {
					reason = u
				}
			}
			out.GPUStatus = "GPU metrics unavailable: " + strings.TrimPrefix(reason, "GPU metrics unavailable: ")
		}
	}
	writeJSON(w, r, http.StatusOK, out)
}

// execRequest is the body of POST …/exec.
type execRequest struct {
	Argv []string `json:"argv"`
	// Env adds variables ("KEY=value") to the command's environment.
	Env []string `json:"env,omitempty"`
	// Stdin is given to the command, whose stdin is then closed.
	Stdin string `json:"stdin,omitempty"`
}

// execLine is one line of the exec answer.
type execLine struct {
	Stream  string `json:"stream,omitempty"`
	Data    string `json:"data,omitempty"`
	DataB64 string `json:"data_b64,omitempty"`
	// ExitCode ends the answer; Error says why the command could not run or
	// its stream broke.
	ExitCode *int   `json:"exit_code,omitempty"`
	Error    string `json:"error,omitempty"`
}

// ndjson writes exec lines, one JSON object per line, flushed as they come.
type ndjson struct {
	mu  sync.Mutex
	w   http.ResponseWriter
	enc *json.Encoder
}

func (n *ndjson) line(l execLine) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.enc.Encode(l); err != nil {
		return err
	}
	return http.NewResponseController(n.w).Flush()
}

// execStream turns a process's output into lines of one stream.
type execStream struct {
	n    *ndjson
	name string
}

func (e execStream) Write(p []byte) (int, error) {
	l := execLine{Stream: e.name}
	if utf8.Valid(p) {
		l.Data = string(p)
	} else {
		l.DataB64 = base64.StdEncoding.EncodeToString(p)
	}
	if err := e.n.line(l); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *Server) sessionExec(w http.ResponseWriter, r *http.Request) {
	// The agent first: a request for another replica's agent is forwarded
	// with its body unread.
	ag, ok := s.useSession(w, r)
	if !ok {
		return
	}
	var in execRequest
	if !decodeJSON(w, r, &in) {
		return
	}
	if len(in.Argv) == 0 || in.Argv[0] == "" {
		p := invalidRequest.with("argv must name a command, e.g. [\"nvidia-smi\"]")
		p.Field = "argv"
		writeProblem(w, r, p)
		return
	}
	for _, e := range in.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			p := invalidRequest.with("env entry %q: want KEY=value", e)
			p.Field = "env"
			writeProblem(w, r, p)
			return
		}
	}
	ag.Touch()
	n := &ndjson{w: w, enc: json.NewEncoder(w)}
	n.enc.SetEscapeHTML(false)
	// The status goes out only once the agent has accepted the command, so
	// a refusal is still a problem response.
	proc, err := tunnel.StartProcess(r.Context(), ag.Conn, tunnel.Header{Kind: tunnel.KindExec, Argv: in.Argv, Env: in.Env},
		tunnel.ProcessOutput{Stdout: &deferredWriter{n: n, w: execStream{n, "stdout"}}, Stderr: &deferredWriter{n: n, w: execStream{n, "stderr"}}})
	if err != nil {
		writeProblem(w, r, badGateway.with("the agent of session %s did not run the command: %v", ag.SessionID, err))
		return
	}
	defer proc.Close()
	// A client that goes away (Ctrl-C) ends the command: closing the
	// stream makes the agent hang up on it. Without this, a command that
	// writes nothing would run on, and hold this handler, to its end.
	stop := context.AfterFunc(r.Context(), func() { proc.Close() })
	defer stop()
	n.start()
	if in.Stdin != "" {
		if _, err := proc.Write([]byte(in.Stdin)); err != nil {
			stateFrom(r.Context()).logger().Info("exec stdin", "err", err)
		}
	}
	proc.CloseStdin()
	status, err := proc.Wait()
	end := execLine{ExitCode: &status.Code, Error: status.Error}
	if err != nil {
		code := -1
		end = execLine{ExitCode: &code, Error: fmt.Sprintf("the command's stream broke before it exited: %v", err)}
	}
	n.line(end)
}

// deferredWriter makes the first output commit the 200 NDJSON answer.
type deferredWriter struct {
	n *ndjson
	w execStream
}

func (d *deferredWriter) Write(p []byte) (int, error) {
	d.n.start()
	return d.w.Write(p)
}

// start commits the answer's status and headers, once.
func (n *ndjson) start() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h := n.w.Header(); h.Get("Content-Type") == "" {
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		n.w.WriteHeader(http.StatusOK)
	}
}
