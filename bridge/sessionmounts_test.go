package bridge

// vfolder mounts in sessions, end to end: folders on a real storage host,
// sessions submitted to the test cluster, run by the session agent under
// charliecloud as the session's owner.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/apptainer/agent"
	"github.com/slurmgate/slurmgate/testdata/images"
	"github.com/slurmgate/slurmgate/vfolder"
	"github.com/slurmgate/slurmgate/vfolder/vfoldertest"
)

// mountWorld is newWorld with a storage host "local" and a busybox image
// that runs under charliecloud.
type mountWorld struct {
	*world
	host *vfolder.Host
}

func newMountWorld(t *testing.T) *mountWorld {
	t.Helper()
	w := newWorld(t)
	host, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	// Before the bridge serves anything: the configuration is read-only
	// from here on.
	w.b.cfg.VFolderHosts = []*vfolder.Host{host}
	img := images.Require(t)
	if _, err := w.b.CreateImage(t.Context(), w.admin, Image{Name: "busybox", Tag: "latest", Location: img.Busybox, Runtime: "charliecloud"}); err != nil {
		t.Fatal(err)
	}
	return &mountWorld{world: w, host: host}
}

// chBatch is a batch session of the busybox image under charliecloud.
func (w *mountWorld) chBatch(cmd string, mounts ...Mount) SessionRequest {
	r := w.batch(cmd)
	r.Image, r.Mounts = "busybox", mounts
	return r
}

