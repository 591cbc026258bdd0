package slurmctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// useLockDir points the accounting write lock at a fresh private directory
// for the test.
func useLockDir(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "lock")
	old := accountingLockDir
	accountingLockDir = func() (string, error) { return dir, ensurePrivateDir(dir, os.Geteuid()) }
	t.Cleanup(func() { accountingLockDir = old })
	return dir
}

func TestAccountingWriteWaitsForLockHolderAndGivesUpWithContext(t *testing.T) {
	dir := useLockDir(t)
	unlock, err := LockAccountingWrites(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	unlock() // creates the directory and the file
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("lock directory %s: %v, %v; want mode 0700", dir, fi.Mode(), err)
	}

	// Another process holds the file lock (another open file description
	// conflicts like another process would).
	other, err := os.OpenFile(filepath.Join(dir, "sacctmgr.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := syscall.Flock(int(other.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	// A write waits, and returns when its context ends, without running
	// sacctmgr (the zero Client has no runner: reaching it would panic).
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = (&Client{}).sacctmgr(ctx, "create account", "-i", "add", "account", "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write while another process holds the lock: %v; want it to give up with the context", err)
	}

	// The process's own semaphore was released: once the other holder lets
	// go, the next write gets its turn.
	other.Close()
	unlock, err = LockAccountingWrites(context.Background())
	if err != nil {
		t.Fatalf("lock after the holder let go: %v", err)
	}
	unlock()
}

func TestAccountingWriteLockFollowsNoSymlink(t *testing.T) {
	dir := useLockDir(t)
	if err := ensurePrivateDir(dir, os.Geteuid()); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "sacctmgr.lock")); err != nil {
		t.Fatal(err)
	}
	_, err := LockAccountingWrites(context.Background())
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("lock with a symlink in place of the file: %v; want a refusal naming the symlink", err)
	}
	fi, err := os.Stat(target)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("symlink target: %v, %v; want it untouched (0644)", fi.Mode(), err)
	}
	// The failed attempt left the semaphore free.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	select {
	case sacctmgrWrites <- struct{}{}:
		<-sacctmgrWrites
	case <-ctx.Done():
		t.Fatal("a failed lock attempt kept the in-process semaphore")
	}
}

func TestAccountingWriteLockDirMustBePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lock")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := ensurePrivateDir(dir, os.Geteuid()); err != nil {
		t.Errorf("own 0700 directory refused: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := ensurePrivateDir(dir, os.Geteuid()); err == nil {
		t.Error("a world-writable directory was accepted")
	}
	if err := ensurePrivateDir(dir+"x", os.Geteuid()+1); err == nil {
		t.Error("a directory owned by another uid was accepted")
	}
	link := filepath.Join(t.TempDir(), "link")
	os.Chmod(dir, 0o700)
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if err := ensurePrivateDir(link, os.Geteuid()); err == nil {
		t.Error("a symlink to a directory was accepted")
	}
}
