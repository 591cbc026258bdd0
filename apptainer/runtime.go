package apptainer

import (
	"fmt"
	"slices"
	"strings"
)

// Runtime is one way of running a session's workload on a compute node.
type Runtime interface {
	// Name is the runtime's configuration name ("none", "apptainer", …).
	Name() string
	// Capabilities says what the runtime supports, so the gateway can refuse
	// a request it cannot honour before submitting anything.
	Capabilities() Capabilities
	// JobScript renders the batch script of j's Slurm job.
	JobScript(j Job) (string, error)
}

// Capabilities describes what a runtime can do.
type Capabilities struct {
	// Isolation: the workload runs in its own root filesystem.
	Isolation bool
	// Mounts: host directories can be bound at chosen paths.
	Mounts bool
	// GPUs: allocated GPUs are visible inside.
	GPUs bool
}

// Job is what a runtime needs to know to render a session's job script.
type Job struct {
	SessionID string
	// Interactive sessions keep running after the startup command, until
	// destroyed or out of time; batch sessions end with their command.
	Interactive bool
	// Image is the image's location on shared storage (a SIF file or a
	// directory); the none runtime ignores it.
	Image   string
	Command string
	Mounts  []Mount
	GPUs    int
}

// Mount binds a host path into the session.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
}

var registry = map[string]Runtime{}

func register(r Runtime) { registry[r.Name()] = r }

// Lookup returns the runtime of that name.
func Lookup(name string) (Runtime, error) {
	if r, ok := registry[name]; ok {
		return r, nil
	}
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return nil, fmt.Errorf("container runtime %q is not known (have %s)", name, strings.Join(names, ", "))
}

// shellQuote quotes s for a POSIX shell: the result is one word whatever s holds.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
