package bridge

// vfolder tests against real PostgreSQL and a real storage directory; no
// Slurm is involved.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/vfolder"
	"github.com/slurmgate/slurmgate/vfolder/vfoldertest"
)

type vworld struct {
	b                 *Bridge
	host              *vfolder.Host
	admin             Actor
	alice, bob, carol Actor
	project           Project
}

func newVWorld(t *testing.T) *vworld {
	t.Helper()
	host, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	b := New(bridgetest.Pool(t), nil, Config{VFolderHosts: []*vfolder.Host{host}}, nil)
	ctx := t.Context()
	w := &vworld{b: b, host: host, admin: System}
	if _, err := b.CreateDomain(ctx, System, "lab", ""); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, uid int) Actor {
		u, err := b.CreateUser(ctx, System, NewUser{Username: name, UID: uid, Domain: "lab"})
		if err != nil {
			t.Fatal(err)
		}
		return u.Actor()
	}
	w.alice, w.bob, w.carol = mk("alice", 2001), mk("bob", 2002), mk("carol", 2003)
	if w.project, err = b.CreateProject(ctx, System, "lab", "vision", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetMembership(ctx, System, w.project.ID, w.alice.UserID, "project-admin"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetMembership(ctx, System, w.project.ID, w.bob.UserID, "member"); err != nil {
		t.Fatal(err)
	}
	return w
}

func wantVKind(t *testing.T, err error, k Kind, what string) {
	t.Helper()
	if KindOf(err) != k {
		t.Errorf("%s: %v (kind %d); want kind %d", what, err, KindOf(err), k)
	}
}

// upload sends data in one piece.
func (w *vworld) upload(t *testing.T, a Actor, id, p string, data []byte) error {
	t.Helper()
	up, err := w.b.CreateUpload(t.Context(), a, id, p, int64(len(data)))
	if err != nil {
		return err
	}
	_, err = w.b.AppendUpload(t.Context(), up.ID, up.Token, 0, bytes.NewReader(data))
	return err
}

func TestVFolderOwnershipAndIsolation(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "data", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Owner != "alice" || v.Access != AccessOwner || v.Status != "ready" {
		t.Errorf("created %+v", v)
	}
	if _, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "data", Host: "local"}); KindOf(err) != KindConflict {
		t.Errorf("second folder named data: %v; want a conflict", err)
	}
	if _, err := w.b.CreateVFolder(ctx, w.bob, NewVFolder{Name: "data", Host: "local"}); err != nil {
		t.Errorf("bob's own folder named data: %v", err)
	}
	if _, err := w.b.MkdirVFolder(ctx, w.alice, v.ID, "in", false); err != nil {
		t.Fatal(err)
	}
	if err := w.upload(t, w.alice, v.ID, "in/hello.txt", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(w.host.Path(diskID(v.ID)), "in", "hello.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid != 2001 {
		t.Errorf("alice's upload is owned by uid %d; want 2001", uid)
	}
	_, err = w.b.VFolder(ctx, w.bob, v.ID)
	wantVKind(t, err, KindNotFound, "bob getting alice's folder")
	_, _, err = w.b.ListVFolderFiles(ctx, w.bob, v.ID, ".", "", 10)
	wantVKind(t, err, KindNotFound, "bob listing alice's folder")
	vs, _ := w.b.VFolders(ctx, w.bob, VFolderFilter{})
	for _, x := range vs {
		if x.ID == v.ID {
			t.Error("bob's list shows alice's folder")
		}
	}
	if got, _ := w.b.VFolder(ctx, w.alice, v.ID); got.UsageBytes != 5 {
		t.Errorf("usage after a 5-byte upload: %d", got.UsageBytes)
	}
	err = w.b.DeleteVFolder(ctx, w.alice, v.ID, "wrong")
	wantVKind(t, err, KindInvalid, "delete without confirmation")
	if err := w.b.DeleteVFolder(ctx, w.alice, v.ID, "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.host.Path(diskID(v.ID))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted folder's directory: %v", err)
	}
}

