package vfolder_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slurmgate/slurmgate/vfolder"
)

// TestMkdirSwappedForSymlink plays a member's job that, the instant the
// gateway has made a directory, replaces it with `ln -s . p`: the gateway
// must not give the folder's top (root's, setgid, the project's group) to
// the member, nor chmod it, nor anything else the link leads to.
func TestMkdirSwappedForSymlink(t *testing.T) {
	h, id := projectFolder(t)
	uid, _ := posix(t, "bob")
	f, err := h.Open(id, uid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	top := h.Path(id)
	for _, target := range []string{".", "..", "elsewhere"} {
		os.Mkdir(filepath.Join(top, "elsewhere"), 0o700)
		vfolder.SetAfterMkdir(func(p string) {
			full := filepath.Join(top, p)
			if err := os.Remove(full); err != nil {
				t.Error(err)
			}
			if err := os.Symlink(target, full); err != nil {
				t.Error(err)
			}
		})
		_, err := f.Mkdir("new", false)
		vfolder.SetAfterMkdir(nil)
		if err == nil {
			t.Errorf("mkdir of a directory swapped for a link to %s succeeded", target)
		}
		if u, g, m := owner(t, top); u != 0 || g != projectGID || m.Perm() != 0o770 || m&os.ModeSetgid == 0 {
			t.Errorf("after a swap for a link to %s, the folder's top is %d:%d %v; want 0:%d drwxrws---", target, u, g, m, projectGID)
		}
		if u, _, m := owner(t, filepath.Join(top, "elsewhere")); u != 0 || m.Perm() != 0o700 {
			t.Errorf("after a swap for a link to %s, a directory beside it is %d %v; want root's 0700", target, u, m)
		}
		if u, _, _ := owner(t, filepath.Dir(top)); u != 0 {
			t.Errorf("after a swap for a link to %s, the bucket is uid %d", target, u)
		}
		os.Remove(filepath.Join(top, "new"))
	}
	// A swap for another directory (the job's own) is refused too: only
	// the directory the gateway just made is given away.
	vfolder.SetAfterMkdir(func(p string) {
		full := filepath.Join(top, p)
		os.Remove(full)
		os.Mkdir(full, 0o755)
		os.Mkdir(filepath.Join(full, "sub"), 0o755)
	})
	_, err = f.Mkdir("other", false)
	vfolder.SetAfterMkdir(nil)
	if err == nil || errors.Is(err, os.ErrExist) {
		t.Errorf("mkdir of a directory swapped for another: %v; want it refused", err)
	}
}

// TestFIFOIsRefusedNotWaitedOn: opening a FIFO for reading waits for a
// writer, forever if a job made it to pin the gateway's threads. Reads
// through the gateway refuse it at once instead.
func TestFIFOIsRefusedNotWaitedOn(t *testing.T) {
	h, id, f := folder(t)
	if err := unix.Mkfifo(filepath.Join(h.Path(id), "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func() error{
		"Open": func() error {
			file, _, err := f.Open("pipe")
			if err == nil {
				file.Close()
			}
			return err
		},
		"List": func() error { _, _, err := f.List("pipe", "", 10); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- op() }()
		select {
		case err := <-done:
			if !errors.Is(err, vfolder.ErrNotRegular) && !errors.Is(err, vfolder.ErrNotDir) {
				t.Errorf("%s of a FIFO: %v; want ErrNotRegular or ErrNotDir", name, err)
			}
		case <-time.After(5 * time.Second):
			// Unblock the open so the test can end.
			w, _ := os.OpenFile(filepath.Join(h.Path(id), "pipe"), os.O_WRONLY, 0)
			w.Close()
			t.Errorf("%s of a FIFO still waits after 5 s", name)
		}
	}
}
