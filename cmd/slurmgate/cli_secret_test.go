package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slurmgate/slurmgate/api/client"
)

// TestCLISecretsStayOffCommandLines: hints show the stdin form of login,
// and a secret key passed as an argument draws a warning; `config set
// secret_key -` reads it from stdin.
func TestCLISecretsStayOffCommandLines(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", home)
	for _, k := range cliConfigKeys {
		t.Setenv("SLURMGATE_"+strings.ToUpper(k), "")
	}

	_, err := run(t, "session", "ls")
	if err == nil || !strings.Contains(err.Error(), "--secret-key -`") || strings.Contains(err.Error(), "--secret-key SK") {
		t.Errorf("not-logged-in hint: %v; want the login command with --secret-key -", err)
	}
	if h := apiError(&client.Problem{Status: 401, Title: "Unauthorized"}, "http://gw").Error(); !strings.Contains(h, "--secret-key -`") {
		t.Errorf("401 hint: %s; want the login command with --secret-key -", h)
	}

	// Port 1 refuses: login fails after the warning.
	out, _ := run(t, "login", "--endpoint", "http://127.0.0.1:1", "--access-key", "AK", "--secret-key", "literal")
	if !strings.Contains(out, "warning: a secret key on the command line") {
		t.Errorf("login --secret-key literal printed:\n%s\nwant a warning", out)
	}

	out, err = run(t, "config", "set", "secret_key", "literal")
	if err != nil || !strings.Contains(out, "warning: a secret key on the command line") {
		t.Errorf("config set secret_key literal: %v\n%s\nwant a warning", err, out)
	}
	withStdin(t, "from-stdin\n")
	out, err = run(t, "config", "set", "secret_key", "-")
	if err != nil || strings.Contains(out, "warning") {
		t.Errorf("config set secret_key -: %v\n%s", err, out)
	}
	cfg, err := readCLIConfig(filepath.Join(home, "slurmgate", "config.toml"))
	if err != nil || cfg.SecretKey != "from-stdin" {
		t.Errorf("stored secret key %q, %v; want the one read from stdin", cfg.SecretKey, err)
	}
}

// withStdin makes os.Stdin read s for the rest of the test.
func withStdin(t *testing.T, s string) {
	f, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Seek(0, 0)
	old := os.Stdin
	os.Stdin = f
	t.Cleanup(func() { os.Stdin = old; f.Close() })
}
