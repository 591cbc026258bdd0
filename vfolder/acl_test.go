package vfolder_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/slurmgate/slurmgate/vfolder"
	"github.com/slurmgate/slurmgate/vfolder/vfoldertest"
)

// as runs a shell script as a test user, the way their Slurm job would
// touch the folder, and returns its combined output and whether it
// succeeded.
func as(t *testing.T, name, script string) (string, bool) {
	t.Helper()
	uid, gid := posix(t, name)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %q as %s: %v", script, name, err)
	}
	return string(out), err == nil
}

func mustAs(t *testing.T, name, script string) string {
	t.Helper()
	out, ok := as(t, name, script)
	if !ok {
		t.Fatalf("as %s, %q failed: %s", name, script, out)
	}
	return out
}

func mustNotAs(t *testing.T, name, script string) {
	t.Helper()
	if out, ok := as(t, name, script); ok {
		t.Fatalf("as %s, %q succeeded (%q); want it refused", name, script, out)
	}
}

func hasACL(t *testing.T, p, attr string) bool {
	t.Helper()
	_, err := unix.Lgetxattr(p, attr, nil)
	if errors.Is(err, unix.ENODATA) {
		return false
	}
	if err != nil {
		t.Fatalf("reading %s of %s: %v", attr, p, err)
	}
	return true
}

// aliceFiles fills alice's folder as her own jobs would have: files 0644,
// a subdirectory 0755, an executable, all owned by her.
func aliceFiles(t *testing.T, dir string) {
	t.Helper()
	mustAs(t, "alice", `umask 022; cd `+dir+` && echo notes > notes.txt && mkdir sub && echo deep > sub/deep.txt &&
		printf '#!/bin/sh\necho ran\n' > run.sh && chmod 755 run.sh`)
}

func TestShareReachesTheDisk(t *testing.T) {
	t.Parallel()
	h, id, _ := folder(t)
	dir := h.Path(id)
	bob, _ := posix(t, "bob")
	aliceFiles(t, dir)

	mustNotAs(t, "bob", `ls `+dir)

	// Read-only: bob lists, reads and runs, and writes nothing.
	if err := h.Grant(t.Context(), id, bob, false); err != nil {
		t.Fatal(err)
	}
	if out := mustAs(t, "bob", `ls `+dir+` && cat `+dir+`/notes.txt `+dir+`/sub/deep.txt && `+dir+`/run.sh`); out != "notes.txt\nrun.sh\nsub\nnotes\ndeep\nran\n" {
		t.Errorf("bob with ro: %q", out)
	}
	mustNotAs(t, "bob", `echo x > `+dir+`/bob.txt`)
	mustNotAs(t, "bob", `echo x >> `+dir+`/notes.txt`)
	mustNotAs(t, "bob", `echo x > `+dir+`/sub/bob.txt`)
	mustNotAs(t, "bob", `rm `+dir+`/notes.txt`)

	// The default ACL: what alice writes later is bob's to read.
	mustAs(t, "alice", `umask 077; echo later > `+dir+`/later.txt && mkdir `+dir+`/new && echo inner > `+dir+`/new/inner.txt`)
	if out := mustAs(t, "bob", `cat `+dir+`/later.txt `+dir+`/new/inner.txt`); out != "later\ninner\n" {
		t.Errorf("bob reading alice's later files: %q", out)
	}
	mustNotAs(t, "bob", `echo x > `+dir+`/new/bob.txt`)

	// Read-write, in place of read-only: bob writes, alice reads and
	// removes what bob wrote, also inside a directory bob made.
	if err := h.Grant(t.Context(), id, bob, true); err != nil {
		t.Fatal(err)
	}
	mustAs(t, "bob", `umask 077; cd `+dir+` && echo from-bob > bob.txt && echo more >> notes.txt && echo sub > sub/bob.txt &&
		mkdir bobdir && echo x > bobdir/x && echo y > new/bob.txt`)
	if out := mustAs(t, "alice", `cat `+dir+`/bob.txt `+dir+`/sub/bob.txt`); out != "from-bob\nsub\n" {
		t.Errorf("alice reading bob's files: %q", out)
	}
	mustAs(t, "alice", `rm -r `+dir+`/bob.txt `+dir+`/bobdir `+dir+`/new/bob.txt`)
	// An executable bit never appears on files that had none.
	mustNotAs(t, "bob", `test -x `+dir+`/notes.txt`)

	// Revoke: bob cannot even list, and alice's files are as before.
	if err := h.Revoke(t.Context(), id, bob); err != nil {
		t.Fatal(err)
	}
	mustNotAs(t, "bob", `ls `+dir)
	mustNotAs(t, "bob", `cat `+dir+`/notes.txt`)
	for _, p := range []string{"notes.txt", "sub/deep.txt", "run.sh"} {
		if hasACL(t, filepath.Join(dir, p), "system.posix_acl_access") {
			t.Errorf("%s keeps an access ACL after the only share was revoked", p)
		}
	}
	for _, p := range []string{".", "sub", "new"} {
		if hasACL(t, filepath.Join(dir, p), "system.posix_acl_default") {
			t.Errorf("%s keeps a default ACL after the only share was revoked", p)
		}
	}
	if _, _, mode := owner(t, filepath.Join(dir, "notes.txt")); mode.Perm() != 0o644 {
		t.Errorf("notes.txt is %v after revoke; want its 0644 back", mode.Perm())
	}
	if _, _, mode := owner(t, dir); mode.Perm() != 0o700 {
		t.Errorf("the folder's top is %v after revoke; want 0700", mode.Perm())
	}
	// Revoking again is a no-op.
	if err := h.Revoke(t.Context(), id, bob); err != nil {
		t.Fatal(err)
	}
}

