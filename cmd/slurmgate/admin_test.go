package main

// `slurmgate admin sync` driven as a command, in-process through the
// command tree, against a fresh database and the one-machine test cluster's
// slurmdbd. It fails, never skips, without the cluster.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

func TestAdminSyncPlanThenApplyRepairsDrift(t *testing.T) {
	env := cluster.Require(t)
	dbURL := bridgetest.Database(t)
	tag := make([]byte, 3)
	rand.Read(tag)
	// A managed organization and account names of this test's own, so that
	// neither other tests' accounts nor theirs of ours are ever in a plan.
	prefix := "sgc" + hex.EncodeToString(tag)
	org := "sgcmd-" + hex.EncodeToString(tag)
	for k, v := range map[string]string{
		"SLURMGATE_DATABASE_URL":              dbURL,
		"SLURMGATE_SLURM_CLUSTER":             env.Name,
		"SLURMGATE_SLURM_REST_URL":            env.RestURL,
		"SLURMGATE_SLURM_JWT_KEY_FILE":        env.JWTKeyPath,
		"SLURMGATE_SLURM_SLURM_CONF":          env.SlurmConf,
		"SLURMGATE_SECURITY_SECRET_KEY_FILE":  env.SecretKeyPath,
		"SLURMGATE_SESSIONS_JOB_OUTPUT_DIR":   env.JobOutputDir,
		"SLURMGATE_SYNC_MANAGED_ORGANIZATION": org,
		"SLURMGATE_SERVER_LOG_LEVEL":          "warn",
	} {
		t.Setenv(k, v)
	}
	t.Cleanup(func() { deleteAccounts(t, env, prefix) })

	// Desired state: domain <prefix> with project vision (4 CPUs), alice in it.
	db, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(context.Background())
	exec := func(q string, args ...any) int64 {
		t.Helper()
		var id int64
		if !strings.Contains(q, "memberships") {
			q += ` RETURNING id`
		}
		if err := db.QueryRow(t.Context(), q, args...).Scan(&id); err != nil && err != pgx.ErrNoRows {
			t.Fatalf("%s: %v", q, err)
		}
		return id
	}
	domain := exec(`INSERT INTO domains (name) VALUES ($1)`, prefix)
	vision := exec(`INSERT INTO projects (domain_id, name) VALUES ($1, 'vision')`, domain)
	alice := exec(`INSERT INTO users (username, uid, domain_id) VALUES ('alice', 2001, $1)`, domain)
	exec(`INSERT INTO memberships (project_id, user_id) VALUES ($1, $2)`, vision, alice)
	exec(`INSERT INTO policies (scope, project_id, max_cpus) VALUES ('project', $1, 4)`, vision)

	sync := func(args ...string) (string, int) {
		t.Helper()
		out, err := run(t, append([]string{"admin", "sync"}, args...)...)
		code := 0
		if err != nil {
			code = exitCode(err)
			out += "\n(error: " + err.Error() + ")"
		}
		t.Logf("slurmgate admin sync %s → exit %d\n%s", strings.Join(args, " "), code, out)
		return out, code
	}

	// A first apply makes the Slurm side; the plan then has nothing to do.
	if _, code := sync("--apply"); code != 0 {
		t.Fatalf("first --apply exited %d", code)
	}
	if out, code := sync("--plan"); code != 0 || !strings.Contains(out, "no drift") {
		t.Fatalf("--plan right after --apply: exit %d; want 0 and \"no drift\"", code)
	}

	// Drift: a new project whose account is missing, a managed account's
	// limit changed by hand, and an unmanaged account made by hand.
	exec(`INSERT INTO projects (domain_id, name) VALUES ($1, 'audio')`, domain)
	visionAcct, audioAcct, handAcct := prefix+".vision", prefix+".audio", prefix+"hand"
	sacctmgrWrite(t, env, "-i", "modify", "account", "where", "name="+visionAcct, "set", "GrpTRES=cpu=99")
	sacctmgrWrite(t, env, "-i", "add", "account", handAcct, "parent=root", "organization=handmade", "description=made by hand", "GrpTRES=cpu=7")

	out, code := sync("--plan")
	if code != exitDrift {
		t.Errorf("--plan with drift exited %d, want %d", code, exitDrift)
	}
	for _, want := range []string{"create account " + audioAcct, "update account " + visionAcct, "cpu"} {
		if !strings.Contains(out, want) {
			t.Errorf("--plan output lacks %q", want)
		}
	}
	if strings.Contains(out, handAcct) {
		t.Errorf("--plan mentions the unmanaged account %s", handAcct)
	}
	// --plan changed nothing.
	if got := grpTRES(t, env, visionAcct); got != "cpu=99" {
		t.Errorf("after --plan, %s has GrpTRES %q; --plan must change nothing", visionAcct, got)
	}

	if out, code := sync("--apply"); code != 0 || !strings.Contains(out, "2 of 2 changes applied") {
		t.Fatalf("--apply exited %d; want 0 and \"2 of 2 changes applied\"", code)
	}
	if got := grpTRES(t, env, visionAcct); got != "cpu=4" {
		t.Errorf("after --apply, sacctmgr shows GrpTRES %q on %s, want cpu=4", got, visionAcct)
	}
	if got := env.Run(t, "sacctmgr", "-nP", "show", "account", audioAcct, "format=account,organization"); strings.TrimSpace(got) != audioAcct+"|"+org {
		t.Errorf("after --apply, sacctmgr shows account %s as %q, want it owned by %s", audioAcct, strings.TrimSpace(got), org)
	}
	if got := grpTRES(t, env, handAcct); got != "cpu=7" {
		t.Errorf("the unmanaged account %s has GrpTRES %q after --apply, want its own cpu=7", handAcct, got)
	}
	if got := env.Run(t, "sacctmgr", "-nP", "show", "account", handAcct, "format=organization,description"); strings.TrimSpace(got) != "handmade|made by hand" {
		t.Errorf("the unmanaged account %s reads %q after --apply", handAcct, strings.TrimSpace(got))
	}
	if out, code := sync("--plan", "--json"); code != 0 || !strings.Contains(out, `"changes":[]`) && !strings.Contains(out, `"changes":null`) {
		t.Errorf("--plan --json after the repair: exit %d; want 0 and no changes", code)
	}
}

