package bridge

// The Slurm account sync: a level-triggered reconcile, in the manner of a
// Kubernetes controller, from the organisations and policies in PostgreSQL
// to Slurm's accounts and associations.
//
//	domain acme            → account acme, parent root
//	project acme/vision    → account acme.vision, parent acme
//	alice in acme/vision   → association (user alice, account acme.vision)
//
// Every run reads the whole desired state (one snapshot of the database) and
// the whole observed state (slurmdbd, through slurmrestd), computes a plan and
// applies it. Nothing depends on having seen an event, so a missed trigger,
// a crash half-way or a change made by hand in sacctmgr is repaired by the
// next run.
//
// Ownership is the Organization field: an account is the sync's to change or
// delete only when its Organization is Config.ManagedOrganization. An
// account with a colliding name and another organization is reported as a
// conflict and never touched, nor is anything created beneath it.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/slurmctl"
)

// SyncKind is what one change of a [SyncPlan] does.
type SyncKind string

// The kinds of change. A plan orders them for safety: account creations and
// updates parents first, then association creations and updates, then
// association deletions, then account deletions children first.
const (
	SyncCreateAccount     SyncKind = "create account"
	SyncUpdateAccount     SyncKind = "update account"
	SyncCreateAssociation SyncKind = "create association"
	SyncUpdateAssociation SyncKind = "update association"
	SyncDeleteAssociation SyncKind = "delete association"
	SyncDeleteAccount     SyncKind = "delete account"
)

// SyncChange is one step that brings Slurm closer to the database.
type SyncChange struct {
	Kind    SyncKind `json:"kind"`
	Account string   `json:"account"`
	// User is set for association changes.
	User string `json:"user,omitempty"`
	// Summary says what changes, for people: for an update the field-level
	// differences ("GrpTRES gres/gpu: 4 → 2; MaxWall: none → 2h").
	Summary string `json:"summary"`

	key   string   // identifies the target: "account acme", "association acme.vision/alice"
	needs []string // keys of changes that must succeed first
	want  slurmctl.Account
	assoc slurmctl.Association
}

// String renders the change as one line for logs and the CLI.
func (c SyncChange) String() string {
	target := c.Account
	if c.User != "" {
		target = c.User + " in " + c.Account
	}
	if c.Summary == "" {
		return string(c.Kind) + " " + target
	}
	return string(c.Kind) + " " + target + ": " + c.Summary
}

// SyncConflict is something the sync will not do by itself and a person has
// to resolve, such as an account of the same name that Slurmgate does not
// own. Conflicts are reported by every run until resolved.
type SyncConflict struct {
	Account string `json:"account"`
	Reason  string `json:"reason"`
}

// SyncPlan is the difference between the database and Slurm, as changes in
// the order that applies them safely: accounts parents first, then
// associations, then account deletions children first.
type SyncPlan struct {
	Changes   []SyncChange   `json:"changes"`
	Conflicts []SyncConflict `json:"conflicts,omitempty"`
	// owners maps each account on the cluster to its organization, as read
	// for this plan; Reconcile applies against it instead of reading again.
	owners map[string]string
}

// Empty reports whether Slurm already matches the database. Conflicts do not
// count: there is nothing the sync would do about them.
func (p *SyncPlan) Empty() bool { return p == nil || len(p.Changes) == 0 }

// SyncResult is what applying a plan achieved.
type SyncResult struct {
	Applied int
	// Failed lists the changes that did not happen, in plan order, including
	// those skipped because a change they depend on failed.
	Failed []SyncFailure
}

// SyncFailure is one change that failed, with why.
type SyncFailure struct {
	Change SyncChange
	Err    error
}

// SyncStatus is the outcome of the latest run, for /metrics and the admin API.
type SyncStatus struct {
	// At is when the run started; zero before the first run.
	At   time.Time
	Took time.Duration
	// Drift is the number of changes the run's plan held.
	Drift     int
	Applied   int
	Failed    int
	Conflicts int
	// Err is why the run failed or which changes did, nil when all went well.
	Err error
}

// AccountSync keeps Slurm's accounts and associations in step with the
// organisations and policies in the database. It is safe for concurrent use;
// runs, in this process and across gateway replicas sharing the database,
// take turns (see lock).
type AccountSync struct {
	b   *Bridge
	org string // ManagedOrganization as Slurm stores it (lower-cased)

	mu   sync.Mutex
	last SyncStatus
}

// NewAccountSync returns the account sync of b. Call [AccountSync.Run] once
// to keep Slurm in step, or [AccountSync.Reconcile] for a single pass.
func (b *Bridge) NewAccountSync() *AccountSync {
	// sacctmgr lower-cases descriptions and organizations when it stores
	// them; comparing against the lower-cased form keeps a configured
	// "Slurmgate" from looking like somebody else's account.
	return &AccountSync{b: b, org: strings.ToLower(b.cfg.ManagedOrganization)}
}

