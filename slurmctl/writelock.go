package slurmctl

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Accounting writes are serialised: slurmdbd 22.05 deadlocks in MariaDB and
// exits under concurrent sacctmgr writes (measured on the test cluster), and
// each write commits on its own anyway. A semaphore covers this process; an
// advisory lock file covers every process of this uid on the host (gateway
// replicas, test binaries run side by side).
//
// The lock file lives in a directory only this uid can write, so no other
// user can hold the lock (freezing account sync) or plant a symlink in its
// place; writers running as different uids do not serialise with each other.
var sacctmgrWrites = make(chan struct{}, 1)

// accountingLockDir is where the lock file lives; tests point it elsewhere.
var accountingLockDir = defaultAccountingLockDir

// lockPoll bounds how often a waiting writer retries the lock file.
const lockPoll = 50 * time.Millisecond

// LockAccountingWrites waits until no other accounting write of this
// process or of this uid's other processes on the host runs, and returns
// the function that ends this one's turn. It gives up when ctx ends. Take it
// around any sacctmgr write made outside this package (tests do).
func LockAccountingWrites(ctx context.Context) (unlock func(), err error) {
	select {
	case sacctmgrWrites <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for this process's other accounting writes: %w", ctx.Err())
	}
	release := func() { <-sacctmgrWrites }
	f, err := lockFile(ctx)
	if err != nil {
		release()
		return nil, err
	}
	return func() {
		f.Close() // releases the flock
		release()
	}, nil
}

// lockFile opens and flocks the host-wide lock file, polling so that the
// wait ends with ctx.
func lockFile(ctx context.Context) (*os.File, error) {
	dir, err := accountingLockDir()
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "sacctmgr.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("accounting write lock %s is a symbolic link: remove it", path)
	}
	if err != nil {
		return nil, fmt.Errorf("accounting write lock: %w", err)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("accounting write lock %s: %w", path, err)
		}
		t.Reset(lockPoll)
		select {
		case <-t.C:
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for another process's accounting write (lock %s): %w", path, ctx.Err())
		}
	}
}

// defaultAccountingLockDir is /run/slurmgate for root (only root can create
// names in /run) and $TMPDIR/slurmgate-UID for others, created 0700 and
// checked to be a directory of ours that nobody else can write: a name in
// a shared /tmp may have been made by someone else first.
func defaultAccountingLockDir() (string, error) {
	uid := os.Geteuid()
	dir := filepath.Join(os.TempDir(), "slurmgate-"+strconv.Itoa(uid))
	if uid == 0 {
		if fi, err := os.Stat("/run"); err == nil && fi.IsDir() {
			dir = "/run/slurmgate"
		}
	}
	return dir, ensurePrivateDir(dir, uid)
}

// ensurePrivateDir creates dir 0700 if missing and checks, without
// following a symlink, that it is a directory owned by uid with mode 0700.
func ensurePrivateDir(dir string, uid int) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("accounting write lock directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("accounting write lock directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != uid || fi.Mode().Perm() != 0o700 {
		return fmt.Errorf("accounting write lock directory %s must be a directory owned by uid %d with mode 0700 (it is %v): remove it, and it is made again", dir, uid, fi.Mode())
	}
	return nil
}
