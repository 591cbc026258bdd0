package agent

// The built-in SSH service: plain OpenSSH, scp and sftp into the session,
// through the gateway.
//
// There is no listener. The gateway opens a tcp stream for service "ssh"
// (GET /api/v1/sessions/{id}/tcp/ssh, which the CLI's ProxyCommand uses)
// and the agent speaks SSH on that stream itself; nothing on the node's
// network, loopback or filesystem accepts SSH, so other users of the node
// cannot reach it.
//
// Trust. The stream is already authenticated at both ends: the gateway
// opens it only for a caller who may use the session (the owner), checked
// on the upgrade and again when the caller's credentials are revoked, and
// the agent accepted the tunnel only from the gateway it dialled with the
// session's secret. SSH client authentication would check the same person
// a second time with weaker means (keys copied around), so the server
// accepts the "none" method and ignores the SSH user name: every process
// runs as the session's user, the agent's own uid, exactly like the web
// terminal. The host key is an Ed25519 key generated in memory when the
// agent starts and never written anywhere; it lives as long as the agent.
// The CLI reads it through the same authenticated stream and pins it in a
// known_hosts file of its own, so OpenSSH's host check holds without
// prompts and a stream that reached anything but this agent fails it.
//
// Shells, commands and the sftp subsystem run inside the container
// (Instance.Command), in process groups the agent tracks, so that stopping
// the session ends them. For sftp the agent prefers the image's own
// sftp-server; an image without one gets the agent's (github.com/pkg/sftp),
// which sees the node's filesystem as the session's user — the same files
// under runtime none, and the session's folders at their host paths under a
// container. Local forwarding (ssh -L) reaches ports on the node's loopback
// only, like the gateway's tcp/{port} streams.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// SSHService is the name of the built-in SSH service. A configured service
// of the same name replaces it.
const SSHService = "ssh"

// sftpServers are where images keep OpenSSH's sftp-server.
var sftpServers = []string{
	"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
	"/usr/lib/ssh/sftp-server", "/usr/libexec/sftp-server", "/usr/lib/sftp-server",
}

// sshServer holds the session's SSH host key and server configuration.
type sshServer struct {
	config  *ssh.ServerConfig
	hostKey ssh.PublicKey

	sftpOnce sync.Once
	sftpPath string // the image's sftp-server, or "" for the agent's own
}

func newSSHServer(version string) (*sshServer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("ssh host key: %w", err)
	}
	// See the file comment: the tunnel stream is the authentication.
	cfg := &ssh.ServerConfig{NoClientAuth: true, ServerVersion: "SSH-2.0-slurmgate-agent"}
	if version != "" {
		cfg.ServerVersion += "_" + strings.Map(func(r rune) rune {
			if r <= ' ' || r == '-' || r > '~' {
				return '.'
			}
			return r
		}, version)
	}
	cfg.AddHostKey(signer)
	return &sshServer{config: cfg, hostKey: signer.PublicKey()}, nil
}

// SSHHostKey is the public half of the session's SSH host key, in
// authorized_keys format ("ssh-ed25519 AAAA…"); its SHA-256 fingerprint is
// ssh.FingerprintSHA256 of the parsed key.
func (a *Agent) SSHHostKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(a.ssh.hostKey)))
}

// serveSSH speaks SSH on a tunnel stream until the client disconnects or
// the agent stops.
func (a *Agent) serveSSH(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // the handshake only
	sc, chans, reqs, err := ssh.NewServerConn(c, a.ssh.config)
	if err != nil {
		a.log.Info("ssh handshake failed", "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	defer sc.Close()
	a.log.Info("ssh connection", "user", sc.User(), "client", string(sc.ClientVersion()))
	stop := context.AfterFunc(a.life, func() { sc.Close() })
	defer stop()
	// Global requests are remote forwarding (ssh -R) and keepalives: refuse
	// the former, answer the latter.
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	defer wg.Wait()
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			wg.Go(func() { a.sshSession(nc) })
		case "direct-tcpip":
			wg.Go(func() { a.sshDirectTCPIP(nc) })
		default:
			nc.Reject(ssh.UnknownChannelType, "this server offers session and direct-tcpip channels")
		}
	}
}