// Trigger asks for a run soon. It never blocks, and triggers that arrive
// while a run is in flight coalesce into one more run. Changes made through
// the Bridge trigger by themselves; this is for changes it cannot see, such
// as an administrator's request to resynchronise.
func (s *AccountSync) Trigger() { s.b.notifyOrgChange() }

// Status returns the outcome of the latest run.
func (s *AccountSync) Status() SyncStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// syncRetryMin is the first retry delay after a failed run; it doubles with
// each failure in a row, up to Config.SyncInterval.
const syncRetryMin = 5 * time.Second

// Run reconciles at once, then every Config.SyncInterval and whenever the
// organisations change or [AccountSync.Trigger] is called, until ctx is done.
// A failed run is retried sooner, backing off from 5 s to the interval.
func (s *AccountSync) Run(ctx context.Context) {
	interval := s.b.cfg.SyncInterval
	timer := time.NewTimer(0)
	defer timer.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.b.orgChanged:
		}
		_, _, err := s.Reconcile(ctx)
		if ctx.Err() != nil {
			return
		}
		next := interval
		if err != nil {
			failures++
			next = min(interval, syncRetryMin<<min(failures-1, 16))
		} else {
			failures = 0
		}
		timer.Reset(next)
	}
}

// Reconcile plans and applies in one pass, holding the sync lock throughout,
// logs the outcome and records it for [AccountSync.Status].
func (s *AccountSync) Reconcile(ctx context.Context) (*SyncPlan, SyncResult, error) {
	start := s.b.now()
	var (
		plan *SyncPlan
		res  SyncResult
	)
	unlock, err := s.lock(ctx)
	if err == nil {
		plan, err = s.Plan(ctx)
		if err == nil {
			res, err = s.apply(ctx, plan, maps.Clone(plan.owners))
		}
		unlock()
	}
	took := s.b.now().Sub(start)
	st := SyncStatus{At: start, Took: took, Applied: res.Applied, Failed: len(res.Failed), Err: err}
	if plan != nil {
		st.Drift, st.Conflicts = len(plan.Changes), len(plan.Conflicts)
	}
	s.mu.Lock()
	s.last = st
	s.mu.Unlock()

	attrs := []any{"drift", st.Drift, "applied", st.Applied, "failed", st.Failed, "conflicts", st.Conflicts, "took", took.Round(time.Millisecond)}
	switch {
	case err != nil && ctx.Err() != nil:
		s.b.log.Info("slurm account sync interrupted", append(attrs, "err", err)...)
	case err != nil:
		s.b.log.Error("slurm account sync", append(attrs, "err", err)...)
	case st.Drift > 0 || st.Conflicts > 0:
		s.b.log.Info("slurm account sync", attrs...)
	default:
		s.b.log.Debug("slurm account sync", attrs...)
	}
	if plan != nil {
		for _, c := range plan.Conflicts {
			s.b.log.Warn("slurm account sync conflict", "account", c.Account, "reason", c.Reason)
		}
	}
	return plan, res, err
}

// Plan compares the database with Slurm and returns the changes that would
// make Slurm match, without changing anything. It reads the database once
// and slurmrestd with three requests, whatever the number of accounts.
func (s *AccountSync) Plan(ctx context.Context) (*SyncPlan, error) {
	var (
		wg                         sync.WaitGroup
		want                       desiredState
		accts                      []slurmctl.Account
		assocs                     []slurmctl.Association
		wantErr, acctErr, assocErr error
	)
	wg.Go(func() { want, wantErr = s.desired(ctx) })
	wg.Go(func() { accts, acctErr = s.b.slurm.Accounts(ctx) })
	wg.Go(func() { assocs, assocErr = s.b.slurm.Associations(ctx, slurmctl.AssociationFilter{}) })
	wg.Wait()
	if err := errors.Join(wantErr, acctErr, assocErr); err != nil {
		return nil, fmt.Errorf("slurm account sync: %w", err)
	}
	return s.diff(want, accts, assocs), nil
}

