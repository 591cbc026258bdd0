package apptainer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
)

// apptainerRuntime runs a session in one Apptainer instance: Start runs
// `apptainer instance start`, every Command is `apptainer exec
// instance://NAME …`, and Stop is `apptainer instance stop`, which ends
// everything inside. Apptainer itself handles the SIF (no extraction here).
type apptainerRuntime struct{}

func init() { register(apptainerRuntime{}) }

func (apptainerRuntime) Name() string { return "apptainer" }

func (apptainerRuntime) Capabilities() Capabilities {
	return Capabilities{Isolation: true, Mounts: true, GPUs: true}
}

// JobScript: container sessions run through the session agent.
func (apptainerRuntime) JobScript(j Job) (string, error) {
	return "", fmt.Errorf("runtime apptainer runs sessions through the session agent; render the job with AgentJobScript")
}

// apptainerBin is the program run; tests of the command lines leave it be.
var apptainerBin = "apptainer"

func (apptainerRuntime) Start(ctx context.Context, spec Spec) (Instance, error) {
	start, err := instanceStartArgv(spec)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(apptainerBin); err != nil {
		return nil, fmt.Errorf("apptainer: %s not found on PATH; install Apptainer on the compute nodes or use runtime charliecloud", apptainerBin)
	}
	cmd := exec.CommandContext(ctx, start[0], start[1:]...)
	cmd.Env = withContainerEnv(spec.Env)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("apptainer instance start: %v: %s", err, lastLines(out, 5))
	}
	return &apptainerInstance{spec: spec, name: instanceName(spec.SessionID)}, nil
}

var instanceNameUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// instanceName is the session's instance name; Apptainer allows letters,
// digits, '_', '.', '-'.
func instanceName(sessionID string) string {
	return "slurmgate-" + instanceNameUnsafe.ReplaceAllString(sessionID, "_")
}

// instanceStartArgv is the `apptainer instance start` command line for spec.
func instanceStartArgv(spec Spec) ([]string, error) {
	if spec.SessionID == "" || spec.Image == "" {
		return nil, fmt.Errorf("apptainer: the spec needs a session id and an image")
	}
	argv := []string{apptainerBin, "instance", "start", "--writable-tmpfs"}
	argv = append(argv, isolationFlags(spec)...)
	for _, m := range spec.Mounts {
		if err := checkMount(m); err != nil {
			return nil, fmt.Errorf("apptainer: %w", err)
		}
		b := m.Source + ":" + m.Target
		if m.ReadOnly {
			b += ":ro"
		}
		argv = append(argv, "--bind", b)
	}
	return append(argv, spec.Image, instanceName(spec.SessionID)), nil
}

// isolationFlags are shared by instance start and exec.
func isolationFlags(spec Spec) []string {
	var f []string
	if spec.GPUs {
		f = append(f, "--nv")
	}
	if spec.Contain {
		f = append(f, "--contain")
	}
	if spec.CleanEnv {
		f = append(f, "--cleanenv")
	}
	return f
}

// withContainerEnv is apptainer's own environment with env set for the
// container: as APPTAINERENV_K=V variables, which Apptainer hands to the
// container even with --cleanenv. Not as --env flags: a command line is
// readable by every user on the node (/proc/PID/cmdline), and env holds the
// services' tokens; a process's environment only by its own user and root.
func withContainerEnv(env []string) []string {
	out := os.Environ()
	for _, kv := range env {
		out = append(out, "APPTAINERENV_"+kv)
	}
	return out
}

// execArgv is the `apptainer exec` command line running argv in the instance.
func execArgv(spec Spec, argv []string) []string {
	a := []string{apptainerBin, "exec"}
	if spec.GPUs {
		a = append(a, "--nv")
	}
	if spec.CleanEnv {
		a = append(a, "--cleanenv")
	}
	a = append(a, "instance://"+instanceName(spec.SessionID))
	return append(a, argv...)
}

// stopArgv is the `apptainer instance stop` command line.
func stopArgv(spec Spec) []string {
	return []string{apptainerBin, "instance", "stop", instanceName(spec.SessionID)}
}

type apptainerInstance struct {
	spec Spec
	name string
}

func (a *apptainerInstance) Command(ctx context.Context, argv []string, env []string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("apptainer: empty command")
	}
	full := execArgv(a.spec, argv)
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	// An instance does not hand its start environment to exec'd processes,
	// so the spec's environment goes again.
	cmd.Env = withContainerEnv(slices.Concat(a.spec.Env, env))
	return cmd, nil
}

func (a *apptainerInstance) Stop(ctx context.Context) error {
	s := stopArgv(a.spec)
	if out, err := exec.CommandContext(ctx, s[0], s[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("apptainer instance stop %s: %v: %s", a.name, err, lastLines(out, 5))
	}
	return nil
}
