package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// AgentBinDir is where [AgentBinary] keeps the slurmgate binaries session
// jobs run: outside any 0700 directory, so the test users' jobs can execute
// them.
const AgentBinDir = "/var/lib/slurmgate-test"

var (
	agentOnce sync.Once
	agentPath string
	agentErr  error
)

// AgentBinary builds ./cmd/slurmgate once per test binary and returns the
// path of an executable every user can run, as the gateway's
// sessions.agent_binary: session jobs (run as alice, bob …) exec it as
// `slurmgate agent`. The binary is content-addressed
// (AgentBinDir/bin-<sha256>/slurmgate, 0755) so concurrent test processes
// never replace a binary a running job is executing.
func AgentBinary(t testing.TB) string {
	t.Helper()
	agentOnce.Do(func() { agentPath, agentErr = buildAgent() })
	if agentErr != nil {
		t.Fatalf("building the session agent (slurmgate agent): %v", agentErr)
	}
	return agentPath
}

func buildAgent() (string, error) {
	if err := os.MkdirAll(AgentBinDir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(AgentBinDir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "slurmgate")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/slurmgate/slurmgate/cmd/slurmgate")
	// Built without the race detector whatever the test's flags: the agent
	// is a separate process, and its own tests run it under -race.
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/slurmgate: %v\n%s", err, out)
	}
	f, err := os.Open(bin)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(AgentBinDir, "bin-"+hex.EncodeToString(h.Sum(nil))[:16])
	final := filepath.Join(dir, "slurmgate")
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(bin, 0o755); err != nil {
		return "", err
	}
	// Rename is atomic: a concurrent builder of the same content loses
	// nothing, and no job ever sees a half-written file.
	if err := os.Rename(bin, final); err != nil {
		return "", err
	}
	return final, nil
}