// EnsureFor creates, now, what Slurm lacks for user to submit under account
// (one of Slurmgate's project accounts): the account and its parents, and
// the user's association, as the next full run would. It never deletes or
// updates anything, so it is safe to call from a submit that Slurm refused
// for its account. It returns how many changes it applied.
func (s *AccountSync) EnsureFor(ctx context.Context, account, user string) (int, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return 0, err
	}
	defer unlock()
	plan, err := s.Plan(ctx)
	if err != nil {
		return 0, err
	}
	sub := &SyncPlan{owners: plan.owners}
	for _, c := range plan.Changes {
		switch {
		case c.Kind == SyncCreateAccount && (c.Account == account || strings.HasPrefix(account, c.Account+".")),
			c.Kind == SyncCreateAssociation && c.Account == account && c.User == user:
			sub.Changes = append(sub.Changes, c)
		}
	}
	if sub.Empty() {
		return 0, nil
	}
	res, err := s.apply(ctx, sub, maps.Clone(plan.owners))
	return res.Applied, err
}

// Apply carries out plan's changes in order. A failed change does not stop
// the others; only those that depend on it (the children of an account that
// could not be created, the parent of one that could not be deleted) are
// skipped. Apply is idempotent: changes already made are not an error. It
// re-reads which accounts are managed before writing, because a plan may
// have been shown to someone minutes ago and ownership may have changed.
// The returned error joins the failures, nil when every change succeeded.
func (s *AccountSync) Apply(ctx context.Context, plan *SyncPlan) (SyncResult, error) {
	if plan.Empty() {
		return SyncResult{}, nil
	}
	unlock, err := s.lock(ctx)
	if err != nil {
		return SyncResult{}, err
	}
	defer unlock()
	accts, err := s.b.slurm.Accounts(ctx)
	if err != nil {
		return SyncResult{}, fmt.Errorf("slurm account sync: %w", err)
	}
	return s.apply(ctx, plan, ownersOf(accts))
}

// syncLockClass is the first key of the advisory lock that serialises
// account writes; the second is the cluster name's hash.
const syncLockClass int32 = 0x53796e63 // "Sync"

// lock makes runs take turns, in this process and across replicas sharing
// the database. This is not only tidiness: concurrent sacctmgr writes make
// slurmdbd 22.05 deadlock in MariaDB, and after ten retries it exits
// ("unable to resolve deadlock"), taking accounting down for the cluster.
func (s *AccountSync) lock(ctx context.Context) (unlock func(), err error) {
	conn, err := s.b.db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("slurm account sync: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, syncLockClass, s.b.cfg.Cluster); err != nil {
		conn.Release()
		return nil, fmt.Errorf("slurm account sync: waiting for the sync lock: %w", err)
	}
	return func() {
		_, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext($2))`, syncLockClass, s.b.cfg.Cluster)
		if err != nil {
			// A connection that may still hold the lock must not go back
			// to the pool; closing it ends the session and the lock.
			conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}, nil
}

// --- desired state ------------------------------------------------------------

// desiredState is what the database asks of Slurm.
type desiredState struct {
	accounts []desiredAccount       // domains first, then projects, each sorted by name
	assocs   []slurmctl.Association // sorted by account, then user
	problems []SyncConflict         // policies that cannot be expressed in Slurm
}

type desiredAccount struct {
	acct slurmctl.Account
	// what names the organisation: "domain acme", "project acme/vision".
	what string
}

type (
	domainRow struct {
		ID   int64
		Name string
	}
	projectRow struct {
		ID           int64
		Domain, Name string
	}
	memberRow struct {
		ProjectID, UserID int64
		Username          string
	}
)

// desired reads domains, projects, memberships and their policies in one
// read-only snapshot, so a run never sees half of an administrator's change.
func (s *AccountSync) desired(ctx context.Context) (desiredState, error) {
	var (
		policies []Policy
		domains  []domainRow
		projects []projectRow
		members  []memberRow
	)
	err := pgx.BeginTxFunc(ctx, s.b.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		rows, _ := tx.Query(ctx, `SELECT `+policyCols+` FROM policies`)
		if policies, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (Policy, error) { return scanPolicy(r) }); err != nil {
			return fmt.Errorf("reading policies: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT id, name FROM domains WHERE active ORDER BY name`)
		if domains, err = pgx.CollectRows(rows, pgx.RowToStructByPos[domainRow]); err != nil {
			return fmt.Errorf("reading domains: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT p.id, d.name, p.name FROM projects p JOIN domains d ON d.id = p.domain_id
			WHERE p.active AND d.active ORDER BY d.name, p.name`)
		if projects, err = pgx.CollectRows(rows, pgx.RowToStructByPos[projectRow]); err != nil {
			return fmt.Errorf("reading projects: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT m.project_id, m.user_id, u.username FROM memberships m
			JOIN users u ON u.id = m.user_id WHERE u.status = 'active'`)
		if members, err = pgx.CollectRows(rows, pgx.RowToStructByPos[memberRow]); err != nil {
			return fmt.Errorf("reading memberships: %w", err)
		}
		return nil
	})
	if err != nil {
		return desiredState{}, fmt.Errorf("reading the organisations: %w", err)
	}

	type target struct {
		scope string
		id    int64
	}
	pol := map[target]Policy{}
	for _, p := range policies {
		pol[target{p.Scope, p.TargetID}] = p
	}
	var st desiredState
	limitsOf := func(scope string, id int64, account string) slurmctl.Limits {
		p, ok := pol[target{scope, id}]
		if !ok {
			return slurmctl.Limits{}
		}
		l, problems := policyLimits(p)
		for _, msg := range problems {
			st.problems = append(st.problems, SyncConflict{Account: account, Reason: scope + " policy: " + msg})
		}
		return l
	}

	for _, d := range domains {
		st.accounts = append(st.accounts, desiredAccount{what: "domain " + d.Name, acct: slurmctl.Account{
			Name: d.Name, Parent: "root", Description: "slurmgate domain " + d.Name, Organization: s.org,
			Limits: limitsOf("domain", d.ID, d.Name),
		}})
	}
	byID := map[int64]string{} // project id → account
	for _, p := range projects {
		name, path := p.Domain+"."+p.Name, p.Domain+"/"+p.Name
		byID[p.ID] = name
		st.accounts = append(st.accounts, desiredAccount{what: "project " + path, acct: slurmctl.Account{
			Name: name, Parent: p.Domain, Description: "slurmgate project " + path, Organization: s.org,
			Limits: limitsOf("project", p.ID, name),
		}})
	}
	// A user's policy bounds the user across all their projects, but Slurm
	// can only bound an association: the user in one project's account. So
	// the policy is repeated on each of the user's associations, and someone
	// in three projects could use three times their limit before Slurm steps
	// in. Admission control, which counts all of a user's live sessions in
	// one transaction, is the exact check; these limits are Slurm's second
	// line of defence, against gateway bugs and jobs submitted around the
	// gateway (sbatch -A by hand).
	for _, m := range members {
		account, ok := byID[m.ProjectID]
		if !ok {
			continue // the project or its domain is inactive
		}
		st.assocs = append(st.assocs, slurmctl.Association{
			Cluster: s.b.cfg.Cluster, Account: account, User: m.Username,
			Limits: limitsOf("user", m.UserID, account),
		})
	}
	slices.SortFunc(st.assocs, func(a, b slurmctl.Association) int {
		return cmpAssoc(a.Account, a.User, b.Account, b.User)
	})
	return st, nil
}

