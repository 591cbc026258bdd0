package agent

import (
	"errors"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// procs tracks the process groups the agent started (services, terminals,
// exec, the batch command), so that stopping the session can signal every
// group, give it a grace period and kill what is left. The driver's
// Instance.Stop then catches anything that escaped its group.
type procs struct {
	mu     sync.Mutex
	groups map[int]chan struct{} // pgid → closed when its leader has been reaped
}

// start starts cmd in a process group of its own (unless the caller set
// Setsid, as a PTY does) and tracks it; wait reaps it.
func (p *procs) start(cmd *exec.Cmd, startFn func() error) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if !cmd.SysProcAttr.Setsid {
		cmd.SysProcAttr.Setpgid = true
	}
	// The agent, not Go's context plumbing, decides how a process ends.
	cmd.Cancel = func() error { return nil }
	if startFn == nil {
		startFn = cmd.Start
	}
	if err := startFn(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.groups == nil {
		p.groups = map[int]chan struct{}{}
	}
	p.groups[cmd.Process.Pid] = make(chan struct{})
	p.mu.Unlock()
	return nil
}

// wait waits for cmd and returns its exit status the shell's way: the
// exit code, or 128+signal when a signal ended it.
func (p *procs) wait(cmd *exec.Cmd) (int, error) {
	err := cmd.Wait()
	p.mu.Lock()
	if ch, ok := p.groups[cmd.Process.Pid]; ok {
		close(ch)
		delete(p.groups, cmd.Process.Pid)
	}
	p.mu.Unlock()
	return exitCode(err)
}

func exitCode(err error) (int, error) {
	// ErrWaitDelay: the command exited 0 but a background child still
	// held its output (WaitDelay); the command itself succeeded.
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, err
}

// terminate ends one group: sig, then SIGKILL after grace if its leader is
// still running. It returns at once.
func (p *procs) terminate(pid int, sig syscall.Signal, grace time.Duration) {
	p.mu.Lock()
	done, ok := p.groups[pid]
	p.mu.Unlock()
	if !ok {
		return
	}
	syscall.Kill(-pid, sig)
	go func() {
		select {
		case <-done:
		case <-time.After(grace):
		}
		// The leader may be gone while its group lives on (a shell's
		// background jobs): kill the group regardless.
		syscall.Kill(-pid, syscall.SIGKILL)
	}()
}

// stopAll sends SIGTERM to every group, waits up to grace for their
// leaders, then SIGKILLs every group.
func (p *procs) stopAll(grace time.Duration) {
	p.mu.Lock()
	pids := make([]int, 0, len(p.groups))
	var waits []chan struct{}
	for pid, ch := range p.groups {
		pids = append(pids, pid)
		waits = append(waits, ch)
	}
	p.mu.Unlock()
	for _, pid := range pids {
		syscall.Kill(-pid, syscall.SIGTERM)
	}
	deadline := time.After(grace)
	for _, ch := range waits {
		select {
		case <-ch:
		case <-deadline:
		}
	}
	for _, pid := range pids {
		syscall.Kill(-pid, syscall.SIGKILL)
	}
}
