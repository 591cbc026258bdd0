package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigSampleLoadsAndEnvOverrides(t *testing.T) {
	cfg, err := loadConfig("../../etc/slurmgate.toml", []string{
		"SLURMGATE_DATABASE_URL=postgres://gw:s3cret@db:5432/sg",
		"SLURMGATE_SESSIONS_RECONCILE_INTERVAL=500ms",
		"UNRELATED=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.URL != "postgres://gw:s3cret@db:5432/sg" || cfg.Sessions.ReconcileInterval.Duration != 500*time.Millisecond {
		t.Fatalf("environment did not override: %+v", cfg)
	}
	if cfg.Slurm.RestURL != "http://127.0.0.1:6820" {
		t.Errorf("sample value lost: rest_url %q", cfg.Slurm.RestURL)
	}
	out := cfg.masked()
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "gw:xxxxx@db") {
		t.Fatalf("masked configuration leaks or loses the URL:\n%s", out)
	}
}

func TestConfigRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown key":  "[server]\nlisten = \"127.0.0.1:1\"\ncolour = \"blue\"\n",
		"bad duration": "[sessions]\nreconcile_interval = \"soon\"\n",
		"not TOML":     "[server\n",
	}
	for name, body := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".toml")
		os.WriteFile(path, []byte(body), 0o600)
		if _, err := loadConfig(path, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Missing required settings are all named at once.
	_, err := loadConfig("", nil)
	for _, key := range []string{"database.url", "slurm.cluster", "slurm.rest_url", "slurm.jwt_key_file", "security.secret_key_file"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("empty configuration: error %v does not name %s", err, key)
		}
	}
	if _, err := loadConfig("", []string{"SLURMGATE_SERVER_LOG_LEVEL=loud"}); err == nil || !strings.Contains(err.Error(), "log_level") {
		t.Errorf("bad log level from the environment: %v", err)
	}
	for _, u := range []string{"10.0.0.5:8080", "ftp://10.0.0.5", "http://10.0.0.5:8080/api", "http://user:pw@10.0.0.5"} {
		if _, err := loadConfig("", []string{"SLURMGATE_SERVER_ADVERTISE_URL=" + u}); err == nil || !strings.Contains(err.Error(), "advertise_url") {
			t.Errorf("advertise_url %q: %v", u, err)
		}
	}
	if _, err := loadConfig("", []string{"SLURMGATE_SERVER_TRUSTED_PROXIES=10.0.0.5,lb.example.org"}); err == nil || !strings.Contains(err.Error(), "trusted_proxies") {
		t.Errorf("a trusted proxy given by name: %v", err)
	}
	good := ServerConfig{TrustedProxies: []string{"10.0.0.5", "10.1.0.7/24", "fd00::1"}}
	ps, err := good.trustedProxies()
	if err != nil || len(ps) != 3 || ps[0].String() != "10.0.0.5/32" || ps[1].String() != "10.1.0.0/24" || ps[2].String() != "fd00::1/128" {
		t.Errorf("trusted proxies %v: %v", ps, err)
	}
	_, err = loadConfig("", []string{"SLURMGATE_SERVER_ADVERTISE_URL=https://gw2.example.org:8443/"})
	if err != nil && strings.Contains(err.Error(), "advertise_url") {
		t.Errorf("a good advertise_url refused: %v", err)
	}
}

func TestConfigMasksPasswordsInEveryDSNForm(t *testing.T) {
	cases := []struct{ in, want string }{
		{"postgres://gw:s3cret@db:5432/sg", "postgres://gw:xxxxx@db:5432/sg"},
		{"postgres://gw@db/sg?sslmode=disable&password=s3cret", "postgres://gw@db/sg?password=xxxxx&sslmode=disable"},
		{"postgres://db/sg?sslpassword=s3cret&user=gw", "postgres://db/sg?sslpassword=xxxxx&user=gw"},
		{"postgres://gw@db/sg?sslmode=disable", "postgres://gw@db/sg?sslmode=disable"},
		{"host=db user=gw password=s3cret dbname=sg", "host=db user=gw password=xxxxx dbname=sg"},
		{"host=db password = 's3 \\' cret' dbname=sg", "host=db password = xxxxx dbname=sg"},
		{"  PASSWORD=s3cret\tsslmode=require ", "  PASSWORD=xxxxx\tsslmode=require "},
		{"host=db password='s3cret", "(unparseable connection string hidden)"},
		{"s3cret", "(unparseable connection string hidden)"},
		{"postgres://gw:s3cret@db:bad/sg", "(unparseable URL hidden)"},
	}
	for _, c := range cases {
		if got := maskDSN(c.in); got != c.want {
			t.Errorf("maskDSN(%q) = %q; want %q", c.in, got, c.want)
		}
	}
	var cfg Config
	cfg.Database.URL = "host=db user=gw password=s3cret"
	if out := cfg.masked(); strings.Contains(out, "s3cret") || !strings.Contains(out, `url = "host=db user=gw password=xxxxx"`) {
		t.Errorf("--check-config output leaks or loses a keyword DSN:\n%s", out)
	}
}