func TestVFolderShareReadOnlyRefusesWrites(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "shared", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "bob", "ro"); err != nil {
		t.Fatal(err)
	}
	_, err = w.b.VFolder(ctx, w.bob, v.ID)
	wantVKind(t, err, KindNotFound, "bob before accepting")
	inv, _ := w.b.VFolderInvitations(ctx, w.bob)
	if len(inv) != 1 || inv[0].VFolderID != v.ID || inv[0].Owner != "alice" {
		t.Fatalf("bob's invitations %+v", inv)
	}
	if _, err := w.b.AnswerVFolderInvitation(ctx, w.bob, v.ID, true); err != nil {
		t.Fatal(err)
	}
	got, err := w.b.VFolder(ctx, w.bob, v.ID)
	if err != nil || got.Access != AccessRO {
		t.Fatalf("bob after accepting: %+v %v", got, err)
	}
	wantVKind(t, w.upload(t, w.bob, v.ID, "x", []byte("x")), KindForbidden, "bob uploading to a ro share")
	_, err = w.b.MkdirVFolder(ctx, w.bob, v.ID, "d", false)
	wantVKind(t, err, KindForbidden, "bob mkdir in a ro share")
	wantVKind(t, w.b.DeleteVFolderFile(ctx, w.bob, v.ID, "x", false), KindForbidden, "bob deleting in a ro share")
	_, err = w.b.ShareVFolder(ctx, w.bob, v.ID, "carol", "rw")
	wantVKind(t, err, KindForbidden, "bob re-sharing")
	shares, err := w.b.VFolderShares(ctx, w.alice, v.ID)
	if err != nil || len(shares) != 1 || shares[0].Username != "bob" || shares[0].State != "accepted" {
		t.Errorf("alice sees shares %+v %v", shares, err)
	}
	// Upgrading to rw lets bob write, as himself.
	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "bob", "rw"); err != nil {
		t.Fatal(err)
	}
	if err := w.upload(t, w.bob, v.ID, "from-bob", []byte("b")); err != nil {
		t.Fatal(err)
	}
	if e, _ := w.b.StatVFolderFile(ctx, w.alice, v.ID, "from-bob"); e.UID != 2002 {
		t.Errorf("bob's file in alice's folder has uid %d; want bob's 2002", e.UID)
	}
	if err := w.b.RevokeVFolderShare(ctx, w.alice, v.ID, w.bob.UserID); err != nil {
		t.Fatal(err)
	}
	_, err = w.b.VFolder(ctx, w.bob, v.ID)
	wantVKind(t, err, KindNotFound, "bob after revocation")
	// Declining deletes the invitation.
	w.b.ShareVFolder(ctx, w.alice, v.ID, "carol", "rw")
	if _, err := w.b.AnswerVFolderInvitation(ctx, w.carol, v.ID, false); err != nil {
		t.Fatal(err)
	}
	if shares, _ := w.b.VFolderShares(ctx, w.alice, v.ID); len(shares) != 0 {
		t.Errorf("shares after decline: %+v", shares)
	}
}

func TestVFolderProjectFolderNeedsGroup(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	_, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "team", Host: "local", Project: "lab/vision"})
	wantVKind(t, err, KindInvalid, "project folder without a POSIX group")
	if _, err := w.b.db.Exec(ctx, `UPDATE projects SET gid = 2600 WHERE id = $1`, w.project.ID); err != nil {
		t.Fatal(err)
	}
	_, err = w.b.CreateVFolder(ctx, w.bob, NewVFolder{Name: "team", Host: "local", Project: "lab/vision"})
	wantVKind(t, err, KindForbidden, "a plain member creating a project folder")
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "team", Host: "local", Project: "lab/vision", Permission: "ro"})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(w.host.Path(diskID(v.ID)))
	// ro for members: their jobs (through the group) cannot write either.
	if s := st.Sys().(*syscall.Stat_t); s.Gid != 2600 || st.Mode()&os.ModeSetgid == 0 || st.Mode().Perm() != 0o750 {
		t.Errorf("ro project folder gid %d mode %v; want 2600 and drwxr-s---", s.Gid, st.Mode())
	}
	got, err := w.b.VFolder(ctx, w.bob, v.ID)
	if err != nil || got.Access != AccessRO {
		t.Errorf("member bob: %+v %v; want ro access", got, err)
	}
	_, err = w.b.VFolder(ctx, w.carol, v.ID)
	wantVKind(t, err, KindNotFound, "non-member carol")
}

