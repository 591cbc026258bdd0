package vfolder_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/vfolder"
	"github.com/slurmgate/slurmgate/vfolder/vfoldertest"
)

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// posix looks up a test user's uid and primary gid.
func posix(t testing.TB, name string) (int, int) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("user %s: %v (the test cluster creates alice, bob and carol: run testdata/cluster/up)", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

// projectGID is the test projects' group.
const projectGID = 2500

// projectFolder creates a project folder on a fresh host; the caller opens it.
func projectFolder(t testing.TB) (*vfolder.Host, string) {
	t.Helper()
	h, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	id := newID()
	if err := h.Create(id, vfolder.Owner{GID: projectGID, Project: true}); err != nil {
		t.Fatal(err)
	}
	return h, id
}

// folder creates alice's folder on a fresh host and opens it as alice.
func folder(t testing.TB) (*vfolder.Host, string, *vfolder.FS) {
	t.Helper()
	h, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	uid, gid := posix(t, "alice")
	id := newID()
	if err := h.Create(id, vfolder.Owner{UID: uid, GID: gid}); err != nil {
		t.Fatal(err)
	}
	f, err := h.Open(id, uid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return h, id, f
}

func owner(t *testing.T, p string) (uid, gid uint32, mode os.FileMode) {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	s := st.Sys().(*syscall.Stat_t)
	return s.Uid, s.Gid, st.Mode()
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{"": ".", "/": "", "a//b/./c/": "a/b/c", ".": ".", "é t.txt": "é t.txt"} {
		got, err := vfolder.CleanPath(in)
		if want == "" {
			if err == nil {
				t.Errorf("CleanPath(%q) = %q; want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, component := range map[string]string{
		"a/../b": "..", "..": "..", "a/\x00b": "\x00b", "x/\nfoo": "\nfoo", "a/\xff": "\ufffd",
	} {
		_, err := vfolder.CleanPath(in)
		var pe *vfolder.PathError
		if !errors.As(err, &pe) || pe.Component != component {
			t.Errorf("CleanPath(%q): %v; want a PathError naming component %q", in, err, component)
		}
	}
}

// TestTraversal tries every way out of a folder the API could be handed;
// none may reach the file planted beside the folder.
func TestTraversal(t *testing.T) {
	h, id, f := folder(t)
	outside := filepath.Join(filepath.Dir(h.Path(id)), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := h.Path(id)
	// Links a job could plant inside the folder.
	os.Symlink("../secret", filepath.Join(dir, "up"))
	os.Symlink(outside, filepath.Join(dir, "abs"))
	os.Symlink("/", filepath.Join(dir, "rootlink"))
	os.Symlink(filepath.Dir(dir), filepath.Join(dir, "parentdir"))
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Symlink("../../secret", filepath.Join(dir, "sub", "deep"))

	paths := []string{
		"../secret", "../../secret", "/etc/passwd", outside, "sub/../../secret", "%2e%2e/secret",
		"up", "abs", "rootlink/etc/passwd", "parentdir/secret", "sub/deep", "a\x00b", "..\\secret",
		strings.Repeat("a", 300), strings.Repeat("a/", 3000),
	}
	escapes := 0
	for _, p := range paths {
		if _, _, err := f.Open(p); err == nil {
			// Only "%2e%2e/secret" and "..\\secret" are legal names: they
			// must then name nothing, not the secret.
			escapes++
			t.Errorf("Open(%q) succeeded", p)
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, vfolder.ErrEscapes) && !isPathError(err) {
			t.Errorf("Open(%q): %v; want not found, an escape or a path error", p, err)
		}
		if err := f.Rename("sub", p); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "sub")); err != nil {
				// moved somewhere: must still be inside
				if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
					escapes++
					t.Errorf("Rename(sub, %q) moved it out of the folder", p)
				}
				f.Rename(p, "sub")
			}
		}
		if _, err := f.Mkdir(p+"/x", true); err == nil {
			if _, err := os.Lstat(filepath.Join(dir, p, "x")); err != nil {
				escapes++
				t.Errorf("Mkdir(%q/x) created outside the folder", p)
			}
		}
		if _, _, err := f.List(p, "", 10); err == nil && p != "%2e%2e/secret" && p != "..\\secret" {
			t.Errorf("List(%q) succeeded", p)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "secret" {
		escapes++
		t.Errorf("the file outside changed: %q", b)
	}
	if entries, _ := os.ReadDir(filepath.Dir(dir)); len(entries) != 2 {
		escapes++
		t.Errorf("the bucket beside the folder holds %d entries; want the folder and the secret", len(entries))
	}
	t.Logf("%d paths tried, %d escapes", len(paths), escapes)
}

func isPathError(err error) bool {
	var pe *vfolder.PathError
	return errors.As(err, &pe)
}

func TestOwnershipAndStagedUpload(t *testing.T) {
	h, id, f := folder(t)
	uid, gid := posix(t, "alice")
	if u, g, m := owner(t, h.Path(id)); u != uint32(uid) || g != uint32(gid) || m.Perm() != 0o700 {
		t.Errorf("folder owned %d:%d %v; want %d:%d 0700", u, g, m, uid, gid)
	}
	if _, err := f.Mkdir("data/raw", true); err != nil {
		t.Fatal(err)
	}
	up := newID()
	if err := h.StageCreate(id, up, uid); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 100000)
	off, err := h.StageAppend(id, up, 0, bytes.NewReader(data[:500000]), 1<<30)
	if err != nil || off != 500000 {
		t.Fatalf("append: %d, %v", off, err)
	}
	if _, err := f.Stat("data/raw/x.bin"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a half-received upload is visible: %v", err)
	}
	if _, err := h.StageAppend(id, up, 0, bytes.NewReader(data), 1<<30); !errors.Is(err, vfolder.ErrOffset) {
		t.Errorf("append at a stale offset: %v; want ErrOffset", err)
	}
	if off, err = h.StageAppend(id, up, off, bytes.NewReader(data[500000:]), 1<<30); err != nil || off != int64(len(data)) {
		t.Fatalf("append: %d, %v", off, err)
	}
	e, err := h.StageCommit(id, up, f, "data/raw/x.bin", false)
	if err != nil || e.Size != int64(len(data)) {
		t.Fatalf("commit: %+v, %v", e, err)
	}
	for _, p := range []string{"data", "data/raw", "data/raw/x.bin"} {
		if u, g, _ := owner(t, filepath.Join(h.Path(id), p)); u != uint32(uid) || g != uint32(gid) {
			t.Errorf("%s owned %d:%d; want alice %d:%d", p, u, g, uid, gid)
		}
	}
	got, _ := os.ReadFile(filepath.Join(h.Path(id), "data/raw/x.bin"))
	if !bytes.Equal(got, data) {
		t.Error("committed file differs from the bytes sent")
	}
	// As alice, through the kernel's own permission checks: she can read
	// what the gateway wrote for her.
	out, err := exec.Command("runuser", "-u", "alice", "--", "cat", filepath.Join(h.Path(id), "data/raw/x.bin")).Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Errorf("alice reading her file: %v", err)
	}
	// bob cannot even list the folder.
	if err := exec.Command("runuser", "-u", "bob", "--", "ls", h.Path(id)).Run(); err == nil {
		t.Error("bob listed alice's 0700 folder")
	}
}

func TestProjectFolderIsSetgid(t *testing.T) {
	h, id := projectFolder(t)
	uid, _ := posix(t, "bob")
	if u, g, m := owner(t, h.Path(id)); u != 0 || g != projectGID || m&os.ModeSetgid == 0 || m.Perm() != 0o770 {
		t.Errorf("project folder %d:%d %v; want 0:%d drwxrws---", u, g, m, projectGID)
	}
	f, err := h.Open(id, uid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e, err := f.Mkdir("shared", false)
	if err != nil || e.UID != uid || e.GID != projectGID {
		t.Errorf("mkdir in a project folder: %+v %v; want bob's uid and the project's gid", e, err)
	}
}

func TestListPaginatesSorted(t *testing.T) {
	h, id, f := folder(t)
	for i := range 25 {
		os.WriteFile(filepath.Join(h.Path(id), fmt.Sprintf("f%02d", 24-i)), []byte("x"), 0o644)
	}
	var names []string
	after := ""
	for {
		es, more, err := f.List(".", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			names = append(names, e.Name)
		}
		if !more {
			break
		}
		after = es[len(es)-1].Name
	}
	if len(names) != 25 || names[0] != "f00" || names[24] != "f24" {
		t.Errorf("listed %v", names)
	}
}

func TestRemoveCopyUsage(t *testing.T) {
	h, id, f := folder(t)
	dir := h.Path(id)
	os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o755)
	for i := range 10 {
		os.WriteFile(filepath.Join(dir, "a/b/c", fmt.Sprint(i)), make([]byte, 1000), 0o644)
	}
	u, err := h.Usage(t.Context(), id)
	if err != nil || u.Bytes != 10000 || u.Files != 10 || u.Dirs != 4 {
		t.Fatalf("usage %+v, %v; want 10000 bytes in 10 files and 4 dirs", u, err)
	}
	n, err := f.Copy("a", "a2")
	if err != nil || n != 10000 {
		t.Fatalf("copy: %d, %v", n, err)
	}
	if _, err := f.Copy("a", "a/b/inside"); err == nil {
		t.Error("copied a directory into itself")
	}
	if _, err := f.Remove("a", false); !errors.Is(err, vfolder.ErrNotEmpty) {
		t.Errorf("non-recursive remove of a full directory: %v", err)
	}
	freed, err := f.Remove("a", true)
	if err != nil || freed != 10000 {
		t.Errorf("remove: %d, %v", freed, err)
	}
	if u, _ := h.Usage(t.Context(), id); u.Bytes != 10000 {
		t.Errorf("usage after copy and remove %+v", u)
	}
	var buf bytes.Buffer
	if err := f.WriteZip(&buf, "a2"); err != nil || buf.Len() < 10000 {
		t.Errorf("zip: %d bytes, %v", buf.Len(), err)
	}
}

// populate makes n empty files in dir quickly.
func populate(tb testing.TB, dir string, n int) {
	tb.Helper()
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("file-%06d.dat", i)))
		if err != nil {
			tb.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkList65k lists the first page, and the whole directory page by
// page, of a directory of 65,000 files (goal: under a second).
func BenchmarkList65k(b *testing.B) {
	h, id, f := folder(b)
	f.Mkdir("big", false)
	populate(b, filepath.Join(h.Path(id), "big"), 65000)
	b.ResetTimer()
	var first, all time.Duration
	for range b.N {
		t0 := time.Now()
		if _, _, err := f.List("big", "", 100); err != nil {
			b.Fatal(err)
		}
		first += time.Since(t0)
		t0 = time.Now()
		es, _, err := f.List("big", "", 65000)
		if err != nil || len(es) != 65000 {
			b.Fatal(len(es), err)
		}
		all += time.Since(t0)
	}
	b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "ms/first-page")
	b.ReportMetric(float64(all.Milliseconds())/float64(b.N), "ms/all-65000")
	b.Logf("65,000 files: first page of 100 in %v, all with stat in %v (goal < 1s)", first/time.Duration(b.N), all/time.Duration(b.N))
}

// BenchmarkScan compares the parallel usage scan with du on the same tree.
func BenchmarkScan(b *testing.B) {
	h, id, _ := folder(b)
	for d := range 50 {
		p := filepath.Join(h.Path(id), fmt.Sprint(d))
		os.Mkdir(p, 0o755)
		populate(b, p, 400)
	}
	b.ResetTimer()
	var ours, du time.Duration
	for range b.N {
		t0 := time.Now()
		if _, err := h.Usage(b.Context(), id); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(t0)
		t0 = time.Now()
		exec.Command("du", "-sb", h.Path(id)).Run()
		du += time.Since(t0)
	}
	b.ReportMetric(float64(du)/float64(ours), "x-du-speed")
	b.Logf("scan of 20,000 files: %v; du -sb %v; ratio %.2f", ours/time.Duration(b.N), du/time.Duration(b.N), float64(du)/float64(ours))
	_ = io.Discard
}

// What the gateway creates in a folder gives "other" nothing: after a
// revoke, a job of the former grantee still running inside the tree, or a
// hard link it made, must not keep access through other bits.
func TestCreatedFilesGiveOthersNothing(t *testing.T) {
	h, id, f := folder(t)
	uid, _ := posix(t, "alice")
	if _, err := f.Mkdir("d/e", true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Copy("d", "d2"); err != nil {
		t.Fatal(err)
	}
	up := newID()
	if err := h.StageCreate(id, up, uid); err != nil {
		t.Fatal(err)
	}
	if _, err := h.StageCommit(id, up, f, "d/file", false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Copy("d/file", "copy"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d", "d/e", "d2", "d2/e", "d/file", "copy"} {
		if _, _, m := owner(t, filepath.Join(h.Path(id), p)); m.Perm()&0o007 != 0 || m.Perm()&0o070>>3 != m.Perm()&0o700>>6 {
			t.Errorf("%s is %v; want no bits for others and group bits as the owner's", p, m)
		}
	}
}

// A remove that fails frees nothing, and says so: the caller lowers the
// folder's recorded usage by what Remove returns.
func TestFailedRemoveFreesNothing(t *testing.T) {
	h, id, f := folder(t)
	p := filepath.Join(h.Path(id), "kept")
	if err := os.WriteFile(p, make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	// Immutable: even root's unlink fails (EPERM).
	if out, err := exec.Command("chattr", "+i", p).CombinedOutput(); err != nil {
		t.Fatalf("chattr +i (e2fsprogs; the test host root must be on ext4 or XFS): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", p).Run() })
	if n, err := f.Remove("kept", false); err == nil || n != 0 {
		t.Errorf("removing an immutable file: %d bytes freed, %v; want 0 and an error", n, err)
	}
}
