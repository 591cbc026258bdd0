package apptainer

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// AgentJob is what the batch script of an agent-run session needs. Every
// container runtime runs sessions this way: the job's one step is the
// session agent, which starts the container and the services itself.
type AgentJob struct {
	SessionID string
	// Agent is the slurmgate binary on the compute node.
	Agent string
	// Config is the agent's configuration file, written by the gateway with
	// mode 0600 and owned by the user; it holds the session's secret, which
	// is why the script only names it.
	Config string
}

var sessionIDChars = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// AgentJobScript renders the batch script that execs the session agent, so
// Slurm's signals (scancel, time limit) reach the agent directly and the
// agent's exit status is the job's.
func AgentJobScript(j AgentJob) (string, error) {
	if !sessionIDChars.MatchString(j.SessionID) {
		return "", fmt.Errorf("agent job: session id %q: want letters, digits, '_', '.', '-'", j.SessionID)
	}
	for _, p := range []struct{ what, path string }{{"agent binary", j.Agent}, {"agent config", j.Config}} {
		if !filepath.IsAbs(p.path) || filepath.Clean(p.path) != p.path || strings.ContainsAny(p.path, "\n\x00") {
			return "", fmt.Errorf("agent job: %s path %q: want a clean absolute path", p.what, p.path)
		}
	}
	return fmt.Sprintf(`#!/bin/bash
# Slurmgate session %s. Rendered by the gateway; do not edit.
# The session agent starts the container and the session's services; it reads
# its secret from the 0600 config file, never from this script.
exec %s agent --config %s
`, j.SessionID, shellQuote(j.Agent), shellQuote(j.Config)), nil
}