func TestVFolderPolicyLimits(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	one, hosts := 1, []string{"elsewhere"}
	if _, err := w.b.SetPolicy(ctx, System, Policy{Scope: "user", TargetID: w.alice.UserID, MaxVfolders: &one}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "a", Host: "local"}); err != nil {
		t.Fatal(err)
	}
	_, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "b", Host: "local"})
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindQuota || e.Quota == nil || e.Quota.Limit != "max_vfolders" {
		t.Errorf("second folder over max_vfolders 1: %v", err)
	}
	if _, err := w.b.SetPolicy(ctx, System, Policy{Scope: "domain", TargetID: w.alice.DomainID, AllowedVfolderHosts: hosts}); err != nil {
		t.Fatal(err)
	}
	_, err = w.b.CreateVFolder(ctx, w.bob, NewVFolder{Name: "b", Host: "local"})
	wantVKind(t, err, KindQuota, "host not in the domain's allowed hosts")
	_, err = w.b.CreateVFolder(ctx, w.bob, NewVFolder{Name: "b", Host: "nope"})
	wantVKind(t, err, KindInvalid, "unknown host")
}

func TestVFolderQuotaRefusesUploadAndConcurrentWritesCannotOvershoot(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	quota := int64(1 << 20)
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "small", Host: "local", QuotaBytes: &quota})
	if err != nil {
		t.Fatal(err)
	}
	err = w.upload(t, w.alice, v.ID, "big.bin", make([]byte, 2<<20))
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindQuota || e.Quota.Max != quota {
		t.Fatalf("2 MiB into a 1 MiB quota: %v", err)
	}
	staging := filepath.Join(w.host.Config().Root, "staging", diskID(v.ID))
	if ents, _ := os.ReadDir(staging); len(ents) != 0 {
		t.Errorf("a refused upload left %d staged files", len(ents))
	}
	if ents, _ := os.ReadDir(w.host.Path(diskID(v.ID))); len(ents) != 0 {
		t.Errorf("a refused upload left %d files in the folder", len(ents))
	}

	// 12 writers of 300 KiB race for 1 MiB: at most 3 fit.
	const n, size = 12, 300 << 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.upload(t, w.alice, v.ID, fmt.Sprintf("f%d", i), make([]byte, size)); err == nil {
				mu.Lock()
				ok++
				mu.Unlock()
			} else if KindOf(err) != KindQuota {
				t.Errorf("upload %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	u, err := w.host.Usage(ctx, diskID(v.ID))
	if err != nil {
		t.Fatal(err)
	}
	if u.Bytes > quota || ok != 3 {
		t.Errorf("%d uploads succeeded, %d bytes on disk; quota %d allows 3", ok, u.Bytes, quota)
	}
	got, _ := w.b.VFolder(ctx, w.alice, v.ID)
	if got.UsageBytes != u.Bytes {
		t.Errorf("recorded usage %d; on disk %d", got.UsageBytes, u.Bytes)
	}
	// Deleting frees quota for the next write.
	if err := w.b.DeleteVFolderFile(ctx, w.alice, v.ID, "f0", false); err != nil && KindOf(err) != KindNotFound {
		t.Fatal(err)
	}
}

// cutReader delivers n bytes, then fails like a dropped connection.
type cutReader struct {
	r io.Reader
	n int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errors.New("connection reset")
	}
	p = p[:min(len(p), c.n)]
	k, err := c.r.Read(p)
	c.n -= k
	return k, err
}