// gresType is what Slurm accepts as a GPU type in a TRES name.
var gresType = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// policyLimits maps a policy onto Slurm association limits. It returns the
// parts it had to leave out, with why.
//
//   - max_cpus, max_memory_mb and max_gpus become GrpTRES cpu, mem (MiB),
//     gres/gpu (the "" key: GPUs of any type) and gres/gpu:<type>. A limit of
//     0 is kept: GrpTRES gres/gpu=0 is how Slurm says "no GPUs". Typed keys
//     only work where slurm.conf's AccountingStorageTRES lists
//     gres/gpu:<type>; elsewhere sacctmgr refuses them and the change fails
//     visibly, run after run, rather than being dropped in silence.
//   - max_concurrent_sessions becomes GrpJobs (running jobs). A session is one
//     job, so this is the same count.
//   - GrpSubmitJobs bounds running plus pending jobs, so it is set to
//     max_concurrent_sessions + max_pending_sessions only when both are set.
//     With only the concurrent limit, pending sessions are unlimited; with
//     only the pending limit, running sessions are. Either way Slurm has no
//     limit on pending jobs alone, so GrpSubmitJobs stays unset and admission
//     control enforces the pending limit by itself.
//   - 0 sessions cannot be expressed: slurmctl.Limits reads a zero count as
//     "no limit" (Slurm's GrpJobs=0 would hold every job), so such a policy
//     is left to admission control, which refuses every session anyway.
//   - max_session_lifetime_s becomes MaxWall, rounded up to whole minutes as
//     Slurm keeps it, at every level, the domain's too (see tighterWall).
func policyLimits(p Policy) (slurmctl.Limits, []string) {
	var l slurmctl.Limits
	var problems []string
	tres := slurmctl.TRES{}
	if p.MaxCPUs != nil {
		tres["cpu"] = int64(*p.MaxCPUs)
	}
	if p.MaxMemoryMB != nil {
		tres["mem"] = *p.MaxMemoryMB
	}
	for _, typ := range slices.Sorted(maps.Keys(p.MaxGPUs)) {
		n := p.MaxGPUs[typ]
		switch {
		case n < 0:
			problems = append(problems, fmt.Sprintf("max_gpus[%q] = %d is negative; left out of Slurm's limits", typ, n))
		case typ == "":
			tres["gres/gpu"] = int64(n)
		case !gresType.MatchString(typ):
			problems = append(problems, fmt.Sprintf("max_gpus key %q is not a GPU type Slurm can name; left out of Slurm's limits", typ))
		default:
			tres["gres/gpu:"+typ] = int64(n)
		}
	}
	if len(tres) > 0 {
		l.GrpTRES = tres
	}
	if p.MaxConcurrentSessions != nil {
		l.GrpJobs = *p.MaxConcurrentSessions
		if p.MaxPendingSessions != nil {
			l.GrpSubmitJobs = *p.MaxConcurrentSessions + *p.MaxPendingSessions
		}
	}
	if p.MaxSessionLifetimeS != nil && *p.MaxSessionLifetimeS > 0 {
		l.MaxWall = time.Duration((*p.MaxSessionLifetimeS+59)/60) * time.Minute
	}
	return l, problems
}

