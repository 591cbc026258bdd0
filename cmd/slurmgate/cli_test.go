package main

// The client commands, run as the built binary against an in-process
// gateway (the real API and bridge) over a fresh database and the real test
// cluster: what a researcher's shell sees, exit codes included.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/slurmgate/slurmgate/api"
	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

var (
	cliBinDir  string
	cliBinOnce sync.Once
	cliBinPath string
	cliBinErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "slurmgate-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cliBinDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cliBinary builds the slurmgate binary once per test run, on first use, so
// that the package's other tests do not pay for it.
func cliBinary(t *testing.T) string {
	t.Helper()
	cliBinOnce.Do(func() {
		cliBinPath = filepath.Join(cliBinDir, "slurmgate")
		out, err := exec.Command("go", append(append([]string{"build"}, raceFlags...), "-o", cliBinPath, ".")...).CombinedOutput()
		if err != nil {
			cliBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if cliBinErr != nil {
		t.Fatal(cliBinErr)
	}
	return cliBinPath
}

// cliResult is one run of the binary.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cliRun runs the binary with args in a clean environment: HOME and the
// configuration directory are dir, and env adds to it.
func cliRun(t *testing.T, dir string, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	cmd := cliCmd(t, dir, env, stdin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("slurmgate %v: %v", args, err)
	}
	return cliResult{out.String(), errb.String(), cmd.ProcessState.ExitCode()}
}

func cliCmd(t *testing.T, dir string, env []string, stdin string, args ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, cliBinary(t), args...)
	cmd.Env = append([]string{"HOME=" + dir, "XDG_CONFIG_HOME=" + filepath.Join(dir, ".config"), "PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// cliWorld is a gateway on the test cluster with a domain, project vision,
// alice and bob as members with keypairs, scaling groups cpu and gpu, and
// the image "host" (runtime none). configure adjusts the bridge's
// configuration; Config.TunnelURL is already this gateway's, so a test that
// sets Config.AgentBinary gets session jobs whose agent dials it.
type cliWorld struct {
	b         *bridge.Bridge
	url       string
	domain    string
	project   bridge.Project
	alice     []string // SLURMGATE_* environment of alice's credentials
	bob       []string
	root      []string // a superadmin's
	aliceKeys [2]string
	api       *client.Client // alice's
}

func newCLIWorld(t *testing.T, configure ...func(*bridge.Config)) *cliWorld {
	t.Helper()
	env := cluster.Require(t)
	slurm, err := slurmctl.New(slurmctl.Config{URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ts := httptest.NewUnstartedServer(nil)
	cfg := bridge.Config{Cluster: env.Name, JobOutputDir: env.JobOutputDir, ReconcileInterval: 200 * time.Millisecond, SecretKey: key,
		TunnelURL: "ws://" + ts.Listener.Addr().String() + "/api/v1/agent/tunnel"}
	for _, f := range configure {
		f(&cfg)
	}
	b := bridge.New(bridgetest.Pool(t), slurm, cfg, log)
	ts.Config.Handler = api.New(b, api.Options{Logger: log})
	ts.Start()
	t.Cleanup(ts.Close)
	rctx, stop := context.WithCancel(context.Background())
	var reconciler sync.WaitGroup
	reconciler.Go(func() { b.RunReconciler(rctx) })
	t.Cleanup(func() { stop(); reconciler.Wait() })

	ctx := t.Context()
	w := &cliWorld{b: b, url: ts.URL, domain: fmt.Sprintf("c%x", time.Now().UnixNano()&0xffffffff)}
	if _, err := b.CreateDomain(ctx, bridge.System, w.domain, ""); err != nil {
		t.Fatal(err)
	}
	if w.project, err = b.CreateProject(ctx, bridge.System, w.domain, "vision", ""); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, uid int) ([]string, [2]string) {
		role := bridge.RoleUser
		if name == "root1" {
			role = bridge.RoleSuperadmin
		}
		u, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: name, UID: uid, Domain: w.domain, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.SetMembership(ctx, bridge.System, w.project.ID, u.ID, "member"); err != nil {
			t.Fatal(err)
		}
		ak, sk, err := b.CreateKeypair(ctx, u.Actor(), u.ID, "cli test")
		if err != nil {
			t.Fatal(err)
		}
		return []string{"SLURMGATE_ENDPOINT=" + ts.URL, "SLURMGATE_ACCESS_KEY=" + ak, "SLURMGATE_SECRET_KEY=" + sk}, [2]string{ak, sk}
	}
	w.alice, w.aliceKeys = mk("alice", 2001)
	w.bob, _ = mk("bob", 2002)
	w.root, _ = mk("root1", 2090)
	if w.api, err = client.New(ts.URL, client.WithKeypair(w.aliceKeys[0], w.aliceKeys[1])); err != nil {
		t.Fatal(err)
	}
	// The Slurm side of the project, as the account sync would make it.
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: w.domain, Organization: "slurmgate-test"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Retried while the sessions' cancelled jobs finish: Slurm keeps an
		// account with active jobs.
		for range 50 {
			err := slurm.DeleteAccount(context.Background(), w.domain)
			if err == nil || errors.Is(err, slurmctl.ErrNotFound) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: w.project.Account(), Parent: w.domain, Organization: "slurmgate-test"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := slurm.CreateAssociation(ctx, slurmctl.Association{Account: w.project.Account(), User: u}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sg := range []bridge.ScalingGroup{{Name: "cpu", Partitions: []string{"cpu"}}, {Name: "gpu", Partitions: []string{"gpu"}, GPUTypes: []string{"a100"}}} {
		if _, err := b.CreateScalingGroup(ctx, bridge.System, sg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.CreateImage(ctx, bridge.System, bridge.Image{Name: "host", Tag: "latest", Location: "/", Runtime: "none"}); err != nil {
		t.Fatal(err)
	}
	// GPU sessions need a project with a GPU quota.
	if _, err := b.SetPolicy(ctx, bridge.System, bridge.Policy{Scope: "project", TargetID: w.project.ID, MaxGPUs: map[string]int{"": 4}}); err != nil {
		t.Fatal(err)
	}
	// Cancel every live session's job when the test ends, so none outlives it.
	t.Cleanup(func() {
		ss, _ := b.ListSessions(context.Background(), bridge.System, bridge.SessionFilter{All: true,
			States: []bridge.SessionState{bridge.StatePending, bridge.StatePreparing, bridge.StateRunning}, Limit: 500})
		for _, s := range ss {
			if s.JobID != nil {
				slurm.Cancel(context.Background(), s.Owner, slurmctl.JobID(*s.JobID))
			}
		}
	})
	return w
}

func TestCLIAgainstGateway(t *testing.T) {
	w := newCLIWorld(t)
	home := t.TempDir()
	small := []string{"--image", "host", "-p", "cpu", "-c", "1", "--mem", "128", "-t", "5"}

	t.Run("run returns the command's output and exit code", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "", append(append([]string{"run"}, small...), "--", "sh", "-c", "echo out; echo err >&2; exit 3")...)
		if r.code != 3 || r.stdout != "out\n" || !strings.Contains(r.stderr, "err\n") {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 3, \"out\\n\" and err", r.code, r.stdout, r.stderr)
		}
		r = cliRun(t, home, w.alice, "", append(append([]string{"run"}, small...), "echo", "it's", "$HOME")...)
		if r.code != 0 || r.stdout != "it's $HOME\n" {
			t.Fatalf("arguments passed as given: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("sbatch honours #SBATCH directives", func(t *testing.T) {
		script := filepath.Join(home, "gpu.sh")
		os.WriteFile(script, []byte(`#!/bin/bash
#SBATCH -p gpu
#SBATCH --gres=gpu:a100:2
#SBATCH -t 1
#SBATCH -J gputest
echo "cvd=$CUDA_VISIBLE_DEVICES partition=$SLURM_JOB_PARTITION args=$*"
`), 0o644)
		r := cliRun(t, home, w.alice, "", "sbatch", "--image", "host", "--parsable", "--wait", script, "a", "b c")
		if r.code != 0 {
			t.Fatalf("sbatch --wait: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
		}
		id, output, _ := strings.Cut(r.stdout, "\n")
		if output != "cvd=0,1 partition=gpu args=a b c\n" {
			t.Errorf("job output %q; want it on the gpu partition with two GPUs and the arguments", output)
		}
		s, err := w.api.Session(t.Context(), id)
		if err != nil {
			t.Fatalf("session %q: %v", id, err)
		}
		if s.GPUs != 2 || s.GPUType != "a100" || s.TimeLimitS != 60 || s.ScalingGroup != "gpu" || s.Partition != "gpu" || s.Name != "gputest" || s.Type != "batch" {
			t.Errorf("session %+v; want 2 a100 GPUs, 60 s, scaling group and partition gpu, name gputest", s)
		}
		// The command line overrides the script, as in sbatch.
		r = cliRun(t, home, w.alice, "", "sbatch", "--image", "host", "-p", "cpu", "--gres", "none", "-t", "2", "--parsable", script)
		if r.code != 0 {
			t.Fatalf("sbatch with overrides: exit %d, %s", r.code, r.stderr)
		}
		if s, err = w.api.Session(t.Context(), strings.TrimSpace(r.stdout)); err != nil || s.GPUs != 0 || s.TimeLimitS != 120 || s.ScalingGroup != "cpu" {
			t.Errorf("overridden session %+v (%v); want no GPUs, 120 s, cpu", s, err)
		}
	})

	t.Run("sbatch refuses directives it cannot honour, naming the line", func(t *testing.T) {
		script := filepath.Join(home, "bad.sh")
		os.WriteFile(script, []byte("#!/bin/sh\n#SBATCH -c 2\n#SBATCH -o out.%j\n#SBATCH --qos=high\nhostname\n"), 0o644)
		r := cliRun(t, home, nil, "", "sbatch", "--image", "host", script) // refused before any login is needed
		if r.code != exitUsage || !strings.Contains(r.stderr, "line 3: #SBATCH -o out.%j") || !strings.Contains(r.stderr, "session logs") ||
			!strings.Contains(r.stderr, "line 4: #SBATCH --qos=high") {
			t.Errorf("exit %d, stderr:\n%s\nwant exit 2 naming lines 3 and 4 with what to do", r.code, r.stderr)
		}
		os.WriteFile(script, []byte("#!/bin/sh\n#SBATCH --array=1-4\nhostname\n"), 0o644)
		if r := cliRun(t, home, nil, "", "sbatch", script); r.code != exitUsage || !strings.Contains(r.stderr, "line 2") || !strings.Contains(r.stderr, "arrays") {
			t.Errorf("array: exit %d, stderr %s", r.code, r.stderr)
		}
	})

	t.Run("bad flags are usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"run", "--cpus", "many", "--", "true"},
			{"session", "ls", "--bogus"},
			{"sbatch"},
			{"run", "--image", "host", "-p", "cpu"},
			{"run", "--image", "host", "-p", "cpu", "--gpus", "x:y", "true"},
			{"session", "info"},
			{"config", "set", "nokey", "v"},
		} {
			if r := cliRun(t, home, w.alice, "", args...); r.code != exitUsage || r.stderr == "" {
				t.Errorf("slurmgate %v: exit %d (%s), want 2 with a message", args, r.code, r.stderr)
			}
		}
	})

	t.Run("session create waits for RUNNING, then ls, info, events, rm", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "", append([]string{"session", "create", "--json", "--name", "interactive1"}, small...)...)
		var s client.Session
		if err := json.Unmarshal([]byte(r.stdout), &s); r.code != 0 || err != nil {
			t.Fatalf("exit %d, %v\nstdout %s\nstderr %s", r.code, err, r.stdout, r.stderr)
		}
		if s.State != "RUNNING" || s.Name != "interactive1" {
			t.Fatalf("created session is %s (%s); want RUNNING", s.State, s.StatusMessage)
		}
		for _, args := range [][]string{
			{"session", "ls", "--json", "--state", "running"},
			{"session", "info", s.ID, "--json"},
			{"session", "events", s.ID, "--json"},
			{"image", "ls", "--json"},
			{"image", "inspect", "host", "--json"},
			{"preset", "ls", "--json"},
			{"scaling-group", "ls", "--json"},
			{"whoami", "--json"},
			{"usage", "--json"},
			{"config", "show", "--json"},
			{"admin", "project", "ls", "--json"},
		} {
			r := cliRun(t, home, w.alice, "", args...)
			var v any
			if err := json.Unmarshal([]byte(r.stdout), &v); r.code != 0 || err != nil {
				t.Errorf("slurmgate %v: exit %d, %v\nstdout %s\nstderr %s", args, r.code, err, r.stdout, r.stderr)
			}
		}
		r = cliRun(t, home, w.alice, "", "session", "ls", "--json", "--state", "RUNNING")
		var ss []client.Session
		json.Unmarshal([]byte(r.stdout), &ss)
		if len(ss) != 1 || ss[0].ID != s.ID {
			t.Errorf("session ls --state RUNNING: %s", r.stdout)
		}
		r = cliRun(t, home, w.alice, "", "usage", "--json")
		var uses []quotaUse
		json.Unmarshal([]byte(r.stdout), &uses)
		found := false
		for _, u := range uses {
			if u.Scope == "project" && u.Limit == "gpus" && u.Max != nil && *u.Max == 4 {
				found = true
			}
			if u.Scope == "user" && u.Limit == "sessions" && u.InUse != 1 {
				t.Errorf("usage: %d sessions in use, want 1", u.InUse)
			}
		}
		if !found {
			t.Errorf("usage shows no project GPU limit of 4: %s", r.stdout)
		}
		if r := cliRun(t, home, w.alice, "", "session", "ls"); r.code != 0 || !strings.Contains(r.stdout, s.ID) || !strings.Contains(r.stdout, "RUNNING") {
			t.Errorf("session ls table: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		if r := cliRun(t, home, w.alice, "", "session", "rm", s.ID); r.code != 0 {
			t.Errorf("session rm: exit %d, %s", r.code, r.stderr)
		}
		if r := cliRun(t, home, w.bob, "", "session", "info", s.ID); r.code != exitNotFound || !strings.Contains(r.stderr, "hint:") {
			t.Errorf("bob reading alice's session: exit %d, stderr %s; want 5 with a hint", r.code, r.stderr)
		}
	})

	t.Run("quota refusal exits 3 naming the limit", func(t *testing.T) {
		bobID := int64(0)
		us, _ := w.b.Users(t.Context(), bridge.System)
		for _, u := range us {
			if u.Username == "bob" && u.Domain == w.domain {
				bobID = u.ID
			}
		}
		one := 1
		if _, err := w.b.SetPolicy(t.Context(), bridge.System, bridge.Policy{Scope: "user", TargetID: bobID, MaxCPUs: &one}); err != nil {
			t.Fatal(err)
		}
		r := cliRun(t, home, w.bob, "", "run", "--image", "host", "-p", "cpu", "-c", "2", "--", "true")
		if r.code != exitRefused || !strings.Contains(r.stderr, "hint:") || !strings.Contains(r.stderr, "cpus") {
			t.Errorf("exit %d, stderr %s; want 3 naming the CPU limit", r.code, r.stderr)
		}
	})

	t.Run("run cancels its session on SIGINT without a terminal", func(t *testing.T) {
		cmd := cliCmd(t, home, w.alice, "", append(append([]string{"run"}, small...), "--", "sh", "-c", "echo started; sleep 120")...)
		pr, pw := io.Pipe()
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = pw, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line := make([]byte, len("started\n"))
		if _, err := io.ReadFull(pr, line); err != nil || string(line) != "started\n" {
			t.Fatalf("output %q, %v", line, err)
		}
		go io.Copy(io.Discard, pr)
		cmd.Process.Signal(syscall.SIGINT)
		err := cmd.Wait()
		pw.Close()
		if code := cmd.ProcessState.ExitCode(); code != exitSignal {
			t.Fatalf("exit %d (%v), stderr %s; want 130", code, err, errb.String())
		}
		page, err := w.api.ListSessions(t.Context(), client.SessionListOptions{States: []string{"PENDING", "RUNNING"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Items {
			if strings.Contains(s.Command, "sleep 120") {
				t.Errorf("session %s still %s after Ctrl-C", s.ID, s.State)
			}
		}
	})

	t.Run("admin commands through the REST API", func(t *testing.T) {
		proj := w.domain + "/nlp"
		steps := [][]string{
			{"admin", "domain", "create", w.domain + "x", "--description", "second"},
			{"admin", "domain", "update", w.domain + "x", "--active=false"},
			{"admin", "project", "create", proj, "--description", "language"},
			{"admin", "user", "create", "carol", "--uid", "2003", "--domain", w.domain},
			{"admin", "member", "set", proj, "carol", "--role", "project-admin"},
			{"admin", "policy", "set", "project", proj, "--max-cpus", "8", "--max-gpus", "a100=2", "--max-mem", "16G", "--max-lifetime", "2:00:00"},
			{"admin", "image", "create", "lab/tool:1", "--location", "/", "--runtime", "none", "--label", "org.opencontainers.image.title=tool"},
			{"admin", "scaling-group", "create", "cpu2", "--partition", "cpu", "--description", "spare"},
			{"admin", "preset", "create", "small", "--cpus", "1", "--mem", "1G", "--time", "30"},
		}
		for _, args := range steps {
			if r := cliRun(t, home, w.root, "", args...); r.code != 0 {
				t.Fatalf("slurmgate %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
			}
		}
		r := cliRun(t, home, w.root, "", "admin", "policy", "show", "project", proj)
		var pol client.Policy
		if err := json.Unmarshal([]byte(r.stdout), &pol); err != nil || pol.MaxCPUs == nil || *pol.MaxCPUs != 8 || pol.MaxGPUs["a100"] != 2 ||
			pol.MaxMemoryMB == nil || *pol.MaxMemoryMB != 16384 || pol.MaxSessionLifetimeS == nil || *pol.MaxSessionLifetimeS != 7200 {
			t.Errorf("policy %s (%v)", r.stdout, err)
		}
		r = cliRun(t, home, w.root, "", "admin", "member", "ls", proj, "--json")
		if r.code != 0 || !strings.Contains(r.stdout, `"project-admin"`) {
			t.Errorf("members: %s%s", r.stdout, r.stderr)
		}
		if r := cliRun(t, home, w.alice, "", "image", "inspect", "lab/tool:1"); r.code != 0 || !strings.Contains(r.stdout, "org.opencontainers.image.title=tool") {
			t.Errorf("image inspect: %s%s", r.stdout, r.stderr)
		}
		for _, args := range [][]string{{"admin", "image", "rm", "lab/tool:1"}, {"admin", "scaling-group", "rm", "cpu2"}, {"admin", "preset", "rm", "small"},
			{"admin", "member", "rm", proj, "carol"}, {"admin", "policy", "rm", "project", proj}} {
			if r := cliRun(t, home, w.root, "", args...); r.code != 0 {
				t.Errorf("slurmgate %v: exit %d %s", args, r.code, r.stderr)
			}
		}
		// A plain user is refused by the gateway, with the code for refusals.
		if r := cliRun(t, home, w.alice, "", "admin", "domain", "create", "nope"); r.code != exitRefused {
			t.Errorf("alice creating a domain: exit %d, %s; want 3", r.code, r.stderr)
		}
	})

	t.Run("Ctrl-C on a terminal asks before cancelling", func(t *testing.T) {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatalf("opening a pseudo-terminal: %v", err)
		}
		defer ptmx.Close()
		cmd := cliCmd(t, home, w.alice, "", append(append([]string{"run"}, small...), "--", "sh", "-c", "echo started; sleep 120")...)
		pr, pw := io.Pipe()
		cmd.Stdin, cmd.Stderr, cmd.Stdout = tty, tty, pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		tty.Close()
		go io.Copy(io.Discard, pr)
		// The terminal's screen, as the person would see it.
		var mu sync.Mutex
		var screen strings.Builder
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := ptmx.Read(buf)
				mu.Lock()
				screen.Write(buf[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		waitFor := func(text string, from int) int {
			t.Helper()
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				mu.Lock()
				i := strings.Index(screen.String()[from:], text)
				mu.Unlock()
				if i >= 0 {
					return from + i + len(text)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the terminal never showed %q:\n%s", text, screen.String())
			return 0
		}
		// Wait until the job runs, so the answer "n" leaves a running job.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			page, _ := w.api.ListSessions(t.Context(), client.SessionListOptions{States: []string{"RUNNING"}})
			if page != nil && len(page.Items) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the session never ran")
			}
		}
		cmd.Process.Signal(syscall.SIGINT)
		at := waitFor("[y/N] ", 0)
		ptmx.Write([]byte("n\n"))
		at = waitFor("keeps running", at)
		cmd.Process.Signal(syscall.SIGINT)
		waitFor("[y/N] ", at)
		ptmx.Write([]byte("y\n"))
		cmd.Wait()
		pw.Close()
		if code := cmd.ProcessState.ExitCode(); code != exitSignal {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("exit %d, want 130; terminal:\n%s", code, screen.String())
		}
	})

	t.Run("login stores a 0600 config, refused once others can read it", func(t *testing.T) {
		dir := t.TempDir()
		r := cliRun(t, dir, nil, w.aliceKeys[1]+"\n", "login", "--endpoint", w.url, "--access-key", w.aliceKeys[0])
		if r.code != 0 || !strings.Contains(r.stdout, "as alice") {
			t.Fatalf("login: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		path := filepath.Join(dir, ".config", "slurmgate", "config.toml")
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("config file %v, %v; want mode 0600", st, err)
		}
		if r := cliRun(t, dir, nil, "", "config", "set", "image", "host"); r.code != 0 {
			t.Fatalf("config set: %d %s", r.code, r.stderr)
		}
		r = cliRun(t, dir, nil, "", "config", "show")
		if r.code != 0 || strings.Contains(r.stdout, w.aliceKeys[1]) || !strings.Contains(r.stdout, "********") || !strings.Contains(r.stdout, "host") {
			t.Errorf("config show must mask the secret and show the image:\n%s%s", r.stdout, r.stderr)
		}
		if r := cliRun(t, dir, nil, "", "whoami"); r.code != 0 || !strings.HasPrefix(r.stdout, "alice") {
			t.Errorf("whoami from the file: exit %d, %s%s", r.code, r.stdout, r.stderr)
		}
		// The environment overrides the file.
		if r := cliRun(t, dir, []string{"SLURMGATE_SECRET_KEY=wrong"}, "", "whoami"); r.code != exitAuth {
			t.Errorf("whoami with a wrong secret in the environment: exit %d, %s; want 4", r.code, r.stderr)
		}
		os.Chmod(path, 0o644)
		r = cliRun(t, dir, nil, "", "whoami")
		if r.code == 0 || !strings.Contains(r.stderr, "chmod 600 "+path) {
			t.Errorf("group/world-readable config: exit %d, stderr %s; want a refusal that says chmod 600", r.code, r.stderr)
		}
	})
}

func TestCLICompletionScripts(t *testing.T) {
	home := t.TempDir()
	for shell, marker := range map[string]string{"bash": "complete -", "zsh": "compdef"} {
		r := cliRun(t, home, nil, "", "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, marker) || !strings.Contains(r.stdout, "slurmgate") {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %s", shell, r.code, len(r.stdout), r.stderr)
		}
	}
	// The scripts ask the binary; what it answers is the completion.
	for args, want := range map[string][]string{
		"":         {"run", "sbatch", "session", "login", "config", "image", "usage", "completion"},
		"session":  {"create", "ls", "info", "events", "logs", "rm"},
		"admin":    {"bootstrap", "sync", "domain", "project", "user", "member", "policy", "image", "scaling-group"},
		"image":    {"ls", "inspect"},
		"sbatch -": {"--parsable", "--wait", "--gres"},
	} {
		r := cliRun(t, home, nil, "", append(strings.Fields(args), "--generate-shell-completion")...)
		for _, w := range want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("completing %q: %q missing from\n%s", args, w, r.stdout)
			}
		}
	}
	if r := cliRun(t, home, nil, "", "run", "--help"); r.code != 0 || !strings.Contains(r.stdout, "Examples:") || !strings.Contains(r.stdout, "Exit status:") {
		t.Errorf("run --help lacks examples or exit codes:\n%s", r.stdout)
	}
}