func TestShareKeepsOtherGrantees(t *testing.T) {
	t.Parallel()
	h, id, _ := folder(t)
	dir := h.Path(id)
	bob, _ := posix(t, "bob")
	carol, _ := posix(t, "carol")
	aliceFiles(t, dir)
	for _, uid := range []int{bob, carol} {
		if err := h.Grant(t.Context(), id, uid, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Revoke(t.Context(), id, bob); err != nil {
		t.Fatal(err)
	}
	mustNotAs(t, "bob", `ls `+dir)
	mustAs(t, "carol", `cat `+dir+`/sub/deep.txt`)
	mustAs(t, "alice", `echo x > `+dir+`/after.txt`)
	mustAs(t, "carol", `cat `+dir+`/after.txt`)
}

func TestShareDoesNotFollowSymlinks(t *testing.T) {
	t.Parallel()
	h, id, _ := folder(t)
	dir := h.Path(id)
	bob, _ := posix(t, "bob")
	// Outside the folder: a directory and a file only root may read.
	outside := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(dir))), "outside")
	if err := os.Mkdir(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// alice's job plants links pointing out.
	mustAs(t, "alice", `cd `+dir+` && ln -s `+outside+` dirlink && ln -s `+secret+` filelink && mkdir sub && ln -s ../../.. sub/up`)

	if err := h.Grant(t.Context(), id, bob, true); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{outside, secret, filepath.Dir(dir)} {
		for _, attr := range []string{"system.posix_acl_access", "system.posix_acl_default"} {
			if hasACL(t, p, attr) {
				t.Errorf("%s got %s through a symbolic link", p, attr)
			}
		}
	}
	if st, _ := os.Stat(secret); st.Mode().Perm() != 0o600 {
		t.Errorf("secret is %v; want 0600 untouched", st.Mode().Perm())
	}
	mustNotAs(t, "bob", `cat `+dir+`/filelink`)
	mustAs(t, "bob", `ls `+dir+`/sub`)
}

// Project folders are reached through the project's group; shares refuse
// them and leave the setgid 2770 top alone.
func TestShareRefusesProjectFolder(t *testing.T) {
	t.Parallel()
	h, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	const projectGID = 4242
	id := newID()
	if err := h.Create(id, vfolder.Owner{GID: projectGID, Project: true}); err != nil {
		t.Fatal(err)
	}
	bob, _ := posix(t, "bob")
	if err := h.Grant(t.Context(), id, bob, true); err == nil || !strings.Contains(err.Error(), "project") {
		t.Errorf("Grant on a project folder: %v; want refused, naming the project's group", err)
	}
	_, gid, mode := owner(t, h.Path(id))
	if gid != projectGID || mode.Perm() != 0o770 || mode&os.ModeSetgid == 0 {
		t.Errorf("project folder is gid %d mode %v; want %d, setgid 2770", gid, mode, projectGID)
	}
	if hasACL(t, h.Path(id), "system.posix_acl_access") {
		t.Error("project folder got an ACL")
	}
	// A member (the project's group as a supplementary group) writes, and
	// the file gets the project's group.
	cmd := exec.Command("/bin/sh", "-c", `echo x > `+h.Path(id)+`/m.txt`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(bob), Gid: uint32(bob), Groups: []uint32{projectGID}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("member writing: %v %s", err, out)
	}
	if _, gid, _ := owner(t, filepath.Join(h.Path(id), "m.txt")); gid != projectGID {
		t.Errorf("member's file has gid %d; want the project's %d", gid, projectGID)
	}
}

func TestShareRefusesOwnerAndRoot(t *testing.T) {
	t.Parallel()
	h, id, _ := folder(t)
	alice, _ := posix(t, "alice")
	for _, uid := range []int{alice, 0} {
		if err := h.Grant(t.Context(), id, uid, false); err == nil {
			t.Errorf("Grant to uid %d succeeded; want refused", uid)
		}
	}
}

// asMember runs a script as a test user with the project's group as a
// supplementary group, as a member's job runs.
func asMember(t *testing.T, name string, gid int, script string) bool {
	t.Helper()
	uid, pgid := posix(t, name)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(pgid), Groups: []uint32{uint32(gid)}}}
	return cmd.Run() == nil
}

// A project folder whose members have ro is read-only to their jobs on
// disk too: they read what the gateway wrote, and write nothing.
func TestReadOnlyProjectFolderOnDisk(t *testing.T) {
	h, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := posix(t, "alice")
	for _, ro := range []bool{true, false} {
		id := newID()
		if err := h.Create(id, vfolder.Owner{GID: projectGID, Project: true, ReadOnly: ro}); err != nil {
			t.Fatal(err)
		}
		f, err := h.Open(id, admin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Mkdir("d", false); err != nil {
			t.Fatal(err)
		}
		up := newID()
		if err := h.StageCreate(id, up, admin); err != nil {
			t.Fatal(err)
		}
		if _, err := h.StageCommit(id, up, f, "d/f", false); err != nil {
			t.Fatal(err)
		}
		top := h.Path(id)
		if !asMember(t, "bob", projectGID, `ls `+top+`/d && cat `+top+`/d/f`) {
			t.Errorf("ro=%v: member bob cannot read the project folder", ro)
		}
		for _, w := range []string{`touch ` + top + `/x`, `touch ` + top + `/d/x`, `echo x >> ` + top + `/d/f`, `rm ` + top + `/d/f`} {
			if ok := asMember(t, "bob", projectGID, w); ok == ro {
				t.Errorf("ro=%v: member bob's %q succeeded=%v", ro, w, ok)
			}
		}
	}
}
