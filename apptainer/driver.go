package apptainer

import (
	"context"
	"fmt"
	"os/exec"
)

// Driver is the node-side half of a runtime: the session agent uses it to
// start the session's container and to run processes (services, terminals,
// exec, the batch command) inside it. The verbs follow Nomad's task drivers:
// Start once, then Command as often as needed, then Stop.
type Driver interface {
	Name() string
	Capabilities() Capabilities
	// Start prepares the image on this node (cache, extraction) and starts
	// the container when the runtime keeps one alive between commands
	// (apptainer instances). It returns once commands can run inside.
	Start(ctx context.Context, spec Spec) (Instance, error)
}

// Spec is what the agent knows about the container to start.
type Spec struct {
	SessionID string
	// Image is the image's location: a SIF file or an unpacked directory.
	Image  string
	Mounts []Mount
	// Env is set in every process started inside ("KEY=value").
	Env []string
	// GPUs: the job was allocated GPUs (CUDA_VISIBLE_DEVICES is set) and
	// they must be visible inside (apptainer --nv).
	GPUs bool
	// StateDir is a private (0700) per-session directory on the node for
	// sockets and runtime state; CacheDir is the node's per-user image cache.
	StateDir string
	CacheDir string
	// Contain and CleanEnv ask for apptainer's --contain and --cleanenv
	// (charliecloud: CleanEnv passes only PATH, LANG, TERM, TZ besides Env;
	// ch-run always contains); sites set them per scaling group.
	Contain  bool
	CleanEnv bool
}

// Instance is a started container.
type Instance interface {
	// Command returns an unstarted command that runs argv inside the
	// container with env added. The caller wires its stdio (pipes or a PTY),
	// starts and waits for it.
	Command(ctx context.Context, argv []string, env []string) (*exec.Cmd, error)
	// Stop ends the container and everything still running in it.
	Stop(ctx context.Context) error
}

// LookupDriver returns the node-side driver of the runtime of that name.
func LookupDriver(name string) (Driver, error) {
	r, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	d, ok := r.(Driver)
	if !ok {
		return nil, fmt.Errorf("container runtime %q has no node-side driver", name)
	}
	return d, nil
}