// tighterWall returns the tighter of two MaxWall limits, zero meaning none.
//
// Slurm's per-job limits (MaxWall, MaxJobs, MaxSubmitJobs, MaxTRESPerJob)
// are not summed up the tree like Grp limits: an association without its own
// takes its parent's, and slurmdbd reports the inherited value as the
// association's own. So a project's MaxWall is the tighter of its and its
// domain's lifetimes, and a user's association the tighter of all three.
// That is the policy's meaning (the tightest level wins, where Slurm would
// let a child's looser limit override its parent's), and it is exactly what
// slurmdbd will report back, so a second plan finds no drift.
func tighterWall(own, parent time.Duration) time.Duration {
	if own == 0 || (parent != 0 && parent < own) {
		return parent
	}
	return own
}

// inheritJobLimits fills the per-job limits that Slurmgate does not set
// (MaxJobs, MaxSubmitJobs, MaxTRESPerJob) and the MaxWall it leaves open
// from parent, as slurmdbd reports them (see tighterWall). Without it, a
// site's MaxJobs on root would show as drift on every account, forever.
func inheritJobLimits(l, parent slurmctl.Limits) slurmctl.Limits {
	if l.MaxJobs == 0 {
		l.MaxJobs = parent.MaxJobs
	}
	if l.MaxSubmitJobs == 0 {
		l.MaxSubmitJobs = parent.MaxSubmitJobs
	}
	if len(l.MaxTRESPerJob) == 0 && len(parent.MaxTRESPerJob) > 0 {
		l.MaxTRESPerJob = maps.Clone(parent.MaxTRESPerJob)
	}
	l.MaxWall = tighterWall(l.MaxWall, parent.MaxWall)
	return l
}

// --- plan -----------------------------------------------------------------------

func accountKey(name string) string        { return "account " + name }
func assocKey(account, user string) string { return "association " + account + "/" + user }

func cmpAssoc(acctA, userA, acctB, userB string) int {
	if c := strings.Compare(acctA, acctB); c != 0 {
		return c
	}
	return strings.Compare(userA, userB)
}

func ownersOf(accts []slurmctl.Account) map[string]string {
	owners := make(map[string]string, len(accts))
	for _, a := range accts {
		owners[a.Name] = a.Organization
	}
	return owners
}

