package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/urfave/cli/v3"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer, app.ErrWriter = &out, &out
	err := app.Run(t.Context(), append([]string{"slurmgate"}, args...))
	return out.String(), err
}

func TestVersionJSON(t *testing.T) {
	out, err := run(t, "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Version  string   `json:"version"`
		SlurmAPI []string `json:"slurm_rest_apis"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.Version == "" || len(v.SlurmAPI) == 0 {
		t.Fatalf("version --json printed %q (%v)", out, err)
	}
}

func TestServerCheckConfigMasksSecrets(t *testing.T) {
	t.Setenv("SLURMGATE_DATABASE_URL", "postgres://gw:hunter2@db/sg")
	t.Setenv("SLURMGATE_SLURM_CLUSTER", "c")
	t.Setenv("SLURMGATE_SLURM_REST_URL", "http://127.0.0.1:6820")
	t.Setenv("SLURMGATE_SLURM_JWT_KEY_FILE", "/k")
	t.Setenv("SLURMGATE_SECURITY_SECRET_KEY_FILE", "/s")
	out, err := run(t, "server", "--config", "../../etc/slurmgate.toml", "--check-config")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "hunter2") || !strings.Contains(out, `cluster = "c"`) {
		t.Fatalf("--check-config printed:\n%s", out)
	}
}

func TestBadConfigIsAUsageError(t *testing.T) {
	_, err := run(t, "server", "--config", "/nonexistent.toml", "--check-config")
	var ec cli.ExitCoder
	if err == nil || !asExit(err, &ec) || ec.ExitCode() != 2 {
		t.Fatalf("missing config file: %v; want exit code 2", err)
	}
}

func asExit(err error, ec *cli.ExitCoder) bool {
	e, ok := err.(cli.ExitCoder)
	*ec = e
	return ok
}

func TestBadFlagsExitTwo(t *testing.T) {
	for _, args := range [][]string{{"--bogus"}, {"version", "--bogus"}, {"admin", "sync", "--nope"}} {
		_, err := run(t, args...)
		if exitCode(err) != 2 {
			t.Errorf("slurmgate %v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}
