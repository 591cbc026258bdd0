package apptainer

import (
	"os/exec"
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