// diff computes the plan from the desired and observed states.
func (s *AccountSync) diff(want desiredState, accts []slurmctl.Account, assocs []slurmctl.Association) *SyncPlan {
	plan := &SyncPlan{owners: ownersOf(accts), Conflicts: want.problems}
	observed := map[string]slurmctl.Account{}
	children := map[string][]string{}
	for _, a := range accts {
		observed[a.Name] = a
		if a.Parent != "" {
			children[a.Parent] = append(children[a.Parent], a.Name)
		}
	}
	managed := func(name string) bool {
		a, ok := observed[name]
		return ok && a.Organization == s.org
	}
	// User associations by account; per-partition ones only count for
	// deletion, since the sync never makes them.
	obsAssoc := map[string]map[string]slurmctl.Association{}
	obsUsers := map[string]map[string]bool{}
	for _, a := range assocs {
		if a.User == "" {
			continue
		}
		if obsUsers[a.Account] == nil {
			obsUsers[a.Account], obsAssoc[a.Account] = map[string]bool{}, map[string]slurmctl.Association{}
		}
		obsUsers[a.Account][a.User] = true
		if a.Partition == "" {
			obsAssoc[a.Account][a.User] = a
		}
	}

	// Accounts, parents before children (want.accounts lists domains first).
	// A change needs the creation of its parent account, if that is in the
	// plan: when it fails, the child cannot succeed.
	wanted := map[string]bool{}
	blocked := map[string]bool{}  // desired, but not ours to touch
	creating := map[string]bool{} // created by this plan
	needsCreated := func(account string) []string {
		if creating[account] {
			return []string{accountKey(account)}
		}
		return nil
	}
	limits := map[string]slurmctl.Limits{"root": observed["root"].Limits}
	for _, d := range want.accounts {
		a := d.acct
		wanted[a.Name] = true
		a.Limits = inheritJobLimits(a.Limits, limits[a.Parent])
		limits[a.Name] = a.Limits
		members := len(obsUsers[a.Name])
		switch cur, exists := observed[a.Name]; {
		case blocked[a.Parent]:
			blocked[a.Name] = true
			plan.Conflicts = append(plan.Conflicts, SyncConflict{Account: a.Name, Reason: fmt.Sprintf(
				"%s not synced: its parent account %s is not managed by Slurmgate", d.what, a.Parent)})
		case exists && cur.Organization != s.org:
			blocked[a.Name] = true
			plan.Conflicts = append(plan.Conflicts, SyncConflict{Account: a.Name, Reason: fmt.Sprintf(
				"%s not synced: Slurm account %s belongs to organization %q, not %q; left untouched (%d user associations)",
				d.what, a.Name, cur.Organization, s.org, members)})
		case !exists:
			creating[a.Name] = true
			plan.Changes = append(plan.Changes, SyncChange{Kind: SyncCreateAccount, Account: a.Name, key: accountKey(a.Name),
				needs: needsCreated(a.Parent), want: a,
				Summary: strings.Join(append([]string{d.what + " under " + a.Parent}, describeLimits(a.Limits)...), "; ")})
		default:
			if diffs := diffAccount(cur, a); len(diffs) > 0 {
				plan.Changes = append(plan.Changes, SyncChange{Kind: SyncUpdateAccount, Account: a.Name, key: accountKey(a.Name),
					needs: needsCreated(a.Parent), want: a, Summary: strings.Join(diffs, "; ")})
			}
		}
	}

	// Associations of desired accounts.
	wantUsers := map[string]map[string]bool{}
	for _, a := range want.assocs {
		if blocked[a.Account] {
			continue // reported with the account
		}
		if wantUsers[a.Account] == nil {
			wantUsers[a.Account] = map[string]bool{}
		}
		wantUsers[a.Account][a.User] = true
		a.Limits = inheritJobLimits(a.Limits, limits[a.Account])
		key, needs := assocKey(a.Account, a.User), needsCreated(a.Account)
		cur, exists := obsAssoc[a.Account][a.User]
		switch {
		case !exists:
			plan.Changes = append(plan.Changes, SyncChange{Kind: SyncCreateAssociation, Account: a.Account, User: a.User, key: key, needs: needs, assoc: a,
				Summary: strings.Join(describeLimits(a.Limits), "; ")})
		default:
			if diffs := diffLimits(cur.Limits, a.Limits); len(diffs) > 0 {
				plan.Changes = append(plan.Changes, SyncChange{Kind: SyncUpdateAssociation, Account: a.Account, User: a.User, key: key, needs: needs, assoc: a,
					Summary: strings.Join(diffs, "; ")})
			}
		}
	}

	// Managed accounts nobody asks for any more. Deleting an account
	// deletes its whole subtree in slurmdbd, so one with somebody else's
	// account beneath it (or a wanted one the sync may not move out) is
	// kept and reported instead.
	var gone []string
	for _, a := range accts {
		if a.Organization == s.org && !wanted[a.Name] {
			gone = append(gone, a.Name)
		}
	}
	depth := func(name string) int {
		n := 0
		for seen := map[string]bool{}; name != "" && name != "root" && !seen[name]; n++ {
			seen[name] = true
			name = observed[name].Parent
		}
		return n
	}
	deletable := map[string]bool{}
	var deletes []SyncChange
	for _, name := range gone {
		subtree := descendants(name, children)
		if i := slices.IndexFunc(subtree, func(n string) bool { return !managed(n) || blocked[n] }); i >= 0 {
			plan.Conflicts = append(plan.Conflicts, SyncConflict{Account: name, Reason: fmt.Sprintf(
				"account %s is no longer wanted but is kept: deleting it would also delete %s, which is not Slurmgate's to delete", name, subtree[i])})
			continue
		}
		deletable[name] = true
		// It waits for every change to the accounts beneath it: a child
		// still to be deleted, a desired account still to be moved out.
		var needs []string
		for _, n := range subtree {
			needs = append(needs, accountKey(n))
		}
		summary := "no active " + describeAccountName(name) + " maps to it"
		if users := slices.Sorted(maps.Keys(obsUsers[name])); len(users) > 0 {
			summary += "; removes the associations of " + strings.Join(users, ", ")
		}
		deletes = append(deletes, SyncChange{Kind: SyncDeleteAccount, Account: name, key: accountKey(name), needs: needs, Summary: summary})
	}

	// Associations under managed accounts that are not wanted, unless the
	// deletion of their account takes them away anyway.
	var assocDeletes []SyncChange
	for acct, users := range obsUsers {
		if !managed(acct) || blocked[acct] || deletable[acct] {
			continue
		}
		for u := range users {
			if wantUsers[acct][u] {
				continue
			}
			summary := u + " is no longer an active member of " + describeAccountName(acct)
			assocDeletes = append(assocDeletes, SyncChange{Kind: SyncDeleteAssociation, Account: acct, User: u, key: assocKey(acct, u), Summary: summary})
		}
	}
	slices.SortFunc(assocDeletes, func(a, b SyncChange) int { return cmpAssoc(a.Account, a.User, b.Account, b.User) })
	slices.SortFunc(deletes, func(a, b SyncChange) int {
		if da, db := depth(a.Account), depth(b.Account); da != db {
			return db - da // children first
		}
		return strings.Compare(a.Account, b.Account)
	})
	// Account creates and updates come out of the loop above parents first;
	// associations were appended after them in (account, user) order.
	plan.Changes = append(append(plan.Changes, assocDeletes...), deletes...)
	slices.SortStableFunc(plan.Conflicts, func(a, b SyncConflict) int { return strings.Compare(a.Account, b.Account) })
	return plan
}

