package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/tunnel"
)

// A command that leaves a background child holding its stdout (a server
// started with &) still ends the exec once the command itself exits: the
// child's hold on the pipe must not keep the exec open.
func TestExecEndsDespiteBackgroundChildHoldingOutput(t *testing.T) {
	const secret = "ZXhlYy1iZw"
	g := newTestGateway(t, secret)
	startAgent(t, newExecConfig(t, g, secret))
	conn := g.conn(t)
	g.waitReport(t, "a first report", func(tunnel.Report) bool { return true })

	var stdout syncBuffer
	p, err := tunnel.StartProcess(context.Background(), conn, tunnel.Header{Kind: tunnel.KindExec,
		Argv: []string{"/bin/sh", "-c", "sleep 100 & echo started"}}, tunnel.ProcessOutput{Stdout: &stdout})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	done := make(chan struct{})
	var (
		st   tunnel.ExitStatus
		werr error
	)
	go func() { st, werr = p.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatalf("exec of `sleep 100 & echo started` still running 15 s after the shell exited (output %q): the background child's hold on stdout keeps it open", stdout.String())
	}
	if werr != nil || st.Code != 0 || st.Error != "" || strings.TrimSpace(stdout.String()) != "started" {
		t.Errorf("exec: status %+v, %v, stdout %q; want exit 0 and \"started\"", st, werr, stdout.String())
	}
}

// newExecConfig is a session without services, for exec and terminals.
func newExecConfig(t *testing.T, g *testGateway, secret string) *Config {
	cfg := testConfig(t, g, secret)
	cfg.Env = []string{"AGENT_TEST_MARK=" + cfg.SessionID}
	return cfg
}
