package bridge

import (
	"errors"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"testing"
)

// posixGroup makes sure the host has a group named name (groupadd -f is
// idempotent and safe when tests run in parallel) and returns its gid.
func posixGroup(t *testing.T, name string) int {
	t.Helper()
	if out, err := exec.Command("groupadd", "-f", name).CombinedOutput(); err != nil {
		t.Fatalf("groupadd -f %s: %v\n%s\nthe project-group tests need root and groupadd (Debian: passwd package)", name, err, out)
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)
	return gid
}

// unknownGID returns an ordinary gid no group has on this host.
func unknownGID(t *testing.T) int {
	t.Helper()
	for gid := 59999; gid > 50000; gid-- {
		if _, err := user.LookupGroupId(strconv.Itoa(gid)); err != nil {
			return gid
		}
	}
	t.Fatal("every gid from 50001 to 59999 is taken")
	return 0
}

func TestProjectGID(t *testing.T) {
	w := newVWorld(t)
	ctx := t.Context()
	gid := posixGroup(t, "slurmgate-test-grp")
	gid2 := posixGroup(t, "slurmgate-test-grp2")

	for _, bad := range []int{0, -5, 27, 65534, unknownGID(t)} {
		_, err := w.b.CreateProjectFrom(ctx, System, NewProject{Domain: "lab", Name: "bad", GID: &bad})
		var e *Error
		if KindOf(err) != KindInvalid || !errors.As(err, &e) || e.Field != "gid" {
			t.Errorf("gid %d: %v; want invalid, field gid", bad, err)
		}
	}
	if _, err := w.b.ProjectByPath(ctx, System, "lab/bad"); KindOf(err) != KindNotFound {
		t.Errorf("a refused gid left project lab/bad behind: %v", err)
	}

	p, err := w.b.CreateProjectFrom(ctx, System, NewProject{Domain: "lab", Name: "team", GID: &gid})
	if err != nil {
		t.Fatal(err)
	}
	if p.GID == nil || *p.GID != gid {
		t.Fatalf("created project gid %v; want %d", p.GID, gid)
	}
	if _, err := w.b.SetMembership(ctx, System, p.ID, w.alice.UserID, "project-admin"); err != nil {
		t.Fatal(err)
	}
	v, err := w.b.CreateVFolder(ctx, w.alice, NewVFolder{Name: "shared", Host: "local", Project: "lab/team"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(w.host.Path(diskID(v.ID)))
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Sys().(*syscall.Stat_t); int(s.Gid) != gid || st.Mode()&os.ModeSetgid == 0 || st.Mode().Perm() != 0o770 {
		t.Errorf("project folder gid %d mode %v; want %d and drwxrws---", s.Gid, st.Mode(), gid)
	}

	// Project admins manage members and folders, not the project's group.
	_, err = w.b.UpdateProject(ctx, w.alice, p.ID, ProjectUpdate{GID: &gid2})
	wantVKind(t, err, KindForbidden, "a project admin changing the group")
	// With a folder, the group stays: its files carry the old one.
	_, err = w.b.UpdateProject(ctx, System, p.ID, ProjectUpdate{GID: &gid2})
	wantVKind(t, err, KindConflict, "changing the group of a project with folders")
	if p, err = w.b.UpdateProject(ctx, System, p.ID, ProjectUpdate{GID: &gid}); err != nil || *p.GID != gid {
		t.Errorf("setting the same group again: %+v, %v", p, err)
	}
	if err := w.b.DeleteVFolder(ctx, w.alice, v.ID, "shared"); err != nil {
		t.Fatal(err)
	}
	desc := "regrouped"
	if p, err = w.b.UpdateProject(ctx, System, p.ID, ProjectUpdate{GID: &gid2, Description: &desc}); err != nil || *p.GID != gid2 || p.Description != desc {
		t.Errorf("changing the group without folders: %+v, %v", p, err)
	}

	// A project made without a group gets one later; the listing shows it.
	if w.project.GID != nil {
		t.Errorf("vision was created without a group but has gid %d", *w.project.GID)
	}
	zero := 0
	_, err = w.b.UpdateProject(ctx, System, w.project.ID, ProjectUpdate{GID: &zero})
	wantVKind(t, err, KindInvalid, "gid 0 on update")
	if _, err := w.b.UpdateProject(ctx, System, w.project.ID, ProjectUpdate{GID: &gid}); err != nil {
		t.Fatal(err)
	}
	ps, err := w.b.Projects(ctx, System)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.ID == w.project.ID && (p.GID == nil || *p.GID != gid) {
			t.Errorf("listed project %s has gid %v; want %d", p.Path(), p.GID, gid)
		}
	}
}
