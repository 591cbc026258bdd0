package api

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/slurmgate/slurmgate/api/client"
)

func TestOrgsAPI(t *testing.T) {
	t.Parallel()
	a := newTestAPI(t, Options{})
	ctx := t.Context()
	root, alice, bob := a.client(a.root), a.client(a.alice), a.client(a.bob)

	// Domains: superadmins create; others are refused.
	_, err := alice.CreateDomain(ctx, "physics", "")
	wantClientProblem(t, err, http.StatusForbidden)
	d, err := root.CreateDomain(ctx, "physics", "particles")
	if err != nil || d.Name != "physics" || !d.Active {
		t.Fatalf("create domain: %+v, %v", d, err)
	}
	_, err = root.CreateDomain(ctx, "physics", "")
	wantClientProblem(t, err, http.StatusConflict)
	desc := "particles and fields"
	if d, err = root.UpdateDomain(ctx, "physics", client.OrgUpdate{Description: &desc}); err != nil || d.Description != desc {
		t.Fatalf("update domain: %+v, %v", d, err)
	}
	if got, err := root.Domain(ctx, "physics"); err != nil || got.ID != d.ID {
		t.Fatalf("get domain: %+v, %v", got, err)
	}
	if ds, err := root.Domains(ctx); err != nil || len(ds) != 2 {
		t.Fatalf("root lists domains %v, %v; want lab and physics", ds, err)
	}

	// Projects and members.
	p, err := root.CreateProject(ctx, "lab", "vision", "")
	if err != nil || p.Domain != "lab" || p.Name != "vision" {
		t.Fatalf("create project: %+v, %v", p, err)
	}
	if got, err := root.Project(ctx, p.ID); err != nil || got.Name != "vision" {
		t.Fatalf("get project: %+v, %v", got, err)
	}
	a.wantProblem(a.signed(a.root, "GET", "/api/v1/projects/vision", nil, a.srv.now()), http.StatusBadRequest)
	m, err := root.SetMember(ctx, p.ID, a.alice.UserID, "")
	if err != nil || m.Role != "member" || m.Username != "alice" {
		t.Fatalf("set member: %+v, %v", m, err)
	}
	_, err = root.SetMember(ctx, p.ID, a.bob.UserID, "owner")
	if wantClientProblem(t, err, http.StatusUnprocessableEntity).Field != "role" {
		t.Errorf("bad role: field is not role: %v", err)
	}
	if ms, err := root.Members(ctx, p.ID); err != nil || len(ms) != 1 {
		t.Fatalf("members: %v, %v", ms, err)
	}
	if err := root.RemoveMember(ctx, p.ID, a.alice.UserID); err != nil {
		t.Fatal(err)
	}
	if ms, err := root.Members(ctx, p.ID); err != nil || len(ms) != 0 {
		t.Fatalf("members after removal: %v, %v", ms, err)
	}
	active := false
	if p, err = root.UpdateProject(ctx, p.ID, client.OrgUpdate{Active: &active}); err != nil || p.Active {
		t.Fatalf("deactivate project: %+v, %v", p, err)
	}

	// Users: a user sees themself, not others.
	u, err := root.CreateUser(ctx, client.NewUser{Username: "carol", UID: 2004, Domain: "lab"})
	if err != nil || u.Username != "carol" {
		t.Fatalf("create user: %+v, %v", u, err)
	}
	if got, err := alice.User(ctx, a.alice.UserID); err != nil || got.Username != "alice" {
		t.Fatalf("alice gets herself: %+v, %v", got, err)
	}
	_, err = bob.User(ctx, a.alice.UserID)
	wantClientProblem(t, err, http.StatusNotFound)
	name := "Carol C."
	if u, err = root.UpdateUser(ctx, u.ID, client.UserUpdate{FullName: &name}); err != nil || u.FullName != name {
		t.Fatalf("update user: %+v, %v", u, err)
	}
	if us, err := root.Users(ctx); err != nil || len(us) != 4 {
		t.Fatalf("root lists users %v, %v; want 4", us, err)
	}

	// Policies: set, read, remove; the path names the target.
	cpus := 8
	pol, err := root.SetPolicy(ctx, client.Policy{Scope: "user", TargetID: a.alice.UserID, MaxCPUs: &cpus})
	if err != nil || pol.MaxCPUs == nil || *pol.MaxCPUs != 8 {
		t.Fatalf("set policy: %+v, %v", pol, err)
	}
	if got, err := root.Policy(ctx, "user", a.alice.UserID); err != nil || got.MaxCPUs == nil || *got.MaxCPUs != 8 {
		t.Fatalf("get policy: %+v, %v", got, err)
	}
	_, err = alice.SetPolicy(ctx, client.Policy{Scope: "user", TargetID: a.alice.UserID, MaxCPUs: &cpus})
	if err == nil {
		t.Fatal("alice set her own policy")
	}
	// The path names the policy; a body naming another is refused.
	body := []byte(`{"scope": "project", "target_id": 1}`)
	p422, _ := a.wantProblem(a.signed(a.root, "PUT", "/api/v1/policies/user/"+strconv.FormatInt(a.alice.UserID, 10), body, a.srv.now()), http.StatusUnprocessableEntity)
	if p422.Field != "scope" {
		t.Errorf("mismatched policy body: field %q, want scope", p422.Field)
	}
	_, err = root.Policy(ctx, "galaxy", 1)
	wantClientProblem(t, err, http.StatusUnprocessableEntity)
	if err := root.DeletePolicy(ctx, "user", a.alice.UserID); err != nil {
		t.Fatal(err)
	}
	// Without a policy there are no limits: an empty policy, not a 404.
	if got, err := root.Policy(ctx, "user", a.alice.UserID); err != nil || got.MaxCPUs != nil {
		t.Fatalf("policy after delete: %+v, %v", got, err)
	}
}
