package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/slurmgate/slurmgate/apptainer"
)

// Config is what the gateway tells the agent about its session. The
// gateway writes it; see the package documentation for an example.
type Config struct {
	SessionID string `json:"session_id"`
	// GatewayURL is the gateway's tunnel endpoint, ws:// or wss://.
	GatewayURL string `json:"gateway_url"`
	// Secret authenticates the agent (32 random bytes, base64url).
	Secret string `json:"secret"`
	// GatewayCAFile is a PEM bundle to trust for wss:// besides the system
	// roots (a site CA).
	GatewayCAFile string `json:"gateway_ca_file,omitempty"`

	// Runtime names the container runtime (apptainer.LookupDriver).
	Runtime  string   `json:"runtime"`
	Image    string   `json:"image,omitempty"`
	Mounts   []Mount  `json:"mounts,omitempty"`
	Env      []string `json:"env,omitempty"`
	Contain  bool     `json:"contain,omitempty"`
	CleanEnv bool     `json:"clean_env,omitempty"`
	// StateDir is a private directory for sockets; default
	// $TMPDIR/slurmgate-<session>. It is created 0700.
	StateDir string `json:"state_dir,omitempty"`
	CacheDir string `json:"cache_dir,omitempty"`

	// Interactive sessions run until stopped; batch sessions end with
	// Command, and the job's exit status is the command's.
	Interactive bool `json:"interactive"`
	// Command is the batch command, or an interactive session's startup
	// command run in the background; it runs with /bin/sh -c inside.
	Command  string    `json:"command,omitempty"`
	Services []Service `json:"services,omitempty"`
	// MetricsInterval between metric reports (default 5s).
	MetricsInterval Duration `json:"metrics_interval,omitempty"`
	// StopGrace is how long processes get between SIGTERM and SIGKILL
	// when the session stops (default 10s).
	StopGrace Duration `json:"stop_grace,omitempty"`
	// LogFile receives the agent's own log (slurmgate agent appends to it),
	// so that the job's stdout and stderr hold only the session's output:
	// the batch command's and the services'. Empty: the job's stderr.
	LogFile string `json:"log_file,omitempty"`
}

// Mount binds a host directory into the container.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// Service is an app the agent starts and proxies.
type Service struct {
	Name string `json:"name"`
	// Protocol is "http" or "tcp".
	Protocol string `json:"protocol"`
	// Command is the argv template; see the package documentation.
	Command []string `json:"command"`
	// Socket: the app listens on the Unix socket {socket}, not on a port.
	Socket bool `json:"socket,omitempty"`
	// Port is a fixed loopback port for apps that cannot be told one; 0
	// lets the agent choose ({port}).
	Port int `json:"port,omitempty"`
	// BaseURL: the app serves under /s/{session}/{name}/ ({base_url}).
	BaseURL bool `json:"base_url,omitempty"`
	// AuthHeader ("Name: value", may use {token}) is added to every HTTP
	// request the agent proxies to the app. Using {token} also puts the
	// token in the app's environment (SLURMGATE_SERVICE_TOKEN,
	// JUPYTER_TOKEN); Command may not hold it.
	AuthHeader string   `json:"auth_header,omitempty"`
	Env        []string `json:"env,omitempty"`
	// ReadyPath is the path probed for readiness (default the base URL, or
	// /); any HTTP response means ready. TCP services are ready once they
	// accept a connection.
	ReadyPath string `json:"ready_path,omitempty"`
}

// Duration is a time.Duration written as "5s" in JSON.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"5s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Load reads the agent's configuration from path. It refuses a file that
// group or others can read: it holds the session's secret.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("agent config %s has mode %04o and holds the session's secret: it must be readable by its owner only (chmod 600 %s)",
			path, fi.Mode().Perm(), path)
	}
	var c Config
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("agent config %s: %w", path, err)
	}
	return &c, nil
}

// Validate reports everything wrong with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.SessionID == "" || strings.ContainsAny(c.SessionID, "/ \t\n") {
		errs = append(errs, fmt.Errorf("session_id %q must be non-empty, without slashes or spaces", c.SessionID))
	}
	if !strings.HasPrefix(c.GatewayURL, "ws://") && !strings.HasPrefix(c.GatewayURL, "wss://") {
		errs = append(errs, fmt.Errorf("gateway_url %q must start with ws:// or wss://", c.GatewayURL))
	}
	if c.Secret == "" {
		errs = append(errs, errors.New("secret is empty"))
	}
	if c.Runtime == "" {
		errs = append(errs, errors.New("runtime is empty (apptainer, charliecloud or none)"))
	}
	if !c.Interactive && strings.TrimSpace(c.Command) == "" {
		errs = append(errs, errors.New("a batch session (interactive false) needs a command"))
	}
	seen := map[string]bool{}
	for i, s := range c.Services {
		switch {
		case s.Name == "" || strings.ContainsAny(s.Name, "/ "):
			errs = append(errs, fmt.Errorf("services[%d]: name %q must be non-empty, without slashes or spaces", i, s.Name))
		case seen[s.Name]:
			errs = append(errs, fmt.Errorf("services[%d]: name %q appears twice", i, s.Name))
		}
		seen[s.Name] = true
		if s.Protocol != "http" && s.Protocol != "tcp" {
			errs = append(errs, fmt.Errorf("service %s: protocol %q must be http or tcp", s.Name, s.Protocol))
		}
		if len(s.Command) == 0 {
			errs = append(errs, fmt.Errorf("service %s: command is empty", s.Name))
		}
		if s.AuthHeader != "" && !strings.Contains(s.AuthHeader, ":") {
			errs = append(errs, fmt.Errorf("service %s: auth_header %q must look like \"Name: value\"", s.Name, s.AuthHeader))
		}
	}
	return errors.Join(errs...)
}

func (c *Config) spec(stateDir string) apptainer.Spec {
	s := apptainer.Spec{
		SessionID: c.SessionID,
		Image:     c.Image,
		Env:       c.Env,
		GPUs:      os.Getenv("CUDA_VISIBLE_DEVICES") != "",
		StateDir:  stateDir,
		CacheDir:  c.CacheDir,
		Contain:   c.Contain,
		CleanEnv:  c.CleanEnv,
	}
	for _, m := range c.Mounts {
		s.Mounts = append(s.Mounts, apptainer.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return s
}

func (c *Config) metricsInterval() time.Duration {
	if c.MetricsInterval > 0 {
		return time.Duration(c.MetricsInterval)
	}
	return 5 * time.Second
}

func (c *Config) stopGrace() time.Duration {
	if c.StopGrace > 0 {
		return time.Duration(c.StopGrace)
	}
	return 10 * time.Second
}