// descendants lists the accounts below name, depth first.
func descendants(name string, children map[string][]string) []string {
	var out []string
	seen := map[string]bool{name: true}
	var walk func(string)
	walk = func(n string) {
		for _, c := range slices.Sorted(slices.Values(children[n])) {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
				walk(c)
			}
		}
	}
	walk(name)
	return out
}

// describeAccountName names the organisation a managed account stands for.
func describeAccountName(name string) string {
	if d, p, ok := strings.Cut(name, "."); ok {
		return "project " + d + "/" + p
	}
	return "domain " + name
}

// diffAccount lists the differences that UpdateAccount would remove.
func diffAccount(cur, want slurmctl.Account) []string {
	var out []string
	if cur.Parent != want.Parent {
		out = append(out, fmt.Sprintf("Parent: %s → %s", cur.Parent, want.Parent))
	}
	if cur.Description != want.Description {
		out = append(out, fmt.Sprintf("Description: %q → %q", cur.Description, want.Description))
	}
	return append(out, diffLimits(cur.Limits, want.Limits)...)
}

// diffLimits lists field-level differences, one entry per TRES key.
func diffLimits(cur, want slurmctl.Limits) []string {
	var out []string
	out = append(out, diffTRES("GrpTRES", cur.GrpTRES, want.GrpTRES)...)
	for _, f := range []struct {
		name      string
		cur, want int
	}{
		{"GrpJobs", cur.GrpJobs, want.GrpJobs},
		{"GrpSubmitJobs", cur.GrpSubmitJobs, want.GrpSubmitJobs},
		{"MaxJobs", cur.MaxJobs, want.MaxJobs},
		{"MaxSubmitJobs", cur.MaxSubmitJobs, want.MaxSubmitJobs},
	} {
		if f.cur != f.want {
			out = append(out, fmt.Sprintf("%s: %s → %s", f.name, limitCount(f.cur), limitCount(f.want)))
		}
	}
	out = append(out, diffTRES("MaxTRESPerJob", cur.MaxTRESPerJob, want.MaxTRESPerJob)...)
	if cur.MaxWall != want.MaxWall {
		out = append(out, fmt.Sprintf("MaxWall: %s → %s", wall(cur.MaxWall), wall(want.MaxWall)))
	}
	return out
}

func diffTRES(field string, cur, want slurmctl.TRES) []string {
	var out []string
	keys := slices.Sorted(maps.Keys(maps.Collect(func(yield func(string, bool) bool) {
		for k := range cur {
			yield(k, true)
		}
		for k := range want {
			yield(k, true)
		}
	})))
	for _, k := range keys {
		c, inCur := cur[k]
		w, inWant := want[k]
		if inCur != inWant || c != w {
			out = append(out, fmt.Sprintf("%s %s: %s → %s", field, k, tresCount(c, inCur), tresCount(w, inWant)))
		}
	}
	return out
}

