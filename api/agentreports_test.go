package api

import (
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/tunnel"
)

// An agent runs as the researcher, who can dial in with a client of their
// own: the gateway takes one report stream per agent at a time.
func TestAgentGetsOneReportStreamAtATime(t *testing.T) {
	w := newRuntimeWorld(t)
	ag, err := w.connectAgent(t, w.secret) // opens its report stream
	if err != nil {
		t.Fatal(err)
	}
	ag.report(tunnel.Report{Services: []tunnel.ServiceState{{Name: "web", Ready: true}}})
	second, err := ag.conn.OpenStream(t.Context(), tunnel.Header{Kind: tunnel.KindReport})
	if err == nil {
		second.Close()
		t.Fatal("a second report stream was accepted while the first is open")
	}
	if !strings.Contains(err.Error(), "one at a time") {
		t.Fatalf("refusal %q does not say why", err)
	}
	// Once the first is closed, the agent may open another.
	ag.reports.Close()
	var again error
	for range 50 {
		var s interface{ Close() error }
		s, again = ag.conn.OpenStream(t.Context(), tunnel.Header{Kind: tunnel.KindReport})
		if again == nil {
			s.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after the first report stream closed, a new one is still refused: %v", again)
}
