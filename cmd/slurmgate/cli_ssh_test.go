package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestPinKnownHostKeepsConcurrentUpdates pins many sessions' keys at once,
// as parallel ssh runs do: every one must survive, and re-pinning a host
// replaces its line.
func TestPinKnownHostKeepsConcurrentUpdates(t *testing.T) {
	known := filepath.Join(t.TempDir(), "slurmgate", "known_hosts")
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			host := fmt.Sprintf("s%02d.slurmgate", i)
			if err := pinKnownHost(known, host, host+" ssh-ed25519 KEY"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := pinKnownHost(known, "s00.slurmgate", "s00.slurmgate ssh-ed25519 NEW"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(known)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != n {
		t.Errorf("known_hosts has %d lines after %d concurrent pins; want %d (updates were lost)", len(lines), n, n)
	}
	if !strings.Contains(string(b), "s00.slurmgate ssh-ed25519 NEW\n") || strings.Contains(string(b), "s00.slurmgate ssh-ed25519 KEY") {
		t.Errorf("re-pinning s00 did not replace its key:\n%s", b)
	}
}
