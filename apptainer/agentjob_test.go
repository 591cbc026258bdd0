package apptainer

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestAgentJobScriptExecsTheAgent(t *testing.T) {
	dir := t.TempDir()
	// A stand-in agent, at a path that needs quoting, prints its arguments;
	// its exit status must be the job's.
	agent := filepath.Join(dir, "slurm gate's")
	os.WriteFile(agent, []byte("#!/bin/sh\necho \"$*\"\nexit 7\n"), 0o755)
	script, err := AgentJobScript(AgentJob{SessionID: "3f2a-b", Agent: agent, Config: "/var/lib/slurmgate/s/3f2a-b/agent.json"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/bash", "-c", script).Output()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 7 {
		t.Fatalf("script exit %v; want the agent's status 7", err)
	}
	if string(out) != "agent --config /var/lib/slurmgate/s/3f2a-b/agent.json\n" {
		t.Errorf("agent got %q", out)
	}
	for _, bad := range []AgentJob{
		{SessionID: "a;b", Agent: "/bin/x", Config: "/c"},
		{SessionID: "a", Agent: "bin/x", Config: "/c"},
		{SessionID: "a", Agent: "/bin/x", Config: "/c/../d"},
	} {
		if _, err := AgentJobScript(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
