package bridge_test

// Integration tests of the Slurm account sync against the one-machine test
// cluster (real slurmdbd through slurmrestd and sacctmgr) and a fresh
// PostgreSQL database per test. They fail, never skip, without the cluster.
//
// Other packages' tests share the cluster's slurmdbd, and a sync deletes
// every managed account it does not want: each test therefore manages its
// own organization ("sgtest-…") and names its domains with its own prefix.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

type syncFixture struct {
	t      *testing.T
	env    *cluster.Env
	db     *pgxpool.Pool
	slurm  *slurmctl.Client
	org    string
	prefix string   // of every account name this test makes
	calls  sync.Map // slurmctl operation → *atomic.Int64
	runs   atomic.Int64
}

// newSyncFixture gives t a database, a Slurm client and a unique managed
// organization, and deletes every account it made when t ends.
func newSyncFixture(t *testing.T) *syncFixture {
	t.Helper()
	env := cluster.Require(t)
	f := &syncFixture{t: t, env: env, db: bridgetest.Pool(t), org: "sgtest-" + randomHex(4), prefix: "sgt" + randomHex(3)}
	c, err := slurmctl.New(slurmctl.Config{
		URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf,
		Observe: func(op string, _ time.Duration, _ error) {
			n, _ := f.calls.LoadOrStore(op, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.slurm = c
	t.Cleanup(f.cleanup)
	return f
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// cleanup removes the accounts of this test, whoever owns them, with their
// records: DeleteAccount (and so the sync) removes an account from the
// cluster but leaves its record in slurmdbd, where Accounts no longer sees it.
func (f *syncFixture) cleanup() {
	ctx := context.Background()
	out, err := f.env.Command(ctx, "sacctmgr", "-nP", "show", "account", "format=account").Output()
	if err != nil {
		f.t.Errorf("cleanup: listing accounts: %v", err)
		return
	}
	var names []string
	for _, name := range strings.Fields(string(out)) {
		if strings.HasPrefix(name, f.prefix) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return
	}
	if out, err := f.env.Command(ctx, "sacctmgr", "-i", "delete", "account", "where", "name="+strings.Join(names, ",")).CombinedOutput(); err != nil {
		f.t.Errorf("cleanup: deleting %v: %v\n%s", names, err, out)
	}
}

// bridge returns a Bridge and its sync for this test's database and
// organization; its log goes to the test's output and counts runs.
func (f *syncFixture) bridge(interval time.Duration) (*bridge.Bridge, *bridge.AccountSync) {
	h := &countingHandler{Handler: slog.NewTextHandler(f.t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}), runs: &f.runs}
	b := bridge.New(f.db, f.slurm, bridge.Config{Cluster: f.env.Name, ManagedOrganization: f.org, SyncInterval: interval}, slog.New(h))
	return b, b.NewAccountSync()
}

// countingHandler counts the one summary record every run logs.
type countingHandler struct {
	slog.Handler
	runs *atomic.Int64
}

func (h *countingHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "slurm account sync") && !strings.HasPrefix(r.Message, "slurm account sync:") && r.Message != "slurm account sync conflict" {
		h.runs.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (f *syncFixture) calls0() {
	f.calls.Range(func(k, _ any) bool { f.calls.Delete(k); return true })
}

func (f *syncFixture) callCount(op string) int64 {
	n, ok := f.calls.Load(op)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// sql runs one statement and returns the id it yields, if any.
func (f *syncFixture) sql(query string, args ...any) int64 {
	f.t.Helper()
	if !strings.Contains(query, "RETURNING") {
		if _, err := f.db.Exec(context.Background(), query, args...); err != nil {
			f.t.Fatalf("%s: %v", query, err)
		}
		return 0
	}
	var id int64
	if err := f.db.QueryRow(context.Background(), query, args...).Scan(&id); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return id
}

func (f *syncFixture) domain(name string) int64 {
	return f.sql(`INSERT INTO domains (name) VALUES ($1) RETURNING id`, name)
}

func (f *syncFixture) project(domainID int64, name string) int64 {
	return f.sql(`INSERT INTO projects (domain_id, name) VALUES ($1, $2) RETURNING id`, domainID, name)
}

// user adds one of the cluster's test users (alice 2001, bob 2002, carol 2003).
func (f *syncFixture) user(domainID int64, name string) int64 {
	uid := map[string]int{"alice": 2001, "bob": 2002, "carol": 2003}[name]
	return f.sql(`INSERT INTO users (username, uid, domain_id) VALUES ($1, $2, $3) RETURNING id`, name, uid, domainID)
}

func (f *syncFixture) member(projectID, userID int64) {
	f.sql(`INSERT INTO memberships (project_id, user_id) VALUES ($1, $2)`, projectID, userID)
}

func (f *syncFixture) plan(s *bridge.AccountSync) *bridge.SyncPlan {
	f.t.Helper()
	p, err := s.Plan(f.t.Context())
	if err != nil {
		f.t.Fatalf("Plan: %v", err)
	}
	f.checkForeignUntouched(p)
	return p
}

func (f *syncFixture) reconcile(s *bridge.AccountSync) (*bridge.SyncPlan, bridge.SyncResult) {
	f.t.Helper()
	start := time.Now()
	p, res, err := s.Reconcile(f.t.Context())
	if err != nil {
		f.t.Fatalf("Reconcile: %v", err)
	}
	f.checkForeignUntouched(p)
	f.t.Logf("Reconcile: %d changes applied in %v", res.Applied, time.Since(start).Round(time.Millisecond))
	return p, res
}

// checkForeignUntouched fails the test if a plan touches anything but this
// test's accounts: not root, not testlab, not another test's accounts.
func (f *syncFixture) checkForeignUntouched(p *bridge.SyncPlan) {
	f.t.Helper()
	for _, c := range p.Changes {
		if !strings.HasPrefix(c.Account, f.prefix) {
			f.t.Errorf("plan touches an account that is not this test's: %s", c)
		}
	}
}

func changeLines(p *bridge.SyncPlan) []string {
	var out []string
	for _, c := range p.Changes {
		out = append(out, c.String())
	}
	return out
}

func (f *syncFixture) wantChanges(p *bridge.SyncPlan, want ...string) {
	f.t.Helper()
	if got := changeLines(p); !slices.Equal(got, want) {
		f.t.Fatalf("plan:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func (f *syncFixture) wantEmpty(s *bridge.AccountSync) {
	f.t.Helper()
	if p := f.plan(s); !p.Empty() {
		f.t.Fatalf("plan after Reconcile is not empty:\n\t%s", strings.Join(changeLines(p), "\n\t"))
	}
}

// accounts returns this test's accounts on the cluster by name.
func (f *syncFixture) accounts() map[string]slurmctl.Account {
	f.t.Helper()
	accts, err := f.slurm.Accounts(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]slurmctl.Account{}
	for _, a := range accts {
		if strings.HasPrefix(a.Name, f.prefix) {
			out[a.Name] = a
		}
	}
	return out
}

// users returns the user associations of one account, by user.
func (f *syncFixture) users(account string) map[string]slurmctl.Limits {
	f.t.Helper()
	assocs, err := f.slurm.Associations(f.t.Context(), slurmctl.AssociationFilter{Account: account})
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]slurmctl.Limits{}
	for _, a := range assocs {
		if a.User != "" {
			out[a.User] = a.Limits
		}
	}
	return out
}

func (f *syncFixture) wantAccount(got map[string]slurmctl.Account, name, parent, description string, limits slurmctl.Limits) {
	f.t.Helper()
	a, ok := got[name]
	if !ok {
		f.t.Fatalf("account %s is not in Slurm", name)
	}
	if a.Parent != parent || a.Description != description || a.Organization != f.org || !sameLimits(a.Limits, limits) {
		f.t.Errorf("account %s = parent %q description %q organization %q limits %+v;\nwant parent %q description %q organization %q limits %+v",
			name, a.Parent, a.Description, a.Organization, a.Limits, parent, description, f.org, limits)
	}
}

func sameLimits(a, b slurmctl.Limits) bool {
	return a.GrpTRES.Equal(b.GrpTRES) && a.MaxTRESPerJob.Equal(b.MaxTRESPerJob) && a.GrpJobs == b.GrpJobs &&
		a.GrpSubmitJobs == b.GrpSubmitJobs && a.MaxJobs == b.MaxJobs && a.MaxSubmitJobs == b.MaxSubmitJobs && a.MaxWall == b.MaxWall
}

// TestAccountSyncLifecycle walks one domain through creation, idempotence,
// a policy change, drift made by hand, membership and project removal, and
// the domain's deactivation.
func TestAccountSyncLifecycle(t *testing.T) {
	f := newSyncFixture(t)
	_, s := f.bridge(time.Hour)
	d := f.prefix + "d"
	dom := f.domain(d)
	vision, nlp := f.project(dom, "vision"), f.project(dom, "nlp")
	alice, bob, carol := f.user(dom, "alice"), f.user(dom, "bob"), f.user(dom, "carol")
	f.member(vision, alice)
	f.member(vision, bob)
	f.member(nlp, alice)
	f.member(nlp, carol)
	f.sql(`INSERT INTO policies (scope, domain_id, max_cpus, max_memory_mb, max_gpus, max_concurrent_sessions,
		max_pending_sessions, max_session_lifetime_s) VALUES ('domain', $1, 8, 16384, '{"": 2}', 4, 2, 86400)`, dom)
	// Only the concurrent limit: pending sessions are unlimited, so no GrpSubmitJobs.
	f.sql(`INSERT INTO policies (scope, project_id, max_gpus, max_concurrent_sessions, max_session_lifetime_s)
		VALUES ('project', $1, '{"": 1}', 2, 7200)`, vision)
	// 1000 s rounds up to 17 minutes.
	f.sql(`INSERT INTO policies (scope, user_id, max_concurrent_sessions, max_pending_sessions, max_session_lifetime_s)
		VALUES ('user', $1, 1, 1, 1000)`, alice)
	f.sql(`INSERT INTO policies (scope, user_id, max_cpus) VALUES ('user', $1, 2)`, carol)

	// The first plan creates everything, parents first.
	first := f.plan(s)
	f.wantChanges(first,
		"create account "+d+": domain "+d+" under root; GrpTRES cpu=8,gres/gpu=2,mem=16384; GrpJobs 4; GrpSubmitJobs 6; MaxWall 24h",
		"create account "+d+".nlp: project "+d+"/nlp under "+d+"; MaxWall 24h",
		"create account "+d+".vision: project "+d+"/vision under "+d+"; GrpTRES gres/gpu=1; GrpJobs 2; MaxWall 2h",
		"create association alice in "+d+".nlp: GrpJobs 1; GrpSubmitJobs 2; MaxWall 17m",
		"create association carol in "+d+".nlp: GrpTRES cpu=2; MaxWall 24h",
		"create association alice in "+d+".vision: GrpJobs 1; GrpSubmitJobs 2; MaxWall 17m",
		"create association bob in "+d+".vision: MaxWall 2h",
	)
	if len(first.Conflicts) != 0 {
		t.Errorf("conflicts: %+v", first.Conflicts)
	}
	if again := f.plan(s); !slices.Equal(changeLines(again), changeLines(first)) {
		t.Errorf("two plans of the same state differ:\n%v\n%v", changeLines(first), changeLines(again))
	}

	start := time.Now()
	res, err := s.Apply(t.Context(), first)
	if err != nil || res.Applied != 7 || len(res.Failed) != 0 {
		t.Fatalf("Apply = %+v, %v; want 7 applied", res, err)
	}
	t.Logf("first Apply: 7 changes in %v", time.Since(start).Round(time.Millisecond))

	accts := f.accounts()
	f.wantAccount(accts, d, "root", "slurmgate domain "+d, slurmctl.Limits{
		GrpTRES: slurmctl.TRES{"cpu": 8, "mem": 16384, "gres/gpu": 2}, GrpJobs: 4, GrpSubmitJobs: 6, MaxWall: 24 * time.Hour})
	f.wantAccount(accts, d+".vision", d, "slurmgate project "+d+"/vision", slurmctl.Limits{
		GrpTRES: slurmctl.TRES{"gres/gpu": 1}, GrpJobs: 2, MaxWall: 2 * time.Hour})
	f.wantAccount(accts, d+".nlp", d, "slurmgate project "+d+"/nlp", slurmctl.Limits{MaxWall: 24 * time.Hour})
	if got := f.users(d + ".vision"); len(got) != 2 ||
		!sameLimits(got["alice"], slurmctl.Limits{GrpJobs: 1, GrpSubmitJobs: 2, MaxWall: 17 * time.Minute}) ||
		!sameLimits(got["bob"], slurmctl.Limits{MaxWall: 2 * time.Hour}) {
		t.Errorf("associations of %s.vision = %+v", d, got)
	}
	// Once, through Slurm's own tool rather than our client's reading of REST.
	out := f.env.Run(t, "sacctmgr", "-nP", "show", "assoc", "where", "account="+d+".nlp", "cluster="+f.env.Name,
		"format=account,user,parentname,grptres,grpjobs,grpsubmit,maxwall")
	lines := strings.Fields(out)
	slices.Sort(lines)
	if want := []string{
		d + ".nlp|alice|||1|2|00:17:00",
		d + ".nlp|carol||cpu=2|||1-00:00:00",
		d + ".nlp||" + d + "||||1-00:00:00",
	}; !slices.Equal(lines, want) {
		t.Errorf("sacctmgr show assoc:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}

	// Idempotent: nothing left to do, found with three reads and no write;
	// and applying the old plan again changes nothing and fails nothing.
	f.calls0()
	f.wantEmpty(s)
	if a, as, w := f.callCount("accounts"), f.callCount("associations"), f.callCount("sacctmgr"); a != 1 || as != 2 || w != 0 {
		t.Errorf("an empty plan took %d accounts, %d associations requests and %d sacctmgr runs; want 1, 2, 0", a, as, w)
	}
	if res, err := s.Apply(t.Context(), first); err != nil || len(res.Failed) != 0 {
		t.Errorf("applying the first plan again: %+v, %v", res, err)
	}
	f.wantEmpty(s)

	// A policy change is an update, and one Reconcile brings it to slurmdbd.
	f.sql(`UPDATE policies SET max_gpus = '{"": 4}' WHERE project_id = $1`, vision)
	f.wantChanges(f.plan(s), "update account "+d+".vision: GrpTRES gres/gpu: 1 → 4")
	f.reconcile(s)
	if got := f.accounts()[d+".vision"].Limits.GrpTRES; !got.Equal(slurmctl.TRES{"gres/gpu": 4}) {
		t.Errorf("GrpTRES of %s.vision after the policy change = %v", d, got)
	}
	f.wantEmpty(s)

	// Drift made by hand is reported and repaired.
	f.env.Run(t, "sacctmgr", "-i", "modify", "account", "where", "name="+d+".nlp", "cluster="+f.env.Name,
		"set", "GrpJobs=99", "Description=hand edited")
	f.env.Run(t, "sacctmgr", "-i", "modify", "user", "where", "name=bob", "account="+d+".vision", "cluster="+f.env.Name,
		"set", "GrpTRES=gres/gpu=3")
	drift := f.plan(s)
	f.wantChanges(drift,
		"update account "+d+".nlp: Description: \"hand edited\" → \"slurmgate project "+d+"/nlp\"; GrpJobs: 99 → none",
		"update association bob in "+d+".vision: GrpTRES gres/gpu: 3 → none",
	)
	if res, err := s.Apply(t.Context(), drift); err != nil || res.Applied != 2 {
		t.Fatalf("Apply(drift) = %+v, %v", res, err)
	}
	f.wantEmpty(s)

	// A membership removed, a user locked: their associations go.
	f.sql(`DELETE FROM memberships WHERE project_id = $1 AND user_id = $2`, nlp, carol)
	f.sql(`UPDATE users SET status = 'locked' WHERE id = $1`, bob)
	f.wantChanges(f.plan(s),
		"delete association carol in "+d+".nlp: carol is no longer an active member of project "+d+"/nlp",
		"delete association bob in "+d+".vision: bob is no longer an active member of project "+d+"/vision",
	)
	f.reconcile(s)
	if got := f.users(d + ".nlp"); len(got) != 1 || !sameLimits(got["alice"], slurmctl.Limits{GrpJobs: 1, GrpSubmitJobs: 2, MaxWall: 17 * time.Minute}) {
		t.Errorf("associations of %s.nlp = %+v; want alice alone", d, got)
	}
	if got := f.users(d + ".vision"); len(got) != 1 {
		t.Errorf("associations of %s.vision = %+v; want alice alone", d, got)
	}
	f.wantEmpty(s)

	// A deactivated project's account goes, with its associations.
	f.sql(`UPDATE projects SET active = false WHERE id = $1`, nlp)
	f.wantChanges(f.plan(s), "delete account "+d+".nlp: no active project "+d+"/nlp maps to it; removes the associations of alice")
	f.reconcile(s)
	accts = f.accounts()
	if _, ok := accts[d+".nlp"]; ok {
		t.Errorf("%s.nlp survived its project's deactivation", d)
	}
	if _, ok := accts[d+".vision"]; !ok {
		t.Errorf("%s.vision went with its sibling", d)
	}
	f.wantEmpty(s)

	// A deactivated domain takes its projects: children before parents.
	f.sql(`UPDATE domains SET active = false WHERE id = $1`, dom)
	f.wantChanges(f.plan(s),
		"delete account "+d+".vision: no active project "+d+"/vision maps to it; removes the associations of alice",
		"delete account "+d+": no active domain "+d+" maps to it",
	)
	f.reconcile(s)
	if got := f.accounts(); len(got) != 0 {
		t.Errorf("accounts left after the domain's deactivation: %v", slices.Collect(func(yield func(string) bool) {
			for k := range got {
				yield(k)
			}
		}))
	}
	f.wantEmpty(s)
}

// TestAccountSyncLeavesUnmanagedAccountsAlone checks that accounts of other
// organizations are reported, never changed, never deleted, and get nothing
// created beneath them.
func TestAccountSyncLeavesUnmanagedAccountsAlone(t *testing.T) {
	f := newSyncFixture(t)
	_, s := f.bridge(time.Hour)
	ctx := t.Context()
	other := "sgother-" + randomHex(3)
	x, y := f.prefix+"x", f.prefix+"y"
	// x is somebody else's account that happens to have a domain's name.
	foreign := slurmctl.Account{Name: x, Parent: "root", Description: "not ours", Organization: other, Limits: slurmctl.Limits{GrpJobs: 7}}
	// m is a leftover managed account with somebody else's account beneath
	// it, g a leftover managed account with nothing beneath.
	m, g := f.prefix+"m", f.prefix+"g"
	for _, a := range []slurmctl.Account{
		foreign,
		{Name: m, Parent: "root", Description: "slurmgate domain " + m, Organization: f.org},
		{Name: m + ".keep", Parent: m, Description: "not ours either", Organization: other},
		{Name: g, Parent: "root", Description: "slurmgate domain " + g, Organization: f.org},
	} {
		if err := f.slurm.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.slurm.CreateAssociation(ctx, slurmctl.Association{Account: x, User: "carol"}); err != nil {
		t.Fatal(err)
	}
	domX, domY := f.domain(x), f.domain(y)
	px := f.project(domX, "p")
	f.project(domY, "q")
	alice := f.user(domX, "alice")
	f.member(px, alice)
	f.sql(`INSERT INTO policies (scope, domain_id, max_concurrent_sessions) VALUES ('domain', $1, 3)`, domX)

	p := f.plan(s)
	f.wantChanges(p,
		"create account "+y+": domain "+y+" under root; no limits",
		"create account "+y+".q: project "+y+"/q under "+y+"; no limits",
		"delete account "+g+": no active domain "+g+" maps to it",
	)
	var conflicts []string
	for _, c := range p.Conflicts {
		conflicts = append(conflicts, c.Account)
		t.Logf("conflict: %s: %s", c.Account, c.Reason)
	}
	if want := []string{m, x, x + ".p"}; !slices.Equal(conflicts, want) {
		t.Errorf("conflicts on %v; want %v", conflicts, want)
	}

	_, res := f.reconcile(s)
	if res.Applied != 3 {
		t.Errorf("applied %d changes; want 3", res.Applied)
	}
	accts := f.accounts()
	if got := accts[x]; got.Description != foreign.Description || got.Organization != foreign.Organization || got.Limits.GrpJobs != 7 {
		t.Errorf("the foreign account changed: %+v", got)
	}
	if got := f.users(x); len(got) != 1 {
		t.Errorf("users of the foreign account = %v; want carol alone", got)
	}
	for _, name := range []string{m, m + ".keep", y, y + ".q"} {
		if _, ok := accts[name]; !ok {
			t.Errorf("account %s is missing", name)
		}
	}
	for _, name := range []string{x + ".p", g} {
		if _, ok := accts[name]; ok {
			t.Errorf("account %s exists", name)
		}
	}
	// Conflicts persist but leave nothing to do.
	if p := f.plan(s); !p.Empty() || len(p.Conflicts) != 3 {
		t.Errorf("second plan: %v, %d conflicts", changeLines(p), len(p.Conflicts))
	}
}

// TestAccountSyncFailureSkipsOnlyDependents makes one account's creation
// fail (a GPU type Slurm does not track) and checks that its children are
// skipped while an independent domain is synced in full.
func TestAccountSyncFailureSkipsOnlyDependents(t *testing.T) {
	f := newSyncFixture(t)
	_, s := f.bridge(time.Hour)
	a, b := f.prefix+"a", f.prefix+"b"
	domA, domB := f.domain(a), f.domain(b)
	pa, pb := f.project(domA, "p"), f.project(domB, "q")
	f.member(pa, f.user(domA, "alice"))
	f.member(pb, f.user(domB, "bob"))
	f.sql(`INSERT INTO policies (scope, domain_id, max_gpus) VALUES ('domain', $1, '{"nosuchgpu": 1}')`, domA)

	plan, res, err := s.Reconcile(t.Context())
	if err == nil {
		t.Fatal("Reconcile succeeded with a GPU type Slurm does not track")
	}
	t.Logf("Reconcile error (expected): %v", err)
	var failed []string
	for _, fl := range res.Failed {
		failed = append(failed, fl.Change.String())
		if fl.Err == nil {
			t.Errorf("failure without an error: %s", fl.Change)
		}
	}
	if want := []string{
		"create account " + a + ": domain " + a + " under root; GrpTRES gres/gpu:nosuchgpu=1",
		"create account " + a + ".p: project " + a + "/p under " + a + "; no limits",
		"create association alice in " + a + ".p: no limits",
	}; !slices.Equal(failed, want) {
		t.Errorf("failed:\n\t%s\nwant:\n\t%s", strings.Join(failed, "\n\t"), strings.Join(want, "\n\t"))
	}
	if !strings.Contains(res.Failed[1].Err.Error(), "skipped") {
		t.Errorf("the child's failure does not say it was skipped: %v", res.Failed[1].Err)
	}
	if res.Applied != 3 || len(plan.Changes) != 6 {
		t.Errorf("applied %d of %d changes; want 3 of 6", res.Applied, len(plan.Changes))
	}
	if st := s.Status(); st.Drift != 6 || st.Applied != 3 || st.Failed != 3 || st.Err == nil || st.At.IsZero() {
		t.Errorf("Status = %+v", st)
	}
	if got := f.users(b + ".q"); len(got) != 1 {
		t.Errorf("users of %s.q = %v; want bob", b, got)
	}
}

// TestAccountSyncRunCoalescesTriggers checks Run's triggers: many triggers
// while a run is in flight make exactly one more run, and a trigger reaches
// Slurm without waiting for the interval.
func TestAccountSyncRunCoalescesTriggers(t *testing.T) {
	f := newSyncFixture(t)
	_, s := f.bridge(time.Hour)
	f.domain(f.prefix + "r")

	// Hold the sync lock as another replica would, so that Run's first
	// run stays in flight until we let go. The key is accountsync.go's.
	conn, err := f.db.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	const lockClass = 0x53796e63
	if _, err := conn.Exec(t.Context(), `SELECT pg_advisory_lock($1, hashtext($2))`, lockClass, f.env.Name); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (runs: %d, status %+v)", what, f.runs.Load(), s.Status())
			}
		}
	}
	waitFor("the first run to wait for the lock", func() bool {
		var waiting int
		err := f.db.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
			WHERE l.locktype = 'advisory' AND l.classid = $1 AND l.objsubid = 2 AND NOT l.granted AND d.datname = current_database()`,
			lockClass).Scan(&waiting)
		return err == nil && waiting > 0
	})
	for range 10 {
		s.Trigger()
	}
	if _, err := conn.Exec(t.Context(), `SELECT pg_advisory_unlock($1, hashtext($2))`, lockClass, f.env.Name); err != nil {
		t.Fatal(err)
	}
	waitFor("two runs", func() bool { return f.runs.Load() >= 2 })
	time.Sleep(time.Second)
	if n := f.runs.Load(); n != 2 {
		t.Errorf("%d runs after ten triggers during the first; want 2", n)
	}
	if st := s.Status(); st.Err != nil || st.Drift != 0 {
		t.Errorf("status after the second run: %+v", st)
	}

	f.domain(f.prefix + "s")
	s.Trigger()
	waitFor("the triggered run to create the new domain", func() bool {
		_, ok := f.accounts()[f.prefix+"s"]
		return ok
	})
	if st := s.Status(); st.Drift != 1 || st.Applied != 1 {
		t.Errorf("status after the triggered run: %+v", st)
	}
}

// TestAccountSyncReplicasTakeTurns runs two gateways' syncs over one
// database at once: they must not write concurrently (slurmdbd can die of
// it), so one applies everything and the other finds nothing left. It also
// times a full sync of one domain, two projects and three users.
func TestAccountSyncReplicasTakeTurns(t *testing.T) {
	f := newSyncFixture(t)
	_, s1 := f.bridge(time.Hour)
	_, s2 := f.bridge(time.Hour)
	d := f.prefix + "t"
	dom := f.domain(d)
	p1, p2 := f.project(dom, "one"), f.project(dom, "two")
	alice, bob, carol := f.user(dom, "alice"), f.user(dom, "bob"), f.user(dom, "carol")
	f.member(p1, alice)
	f.member(p1, bob)
	f.member(p2, carol)
	f.member(p2, alice)
	f.sql(`INSERT INTO policies (scope, domain_id, max_cpus, max_gpus) VALUES ('domain', $1, 16, '{"": 4}')`, dom)
	f.sql(`INSERT INTO policies (scope, project_id, max_concurrent_sessions, max_session_lifetime_s) VALUES ('project', $1, 3, 3600)`, p1)
	f.sql(`INSERT INTO policies (scope, user_id, max_cpus) VALUES ('user', $1, 4)`, bob)

	start := time.Now()
	var wg sync.WaitGroup
	results := make([]bridge.SyncResult, 2)
	plans := make([]*bridge.SyncPlan, 2)
	for i, s := range []*bridge.AccountSync{s1, s2} {
		wg.Go(func() {
			var err error
			plans[i], results[i], err = s.Reconcile(t.Context())
			if err != nil {
				t.Errorf("replica %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if plans[0] == nil || plans[1] == nil {
		t.FailNow()
	}
	if n0, n1 := len(plans[0].Changes), len(plans[1].Changes); min(n0, n1) != 0 || max(n0, n1) != 7 {
		t.Errorf("replicas planned %d and %d changes; want 7 and 0", n0, n1)
	}
	if a := results[0].Applied + results[1].Applied; a != 7 {
		t.Errorf("replicas applied %d changes in all; want 7", a)
	}
	t.Logf("full sync of 1 domain, 2 projects, 4 memberships of 3 users (7 changes): %v", took.Round(time.Millisecond))

	start = time.Now()
	f.wantEmpty(s1)
	t.Logf("plan of the synced state: %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if _, res, err := s2.Reconcile(t.Context()); err != nil || res.Applied != 0 {
		t.Errorf("no-op Reconcile: %+v, %v", res, err)
	}
	t.Logf("no-op Reconcile: %v", time.Since(start).Round(time.Millisecond))
	if got := fmt.Sprint(len(f.users(d+".one")), len(f.users(d+".two"))); got != "2 2" {
		t.Errorf("users per project = %s; want 2 2", got)
	}
}