// sshSession serves one session channel: a shell, a command or the sftp
// subsystem, with an optional terminal.
func (a *Agent) sshSession(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	// Requests must be read to the end, or the connection stalls.
	defer func() { go ssh.DiscardRequests(reqs) }()
	var (
		env     []string
		term    *ptyRequest
		started bool
		ptmx    *os.File
		ptmxMu  sync.Mutex
		cmd     *exec.Cmd
		done    = make(chan struct{}) // closed when the process has ended
	)
	for {
		var req *ssh.Request
		var ok bool
		select {
		case req, ok = <-reqs:
		case <-done:
			return
		}
		if !ok { // the client closed the channel
			if cmd != nil {
				a.procs.terminate(cmd.Process.Pid, syscall.SIGHUP, a.cfg.stopGrace())
				<-done
			}
			return
		}
		reply := func(ok bool) {
			if req.WantReply {
				req.Reply(ok, nil)
			}
		}
		switch req.Type {
		case "env":
			var kv struct{ Name, Value string }
			if ssh.Unmarshal(req.Payload, &kv) != nil || kv.Name == "" || strings.Contains(kv.Name, "=") {
				reply(false)
				continue
			}
			env = append(env, kv.Name+"="+kv.Value)
			reply(true)
		case "pty-req":
			var p ptyRequest
			if started || ssh.Unmarshal(req.Payload, &p) != nil {
				reply(false)
				continue
			}
			term = &p
			reply(true)
		case "window-change":
			var w struct{ Cols, Rows, Width, Height uint32 }
			if ssh.Unmarshal(req.Payload, &w) == nil {
				ptmxMu.Lock()
				if ptmx != nil {
					pty.Setsize(ptmx, &pty.Winsize{Rows: clampSize(w.Rows), Cols: clampSize(w.Cols)})
				}
				ptmxMu.Unlock()
			}
			reply(true)
		case "signal":
			var s struct{ Name string }
			ssh.Unmarshal(req.Payload, &s)
			sig, known := sshSignals[s.Name]
			if cmd != nil && known {
				syscall.Kill(-cmd.Process.Pid, sig)
			}
			reply(known)
		case "shell", "exec", "subsystem":
			if started {
				reply(false)
				continue
			}
			var argv []string
			switch req.Type {
			case "shell":
				argv = loginShell
			case "exec":
				var c struct{ Command string }
				if ssh.Unmarshal(req.Payload, &c) != nil {
					reply(false)
					continue
				}
				argv = []string{"/bin/sh", "-c", c.Command}
			case "subsystem":
				var s struct{ Name string }
				if ssh.Unmarshal(req.Payload, &s) != nil || s.Name != "sftp" {
					reply(false)
					continue
				}
				if path := a.sftpServer(); path != "" {
					argv = []string{path}
				} else {
					started = true
					reply(true)
					go func() {
						defer close(done)
						a.serveSFTP(ch)
					}()
					continue
				}
			}
			c, p, err := a.sshStart(ch, argv, env, term)
			if err != nil {
				a.log.Warn("ssh: cannot start", "argv", argv, "err", err)
				reply(false)
				return
			}
			started, cmd = true, c
			ptmxMu.Lock()
			ptmx = p
			ptmxMu.Unlock()
			reply(true)
			go func() {
				defer close(done)
				// The terminal is closed under ptmxMu: a window-change
				// may be resizing it at that moment.
				a.sshWait(ch, cmd, p, func() {
					ptmxMu.Lock()
					defer ptmxMu.Unlock()
					ptmx.Close()
					ptmx = nil
				})
			}()
		default:
			reply(false)
		}
	}
}

// ptyRequest is RFC 4254's pty-req payload.
type ptyRequest struct {
	Term                      string
	Cols, Rows, Width, Height uint32
	Modes                     string
}

func clampSize(n uint32) uint16 {
	return uint16(min(max(n, 1), 1000))
}

var sshSignals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

