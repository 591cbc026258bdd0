package apptainer

import (
	"slices"
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
		"--env", "A=1", "--env", `"B=x,y ""z"""`, "/images/pytorch.sif", "slurmgate-0b9f_x_y"}
	if !slices.Equal(start, want) {
		t.Errorf("instance start:\n got %q\nwant %q", start, want)
	}

	exe := execArgv(spec, []string{"jupyter", "--port=1"}, []string{"TOKEN=t"})
	want = []string{"apptainer", "exec", "--nv", "--cleanenv", "--env", "A=1", "--env", `"B=x,y ""z"""`, "--env", "TOKEN=t",
		"instance://slurmgate-0b9f_x_y", "jupyter", "--port=1"}
	if !slices.Equal(exe, want) {
		t.Errorf("exec:\n got %q\nwant %q", exe, want)
	}
	if got := stopArgv(spec); !slices.Equal(got, []string{"apptainer", "instance", "stop", "slurmgate-0b9f_x_y"}) {
		t.Errorf("instance stop: %q", got)
	}

	plain, _ := instanceStartArgv(Spec{SessionID: "s", Image: "/i.sif"})
	if !slices.Equal(plain, []string{"apptainer", "instance", "start", "--writable-tmpfs", "/i.sif", "slurmgate-s"}) {
		t.Errorf("without GPUs, isolation or mounts: %q", plain)
	}
	inst := &apptainerInstance{spec: Spec{SessionID: "s"}, name: "slurmgate-s"}
	cmd, _ := inst.Command(t.Context(), []string{"true"}, nil)
	if !slices.Equal(cmd.Args, []string{"apptainer", "exec", "instance://slurmgate-s", "true"}) {
		t.Errorf("Command: %q", cmd.Args)
	}
	for _, bad := range []Mount{{Source: "rel", Target: "/x"}, {Source: "/a:b", Target: "/x"}, {Source: "/a", Target: "/x,y"}, {Source: "/a/../b", Target: "/x"}} {
		if _, err := instanceStartArgv(Spec{SessionID: "s", Image: "/i.sif", Mounts: []Mount{bad}}); err == nil {
			t.Errorf("mount %+v accepted", bad)
		}
	}
}
