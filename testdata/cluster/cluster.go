// Package cluster finds the one-machine test cluster that testdata/cluster/up
// started, for tests that talk to real Slurm and PostgreSQL.
//
// A test that needs the cluster calls [Require]. When the cluster is missing
// or broken the test fails with the reason and the fix; it never skips, so CI
// can never go green without having run against real daemons.
package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Env is what testdata/cluster/up wrote to cluster.env.
type Env struct {
	Dir         string // the state directory (.cluster/)
	Name        string // Slurm's ClusterName
	SlurmConf   string
	RestURL     string // slurmrestd
	JWTKeyPath  string
	Scratch     string // a 1777 directory jobs may write to
	DatabaseURL string // the gateway's database, as PostgreSQL's superuser
	// SecretKeyPath and JobOutputDir are the gateway's settings for this cluster.
	SecretKeyPath string
	JobOutputDir  string
	// LDAP is the test directory testdata/ldap/up started; nil when its
	// ldap.env is absent (see RequireLDAP).
	LDAP *LDAPEnv
}

// LDAPEnv is what testdata/ldap/up wrote to ldap/ldap.env: a slapd with
// StartTLS on URL, LDAPS on LDAPSURL, both under the self-signed CA in CAFile.
type LDAPEnv struct {
	URL, LDAPSURL        string
	CAFile               string
	BaseDN               string
	BindDN, BindPassword string // the gateway's service account
}

// EnvFile returns where cluster.env is: $SLURMGATE_CLUSTER_DIR/cluster.env,
// else .cluster/cluster.env at the repository root.
func EnvFile() string {
	if d := os.Getenv("SLURMGATE_CLUSTER_DIR"); d != "" {
		return filepath.Join(d, "cluster.env")
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", ".cluster", "cluster.env")
}

// Load reads cluster.env without probing any daemon.
func Load() (*Env, error) {
	path := EnvFile()
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("test cluster not found (%v); start it with `make cluster-up` (testdata/cluster/up, as root)", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			vars[k] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	e := &Env{
		Dir: vars["SLURMGATE_CLUSTER_DIR"], Name: vars["SLURMGATE_SLURM_CLUSTER"], SlurmConf: vars["SLURM_CONF"],
		RestURL: vars["SLURMGATE_SLURM_REST_URL"], JWTKeyPath: vars["SLURMGATE_SLURM_JWT_KEY_FILE"],
		Scratch: vars["SLURMGATE_SCRATCH"], DatabaseURL: vars["SLURMGATE_DATABASE_URL"],
		SecretKeyPath: vars["SLURMGATE_SECURITY_SECRET_KEY_FILE"], JobOutputDir: vars["SLURMGATE_SESSIONS_JOB_OUTPUT_DIR"],
	}
	for k, v := range map[string]string{"SLURM_CONF": e.SlurmConf, "SLURMGATE_SLURM_REST_URL": e.RestURL,
		"SLURMGATE_SLURM_JWT_KEY_FILE": e.JWTKeyPath, "SLURMGATE_SLURM_CLUSTER": e.Name,
		"SLURMGATE_DATABASE_URL": e.DatabaseURL} {
		if v == "" {
			return nil, fmt.Errorf("%s lacks %s; rerun testdata/cluster/up", path, k)
		}
	}
	e.LDAP = loadLDAP(filepath.Join(filepath.Dir(path), "ldap", "ldap.env"))
	return e, nil
}

// loadLDAP reads ldap.env; nil when it is missing or incomplete.
func loadLDAP(path string) *LDAPEnv {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	vars := map[string]string{}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			vars[k] = v
		}
	}
	l := &LDAPEnv{URL: vars["SLURMGATE_LDAP_URL"], LDAPSURL: vars["SLURMGATE_LDAPS_URL"], CAFile: vars["SLURMGATE_LDAP_CA_FILE"],
		BaseDN: vars["SLURMGATE_LDAP_BASE_DN"], BindDN: vars["SLURMGATE_LDAP_BIND_DN"], BindPassword: vars["SLURMGATE_LDAP_BIND_PASSWORD"]}
	if l.URL == "" || l.LDAPSURL == "" || l.CAFile == "" || l.BaseDN == "" || l.BindDN == "" {
		return nil
	}
	return l
}

// RequireLDAP returns the test directory or fails t with the reason. It
// needs only cluster.env and ldap.env, and probes slapd's LDAP port.
func RequireLDAP(t testing.TB) *LDAPEnv {
	t.Helper()
	e, err := Load()
	if err != nil {
		t.Fatalf("this test needs the test LDAP directory: %v", err)
	}
	if e.LDAP == nil {
		t.Fatalf("this test needs the test LDAP directory, and %s has no complete ldap/ldap.env; start it with testdata/ldap/up (or testdata/cluster/up), as root", filepath.Dir(EnvFile()))
	}
	host := strings.TrimPrefix(e.LDAP.URL, "ldap://")
	conn, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatalf("slapd at %s does not answer (%v); restart it with testdata/ldap/up (as root)", e.LDAP.URL, err)
	}
	conn.Close()
	return e.LDAP
}

var (
	probeOnce sync.Once
	probed    *Env
	probeErr  error
)

// Require returns the running cluster or fails t with the reason. The
// daemons are probed once per test binary.
func Require(t testing.TB) *Env {
	t.Helper()
	probeOnce.Do(func() { probed, probeErr = probe() })
	if probeErr != nil {
		t.Fatalf("this test needs the one-machine test cluster: %v", probeErr)
	}
	return probed
}

func probe() (*Env, error) {
	e, err := Load()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.RestURL+"/openapi/v3", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("slurmrestd at %s does not answer (%v); restart the cluster with `make cluster-up`", e.RestURL, err)
	}
	resp.Body.Close()
	if out, err := e.Command(ctx, "scontrol", "ping").CombinedOutput(); err != nil || !strings.Contains(string(out), "is UP") {
		return nil, fmt.Errorf("slurmctld is not up (scontrol ping: %s %v); restart the cluster with `make cluster-up`", strings.TrimSpace(string(out)), err)
	}
	return e, nil
}

// JWTKey returns the cluster's Slurm JWT key; reading it needs root.
func (e *Env) JWTKey(t testing.TB) []byte {
	t.Helper()
	key, err := os.ReadFile(e.JWTKeyPath)
	if err != nil {
		t.Fatalf("reading the Slurm JWT key: %v (tests run as root)", err)
	}
	return key
}

// Command prepares a Slurm CLI command (sacctmgr, scontrol, squeue …) against
// this cluster, run as the test's own user (root).
func (e *Env) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SLURM_CONF="+e.SlurmConf)
	return cmd
}

// Run runs a Slurm CLI command and fails t unless it succeeds.
func (e *Env) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := e.Command(t.Context(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// UserDir makes a fresh directory under the scratch area owned by the named
// POSIX user, for job output; it is removed when the test ends.
func (e *Env) UserDir(t testing.TB, username string) string {
	t.Helper()
	u, err := user.Lookup(username)
	if err != nil {
		t.Fatalf("test user %s: %v (testdata/cluster/up creates alice, bob and carol)", username, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp(e.Scratch, username+"-")
	if err != nil {
		t.Fatalf("scratch directory: %v", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("chown %s: %v", dir, err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