func TestVFolderUploadResumesAfterCut(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "r", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7 >> 3)
	}
	up, err := w.b.CreateUpload(ctx, w.alice, v.ID, "model.bin", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.b.AppendUpload(ctx, up.ID, up.Token, 0, &cutReader{bytes.NewReader(data), len(data) / 2})
	if err == nil {
		t.Fatal("a cut append reported success")
	}
	if _, err := w.b.StatVFolderFile(ctx, w.alice, v.ID, "model.bin"); KindOf(err) != KindNotFound {
		t.Errorf("half an upload is visible under its final name: %v", err)
	}
	st, err := w.b.UploadStatus(ctx, up.ID, up.Token)
	if err != nil || st.Offset != int64(len(data)/2) {
		t.Fatalf("status after the cut: offset %d, %v; want %d", st.Offset, err, len(data)/2)
	}
	if _, err := w.b.UploadStatus(ctx, up.ID, "wrong-token"); KindOf(err) != KindNotFound {
		t.Errorf("status with a wrong token: %v", err)
	}
	if _, err := w.b.AppendUpload(ctx, up.ID, up.Token, 0, bytes.NewReader(data)); KindOf(err) != KindConflict {
		t.Errorf("append at a stale offset: %v; want a conflict", err)
	}
	done, err := w.b.AppendUpload(ctx, up.ID, up.Token, st.Offset, bytes.NewReader(data[st.Offset:]))
	if err != nil || done.Offset != done.Length {
		t.Fatalf("resumed append: %+v %v", done, err)
	}
	got, err := os.ReadFile(filepath.Join(w.host.Path(diskID(v.ID)), "model.bin"))
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Errorf("the resumed file's SHA-256 differs from the original's (%v)", err)
	}
}

