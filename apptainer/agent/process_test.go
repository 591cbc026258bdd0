package agent

import (
	"context"
	"os"
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

// A service whose command still holds {token} (an image catalogued before
// the placeholder was withdrawn) is refused with the fix, never started
// with its secret on a command line; the other services start.
func TestServiceWithTokenInCommandRefused(t *testing.T) {
	const secret = "dG9rZW4tYXJndg"
	g := newTestGateway(t, secret)
	cfg := newExecConfig(t, g, secret)
	self, _ := os.Executable()
	cfg.Env = append(cfg.Env, "AGENT_TEST_APP=1")
	cfg.Services = []Service{
		{Name: "leaky", Protocol: "http", Command: []string{self, "port={port}", "--token={token}"}, AuthHeader: "Authorization: Bearer {token}"},
		{Name: "fine", Protocol: "http", Socket: true, Command: []string{self, "socket={socket}"}},
	}
	startAgent(t, cfg)
	g.conn(t)
	rep := g.waitReport(t, "fine ready and leaky refused", func(r tunnel.Report) bool {
		var fine, leaky bool
		for _, s := range r.Services {
			fine = fine || s.Name == "fine" && s.Ready
			leaky = leaky || s.Name == "leaky" && !s.Ready && s.Error != ""
		}
		return fine && leaky
	})
	for _, s := range rep.Services {
		if s.Name == "leaky" && !strings.Contains(s.Error, "org.slurmgate.service.leaky.auth=token") {
			t.Errorf("leaky's error %q; want it to say how to fix the label", s.Error)
		}
	}
	for _, p := range markedProcesses("AGENT_TEST_MARK=" + cfg.SessionID) {
		if strings.Contains(p, "--token=") {
			t.Errorf("a service started with a token on its command line: %s", p)
		}
	}
}
