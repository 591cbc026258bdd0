package apptainer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// none runs the session's command directly on the node, as the user, for
// sites without containers. It offers no isolation and cannot move mounts.
type none struct{}

func init() { register(none{}) }

func (none) Name() string { return "none" }

func (none) Capabilities() Capabilities { return Capabilities{GPUs: true} }

func (none) JobScript(j Job) (string, error) {
	if len(j.Mounts) > 0 {
		return "", fmt.Errorf("runtime none cannot bind folders at chosen paths; use a container runtime for mounts")
	}
	if !j.Interactive && strings.TrimSpace(j.Command) == "" {
		return "", fmt.Errorf("a batch session needs a command")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/bash\n# Slurmgate session %s (runtime none). Rendered by the gateway; do not edit.\n", j.SessionID)
	b.WriteString("cd \"$HOME\" 2>/dev/null || cd /tmp\n")
	if !j.Interactive {
		// exec: the command's exit status is the job's, and Slurm's signals reach it.
		fmt.Fprintf(&b, "exec /bin/bash -c %s\n", shellQuote(j.Command))
		return b.String(), nil
	}
	if strings.TrimSpace(j.Command) != "" {
		fmt.Fprintf(&b, "/bin/bash -c %s &\n", shellQuote(j.Command))
	}
	// Until the agent takes over interactive sessions, the job holds its
	// allocation until it is cancelled or reaches its time limit.
	b.WriteString("trap 'kill $(jobs -p) 2>/dev/null; exit 0' TERM\nwhile :; do sleep 3600 & wait $!; done\n")
	return b.String(), nil
}

// Start of the none runtime has nothing to prepare: commands run on the host
// with the session's environment. Mounts cannot be honoured.
func (none) Start(ctx context.Context, spec Spec) (Instance, error) {
	if len(spec.Mounts) > 0 {
		return nil, fmt.Errorf("runtime none cannot bind folders at chosen paths; use a container runtime for mounts")
	}
	if spec.SessionID == "" {
		return nil, fmt.Errorf("runtime none: the spec has no session id")
	}
	return &hostInstance{spec: spec, marker: markerVar + "=" + spec.SessionID}, nil
}

// hostInstance runs commands as plain host processes.
type hostInstance struct {
	spec   Spec
	marker string
}

func (h *hostInstance) Command(ctx context.Context, argv []string, env []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("runtime none: empty command")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	base := os.Environ()
	if h.spec.CleanEnv {
		base = nil
	}
	cmd.Env = slices.Concat(base, h.spec.Env, env, []string{h.marker})
	return cmd, nil
}

func (h *hostInstance) Stop(ctx context.Context) error { return stopMarked(ctx, h.marker) }
