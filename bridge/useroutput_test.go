package bridge

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The gateway reads and writes as root in a directory each user controls
// (the job output directory): a user must not be able to point it at a
// file of root's.

func TestJobOutputIsReadOnlyFromTheOwnersRegularFile(t *testing.T) {
	dir := t.TempDir()
	const owner = 2001
	secret := filepath.Join(dir, "root-only")
	if err := os.WriteFile(secret, []byte("root's secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "s.out")
	os.WriteFile(good, []byte("one\ntwo\n"), 0o644)
	os.Chown(good, owner, -1)
	link := filepath.Join(dir, "link.out")
	os.Symlink(secret, link)
	hard := filepath.Join(dir, "hard.out")
	if err := os.Link(secret, hard); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.out")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(fifo, owner, -1)

	var buf bytes.Buffer
	if n, err := copyFrom(good, owner, 0, &buf); err != nil || n != 8 || buf.String() != "one\ntwo\n" {
		t.Fatalf("the owner's file: %d %q %v", n, buf.String(), err)
	}
	if off := tailOffset(good, owner, 1); off != 4 {
		t.Fatalf("tail 1 of the owner's file starts at %d, want 4", off)
	}
	if n, err := copyFrom(filepath.Join(dir, "not-yet.out"), owner, 0, &buf); err != nil || n != 0 {
		t.Fatalf("a file the job has not written yet: %d %v", n, err)
	}
	for name, path := range map[string]string{"symbolic link": link, "hard link to root's file": hard, "FIFO": fifo} {
		buf.Reset()
		done := make(chan error, 1)
		go func() {
			_, err := copyFrom(path, owner, 0, &buf)
			done <- err
		}()
		select {
		case err := <-done:
			if KindOf(err) != KindForbidden || buf.Len() > 0 {
				t.Errorf("%s: read %q, err %v; want nothing and a forbidden error", name, buf.String(), err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: reading hangs", name)
		}
		if off := tailOffset(path, owner, 1); off != 0 {
			t.Errorf("%s: tail offset %d", name, off)
		}
	}
}

func TestUserFileNeverFollowsWhatTheUserPutThere(t *testing.T) {
	dir := t.TempDir()
	const owner = 2001
	victim := filepath.Join(dir, "passwd")
	if err := os.WriteFile(victim, []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.agent.json")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if err := writeUserFile(path, owner, map[string]string{"secret": "s3"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(victim); string(data) != "root:x:0:0\n" {
		t.Fatalf("the link's target was written: %q", data)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(victim, &st); err != nil || st.Uid != 0 {
		t.Fatalf("the link's target was given away: uid %d %v", st.Uid, err)
	}
	if err := syscall.Lstat(path, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFREG || st.Uid != owner || st.Mode&0o777 != 0o600 {
		t.Fatalf("the configuration is not a fresh 0600 file of uid %d: mode %o uid %d %v", owner, st.Mode, st.Uid, err)
	}
	// Written again (a resubmission): still a fresh file.
	if err := writeUserFile(path, owner, map[string]string{"secret": "s4"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); !bytes.Contains(data, []byte("s4")) {
		t.Fatalf("rewritten configuration: %q", data)
	}
}
