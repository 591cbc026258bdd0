package tunnel

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
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

// MaxReportSize bounds one report on the wire. A report is a few KiB (a
// service list, metrics of a few GPUs); the bound is what a researcher, who
// can read the session's secret and dial in with a client of their own,
// can make the gateway hold in memory per report stream.
const MaxReportSize = 1 << 20

// Reports reads the reports of a report stream until it ends: one JSON
// object per line, as json.Encoder writes them. A line longer than
// MaxReportSize is an error that ends the stream; it is never buffered
// whole.
func Reports(r io.Reader) iter.Seq2[Report, error] {
	return func(yield func(Report, error) bool) {
		br := bufio.NewReaderSize(r, 64<<10)
		var line []byte
		for {
			line = line[:0]
			var err error
			for {
				var frag []byte
				frag, err = br.ReadSlice('\n')
				if len(line)+len(frag) > MaxReportSize {
					yield(Report{}, fmt.Errorf("agent report longer than %d bytes, the limit of one report: report stream ended", MaxReportSize))
					return
				}
				line = append(line, frag...)
				if err != bufio.ErrBufferFull {
					break
				}
			}
			if err != nil && err != io.EOF {
				yield(Report{}, err)
				return
			}
			if len(bytes.TrimSpace(line)) > 0 {
				var rep Report
				jerr := json.Unmarshal(line, &rep)
				if !yield(rep, jerr) || jerr != nil {
					return
				}
			}
			if err == io.EOF {
				return
			}
		}
	}
}
