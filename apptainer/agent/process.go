package agent

import (
	"encoding/json"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/slurmgate/slurmgate/tunnel"
)

// loginShell starts the container's bash if it has one, else sh.
var loginShell = []string{"/bin/sh", "-c", `if [ -x /bin/bash ]; then exec /bin/bash -l; fi; exec /bin/sh -l`}

// serveProcess runs a pty or exec stream's process inside the container:
// stdin and resize frames in, output frames and the exit status out.
// Closing the stream from the gateway hangs up: SIGHUP to a terminal's
// session, SIGTERM to an exec's group, SIGKILL after the grace period.
func (a *Agent) serveProcess(s *tunnel.Stream) {
	defer s.Close()
	h := s.Header
	tty := h.Kind == tunnel.KindPTY
	argv := h.Argv
	if len(argv) == 0 {
		if !tty {
			s.Reject("exec needs a command (argv)")
			return
		}
		argv = loginShell
	}
	env := slices.Clone(h.Env)
	if tty && !slices.ContainsFunc(env, func(kv string) bool { return len(kv) > 5 && kv[:5] == "TERM=" }) {
		env = append(env, "TERM=xterm-256color")
	}
	inst := a.instance()
	if inst == nil {
		s.Reject("the container is not running yet; retry once the session is ready")
		return
	}
	cmd, err := inst.Command(a.life, argv, env)
	if err != nil {
		s.Reject(err.Error())
		return
	}
	fw := tunnel.NewFrameWriter(s)
	var (
		ptmx *os.File
		// ptmxMu orders the stdin frames' writes and resizes before the
		// terminal's close once the process has ended.
		ptmxMu   sync.Mutex
		stdin    io.WriteCloser
		accepted = make(chan struct{})
	)
	if tty {
		rows, cols := h.Rows, h.Cols
		if rows == 0 || cols == 0 {
			rows, cols = 24, 80
		}
		// A terminal leads a session of its own (pty sets Setsid); say so
		// before procs.start, which would otherwise add a process group.
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty = true, true
		err = a.procs.start(cmd, func() error {
			ptmx, err = pty.StartWithSize(cmd, &pty.Winsize{Rows: rows, Cols: cols})
			return err
		})
	} else {
		// A quick command writes before the stream is accepted; its
		// output waits, or the gateway would read a frame as the reply.
		cmd.Stdout = gatedWriter{fw.Writer(tunnel.FrameStdout), accepted}
		cmd.Stderr = gatedWriter{fw.Writer(tunnel.FrameStderr), accepted}
		// Output goes through pipes: a background child that keeps them
		// open (`server &`) must not hold the exec once the command has
		// exited, as ssh.go's exec does.
		cmd.WaitDelay = time.Second
		if stdin, err = cmd.StdinPipe(); err == nil {
			err = a.procs.start(cmd, nil)
		}
	}
	if err != nil {
		s.Reject("cannot start " + argv[0] + ": " + err.Error())
		return
	}
	err = s.Accept()
	close(accepted)
	if err != nil {
		a.procs.terminate(cmd.Process.Pid, syscall.SIGKILL, 0)
		a.procs.wait(cmd)
		return
	}
	a.activity.streams.Add(1)

	exited := make(chan struct{})
	go func() {
		var buf []byte
		for {
			t, b, err := tunnel.ReadFrame(s, buf)
			if err != nil {
				select {
				case <-exited:
				default: // the gateway hung up on a running process
					sig := syscall.SIGTERM
					if tty {
						sig = syscall.SIGHUP
					}
					a.procs.terminate(cmd.Process.Pid, sig, a.cfg.stopGrace())
				}
				return
			}
			buf = b
			a.activity.bytes.Add(int64(len(b)))
			switch t {
			case tunnel.FrameStdin:
				if tty {
					ptmxMu.Lock()
					if ptmx != nil {
						ptmx.Write(b)
					}
					ptmxMu.Unlock()
				} else {
					stdin.Write(b)
				}
			case tunnel.FrameStdinEOF:
				if tty {
					ptmxMu.Lock()
					if ptmx != nil {
						ptmx.Write([]byte{4}) // ^D at the start of a line
					}
					ptmxMu.Unlock()
				} else {
					stdin.Close()
				}
			case tunnel.FrameResize:
				if rows, cols, err := tunnel.ParseResize(b); err == nil && tty {
					ptmxMu.Lock()
					if ptmx != nil {
						pty.Setsize(ptmx, &pty.Winsize{Rows: rows, Cols: cols})
					}
					ptmxMu.Unlock()
				}
			}
		}
	}()

	var copied chan struct{}
	if tty {
		copied = make(chan struct{})
		out := ptmx
		go func() {
			io.Copy(fw.Writer(tunnel.FrameStdout), out) // ends with EIO once the terminal has no process
			close(copied)
		}()
	}
	code, err := a.procs.wait(cmd)
	close(exited)
	if tty {
		// Output still in the terminal's buffer drains quickly; a
		// background job holding the terminal open must not hold the
		// stream, so close the master after a moment.
		select {
		case <-copied:
		case <-time.After(200 * time.Millisecond):
		}
		ptmxMu.Lock()
		ptmx.Close()
		ptmx = nil
		ptmxMu.Unlock()
		<-copied
	}
	st := tunnel.ExitStatus{Code: code}
	if err != nil {
		st.Error = err.Error()
	}
	b, _ := json.Marshal(st)
	fw.WriteFrame(tunnel.FrameExit, b)
}

// runBatch runs the batch command with the job's stdout and stderr, so
// that it lands in Slurm's output files, and returns its exit status.
func (a *Agent) runBatch(command string) tunnel.ExitStatus {
	cmd, err := a.instance().Command(a.life, []string{"/bin/sh", "-c", command}, nil)
	if err != nil {
		return tunnel.ExitStatus{Code: 127, Error: err.Error()}
	}
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = a.stdout, a.stderr
	if err := a.procs.start(cmd, nil); err != nil {
		return tunnel.ExitStatus{Code: 127, Error: err.Error()}
	}
	code, err := a.procs.wait(cmd)
	st := tunnel.ExitStatus{Code: code}
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

// gatedWriter holds writes until open is closed.
type gatedWriter struct {
	w    io.Writer
	open <-chan struct{}
}

func (g gatedWriter) Write(p []byte) (int, error) {
	<-g.open
	return g.w.Write(p)
}