// sshStart starts argv inside the container, on a terminal when the client
// asked for one, with its stdio wired to the channel.
func (a *Agent) sshStart(ch ssh.Channel, argv, env []string, term *ptyRequest) (*exec.Cmd, *os.File, error) {
	inst := a.instance()
	if inst == nil {
		return nil, nil, errors.New("the container is not running yet")
	}
	if term != nil && term.Term != "" {
		env = append(env, "TERM="+term.Term)
	}
	cmd, err := inst.Command(a.life, argv, env)
	if err != nil {
		return nil, nil, err
	}
	if term != nil {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
		var ptmx *os.File
		err := a.procs.start(cmd, func() (err error) {
			ptmx, err = pty.StartWithSize(cmd, &pty.Winsize{Rows: clampSize(term.Rows), Cols: clampSize(term.Cols)})
			return err
		})
		if err != nil {
			return nil, nil, err
		}
		go func() {
			io.Copy(ptmx, ch)
			ptmx.Write([]byte{4}) // the client's EOF as ^D
		}()
		return cmd, ptmx, nil
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
	// Background children that keep stdout open must not hold the
	// channel once the command has exited.
	cmd.WaitDelay = time.Second
	if err := a.procs.start(cmd, nil); err != nil {
		return nil, nil, err
	}
	a.activity.streams.Add(1)
	go func() {
		io.Copy(stdin, ch)
		stdin.Close()
	}()
	return cmd, nil, nil
}

// sshWait waits for the process, drains a terminal's output, and sends the
// exit status before closing the channel.
func (a *Agent) sshWait(ch ssh.Channel, cmd *exec.Cmd, ptmx *os.File, closePTY func()) {
	var copied chan struct{}
	if ptmx != nil {
		copied = make(chan struct{})
		go func() {
			io.Copy(ch, ptmx) // EIO once the terminal has no process
			close(copied)
		}()
	}
	code, err := a.procs.wait(cmd)
	if ptmx != nil {
		// As for the gateway's terminals: a background job holding the
		// terminal must not hold the channel.
		select {
		case <-copied:
		case <-time.After(200 * time.Millisecond):
		}
		closePTY()
		<-copied
	}
	if err != nil {
		fmt.Fprintf(ch.Stderr(), "slurmgate agent: %v\n", err)
		code = 255
	}
	sendExit(ch, code)
}

// sendExit reports the exit status the way OpenSSH does, then ends the
// channel.
func sendExit(ch ssh.Channel, code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	ch.SendRequest("exit-status", false, b[:])
	ch.CloseWrite()
	ch.Close()
}

// sftpServer finds the image's sftp-server once; "" when it has none.
func (a *Agent) sftpServer() string {
	a.ssh.sftpOnce.Do(func() {
		inst := a.instance()
		if inst == nil {
			return
		}
		script := `for p in "$@"; do if [ -x "$p" ]; then echo "$p"; exit 0; fi; done; exit 1`
		ctx, cancel := context.WithTimeout(a.life, 30*time.Second)
		defer cancel()
		cmd, err := inst.Command(ctx, append([]string{"/bin/sh", "-c", script, "sh"}, sftpServers...), nil)
		if err != nil {
			return
		}
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := a.procs.start(cmd, nil); err != nil {
			return
		}
		if code, _ := a.procs.wait(cmd); code == 0 {
			a.ssh.sftpPath = strings.TrimSpace(out.String())
		}
		if a.ssh.sftpPath == "" {
			a.log.Info("the image has no sftp-server; the agent serves sftp on the node's filesystem")
		}
	})
	return a.ssh.sftpPath
}

// serveSFTP serves SFTP from the agent itself, starting in the user's
// home directory.
func (a *Agent) serveSFTP(ch ssh.Channel) {
	var opts []sftp.ServerOption
	if home, err := os.UserHomeDir(); err == nil {
		opts = append(opts, sftp.WithServerWorkingDirectory(home))
	}
	// The server closes what it serves on when it ends, but the exit
	// status must still go out on the channel: hand it one without Close.
	rw := struct {
		io.Reader
		io.Writer
		io.Closer
	}{ch, ch, io.NopCloser(nil)}
	srv, err := sftp.NewServer(rw, opts...)
	if err != nil {
		fmt.Fprintf(ch.Stderr(), "slurmgate agent: sftp: %v\n", err)
		sendExit(ch, 1)
		return
	}
	a.activity.streams.Add(1)
	code := 0
	if err := srv.Serve(); err != nil && !errors.Is(err, io.EOF) {
		code = 1
	}
	srv.Close()
	sendExit(ch, code)
}

// sshDirectTCPIP serves ssh -L: a connection to a port on the node's
// loopback.
func (a *Agent) sshDirectTCPIP(nc ssh.NewChannel) {
	var d struct {
		Host       string
		Port       uint32
		OriginHost string
		OriginPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &d); err != nil {
		nc.Reject(ssh.ConnectionFailed, "malformed direct-tcpip request")
		return
	}
	switch d.Host {
	case "localhost", "127.0.0.1", "::1", "ip6-localhost":
	default:
		nc.Reject(ssh.Prohibited, fmt.Sprintf("forwarding reaches the node's loopback only (localhost:PORT), not %s", d.Host))
		return
	}
	if d.Port == 0 || d.Port > 65535 {
		nc.Reject(ssh.ConnectionFailed, fmt.Sprintf("port %d: want 1 to 65535", d.Port))
		return
	}
	ctx, cancel := context.WithTimeout(a.life, 10*time.Second)
	var dialer net.Dialer
	target, err := dialer.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(d.Port))))
	cancel()
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	a.activity.streams.Add(1)
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(ch, target)
		ch.CloseWrite()
	})
	wg.Go(func() {
		io.Copy(target, ch)
		target.(*net.TCPConn).CloseWrite()
	})
	wg.Wait()
	ch.Close()
	target.Close()
}