// grpTRES is the account-level association's GrpTRES, as sacctmgr shows it.
func grpTRES(t *testing.T, env *cluster.Env, account string) string {
	t.Helper()
	out := env.Run(t, "sacctmgr", "-nP", "show", "assoc", "where", "account="+account, "format=user,grptres")
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if user, tres, ok := strings.Cut(line, "|"); ok && user == "" {
			return tres
		}
	}
	t.Fatalf("sacctmgr shows no account-level association for %s:\n%s", account, out)
	return ""
}

// deleteAccounts removes every account whose name starts with prefix,
// children first (sacctmgr refuses to delete a parent with children).
func deleteAccounts(t *testing.T, env *cluster.Env, prefix string) {
	ctx := context.Background()
	out, err := env.Command(ctx, "sacctmgr", "-nP", "show", "account", "format=account").Output()
	if err != nil {
		t.Errorf("cleanup: listing accounts: %v", err)
		return
	}
	var children, parents []string
	for _, name := range strings.Fields(string(out)) {
		switch {
		case strings.HasPrefix(name, prefix) && strings.Contains(name, "."):
			children = append(children, name)
		case strings.HasPrefix(name, prefix):
			parents = append(parents, name)
		}
	}
	for _, names := range [][]string{children, parents} {
		if len(names) == 0 {
			continue
		}
		unlock := lockSacctmgr(t)
		out, err := env.Command(ctx, "sacctmgr", "-i", "delete", "account", "where", "name="+strings.Join(names, ",")).CombinedOutput()
		unlock()
		if err != nil {
			t.Errorf("cleanup: deleting %v: %v\n%s", names, err, out)
		}
	}
}

// sacctmgrWrite runs a sacctmgr write holding the host-wide lock slurmctl
// takes for its own (slurmctl.LockAccountingWrites): slurmdbd 22.05 deadlocks and
// exits under concurrent writes, and other test binaries write too.
func sacctmgrWrite(t *testing.T, env *cluster.Env, args ...string) {
	t.Helper()
	defer lockSacctmgr(t)()
	env.Run(t, "sacctmgr", args...)
}

func lockSacctmgr(t *testing.T) (unlock func()) {
	unlock, err := slurmctl.LockAccountingWrites(context.Background())
	if err != nil {
		t.Fatalf("sacctmgr lock: %v", err)
	}
	return unlock
}