// folder creates a folder for a, holding the files given (through the
// bridge's upload API, as a client would).
func (w *mountWorld) folder(t *testing.T, a Actor, name string, files map[string]string) VFolder {
	t.Helper()
	v, err := w.b.CreateVFolder(t.Context(), a, NewVFolder{Name: name, Host: "local"})
	if err != nil {
		t.Fatal(err)
	}
	for p, data := range files {
		up, err := w.b.CreateUpload(t.Context(), a, v.ID, p, int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.b.AppendUpload(t.Context(), up.ID, up.Token, 0, strings.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func (w *mountWorld) stdout(t *testing.T, a Actor, id string) string {
	t.Helper()
	var out bytes.Buffer
	if err := w.b.SessionLog(t.Context(), a, id, LogOptions{}, &out, nil); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func (w *mountWorld) stderr(t *testing.T, a Actor, id string) string {
	t.Helper()
	var out bytes.Buffer
	if err := w.b.SessionLog(t.Context(), a, id, LogOptions{Stream: "stderr"}, &out, nil); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestSessionMountReadWriteAsOwner(t *testing.T) {
	t.Parallel()
	w := newMountWorld(t)
	v := w.folder(t, w.alice, "data", map[string]string{"in.txt": "alice's input\n"})

	s, err := w.b.CreateSession(t.Context(), w.alice, w.chBatch(
		`cat /home/work/data/in.txt && tr a-z A-Z < /home/work/data/in.txt > /home/work/data/out.txt && ls -ln /home/work/data/out.txt`,
		Mount{VFolder: "data", Target: "/home/work/data"}))
	if err != nil {
		t.Fatal(err)
	}
	want := SessionMount{VFolder: "data", VFolderID: v.ID, Target: "/home/work/data", HostPath: w.host.Path(diskID(v.ID))}
	if len(s.Mounts) != 1 || s.Mounts[0] != want {
		t.Fatalf("created session's mounts %+v; want [%+v]", s.Mounts, want)
	}
	s = w.waitState(t, w.alice, s.ID, 3*time.Minute, StateTerminated, StateError)
	out := w.stdout(t, w.alice, s.ID)
	if s.State != StateTerminated || s.ExitCode == nil || *s.ExitCode != 0 {
		t.Fatalf("session ended %s exit %v (%s)\nstdout: %s\nstderr: %s", s.State, s.ExitCode, s.StatusMessage, out, w.stderr(t, w.alice, s.ID))
	}
	if !strings.HasPrefix(out, "alice's input\n") {
		t.Errorf("stdout %q; want the uploaded file first", out)
	}
	// Written through the bind, on the host, as alice herself.
	p := filepath.Join(w.host.Path(diskID(v.ID)), "out.txt")
	data, err := os.ReadFile(p)
	if err != nil || string(data) != "ALICE'S INPUT\n" {
		t.Fatalf("host file %s: %q %v", p, data, err)
	}
	fi, _ := os.Stat(p)
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 2001 {
		t.Errorf("out.txt on the host belongs to uid %d; want alice's 2001", uid)
	}
	// The session as stored (and shown) keeps its mounts.
	got, err := w.b.Session(t.Context(), w.alice, s.ID)
	if err != nil || len(got.Mounts) != 1 || got.Mounts[0] != want {
		t.Errorf("stored session's mounts %+v %v; want [%+v]", got.Mounts, err, want)
	}
}

func TestSessionMountReadOnlyShare(t *testing.T) {
	t.Parallel()
	w := newMountWorld(t)
	ctx := t.Context()
	v := w.folder(t, w.alice, "ref", map[string]string{"notes.txt": "shared notes\n"})
	if _, err := w.b.ShareVFolder(ctx, w.alice, v.ID, "bob", AccessRO); err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.AnswerVFolderInvitation(ctx, w.bob, v.ID, true); err != nil {
		t.Fatal(err)
	}

	// Asking read-write for a read-only share is refused, not downgraded.
	_, err := w.b.CreateSession(ctx, w.bob, w.chBatch("true", Mount{VFolder: "ref"}))
	if KindOf(err) != KindForbidden || !strings.Contains(err.Error(), "read_only") {
		t.Errorf("bob mounting alice's ro share read-write: %v; want forbidden, saying read_only", err)
	}

	s, err := w.b.CreateSession(ctx, w.bob, w.chBatch(
		`cat /home/work/ref/notes.txt; if echo x > /home/work/ref/bob.txt; then echo wrote; else echo refused; fi`,
		Mount{VFolder: "ref", Target: "/home/work/ref", ReadOnly: true}))
	if err != nil {
		t.Fatal(err)
	}
	s = w.waitState(t, w.bob, s.ID, 3*time.Minute, StateTerminated, StateError)
	out, errOut := w.stdout(t, w.bob, s.ID), w.stderr(t, w.bob, s.ID)
	if s.State != StateTerminated {
		t.Fatalf("session ended %s (%s)\nstdout: %s\nstderr: %s", s.State, s.StatusMessage, out, errOut)
	}
	if out != "shared notes\nrefused\n" || !strings.Contains(errOut, "Read-only file system") {
		t.Errorf("stdout %q, stderr %q; want the notes read, the write refused with \"Read-only file system\"", out, errOut)
	}
	if _, err := os.Stat(filepath.Join(w.host.Path(diskID(v.ID)), "bob.txt")); !os.IsNotExist(err) {
		t.Errorf("bob.txt exists in alice's folder (%v)", err)
	}
}

func TestSessionMountRefusalsSubmitNothing(t *testing.T) {
	t.Parallel()
	w := newMountWorld(t)
	ctx := t.Context()
	w.folder(t, w.alice, "private", nil)
	w.folder(t, w.bob, "mine", nil)
	w.folder(t, w.bob, "other", nil)

	for _, c := range []struct {
		why   string
		a     Actor
		req   SessionRequest
		kind  Kind
		field string
	}{
		{"a folder bob has no access to", w.bob, w.chBatch("true", Mount{VFolder: "private"}), KindNotFound, "mounts[0].vfolder"},
		{"a mount point outside /home/work", w.bob, w.chBatch("true", Mount{VFolder: "mine", Target: "/etc/mine"}), KindInvalid, "mounts[0].target"},
		{"a mount point with ..", w.bob, w.chBatch("true", Mount{VFolder: "mine", Target: "/home/work/../etc"}), KindInvalid, "mounts[0].target"},
		{"duplicate mount points", w.bob, w.chBatch("true", Mount{VFolder: "mine", Target: "/home/work/x"}, Mount{VFolder: "other", Target: "/home/work/x"}),
			KindInvalid, "mounts[1].target"},
		{"the same folder's default mount point twice", w.bob, w.chBatch("true", Mount{VFolder: "mine"}, Mount{VFolder: "mine", ReadOnly: true}),
			KindInvalid, "mounts[1].target"},
		{"runtime none, which cannot bind", w.bob, func() SessionRequest { r := w.batch("true"); r.Mounts = []Mount{{VFolder: "mine"}}; return r }(),
			KindInvalid, "mounts"},
	} {
		_, err := w.b.CreateSession(ctx, c.a, c.req)
		var e *Error
		if KindOf(err) != c.kind || !errors.As(err, &e) || e.Field != c.field {
			t.Errorf("%s: %v (kind %d, %+v); want kind %d naming %s", c.why, err, KindOf(err), e, c.kind, c.field)
		}
	}
	ss, err := w.b.ListSessions(ctx, w.admin, SessionFilter{All: true, Limit: 10})
	if err != nil || len(ss) != 0 {
		t.Errorf("sessions after refused creates: %d %v; want none", len(ss), err)
	}
}

// The agent binds what the session row holds: the resolved host paths, at
// their targets, read-only where asked.
func TestSessionMountsReachTheAgentConfig(t *testing.T) {
	t.Parallel()
	w := newMountWorld(t)
	ctx := t.Context()
	data := w.folder(t, w.alice, "data", nil)
	ref := w.folder(t, w.alice, "ref", nil)
	s, err := w.b.CreateSession(ctx, w.alice, w.chBatch("true",
		Mount{VFolder: "data"}, Mount{VFolder: ref.ID, Target: "/home/work/in/ref", ReadOnly: true}))
	if err != nil {
		t.Fatal(err)
	}
	row, err := w.b.sessionByID(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	img, err := w.b.Image(ctx, row.Image)
	if err != nil {
		t.Fatal(err)
	}
	sg, err := w.b.ScalingGroup(ctx, row.ScalingGroup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.b.agentScript(ctx, row, img, sg); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.Load(filepath.Join(filepath.Dir(row.stdoutPath), row.ID+".agent.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []agent.Mount{
		{Source: w.host.Path(diskID(data.ID)), Target: "/home/work/data"},
		{Source: w.host.Path(diskID(ref.ID)), Target: "/home/work/in/ref", ReadOnly: true},
	}
	if !reflect.DeepEqual(cfg.Mounts, want) {
		t.Errorf("agent config mounts %+v; want %+v", cfg.Mounts, want)
	}
}