// describeLimits lists the limits that are set, for a create's summary.
func describeLimits(l slurmctl.Limits) []string {
	var out []string
	if len(l.GrpTRES) > 0 {
		out = append(out, "GrpTRES "+l.GrpTRES.String())
	}
	for _, f := range []struct {
		name string
		n    int
	}{{"GrpJobs", l.GrpJobs}, {"GrpSubmitJobs", l.GrpSubmitJobs}, {"MaxJobs", l.MaxJobs}, {"MaxSubmitJobs", l.MaxSubmitJobs}} {
		if f.n != 0 {
			out = append(out, fmt.Sprintf("%s %d", f.name, f.n))
		}
	}
	if len(l.MaxTRESPerJob) > 0 {
		out = append(out, "MaxTRESPerJob "+l.MaxTRESPerJob.String())
	}
	if l.MaxWall != 0 {
		out = append(out, "MaxWall "+wall(l.MaxWall))
	}
	if len(out) == 0 {
		out = append(out, "no limits")
	}
	return out
}

func limitCount(n int) string {
	if n == 0 {
		return "none"
	}
	return strconv.Itoa(n)
}

func tresCount(n int64, set bool) string {
	if !set {
		return "none"
	}
	return strconv.FormatInt(n, 10)
}

// wall renders a MaxWall the way people say it: "none", "90m", "2h", "1h30m".
func wall(d time.Duration) string {
	switch {
	case d == 0:
		return "none"
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
}

// --- apply ----------------------------------------------------------------------

// apply runs plan's changes one at a time, never concurrently (see lock),
// against owners: the organization of every account on the cluster, kept up
// to date as accounts are created and deleted.
func (s *AccountSync) apply(ctx context.Context, plan *SyncPlan, owners map[string]string) (SyncResult, error) {
	var res SyncResult
	var errs []error
	failed := map[string]bool{}
	for i, c := range plan.Changes {
		if err := ctx.Err(); err != nil {
			for _, rest := range plan.Changes[i:] {
				res.Failed = append(res.Failed, SyncFailure{Change: rest, Err: err})
			}
			errs = append(errs, fmt.Errorf("%d changes not applied: %w", len(plan.Changes)-i, err))
			break
		}
		var err error
		if dep := slices.IndexFunc(c.needs, func(k string) bool { return failed[k] }); dep >= 0 {
			err = fmt.Errorf("skipped: %s failed", c.needs[dep])
		} else {
			err = s.applyOne(ctx, c, owners)
		}
		if err != nil {
			failed[c.key] = true
			res.Failed = append(res.Failed, SyncFailure{Change: c, Err: err})
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
			s.b.log.Warn("slurm account sync: change failed", "change", c.String(), "err", err)
			continue
		}
		res.Applied++
		s.b.log.Info("slurm account sync: applied", "change", c.String())
	}
	return res, errors.Join(errs...)
}

// applyOne makes one change, treating "already done" as done, and refusing
// to touch an account that is not, or no longer, managed by Slurmgate.
func (s *AccountSync) applyOne(ctx context.Context, c SyncChange, owners map[string]string) error {
	slurm := s.b.slurm
	org, exists := owners[c.Account]
	if exists && org != s.org {
		return conflict("account %s belongs to organization %q, not %q; left untouched", c.Account, org, s.org)
	}
	switch c.Kind {
	case SyncCreateAccount:
		var err error
		if exists {
			err = slurm.UpdateAccount(ctx, c.want) // made since the plan: converge it
		} else {
			err = slurm.CreateAccount(ctx, c.want)
		}
		if err == nil {
			owners[c.Account] = s.org
		}
		return err
	case SyncUpdateAccount:
		if !exists {
			return notFound("Slurm account", c.Account+" (deleted since the plan; the next run creates it)")
		}
		return slurm.UpdateAccount(ctx, c.want)
	case SyncDeleteAccount:
		if !exists {
			return nil
		}
		err := slurm.DeleteAccount(ctx, c.Account)
		if err == nil || errors.Is(err, slurmctl.ErrNotFound) {
			delete(owners, c.Account)
			return nil
		}
		return err
	case SyncCreateAssociation:
		if !exists {
			return notFound("Slurm account", c.Account)
		}
		err := slurm.CreateAssociation(ctx, c.assoc)
		if errors.Is(err, slurmctl.ErrAlreadyExists) {
			err = slurm.UpdateAssociation(ctx, c.assoc) // made since the plan: converge it
		}
		return err
	case SyncUpdateAssociation:
		if !exists {
			return notFound("Slurm account", c.Account)
		}
		err := slurm.UpdateAssociation(ctx, c.assoc)
		if errors.Is(err, slurmctl.ErrNotFound) {
			err = slurm.CreateAssociation(ctx, c.assoc) // deleted since the plan
		}
		return err
	case SyncDeleteAssociation:
		if !exists {
			return nil // went with its account
		}
		err := slurm.DeleteAssociation(ctx, c.Account, c.User)
		if errors.Is(err, slurmctl.ErrNotFound) {
			return nil
		}
		return err
	}
	return fmt.Errorf("unknown change kind %q", c.Kind)
}
