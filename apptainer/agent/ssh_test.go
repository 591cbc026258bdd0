package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/slurmgate/slurmgate/tunnel"
)

// sshClient dials the built-in SSH service through a tunnel stream, as the
// gateway's tcp/ssh WebSocket does, and records the host key it saw.
func sshClient(t *testing.T, c *tunnel.Conn, hostKey *ssh.PublicKey) *ssh.Client {
	t.Helper()
	s, err := c.OpenStream(t.Context(), tunnel.Header{Kind: tunnel.KindTCP, Service: SSHService})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ClientConfig{User: "whoever", Timeout: 10 * time.Second,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if *hostKey != nil && !bytes.Equal((*hostKey).Marshal(), key.Marshal()) {
				return fmt.Errorf("host key changed to %s", ssh.FingerprintSHA256(key))
			}
			*hostKey = key
			return nil
		}}
	sc, chans, reqs, err := ssh.NewClientConn(s, "session", cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl := ssh.NewClient(sc, chans, reqs)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func TestBuiltInSSH(t *testing.T) {
	const secret = "c3NoLXNlY3JldA"
	g := newTestGateway(t, secret)
	cfg := testConfig(t, g, secret)
	mark := "AGENT_TEST_MARK=" + cfg.SessionID
	cfg.Env = []string{mark}
	startAgent(t, cfg)
	conn := g.conn(t)

	var hostKey ssh.PublicKey
	cl := sshClient(t, conn, &hostKey)
	if hostKey == nil || hostKey.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("host key %v; want an ed25519 key", hostKey)
	}

	run := func(t *testing.T, cmd, stdin string) (string, string, error) {
		t.Helper()
		sess, err := cl.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		var out, errb bytes.Buffer
		sess.Stdout, sess.Stderr, sess.Stdin = &out, &errb, strings.NewReader(stdin)
		err = sess.Run(cmd)
		return out.String(), errb.String(), err
	}

	t.Run("exec: output, stdin, exit status, inside the session", func(t *testing.T) {
		// The container may still be starting when the tunnel is up.
		var out, errs string
		var err error
		for range 50 {
			if out, errs, err = run(t, `echo out; echo err >&2; cat; echo "$AGENT_TEST_MARK"; exit 3`, "typed\n"); err == nil || !strings.Contains(err.Error(), "request failed") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		var ee *ssh.ExitError
		if !errors.As(err, &ee) || ee.ExitStatus() != 3 {
			t.Fatalf("exit: %v; want status 3", err)
		}
		if want := "out\ntyped\n" + strings.TrimPrefix(mark, "AGENT_TEST_MARK=") + "\n"; out != want || errs != "err\n" {
			t.Errorf("stdout %q, stderr %q; want %q and \"err\\n\"", out, errs, want)
		}
	})

	t.Run("shell on a terminal, resized", func(t *testing.T) {
		sess, err := cl.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		if err := sess.RequestPty("xterm-256color", 30, 100, ssh.TerminalModes{}); err != nil {
			t.Fatal(err)
		}
		stdin, _ := sess.StdinPipe()
		out := &syncBuffer{}
		sess.Stdout = out
		if err := sess.Shell(); err != nil {
			t.Fatal(err)
		}
		if err := sess.WindowChange(33, 120); err != nil {
			t.Fatal(err)
		}
		// The resize reaches the terminal asynchronously; ask until it shows.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), "33 120 xterm-256color") && time.Now().Before(deadline) {
			io.WriteString(stdin, "echo $(stty size) $TERM\n")
			time.Sleep(200 * time.Millisecond)
		}
		if !strings.Contains(out.String(), "33 120 xterm-256color") {
			t.Fatalf("terminal shows %q; want its resized size and TERM", out)
		}
		io.WriteString(stdin, "exit 4\n")
		var ee *ssh.ExitError
		if err := sess.Wait(); !errors.As(err, &ee) || ee.ExitStatus() != 4 {
			t.Errorf("shell ended with %v; want status 4", err)
		}
	})

	t.Run("sftp round trip", func(t *testing.T) {
		sc, err := sftp.NewClient(cl)
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		dir := t.TempDir()
		payload := bytes.Repeat([]byte("slurmgate\n"), 100_000)
		f, err := sc.Create(filepath.Join(dir, "in.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(payload); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if got, err := os.ReadFile(filepath.Join(dir, "in.txt")); err != nil || !bytes.Equal(got, payload) {
			t.Errorf("file written over sftp: %d bytes, %v; want %d", len(got), err, len(payload))
		}
	})

	t.Run("local forwarding reaches the node's loopback only", func(t *testing.T) {
		web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "forwarded") }))
		defer web.Close()
		hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return cl.DialContext(ctx, "tcp", addr)
		}}}
		resp, err := hc.Get(strings.Replace(web.URL, "127.0.0.1", "localhost", 1))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "forwarded" {
			t.Errorf("through ssh -L: %q", b)
		}
		if _, err := cl.Dial("tcp", "192.0.2.1:80"); err == nil || !strings.Contains(err.Error(), "loopback only") {
			t.Errorf("forwarding to another host: %v; want refused", err)
		}
	})

	t.Run("concurrent connections see the same host key", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				key := hostKey
				c := sshClient(t, conn, &key)
				s, err := c.NewSession()
				if err != nil {
					t.Error(err)
					return
				}
				defer s.Close()
				if out, err := s.Output("echo hi"); err != nil || string(out) != "hi\n" {
					t.Errorf("echo hi: %q, %v", out, err)
				}
			})
		}
		wg.Wait()
	})

	t.Run("SSHHostKey is in authorized_keys format", func(t *testing.T) {
		a, err := New(&Config{SessionID: "s-x", GatewayURL: "ws://x", Secret: "x", Runtime: "none", Interactive: true,
			Services: []Service{{Name: SSHService, Protocol: "tcp", Command: []string{"true"}}}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(a.SSHHostKey(), "ssh-ed25519 ") {
			t.Errorf("SSHHostKey() = %q", a.SSHHostKey())
		}
	})
}

// BenchmarkSSHExec: running `true` over a new SSH session on an open SSH
// connection (what scripted `ssh host cmd` with ControlMaster costs beyond
// the handshake) against the tunnel's own exec stream, in the same run;
// and a fresh SSH connection (stream, handshake, session) per command,
// what plain `ssh host cmd` pays.
func BenchmarkSSHExec(b *testing.B) {
	const secret = "YmVuY2g"
	g := newTestGateway(b, secret)
	cfg := &Config{SessionID: "s-bench-ssh", GatewayURL: g.url(), Secret: secret, Runtime: "none", Interactive: true,
		StateDir: filepath.Join(b.TempDir(), "state"), StopGrace: Duration(2 * time.Second)}
	a, err := New(cfg, Options{Logger: slogDiscard(), Stdout: io.Discard, Stderr: io.Discard,
		Keepalive: tunnel.Keepalive{Interval: time.Second, Timeout: 5 * time.Second}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var conn *tunnel.Conn
	select {
	case conn = <-g.conns:
	case <-time.After(15 * time.Second):
		b.Fatal("the agent did not connect")
	}
	for a.instance() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	dial := func() *ssh.Client {
		s, err := conn.OpenStream(ctx, tunnel.Header{Kind: tunnel.KindTCP, Service: SSHService})
		if err != nil {
			b.Fatal(err)
		}
		sc, chans, reqs, err := ssh.NewClientConn(s, "bench", &ssh.ClientConfig{HostKeyCallback: ssh.InsecureIgnoreHostKey()})
		if err != nil {
			b.Fatal(err)
		}
		return ssh.NewClient(sc, chans, reqs)
	}
	sshRun := func(cl *ssh.Client) {
		s, err := cl.NewSession()
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Run("true"); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	measure := func(f func()) time.Duration {
		t0 := time.Now()
		for range b.N {
			f()
		}
		return time.Since(t0) / time.Duration(b.N)
	}
	native := measure(func() {
		p, err := tunnel.StartProcess(ctx, conn, tunnel.Header{Kind: tunnel.KindExec, Argv: []string{"/bin/sh", "-c", "true"}},
			tunnel.ProcessOutput{Stdout: io.Discard, Stderr: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		if st, err := p.Wait(); err != nil || st.Code != 0 {
			b.Fatal(st, err)
		}
		p.Close()
	})
	cl := dial()
	b.ResetTimer()
	session := measure(func() { sshRun(cl) })
	cl.Close()
	fresh := measure(func() { c := dial(); sshRun(c); c.Close() })
	b.ReportMetric(float64(native.Microseconds()), "exec-µs/op")
	b.ReportMetric(float64(session.Microseconds()), "ssh-session-µs/op")
	b.ReportMetric(float64(fresh.Microseconds()), "ssh-connect-µs/op")
	b.ReportMetric(float64(session)/float64(native), "ssh-session/exec")
	b.ReportMetric(float64(fresh)/float64(native), "ssh-connect/exec")
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