func TestVFolderResolveMounts(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	mine, err := w.b.CreateVFolder(ctx, w.bob, NewVFolder{Name: "mine", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "theirs", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	w.b.ShareVFolder(ctx, w.alice, theirs.ID, "bob", "ro")
	w.b.AnswerVFolderInvitation(ctx, w.bob, theirs.ID, true)

	ms, err := w.b.ResolveMounts(ctx, w.bob, []MountRequest{{VFolder: "mine"}, {VFolder: "theirs", Target: "/home/work/ref", ReadOnly: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Target != "/home/work/mine" || ms[0].HostPath != w.host.Path(diskID(mine.ID)) || ms[0].ReadOnly ||
		ms[1].Target != "/home/work/ref" || !ms[1].ReadOnly {
		t.Errorf("resolved %+v", ms)
	}
	for _, c := range []struct {
		reqs []MountRequest
		kind Kind
		why  string
	}{
		{[]MountRequest{{VFolder: "nope"}}, KindNotFound, "unknown folder"},
		{[]MountRequest{{VFolder: "mine", Target: "/etc"}}, KindInvalid, "mount point outside /home/work"},
		{[]MountRequest{{VFolder: "mine", Target: "/home/work"}}, KindInvalid, "mount point /home/work itself"},
		{[]MountRequest{{VFolder: "mine", Target: "/home/work/../etc"}}, KindInvalid, "mount point with .."},
		{[]MountRequest{{VFolder: "mine", Target: "/home/work/x"}, {VFolder: "theirs", Target: "/home/work/x", ReadOnly: true}}, KindInvalid, "duplicate targets"},
		{[]MountRequest{{VFolder: "mine", Target: "/home/work/x"}, {VFolder: "theirs", Target: "/home/work/x/y", ReadOnly: true}}, KindInvalid, "nested targets"},
		{[]MountRequest{{VFolder: "theirs"}}, KindForbidden, "rw asked on a ro share"},
	} {
		_, err := w.b.ResolveMounts(ctx, w.bob, c.reqs)
		wantVKind(t, err, c.kind, c.why)
	}
	_, err = w.b.ResolveMounts(ctx, w.carol, []MountRequest{{VFolder: mine.ID}})
	wantVKind(t, err, KindNotFound, "carol mounting bob's folder by id")
}

func TestVFolderMaintenanceCountsDirectWritesAndExpiresUploads(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	quota := int64(1 << 20)
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "m", Host: "local", QuotaBytes: &quota})
	if err != nil {
		t.Fatal(err)
	}
	// A job writes 600 KiB directly, behind the API's back.
	os.WriteFile(filepath.Join(w.host.Path(diskID(v.ID)), "job-output"), make([]byte, 600<<10), 0o644)
	up, err := w.b.CreateUpload(ctx, w.alice, v.ID, "pending", 300<<10)
	if err != nil {
		t.Fatal(err)
	}
	w.b.db.Exec(ctx, `UPDATE vfolder_uploads SET expires_at = now() - interval '1 second' WHERE id = $1`, up.ID)
	if err := w.b.VFolderMaintenanceOnce(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := w.b.VFolder(ctx, w.alice, v.ID)
	if got.UsageBytes != 600<<10 {
		t.Errorf("usage after the scan %d; want the job's %d", got.UsageBytes, 600<<10)
	}
	// The expired upload's reservation is gone, and the job's bytes count:
	// 500 KiB no longer fits in what is left of 1 MiB.
	if _, err := w.b.UploadStatus(ctx, up.ID, up.Token); KindOf(err) != KindNotFound {
		t.Errorf("expired upload: %v", err)
	}
	_, err = w.b.CreateUpload(ctx, w.alice, v.ID, "more", 500<<10)
	wantVKind(t, err, KindQuota, "500 KiB after a job filled 600 KiB of 1 MiB")
	if _, err := w.b.CreateUpload(ctx, w.alice, v.ID, "fits", 400<<10); err != nil {
		t.Errorf("400 KiB should fit: %v", err)
	}
}

// shellAs runs a shell script with a test user's uid and gid (no
// supplementary groups), as that user's job would, and says whether it
// succeeded.
func shellAs(t *testing.T, uid int, script string) (string, bool) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running %q as uid %d: %v", script, uid, err)
	}
	return string(out), err == nil
}

// A share is what bob's jobs see on disk too: accepting a ro share lets
// his processes list and read but not write, rw lets them write (and alice
// read what they wrote), revoking shuts them out, and a pending or
// declined invitation never opens anything.
func TestVFolderShareReachesTheDisk(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "shared", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.upload(t, w.alice, v.ID, "notes.txt", []byte("notes\n")); err != nil {
		t.Fatal(err)
	}
	dir := w.host.Path(diskID(v.ID))
	must := func(uid int, script, want string) {
		t.Helper()
		out, ok := shellAs(t, uid, script)
		if !ok || want != "" && out != want {
			t.Errorf("as uid %d, %q: ok=%v %q; want success%s", uid, script, ok, out, map[bool]string{true: "", false: " printing " + want}[want == ""])
		}
	}
	mustNot := func(uid int, script string) {
		t.Helper()
		if out, ok := shellAs(t, uid, script); ok {
			t.Errorf("as uid %d, %q succeeded (%q); want it refused", uid, script, out)
		}
	}

	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "bob", AccessRO); err != nil {
		t.Fatal(err)
	}
	mustNot(2002, `ls `+dir) // invited, not yet accepted
	if _, err := w.b.AnswerVFolderInvitation(ctx, w.bob, v.ID, true); err != nil {
		t.Fatal(err)
	}
	must(2002, `ls `+dir+` && cat `+dir+`/notes.txt`, "notes.txt\nnotes\n")
	mustNot(2002, `echo x > `+dir+`/bob.txt`)
	mustNot(2002, `echo x >> `+dir+`/notes.txt`)
	// Written by alice after the share: bob reads it (the default ACL).
	if err := w.upload(t, w.alice, v.ID, "later.txt", []byte("later\n")); err != nil {
		t.Fatal(err)
	}
	must(2002, `cat `+dir+`/later.txt`, "later\n")

	// rw: bob's job writes, alice's job reads it and can remove it.
	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "bob", AccessRW); err != nil {
		t.Fatal(err)
	}
	must(2002, `umask 077; echo from-bob > `+dir+`/bob.txt && mkdir `+dir+`/bobdir && echo x > `+dir+`/bobdir/x`, "")
	must(2001, `cat `+dir+`/bob.txt && rm -r `+dir+`/bobdir`, "from-bob\n")
	// Files bob writes through the gateway are writable by his jobs too.
	if err := w.upload(t, w.bob, v.ID, "via-api.txt", []byte("api\n")); err != nil {
		t.Fatal(err)
	}
	must(2002, `echo more >> `+dir+`/via-api.txt`, "")
	must(2001, `cat `+dir+`/via-api.txt`, "api\nmore\n")
	// And what alice uploads now (staged outside the folder, then moved
	// in) carries the folder's share like a file created in place.
	if _, err := w.b.MkdirVFolder(ctx, w.alice, v.ID, "in", false); err != nil {
		t.Fatal(err)
	}
	if err := w.upload(t, w.alice, v.ID, "in/alice-after.txt", []byte("a\n")); err != nil {
		t.Fatal(err)
	}
	must(2002, `echo b >> `+dir+`/in/alice-after.txt && echo c > `+dir+`/in/bob-in.txt`, "")
	must(2001, `cat `+dir+`/in/alice-after.txt`, "a\nb\n")

	// Back to ro on disk when the permission is lowered.
	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "bob", AccessRO); err != nil {
		t.Fatal(err)
	}
	mustNot(2002, `echo x > `+dir+`/again.txt`)
	must(2002, `cat `+dir+`/notes.txt`, "notes\n")

	// Revoked: bob's jobs cannot even list the folder.
	if err := w.b.RevokeVFolderShare(ctx, w.alice, v.ID, w.bob.UserID); err != nil {
		t.Fatal(err)
	}
	mustNot(2002, `ls `+dir)

	// A declined invitation opens nothing.
	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "carol", AccessRW); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.AnswerVFolderInvitation(ctx, w.carol, v.ID, false); err != nil {
		t.Fatal(err)
	}
	mustNot(2003, `ls `+dir)

	// Leaving a share (the grantee revoking) also shuts the disk.
	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "carol", AccessRO); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.AnswerVFolderInvitation(ctx, w.carol, v.ID, true); err != nil {
		t.Fatal(err)
	}
	must(2003, `cat `+dir+`/notes.txt`, "notes\n")
	if err := w.b.RevokeVFolderShare(ctx, w.carol, v.ID, w.carol.UserID); err != nil {
		t.Fatal(err)
	}
	mustNot(2003, `ls `+dir)

	// Deleting a shared folder works (its shares go with it).
	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "bob", AccessRW); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.AnswerVFolderInvitation(ctx, w.bob, v.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := w.b.DeleteVFolder(ctx, w.alice, v.ID, "shared"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted folder's directory: %v", err)
	}
}

