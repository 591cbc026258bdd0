package main

// The runtime commands (session exec|shell, app ls|open|forward, ssh) run
// as the built binary against an in-process gateway and a real agent: the
// same binary's `slurmgate agent`, started as a process in a UTS namespace
// of its own named like a compute node, dialling the gateway's tunnel
// endpoint and running a real Jupyter Notebook (runtime none). Slurm is not
// involved: the session is written into the database as PREPARING, as the
// gateway does once its job runs, and its agent makes it RUNNING.

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	"golang.org/x/sys/unix"

	"github.com/slurmgate/slurmgate/api"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
)

// nodeName is the hostname the agent's namespace gets: commands that run
// in the session print it, commands that run here print this machine's.
const nodeName = "node-rt7"

type runtimeCLIWorld struct {
	sid   string
	alice []string // SLURMGATE_* environment of the session's owner
	bob   []string
	agent *exec.Cmd
}

func newRuntimeCLIWorld(t *testing.T) *runtimeCLIWorld {
	t.Helper()
	for _, tool := range []string{"unshare", "jupyter-notebook", "ssh", "scp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: apt-get install -y util-linux jupyter-notebook openssh-client", tool)
		}
	}
	if os.Getuid() != 0 {
		t.Fatal("these tests name the agent's node with unshare -u, which needs root; run them as root (the test machine's default)")
	}
	key := make([]byte, 32)
	rand.Read(key)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db := bridgetest.Pool(t)
	b := bridge.New(db, nil, bridge.Config{SecretKey: key}, log)
	ts := httptest.NewServer(api.New(b, api.Options{Logger: log}))
	t.Cleanup(ts.Close)

	ctx := t.Context()
	domain := fmt.Sprintf("rt%x", time.Now().UnixNano()&0xffffffff)
	if _, err := b.CreateDomain(ctx, bridge.System, domain, ""); err != nil {
		t.Fatal(err)
	}
	proj, err := b.CreateProject(ctx, bridge.System, domain, "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	w := &runtimeCLIWorld{sid: "5e0c1a2b-3c4d-4e5f-8a9b-" + fmt.Sprintf("%012x", time.Now().UnixNano()&0xffffffffffff)}
	var aliceID int64
	for _, u := range []struct {
		name string
		uid  int
		env  *[]string
	}{{"alice", 2001, &w.alice}, {"bob", 2002, &w.bob}} {
		nu, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: u.name, UID: u.uid, Domain: domain, Role: bridge.RoleUser})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.SetMembership(ctx, bridge.System, proj.ID, nu.ID, "member"); err != nil {
			t.Fatal(err)
		}
		ak, sk, err := b.CreateKeypair(ctx, nu.Actor(), nu.ID, "runtime cli test")
		if err != nil {
			t.Fatal(err)
		}
		*u.env = []string{"SLURMGATE_ENDPOINT=" + ts.URL, "SLURMGATE_ACCESS_KEY=" + ak, "SLURMGATE_SECRET_KEY=" + sk}
		if u.name == "alice" {
			aliceID = nu.ID
		}
	}
	sg := "rt" + domain
	if _, err := b.CreateScalingGroup(ctx, bridge.System, bridge.ScalingGroup{Name: sg, Cluster: "c", Partitions: []string{"cpu"}}); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(ctx, `INSERT INTO sessions (id, user_id, project_id, domain_id, scaling_group, partition, type,
		image, cpus, memory_mb, time_limit_s, state, started_at)
		VALUES ($1, $2, $3, $4, $5, 'cpu', 'interactive', 'host:latest', 2, 1024, 3600, 'PREPARING', now())`,
		w.sid, aliceID, proj.ID, proj.DomainID, sg)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := b.IssueAgentSecret(ctx, w.sid)
	if err != nil {
		t.Fatal(err)
	}

	// The agent's configuration, as the gateway writes it for a job.
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	nb, _ := exec.LookPath("jupyter-notebook")
	jupyter := []string{nb, "--no-browser", "--sock={socket}", "--NotebookApp.base_url={base_url}",
		"--NotebookApp.token=", "--notebook-dir=" + home, "--NotebookApp.allow_remote_access=True",
		"--allow-root"} // tests run as root; jobs never do
	cfg, _ := json.Marshal(map[string]any{
		"session_id": w.sid, "gateway_url": "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/agent/tunnel",
		"secret": secret, "runtime": "none", "interactive": true,
		"state_dir": filepath.Join(dir, "state"), "metrics_interval": "1s", "stop_grace": "2s",
		"env":      []string{"HOME=" + home, "JUPYTER_RUNTIME_DIR=" + filepath.Join(home, "rt"), "JUPYTER_CONFIG_DIR=" + filepath.Join(home, "cfg")},
		"services": []map[string]any{{"name": "jupyter", "protocol": "http", "socket": true, "base_url": true, "command": jupyter}},
	})
	cfgPath := filepath.Join(dir, "agent.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &lockedLog{}
	w.agent = exec.Command("unshare", "-u", "sh", "-c", `hostname "$0" && exec "$1" agent --config "$2"`, nodeName, cliBinary(t), cfgPath)
	w.agent.Stdout, w.agent.Stderr = logs, logs
	if err := w.agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.agent.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { w.agent.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			w.agent.Process.Kill()
			t.Error("the agent did not stop within 30 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("agent output:\n%s", logs)
		}
	})

	// Jupyter takes a few seconds to start; the session is RUNNING once
	// the agent reports it ready.
	deadline := time.Now().Add(90 * time.Second)
	for {
		s, err := b.Session(ctx, bridge.System, w.sid)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == bridge.StateRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session is %s (%s) after 90 s; want RUNNING once its agent reports Jupyter ready\nagent output:\n%s", s.State, s.StatusMessage, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return w
}

