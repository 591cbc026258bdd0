package api

import (
	"net/http"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"

	"github.com/slurmgate/slurmgate/api/client"
)

// TestProjectGID sets a project's POSIX group through the API: on create and
// PATCH, shown in the project's JSON, refused with the reason when the host
// has no such group.
func TestProjectGID(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, Options{})
	ctx := t.Context()
	root, alice := a.client(a.root), a.client(a.alice)
	if out, err := exec.Command("groupadd", "-f", "slurmgate-test-grp").CombinedOutput(); err != nil {
		t.Fatalf("groupadd -f slurmgate-test-grp: %v\n%s\nthis test needs root and groupadd (Debian: passwd package)", err, out)
	}
	g, err := user.LookupGroup("slurmgate-test-grp")
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := strconv.Atoi(g.Gid)

	p, err := root.CreateProjectFrom(ctx, client.NewProject{Domain: "lab", Name: "team", GID: &gid})
	if err != nil || p.GID == nil || *p.GID != gid {
		t.Fatalf("create with gid %d: %+v, %v", gid, p, err)
	}
	raw := string(a.wantStatus(a.signed(a.root, "GET", "/api/v1/projects/"+strconv.FormatInt(p.ID, 10), nil, a.srv.now()), http.StatusOK))
	if !strings.Contains(raw, `"gid":`+g.Gid) {
		t.Errorf("project JSON lacks the gid: %s", raw)
	}

	bad := 1
	for gid, what := range map[int]string{0: "positive", 100: "system group", 59998: "groupadd"} {
		if _, err := user.LookupGroupId(strconv.Itoa(gid)); gid == 59998 && err == nil {
			t.Fatalf("gid %d exists on this host; the test needs an unused one", gid)
		}
		_, err := root.CreateProjectFrom(ctx, client.NewProject{Domain: "lab", Name: "bad" + strconv.Itoa(bad), GID: &gid})
		bad++
		pr := wantClientProblem(t, err, http.StatusUnprocessableEntity)
		if pr.Field != "gid" || !strings.Contains(pr.Detail, what) {
			t.Errorf("gid %d: %+v; want field gid and a detail that says %q", gid, pr, what)
		}
	}

	vision, err := root.CreateProject(ctx, "lab", "vision", "")
	if err != nil || vision.GID != nil {
		t.Fatalf("project without a group: %+v, %v", vision, err)
	}
	raw = string(a.wantStatus(a.signed(a.root, "GET", "/api/v1/projects/"+strconv.FormatInt(vision.ID, 10), nil, a.srv.now()), http.StatusOK))
	if !strings.Contains(raw, `"gid":null`) {
		t.Errorf("a project without a group shows gid null: %s", raw)
	}
	if _, err := root.SetMember(ctx, vision.ID, a.alice.UserID, "project-admin"); err != nil {
		t.Fatal(err)
	}
	_, err = alice.PatchProject(ctx, vision.ID, client.ProjectUpdate{GID: &gid})
	wantClientProblem(t, err, http.StatusForbidden)
	if vision, err = root.PatchProject(ctx, vision.ID, client.ProjectUpdate{GID: &gid}); err != nil || vision.GID == nil || *vision.GID != gid {
		t.Fatalf("PATCH gid: %+v, %v", vision, err)
	}
	// A description-only PATCH leaves the group alone.
	desc := "pictures"
	if vision, err = root.UpdateProject(ctx, vision.ID, client.OrgUpdate{Description: &desc}); err != nil || vision.GID == nil || *vision.GID != gid {
		t.Errorf("PATCH description: %+v, %v; want the gid kept", vision, err)
	}
}
