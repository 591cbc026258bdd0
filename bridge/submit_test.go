package bridge

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The job output directory is the user's, 0700, whatever it was before; one
// already so is left untouched (its inode not even rewritten).
func TestEnsureUserDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test gives a directory away, as the gateway does: run it as root (the test cluster's machine is)")
	}
	dir := filepath.Join(t.TempDir(), "alice")
	check := func(when string) syscall.Stat_t {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 2001 || st.Mode&0o7777 != 0o700 {
			t.Fatalf("%s: owner %d mode %o, want 2001 and 0700", when, st.Uid, st.Mode&0o7777)
		}
		return st
	}
	if err := ensureUserDir(dir, 2001); err != nil {
		t.Fatal(err)
	}
	first := check("made")
	if err := ensureUserDir(dir, 2001); err != nil {
		t.Fatal(err)
	}
	if again := check("again"); again.Ctim != first.Ctim {
		t.Error("a directory already right was changed again")
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, -1); err != nil {
		t.Fatal(err)
	}
	if err := ensureUserDir(dir, 2001); err != nil {
		t.Fatal(err)
	}
	check("repaired")
}
