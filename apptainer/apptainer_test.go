package apptainer

import (
	"slices"
	"strings"
	"testing"
)

func TestApptainerCommandLines(t *testing.T) {
	spec := Spec{
		SessionID: "0b9f/x y", Image: "/images/pytorch.sif", GPUs: true, Contain: true, CleanEnv: true,
		Mounts: []Mount{{Source: "/vf/alice/data", Target: "/home/work/data"}, {Source: "/vf/shared", Target: "/home/work/shared", ReadOnly: true}},
		Env:    []string{"A=1", `B=x,y "z"`},
	}
	start, err := instanceStartArgv(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"apptainer", "instance", "start", "--writable-tmpfs", "--nv", "--contain", "--cleanenv",
		"--bind", "/vf/alice/data:/home/work/data", "--bind", "/vf/shared:/home/work/shared:ro",
		"/images/pytorch.sif", "slurmgate-0b9f_x_y"}
	if !slices.Equal(start, want) {
		t.Errorf("instance start:\n got %q\nwant %q", start, want)
	}

	exe := execArgv(spec, []string{"jupyter", "--port=1"})
	want = []string{"apptainer", "exec", "--nv", "--cleanenv", "instance://slurmgate-0b9f_x_y", "jupyter", "--port=1"}
	if !slices.Equal(exe, want) {
		t.Errorf("exec:\n got %q\nwant %q", exe, want)
	}
	// The container's environment, tokens included, is never on a command
	// line (any user on the node reads those): Apptainer takes it from
	// APPTAINERENV_ variables, with --cleanenv too.
	withEnv := &apptainerInstance{spec: spec, name: instanceName(spec.SessionID)}
	cmd, err := withEnv.Command(t.Context(), []string{"jupyter"}, []string{"SLURMGATE_SERVICE_TOKEN=t0k3n"})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"APPTAINERENV_A=1", `APPTAINERENV_B=x,y "z"`, "APPTAINERENV_SLURMGATE_SERVICE_TOKEN=t0k3n"} {
		if !slices.Contains(cmd.Env, kv) {
			t.Errorf("exec environment lacks %s: %q", kv, cmd.Env)
		}
	}
	for _, a := range append(cmd.Args, start...) {
		if strings.Contains(a, "t0k3n") || strings.Contains(a, "A=1") {
			t.Errorf("the environment is on a command line: %q", a)
		}
	}
	if got := stopArgv(spec); !slices.Equal(got, []string{"apptainer", "instance", "stop", "slurmgate-0b9f_x_y"}) {
		t.Errorf("instance stop: %q", got)
	}

	plain, _ := instanceStartArgv(Spec{SessionID: "s", Image: "/i.sif"})
	if !slices.Equal(plain, []string{"apptainer", "instance", "start", "--writable-tmpfs", "/i.sif", "slurmgate-s"}) {
		t.Errorf("without GPUs, isolation or mounts: %q", plain)
	}
	inst := &apptainerInstance{spec: Spec{SessionID: "s"}, name: "slurmgate-s"}
	cmd, _ = inst.Command(t.Context(), []string{"true"}, nil)
	if !slices.Equal(cmd.Args, []string{"apptainer", "exec", "instance://slurmgate-s", "true"}) {
		t.Errorf("Command: %q", cmd.Args)
	}
	for _, bad := range []Mount{{Source: "rel", Target: "/x"}, {Source: "/a:b", Target: "/x"}, {Source: "/a", Target: "/x,y"}, {Source: "/a/../b", Target: "/x"}} {
		if _, err := instanceStartArgv(Spec{SessionID: "s", Image: "/i.sif", Mounts: []Mount{bad}}); err == nil {
			t.Errorf("mount %+v accepted", bad)
		}
	}
}
