package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

func TestClusterNodesPartitionsAndUsage(t *testing.T) {
	a, project := newSessionAPI(t)
	now := time.Now

	var parts []bridge.ClusterPartition
	json.Unmarshal(a.wantStatus(a.signed(a.bob, "GET", "/api/v1/cluster/partitions", nil, now()), 200), &parts)
	i := slices.IndexFunc(parts, func(p bridge.ClusterPartition) bool { return p.Name == "gpu" })
	if i < 0 || parts[i].GPUs["a100"].Total != 4 {
		t.Fatalf("partitions %+v: want gpu with 4 a100 GPUs", parts)
	}
	if c := slices.IndexFunc(parts, func(p bridge.ClusterPartition) bool { return p.Name == "cpu" }); c < 0 || !slices.Contains(parts[c].ScalingGroups, "cpu") {
		t.Fatalf("partitions %+v: want cpu offered by scaling group cpu", parts)
	}
	var nodes []bridge.ClusterNode
	json.Unmarshal(a.wantStatus(a.signed(a.alice, "GET", "/api/v1/cluster/nodes", nil, now()), 200), &nodes)
	g := slices.IndexFunc(nodes, func(n bridge.ClusterNode) bool { return n.Name == "g1" })
	if g < 0 || nodes[g].GPUs["a100"] != 4 || nodes[g].CPUs == 0 {
		t.Fatalf("nodes %+v: want g1 with 4 a100 GPUs", nodes)
	}

	// Usage: alice's levels, with a policy and a live session counted.
	max := 3
	if _, err := a.b.SetPolicy(t.Context(), bridge.System, bridge.Policy{Scope: "project", TargetID: project.ID, MaxCPUs: &max}); err != nil {
		t.Fatal(err)
	}
	r := a.signed(a.alice, "POST", "/api/v1/sessions", batchBody(t, map[string]any{"command": "sleep 30", "cpus": 2}), now())
	a.wantStatus(r, http.StatusCreated)
	var use []bridge.ScopeUsage
	json.Unmarshal(a.wantStatus(a.signed(a.alice, "GET", "/api/v1/usage", nil, now()), 200), &use)
	var scopes []string
	for _, u := range use {
		scopes = append(scopes, u.Scope)
		if u.Scope == "project" && (u.Policy == nil || *u.Policy.MaxCPUs != 3 || u.InUse.CPUs != 2 || u.InUse.Sessions != 1) {
			t.Errorf("project usage %+v: want max 3 CPUs, 2 in use in 1 session", u)
		}
		if u.Scope == "user" && u.InUse.CPUs != 2 {
			t.Errorf("alice's own usage %+v: want 2 CPUs in use", u)
		}
	}
	if !slices.Equal(scopes, []string{"user", "project", "domain"}) {
		t.Errorf("usage levels %v: want user, project, domain", scopes)
	}
	// bob shares the project quota: he sees alice's CPUs at project level.
	json.Unmarshal(a.wantStatus(a.signed(a.bob, "GET", "/api/v1/usage", nil, now()), 200), &use)
	for _, u := range use {
		if u.Scope == "user" && u.InUse.CPUs != 0 || u.Scope == "project" && u.InUse.CPUs != 2 {
			t.Errorf("bob's usage %+v: want 0 own CPUs, 2 in the project", u)
		}
	}
}

// The sync routes against real slurmdbd, with a managed organization of the
// test's own so that nothing else on the shared cluster is touched.
func TestSyncPlanAndApplyOverAPI(t *testing.T) {
	env := cluster.Require(t)
	slurm, err := slurmctl.New(slurmctl.Config{URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	org := fmt.Sprintf("sgapi%x", time.Now().UnixNano()&0xffffff)
	log := slog.New(slog.NewTextHandler(&lockedBuffer{}, nil))
	b := bridge.New(bridgetest.Pool(t), slurm, bridge.Config{Cluster: env.Name, ManagedOrganization: org, SecretKey: key}, log)
	a := &testAPI{t: t, b: b, srv: New(b, Options{Logger: log})}
	a.ts = httptest.NewServer(a.srv)
	t.Cleanup(a.ts.Close)
	ctx := t.Context()
	domain := org
	if _, err := b.CreateDomain(ctx, bridge.System, domain, ""); err != nil {
		t.Fatal(err)
	}
	mk := func(name string, uid int, role bridge.Role) testUser {
		u, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: name, UID: uid, Domain: domain, Role: role})
		if err != nil {
			t.Fatal(err)
		}
		ak, sk, err := b.CreateKeypair(ctx, u.Actor(), u.ID, "test")
		if err != nil {
			t.Fatal(err)
		}
		return testUser{u.Actor(), ak, sk}
	}
	root, alice := mk("root1", 2003, bridge.RoleSuperadmin), mk("alice", 2001, bridge.RoleUser)
	if _, err := b.CreateProject(ctx, bridge.System, domain, "vision", ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, acct := range []string{domain + ".vision", domain} {
			slurm.DeleteAccount(context.Background(), acct)
		}
	})

	a.wantStatus(a.signed(alice, "GET", "/api/v1/sync/plan", nil, time.Now()), http.StatusForbidden)
	a.wantStatus(a.signed(alice, "POST", "/api/v1/sync/apply", nil, time.Now()), http.StatusForbidden)

	var plan bridge.SyncPlan
	json.Unmarshal(a.wantStatus(a.signed(root, "GET", "/api/v1/sync/plan", nil, time.Now()), 200), &plan)
	has := func(p bridge.SyncPlan, kind bridge.SyncKind, acct string) bool {
		return slices.ContainsFunc(p.Changes, func(c bridge.SyncChange) bool { return c.Kind == kind && c.Account == acct })
	}
	if !has(plan, bridge.SyncCreateAccount, domain) || !has(plan, bridge.SyncCreateAccount, domain+".vision") {
		t.Fatalf("plan %+v: want the domain's and the project's accounts created", plan.Changes)
	}
	if _, err := slurm.Account(ctx, domain); err == nil {
		t.Fatal("planning created the account")
	}
	var out syncOutcome
	json.Unmarshal(a.wantStatus(a.signed(root, "POST", "/api/v1/sync/apply", nil, time.Now()), 200), &out)
	if out.Applied < 2 || len(out.Failed) != 0 {
		t.Fatalf("apply: %+v", out)
	}
	if _, err := slurm.Account(ctx, domain+".vision"); err != nil {
		t.Fatalf("after apply, Slurm lacks the project's account: %v", err)
	}
	json.Unmarshal(a.wantStatus(a.signed(root, "GET", "/api/v1/sync/plan", nil, time.Now()), 200), &plan)
	if has(plan, bridge.SyncCreateAccount, domain) || has(plan, bridge.SyncCreateAccount, domain+".vision") {
		t.Fatalf("plan after apply still creates the accounts: %+v", plan.Changes)
	}
}
