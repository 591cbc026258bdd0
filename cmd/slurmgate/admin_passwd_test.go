package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/sso"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

func TestAdminPasswdSetsLocalLogin(t *testing.T) {
	env := cluster.Require(t)
	dbURL := bridgetest.Database(t)
	for k, v := range map[string]string{
		"SLURMGATE_DATABASE_URL":             dbURL,
		"SLURMGATE_SLURM_CLUSTER":            env.Name,
		"SLURMGATE_SLURM_REST_URL":           env.RestURL,
		"SLURMGATE_SLURM_JWT_KEY_FILE":       env.JWTKeyPath,
		"SLURMGATE_SECURITY_SECRET_KEY_FILE": env.SecretKeyPath,
		"SLURMGATE_SERVER_LOG_LEVEL":         "warn",
	} {
		t.Setenv(k, v)
	}
	if out, err := run(t, "admin", "bootstrap", "--username", "carol", "--uid", "2003"); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("a long local password\n"), 0o600)
	out, err := run(t, "admin", "passwd", "--password-file", pwFile, "carol")
	if err != nil || !strings.Contains(out, "local password of carol set") {
		t.Fatalf("passwd: %v\n%s", err, out)
	}
	db, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(t.Context())
	var hash string
	if err := db.QueryRow(t.Context(), `SELECT hash FROM local_passwords`).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if ok, err := sso.CheckPassword(hash, "a long local password"); !ok || err != nil {
		t.Fatalf("stored hash %q does not check: %v", hash, err)
	}

	os.WriteFile(pwFile, []byte("short\n"), 0o600)
	if out, err := run(t, "admin", "passwd", "--password-file", pwFile, "carol"); err == nil || !strings.Contains(err.Error()+out, "12 characters") {
		t.Fatalf("a short password: %v\n%s", err, out)
	}
	if out, err := run(t, "admin", "passwd", "--remove", "nobody"); err == nil {
		t.Fatalf("an unknown user: %s", out)
	}
	if out, err := run(t, "admin", "passwd", "--remove", "carol"); err != nil || !strings.Contains(out, "removed") {
		t.Fatalf("remove: %v\n%s", err, out)
	}
}
