package apptainer

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestNoneBatchScriptRunsCommandVerbatim(t *testing.T) {
	r, err := Lookup("none")
	if err != nil {
		t.Fatal(err)
	}
	cmd := `echo "it's $((1+2))"; exit 3`
	script, err := r.JobScript(Job{SessionID: "s1", Command: cmd})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(script, "#!/bin/bash\n") {
		t.Fatalf("script does not start with an interpreter line:\n%s", script)
	}
	out, err := exec.Command("/bin/bash", "-c", script).Output()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 3 || string(out) != "it's 3\n" {
		t.Fatalf("script printed %q, exit %v; want \"it's 3\" and exit 3", out, err)
	}
}

func TestNoneRefusesWhatItCannotDo(t *testing.T) {
	r, _ := Lookup("none")
	if _, err := r.JobScript(Job{Command: "true", Mounts: []Mount{{Source: "/a", Target: "/b"}}}); err == nil {
		t.Error("none accepted a mount")
	}
	if _, err := r.JobScript(Job{}); err == nil {
		t.Error("none accepted a batch session without a command")
	}
	if _, err := Lookup("docker"); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("Lookup(docker) = %v; want an error listing known runtimes", err)
	}
}

func TestNoneDriverRunsOnHostAndStopEndsStragglers(t *testing.T) {
	d, err := LookupDriver("none")
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	inst, err := d.Start(ctx, Spec{SessionID: "none-test-" + t.Name(), Env: []string{"A=from-spec"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := inst.Command(ctx, []string{"/bin/sh", "-c", `echo "$A $B"`}, []string{"B=from-call"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := cmd.Output(); err != nil || string(out) != "from-spec from-call\n" {
		t.Fatalf("command printed %q (%v); want the spec's and the call's environment", out, err)
	}

	// A daemonised grandchild outlives its parent; Stop must still end it.
	cmd, _ = inst.Command(ctx, []string{"/bin/sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo $!"}, nil)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("no pid printed: %q", out)
	}
	if !alive(pid) {
		t.Fatalf("background sleep %d is not running", pid)
	}
	if err := inst.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatalf("process %d survived Stop", pid)
	}
	if _, err := d.Start(ctx, Spec{SessionID: "x", Mounts: []Mount{{Source: "/a", Target: "/b"}}}); err == nil {
		t.Error("none driver accepted a mount")
	}
}

// alive reports whether pid runs; a zombie (dead, not yet reaped by whoever
// inherited it) does not count.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}
