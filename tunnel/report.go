package tunnel

import (
	"cmp"
	"encoding/json"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Report is what the agent tells the gateway on its report stream: a
// sequence of JSON objects, each with the fields that changed. The first
// report after every (re)connection carries the full state.
type Report struct {
	Time time.Time `json:"time"`
	// Services is the readiness of every service (full list when set).
	Services []ServiceState `json:"services,omitempty"`
	Metrics  *Metrics       `json:"metrics,omitempty"`
	Activity *Activity      `json:"activity,omitempty"`
	// Exit is set when a batch session's command has ended.
	Exit *ExitStatus `json:"exit,omitempty"`
	// Stopping says the agent is ending the session, and why
	// ("SIGTERM from Slurm", "requested by the gateway", …).
	Stopping string `json:"stopping,omitempty"`
}

// ServiceState is one service's readiness.
type ServiceState struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// Error says why a service is not ready (failed to start, exited).
	Error string `json:"error,omitempty"`
	// Shape, set by agents that can pass an HTTP service's streams
	// through unparsed, is what the gateway must do to each request
	// before it reaches the app (see Header.Shaped). Agents without it
	// shape requests themselves, one HTTP hop more.
	Shape *HTTPShape `json:"shape,omitempty"`
}

// HTTPShape is how requests to an HTTP service differ from what the
// browser sent the gateway.
type HTTPShape struct {
	// StripPrefix says the app is served at "/": the gateway's
	// /s/{session}/{service} path prefix is removed (and passed in
	// X-Forwarded-Prefix).
	StripPrefix bool `json:"strip_prefix,omitempty"`
	// AuthHeader and AuthValue are the credential the agent gave the app
	// (a Jupyter token, say), added to every request. The value is a
	// secret: it lives in the gateway's memory only, never in its
	// database or logs (LogValue).
	AuthHeader string `json:"auth_header,omitempty"`
	AuthValue  string `json:"auth_value,omitempty"`
}

// Apply shapes r, a request to service of session as the browser sent it
// to the gateway. Both ends call it: the gateway for Shaped streams, the
// agent for the others.
func (s HTTPShape) Apply(r *http.Request, session, service string) {
	if s.StripPrefix {
		prefix := "/s/" + session + "/" + service
		if rest, ok := strings.CutPrefix(r.URL.Path, prefix); ok && (rest == "" || rest[0] == '/') {
			r.URL.Path = cmp.Or(rest, "/")
			r.URL.RawPath = ""
			r.Header.Set("X-Forwarded-Prefix", prefix)
		}
	}
	if s.AuthHeader != "" {
		r.Header.Set(s.AuthHeader, s.AuthValue)
	}
}

// LogValue keeps the app's credential out of logs.
func (s HTTPShape) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("strip_prefix", s.StripPrefix), slog.String("auth_header", s.AuthHeader))
}

// Metrics is the job's resource use.
type Metrics struct {
	// CPUSeconds is the job's CPU time so far; CPUCores the cores it kept
	// busy on average since the previous report.
	CPUSeconds       float64 `json:"cpu_seconds"`
	CPUCores         float64 `json:"cpu_cores"`
	MemoryBytes      uint64  `json:"memory_bytes"`
	MemoryLimitBytes uint64  `json:"memory_limit_bytes,omitempty"`
	// Unavailable names metrics that could not be read, and why; this is a
	// normal condition (no NVML on a CPU node), not an error.
	Unavailable []string     `json:"unavailable,omitempty"`
	GPUs        []GPUMetrics `json:"gpus,omitempty"`
}

// GPUMetrics is one allocated GPU.
type GPUMetrics struct {
	Index            int    `json:"index"`
	UUID             string `json:"uuid,omitempty"`
	Name             string `json:"name,omitempty"`
	UtilizationPct   int    `json:"utilization_pct"`
	MemoryUsedBytes  uint64 `json:"memory_used_bytes"`
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
}

// Activity is the traffic on proxied streams since the previous report:
// what idleness detection looks at.
type Activity struct {
	Streams  int64 `json:"streams"`
	Requests int64 `json:"requests"`
	Bytes    int64 `json:"bytes"`
}

// Reports reads the reports of a report stream until it ends.
func Reports(r io.Reader) iter.Seq2[Report, error] {
	return func(yield func(Report, error) bool) {
		dec := json.NewDecoder(r)
		for {
			var rep Report
			err := dec.Decode(&rep)
			if err == io.EOF {
				return
			}
			if !yield(rep, err) || err != nil {
				return
			}
		}
	}
}