// aclNames returns the uids named in the POSIX ACLs (access and default)
// of every file and directory under dir.
func aclNames(t *testing.T, dir string) map[uint32][]string {
	t.Helper()
	out := map[uint32][]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink != 0 {
			return err
		}
		for _, attr := range []string{"system.posix_acl_access", "system.posix_acl_default"} {
			buf := make([]byte, 4096)
			n, err := unix.Lgetxattr(p, attr, buf)
			if err != nil {
				continue
			}
			for b := buf[4:n]; len(b) >= 8; b = b[8:] {
				if binary.LittleEndian.Uint16(b) == 0x02 { // ACL_USER
					id := binary.LittleEndian.Uint32(b[4:])
					out[id] = append(out[id], p+" "+attr)
				}
			}
		}
		return nil
	})
	return out
}

// A revoke racing a grant of another user on the same folder must not
// leave the revoked user's entries behind: each walks the tree rewriting
// every directory's ACL, and without serialising them per folder, the
// grant could write back an ACL it read before the revoke removed carol.
func TestVFolderConcurrentGrantAndRevoke(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "busy", Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	dir := w.host.Path(diskID(v.ID))
	for i := range 1000 {
		p := filepath.Join(dir, fmt.Sprintf("d%03d", i))
		if err := os.Mkdir(p, 0o770); err != nil {
			t.Fatal(err)
		}
		for j := range 3 {
			os.WriteFile(filepath.Join(p, fmt.Sprint(j)), nil, 0o660)
		}
	}
	share := func(a Actor, name, perm string) {
		t.Helper()
		if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, name, perm); err != nil {
			t.Fatal(err)
		}
		if _, err := w.b.AnswerVFolderInvitation(ctx, a, v.ID, true); err != nil && KindOf(err) != KindNotFound {
			t.Fatal(err)
		}
	}
	share(w.bob, "bob", AccessRO)
	for round := range 15 {
		share(w.carol, "carol", AccessRW)
		var wg sync.WaitGroup
		var revokeErr, grantErr error
		wg.Go(func() { revokeErr = w.b.RevokeVFolderShare(ctx, w.alice, v.ID, w.carol.UserID) })
		wg.Go(func() {
			_, grantErr = w.b.ShareVFolder(ctx, w.alice, v.ID, "bob", []string{AccessRW, AccessRO}[round%2])
		})
		wg.Wait()
		if revokeErr != nil || grantErr != nil {
			t.Fatalf("round %d: revoke %v, grant %v", round, revokeErr, grantErr)
		}
		if left := aclNames(t, dir)[2003]; len(left) > 0 {
			t.Fatalf("round %d: carol (uid 2003) revoked but still named in %d ACLs, e.g. %s", round, len(left), left[0])
		}
		if len(aclNames(t, dir)[2002]) == 0 {
			t.Fatalf("round %d: bob's share is gone from the disk", round)
		}
	}
}

