package main

// The runtime commands (session exec|shell, app ls|open|forward, ssh, scp,
// sftp) run as the built binary against an in-process gateway on the real
// test cluster, as a researcher uses them: `slurmgate session create` submits
// an interactive session's Slurm job, the job runs `slurmgate agent` as
// alice on a compute node (c1 or c2, each slurmd in a UTS namespace named
// after its node), the agent dials the gateway's tunnel endpoint and starts
// the image's Jupyter service, and the session becomes RUNNING.
//
// The image is runtime none with a catalogue label declaring the host's
// Debian jupyter-notebook as its jupyter service, rather than the jupyter
// SIF under Charliecloud (api's end-to-end test covers that one): on the
// host, legacy scp finds its remote scp binary, and what scp and sftp wrote
// can be read back here.

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
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

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

// notebookLabels declare the host's jupyter-notebook as the image's
// service, on a Unix socket in the agent's 0700 state directory: the
// directory is the guard, so Jupyter needs no token. (A token-guarded app on
// a port, as in the jupyter SIF's labels, is served through the gateway's
// app proxy, where the agent adds the token; `app forward` carries raw TCP,
// which the agent splices to the app without it.)
var notebookLabels = map[string]string{
	"org.slurmgate.runtimes":        "none",
	"org.slurmgate.service.jupyter": "http:8888",
	"org.slurmgate.service.jupyter.command": "jupyter-notebook --no-browser --sock={socket} --NotebookApp.base_url={base_url} " +
		"--NotebookApp.token= --NotebookApp.allow_remote_access=True",
}

type runtimeCLIWorld struct {
	*cliWorld
	sid  string
	node string // the Slurm node the session's job runs on
}

func newRuntimeCLIWorld(t *testing.T, home string) *runtimeCLIWorld {
	t.Helper()
	for _, tool := range []string{"jupyter-notebook", "ssh", "scp", "sftp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: apt-get install -y jupyter-notebook openssh-client", tool)
		}
	}
	w := &runtimeCLIWorld{cliWorld: newCLIWorld(t, func(c *bridge.Config) { c.AgentBinary = cluster.AgentBinary(t) })}
	if _, err := w.b.CreateImage(t.Context(), bridge.System, bridge.Image{Name: "notebook", Location: "/", Runtime: "none", Labels: notebookLabels}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := cliRun(t, home, w.alice, "", "session", "create", "--json", "--no-wait", "--image", "notebook", "-p", "cpu", "-c", "1", "--mem", "1G", "-t", "15")
	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &created); r.code != 0 || err != nil || created.ID == "" {
		t.Fatalf("session create: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	w.sid = created.ID
	// PENDING → PREPARING once Slurm runs the job → RUNNING once its agent
	// reports Jupyter ready (a few seconds for the notebook server).
	for {
		s, err := w.api.Session(t.Context(), w.sid)
		if err != nil {
			t.Fatal(err)
		}
		if s.State == "RUNNING" {
			w.node = s.Node
			break
		}
		if s.State == "TERMINATED" || s.State == "ERROR" || s.State == "CANCELLED" || time.Since(start) > 3*time.Minute {
			r := cliRun(t, home, w.alice, "", "session", "events", w.sid)
			t.Fatalf("session %s is %s (%s) after %v; want RUNNING through Slurm and its agent\n%s", w.sid, s.State, s.StatusMessage,
				time.Since(start).Round(time.Second), r.stdout)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("session create → RUNNING on %s through Slurm and the agent: %v", w.node, time.Since(start).Round(time.Millisecond))
	if w.node != "c1" && w.node != "c2" {
		t.Fatalf("the session runs on node %q; want c1 or c2 (partition cpu)", w.node)
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
	home := t.TempDir()
	w := newRuntimeCLIWorld(t, home)

	t.Run("session exec streams output and exits with the command's code", func(t *testing.T) {
		r := cliRun(t, home, w.alice, "", "session", "exec", w.sid, "--", "sh", "-c", "echo out; echo err >&2; hostname; exit 3")
		if r.code != 3 || r.stdout != "out\n"+w.node+"\n" || r.stderr != "err\n" {
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
		// session info of a running session ends with its apps' URLs.
		r = cliRun(t, home, w.alice, "", "session", "info", w.sid)
		if r.code != 0 || !strings.Contains(r.stdout, "app jupyter") || !strings.Contains(r.stdout, "/s/"+w.sid+"/jupyter/") {
			t.Errorf("session info: exit %d, %q; want the jupyter app's URL", r.code, r.stdout)
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
		if r.code != 0 || r.stdout != w.node+"\n" {
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
		// Runtime none: the session's filesystem is this machine's, and
		// the session runs as alice, so she must own where the files go.
		dst, err := os.MkdirTemp("", "slurmgate-scp-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dst) })
		if err := os.Chown(dst, 2001, 2001); err != nil {
			t.Fatal(err)
		}
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