// lockedLog collects a process's output from several goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestCLIRuntimeCommands(t *testing.T) {
	w := newRuntimeCLIWorld(t)
	home := t.TempDir()

	t.Run("session exec streams output and exits with the command's code", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "", "session", "exec", w.sid, "--", "sh", "-c", "echo out; echo err >&2; hostname; exit 3")
		if r.code != 3 || r.stdout != "out\n"+nodeName+"\n" || r.stderr != "err\n" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 3, out and the node's name, and only the command's err", r.code, r.stdout, r.stderr)
		}
		r = cliRun(t, home, w.alice, "line one\nline two\n", "session", "exec", "--stdin", w.sid, "wc", "-l")
		if r.code != 0 || strings.TrimSpace(r.stdout) != "2" {
			t.Errorf("exec --stdin wc -l: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if r := cliRun(t, home, w.bob, "", "session", "exec", w.sid, "--", "id"); r.code != exitNotFound {
			t.Errorf("bob exec in alice's session: exit %d, %s; want 5", r.code, r.stderr)
		}
	})

	t.Run("session shell without a terminal types its input", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "echo product=$((6*7))\nexit 5\n", "session", "shell", w.sid)
		if r.code != 5 || !strings.Contains(r.stdout, "product=42") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 5 and product=42", r.code, r.stdout, r.stderr)
		}
	})

	t.Run("session shell on a terminal: raw mode, resize, restored", func(t *testing.T) {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatalf("opening a pseudo-terminal: %v", err)
		}
		defer ptmx.Close()
		pty.Setsize(ptmx, &pty.Winsize{Rows: 30, Cols: 100})
		cooked, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		cmd := cliCmd(t, home, w.alice, "", "session", "shell", w.sid)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
		// The CLI leads a session with this terminal as its controlling
		// one, as in a person's shell, so that resizing sends it SIGWINCH.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		screen := &lockedLog{}
		go io.Copy(screen, ptmx)
		waitFor := func(text string) {
			t.Helper()
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if strings.Contains(screen.String(), text) {
					return
				}
			}
			t.Fatalf("the terminal never showed %q:\n%q", text, screen.String())
		}
		// Typed characters reach the remote shell one by one (raw mode),
		// and its echo is the only echo: the local terminal echoes nothing.
		io.WriteString(ptmx, "echo size=$(stty size)\r")
		waitFor("size=30 100")
		pty.Setsize(ptmx, &pty.Winsize{Rows: 41, Cols: 120})
		for deadline := time.Now().Add(30 * time.Second); !strings.Contains(screen.String(), "size=41 120"); time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the remote terminal never took the new size:\n%q", screen.String())
			}
			io.WriteString(ptmx, "echo size=$(stty size)\r")
		}
		io.WriteString(ptmx, "exit 6\r")
		err = cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 6 {
			t.Errorf("session shell exited %d (%v); want the shell's 6\n%q", code, err, screen.String())
		}
		after, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatal(err)
		}
		if after.Lflag != cooked.Lflag || after.Iflag != cooked.Iflag || after.Oflag != cooked.Oflag {
			t.Errorf("terminal modes after the shell: lflag %#x iflag %#x oflag %#x; want restored to %#x %#x %#x",
				after.Lflag, after.Iflag, after.Oflag, cooked.Lflag, cooked.Iflag, cooked.Oflag)
		}
		tty.Close()
	})

	t.Run("app ls", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "", "app", "ls", "--json", w.sid)
		var out struct {
			AgentConnected bool `json:"agent_connected"`
			Apps           []struct {
				Name    string `json:"name"`
				Ready   bool   `json:"ready"`
				FullURL string `json:"full_url"`
			} `json:"apps"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
			t.Fatalf("app ls --json: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
		}
		if !out.AgentConnected || len(out.Apps) != 1 || out.Apps[0].Name != "jupyter" || !out.Apps[0].Ready ||
			!strings.HasSuffix(out.Apps[0].FullURL, "/s/"+w.sid+"/jupyter/") {
			t.Errorf("app ls: %+v", out)
		}
		r = cliRun(t, home, w.alice, "", "app", "open", "--print", w.sid, "jupyter")
		if r.code != 0 || !strings.HasSuffix(strings.TrimSpace(r.stdout), "/s/"+w.sid+"/jupyter/") {
			t.Errorf("app open: exit %d, %q %s", r.code, r.stdout, r.stderr)
		}
		if r := cliRun(t, home, w.alice, "", "app", "open", w.sid, "nope"); r.code != exitNotFound || !strings.Contains(r.stderr, "jupyter") {
			t.Errorf("app open of an unknown app: exit %d, %s; want 5 naming jupyter", r.code, r.stderr)
		}
	})

	t.Run("app forward serves the real Jupyter on a local port", func(t *testing.T) {
		cmd := cliCmd(t, home, w.alice, "", "app", "forward", w.sid, "jupyter")
		stdout, _ := cmd.StdoutPipe()
		var errb lockedLog
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stdout)
		var local string
		for lines.Scan() {
			if l := lines.Text(); strings.HasPrefix(l, "http://127.0.0.1:") {
				local = l
				break
			}
		}
		if local == "" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("app forward printed no local URL; stderr %s", errb.String())
		}
		go io.Copy(io.Discard, stdout)
		// Jupyter serves under its base URL, and forward says so.
		if !strings.HasSuffix(local, "/s/"+w.sid+"/jupyter/") {
			t.Errorf("local URL %s; want Jupyter's base URL on it", local)
		}
		for i := range 3 { // one stream per connection
			resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}).Get(local + "api/status")
			if err != nil {
				t.Fatal(err)
			}
			var st struct {
				Started string `json:"started"`
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil || st.Started == "" {
				t.Errorf("GET %sapi/status #%d: %d %v %+v", local, i, resp.StatusCode, err, st)
			}
		}
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("app forward after Ctrl-C: %v; want exit 0\n%s", err, errb.String())
		}
	})

	t.Run("ssh runs commands in the session through OpenSSH", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "", "ssh", w.sid, "--", "hostname")
		if r.code != 0 || r.stdout != nodeName+"\n" {
			t.Fatalf("ssh hostname: exit %d, stdout %q, stderr %s; want the node's name", r.code, r.stdout, r.stderr)
		}
		r = cliRun(t, home, w.alice, "", "ssh", w.sid, "sh", "-c", "echo 'two words'; exit 7")
		if r.code != 7 || r.stdout != "two words\n" {
			t.Errorf("ssh with arguments: exit %d, stdout %q, stderr %s; want 7 and the argument as given", r.code, r.stdout, r.stderr)
		}
		known, err := os.ReadFile(filepath.Join(home, ".config", "slurmgate", "known_hosts"))
		if err != nil || !strings.HasPrefix(string(known), "slurmgate-"+w.sid+" ssh-ed25519 ") {
			t.Errorf("known_hosts %q, %v; want the session's pinned ed25519 key", known, err)
		}
	})

	t.Run("scp and sftp through the printed ssh_config", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "", "ssh", "--config", w.sid)
		if r.code != 0 || !strings.Contains(r.stdout, "Host slurmgate-"+w.sid+"\n") || !strings.Contains(r.stdout, "ProxyCommand") {
			t.Fatalf("ssh --config: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		sshConfig := filepath.Join(home, "ssh_config")
		os.WriteFile(sshConfig, []byte(r.stdout), 0o600)
		src := filepath.Join(home, "payload.bin")
		payload := make([]byte, 3<<20)
		rand.Read(payload)
		os.WriteFile(src, payload, 0o600)
		dst := t.TempDir() // runtime none: the session's filesystem is this machine's
		env := append([]string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}, w.alice...)
		for _, mode := range []struct{ name, flag string }{{"sftp", "-s"}, {"legacy scp", "-O"}} {
			target := filepath.Join(dst, strings.ReplaceAll(mode.name, " ", "-"))
			c := exec.CommandContext(t.Context(), "scp", "-F", sshConfig, mode.flag, src, "slurmgate-"+w.sid+":"+target)
			c.Env = env
			if out, err := c.CombinedOutput(); err != nil {
				t.Errorf("scp %s: %v\n%s", mode.flag, err, out)
				continue
			}
			if got, err := os.ReadFile(target); err != nil || string(got) != string(payload) {
				t.Errorf("scp (%s) copied %d bytes, %v; want the %d-byte file", mode.name, len(got), err, len(payload))
			}
		}
		batch := filepath.Join(home, "sftp-batch")
		os.WriteFile(batch, []byte("mkdir "+dst+"/made\nls "+dst+"\n"), 0o600)
		c := exec.CommandContext(t.Context(), "sftp", "-F", sshConfig, "-b", batch, "slurmgate-"+w.sid)
		c.Env = env
		if out, err := c.CombinedOutput(); err != nil || !strings.Contains(string(out), "made") {
			t.Errorf("sftp batch: %v\n%s", err, out)
		}
	})

	t.Run("bad flags and arguments are usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"ssh", "--bogus", w.sid},
			{"ssh"},
			{"ssh", "--proxy", "--config", w.sid},
			{"session", "exec", w.sid},
			{"session", "shell"},
			{"app", "ls"},
			{"app", "forward", w.sid, "jupyter", "99999"},
			{"app", "open", w.sid},
		} {
			if r := cliRun(t, home, w.alice, "", args...); r.code != exitUsage {
				t.Errorf("slurmgate %v: exit %d, stderr %s; want 2", args, r.code, r.stderr)
			}
		}
	})
}