// Finishing an upload needs write access; replacing another's file with it
// needs delete access too (rw-delete), as a delete then a write would.
func TestVFolderUploadReplacingNeedsDelete(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	if _, err := w.b.db.Exec(ctx, `UPDATE projects SET gid = 2600 WHERE id = $1`, w.project.ID); err != nil {
		t.Fatal(err)
	}
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "team", Host: "local", Project: "lab/vision", Permission: AccessRW})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.upload(t, w.alice, v.ID, "results.csv", []byte("alice's\n")); err != nil {
		t.Fatal(err)
	}
	wantVKind(t, w.upload(t, w.bob, v.ID, "results.csv", []byte("bob's\n")), KindForbidden, "rw member bob replacing alice's file")
	if b, _ := os.ReadFile(filepath.Join(w.host.Path(diskID(v.ID)), "results.csv")); string(b) != "alice's\n" {
		t.Errorf("alice's file now holds %q", b)
	}
	if err := w.upload(t, w.bob, v.ID, "bob.csv", []byte("bob's\n")); err != nil {
		t.Errorf("rw member bob writing a new file: %v", err)
	}
	if err := w.upload(t, w.alice, v.ID, "results.csv", []byte("v2\n")); err != nil {
		t.Errorf("project admin alice replacing her file: %v", err)
	}
	if fresh, _ := w.b.VFolder(ctx, w.alice, v.ID); fresh.UsageBytes != int64(len("v2\n")+len("bob's\n")) {
		t.Errorf("usage %d after the refused replace; want %d", fresh.UsageBytes, len("v2\n")+len("bob's\n"))
	}
}

// A deletion that failed half-way (status error, or deleting after a
// crash) can be retried, and the retry removes what the failed attempt
// left in the trash.
func TestVFolderDeleteRetriesAfterFailure(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	for _, status := range []string{"error", "deleting"} {
		v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "doomed-" + status, Host: "local"})
		if err != nil {
			t.Fatal(err)
		}
		// What a crashed first attempt left: the folder renamed into the
		// trash half-removed, and its record marked.
		trash := filepath.Join(w.host.Config().Root, "staging", "deleting-"+diskID(v.ID)+"-12345")
		if err := os.MkdirAll(filepath.Join(trash, "left", "over"), 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := w.b.db.Exec(ctx, `UPDATE vfolders SET status = $2, status_message = 'deletion failed' WHERE id = $1`, v.ID, status); err != nil {
			t.Fatal(err)
		}
		if err := w.b.DeleteVFolder(ctx, w.alice, v.ID, v.Name); err != nil {
			t.Errorf("deleting a folder in status %s again: %v", status, err)
		}
		if _, err := os.Stat(trash); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the failed attempt's trash is still there: %v", err)
		}
		if _, err := w.b.VFolder(ctx, w.alice, v.ID); KindOf(err) != KindNotFound {
			t.Errorf("folder after the retried delete: %v; want not found", err)
		}
	}
}
