package apptainer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// markerVar is set in the environment of every process a runtime without a
// long-lived container (none, charliecloud) starts for a session. Stop finds
// what is left of the session by it: the commands Instance.Command returns
// are started by the caller, possibly under a PTY in its own session, and
// their children may have daemonised, so neither a pid list nor a process
// group would catch them all. Reading /proc/PID/environ needs nothing but
// the uid the agent already runs as.
const markerVar = "SLURMGATE_INSTANCE"

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
var stopGrace = 5 * time.Second

// marked lists the pids, other than this process, whose initial environment
// holds marker ("SLURMGATE_INSTANCE=<id>").
func marked(marker string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	want := []byte(marker)
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue // gone, or another user's: not ours to stop
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// stopMarked sends SIGTERM to every process carrying marker, waits until they
// are gone or the grace period (or ctx) ends, then SIGKILLs the rest.
func stopMarked(ctx context.Context, marker string) error {
	pids := marked(marker)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(stopGrace)
	for len(pids) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
		pids = marked(marker)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
	}
	return nil
}
