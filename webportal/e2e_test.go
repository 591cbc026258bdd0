package webportal_test

// Browser tests: Playwright (playwright-core, from node_modules) drives
// Debian's Chromium headless against the real gateway — the API over a fresh
// database and the test cluster's Slurm, with this package's handler at / —
// served by httptest. Each scenario is one run of e2e/portal.e2e.mjs; its
// screenshots land in e2e/artifacts/.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/api"
	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/slurmctl"
	"github.com/slurmgate/slurmgate/sso"
	"github.com/slurmgate/slurmgate/sso/ssotest"
	"github.com/slurmgate/slurmgate/testdata/cluster"
	"github.com/slurmgate/slurmgate/vfolder"
	"github.com/slurmgate/slurmgate/vfolder/vfoldertest"
	"github.com/slurmgate/slurmgate/webportal"
)

const chromium = "/usr/bin/chromium"

// requireBrowser fails the test, saying how to fix it, when anything the
// browser tests need is missing.
func requireBrowser(t *testing.T) {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (apt-get install -y nodejs npm, or `make portal` installs it)")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (apt-get install -y chromium, or `make test` installs it)")
	}
	if _, err := os.Stat("node_modules/playwright-core/package.json"); err != nil {
		missing = append(missing, "webportal/node_modules/playwright-core (run `make portal`, which runs npm ci)")
	}
	if !webportal.Built() {
		missing = append(missing, "the portal build embedded in this test binary (run `make portal` first)")
	}
	if len(missing) > 0 {
		t.Fatalf("the web portal's browser tests cannot run; missing:\n  %s", strings.Join(missing, "\n  "))
	}
}

// world is a gateway with a domain, project vision (alice a member), bob
// (no project yet), a superadmin (carol) and a storage host for folders.
// Alice signs in through the test LDAP directory or the in-process OpenID
// Provider, carol with a keypair. The account sync manages only Slurm
// accounts of the world's own organization (the domain's name), so applying
// it from the browser touches nothing else on the shared cluster.
type world struct {
	URL     string
	Domain  string
	Project string
	// VFolderHost is the storage host folders are created on.
	VFolderHost string
	Alice       keypair
	Admin       keypair
	BobKey      keypair
	Bob         string
	CPULimit    int
	// ProjectCPULimit is the project's max_cpus: the launch form names it.
	ProjectCPULimit int
	// Passwords of alice in the directory and at the OpenID Provider.
	AliceLDAPPassword, AliceOIDCPassword string
	OIDCName                             string
	// Device holds the device logins the device scenario decides.
	Device *deviceScenario `json:",omitempty"`
}

// deviceScenario is two device logins started as the CLI would: the browser
// allows the first through its verification_uri_complete and denies the
// second by typing its code. Client is their (hostile) description.
type deviceScenario struct {
	AllowURL string
	DenyCode string
	Client   string
}

type keypair struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

func newWorld(t *testing.T) *world {
	t.Helper()
	env := cluster.Require(t)
	ldapEnv := cluster.RequireLDAP(t)
	slurm, err := slurmctl.New(slurmctl.Config{URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	logPath := filepath.Join(artifacts(t), "gateway.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	host, err := vfolder.OpenHost(vfoldertest.Host(t, "local"))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(nil)
	w := &world{URL: "http://" + ts.Listener.Addr().String(), Domain: fmt.Sprintf("w%x", time.Now().UnixNano()&0xffffffff), Bob: "bob", CPULimit: 2, ProjectCPULimit: 2,
		VFolderHost: host.Name(), AliceLDAPPassword: "alice-pw", AliceOIDCPassword: "alice-op-pw", OIDCName: "Test SSO"}
	// Interactive sessions' jobs run `slurmgate agent` as alice, which dials
	// this server's tunnel endpoint as in production: the terminal scenario
	// needs it.
	b := bridge.New(bridgetest.Pool(t), slurm, bridge.Config{Cluster: env.Name, JobOutputDir: env.JobOutputDir,
		ManagedOrganization: w.Domain, ReconcileInterval: 300 * time.Millisecond, SecretKey: key, VFolderHosts: []*vfolder.Host{host},
		AgentBinary: cluster.AgentBinary(t), TunnelURL: "ws://" + ts.Listener.Addr().String() + "/api/v1/agent/tunnel"}, log)

	op := ssotest.New(t, w.URL+"/api/v1/auth/oidc/callback", ssotest.User{Username: "alice", Password: w.AliceOIDCPassword, Name: "Alice Liddell"})
	svc, err := sso.New(t.Context(), sso.Config{
		ProvisionDomain: w.Domain,
		LDAP: &sso.LDAPConfig{URL: ldapEnv.URL, StartTLS: true, CAFile: ldapEnv.CAFile, BaseDN: "ou=people," + ldapEnv.BaseDN,
			BindDN: ldapEnv.BindDN, BindPassword: ldapEnv.BindPassword},
		OIDC: &sso.OIDCConfig{Name: w.OIDCName, Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret,
			RedirectURL: w.URL + "/api/v1/auth/oidc/callback"},
	}, api.NewPasswordStore(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	apiHandler := api.New(b, api.Options{Logger: log, SSO: svc})
	for _, p := range []string{"/api/", "/s/", "/metrics", "/healthz"} {
		mux.Handle(p, apiHandler)
	}
	mux.Handle("/", webportal.Handler())
	ts.Config.Handler = mux
	ts.Start()
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { b.RunReconciler(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.CreateDomain(ctx, bridge.System, w.Domain, "browser tests"))
	user := func(name string, uid int, role bridge.Role) (bridge.User, keypair) {
		u, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: name, UID: uid, Domain: w.Domain, Role: role, FullName: strings.ToUpper(name[:1]) + name[1:]})
		if err != nil {
			t.Fatal(err)
		}
		ak, sk, err := b.CreateKeypair(ctx, u.Actor(), u.ID, "browser test")
		if err != nil {
			t.Fatal(err)
		}
		return u, keypair{ak, sk}
	}
	alice, aliceKP := user("alice", 2001, bridge.RoleUser)
	_, w.BobKey = user("bob", 2002, bridge.RoleUser)
	_, adminKP := user("carol", 2003, bridge.RoleSuperadmin)
	w.Alice, w.Admin = aliceKP, adminKP
	project, err := b.CreateProject(ctx, bridge.System, w.Domain, "vision", "computer vision")
	if err != nil {
		t.Fatal(err)
	}
	w.Project = project.Path()
	must(b.SetMembership(ctx, bridge.System, project.ID, alice.ID, "member"))
	limit := w.CPULimit
	must(b.SetPolicy(ctx, bridge.System, bridge.Policy{Scope: "user", TargetID: alice.ID, MaxCPUs: &limit}))
	projectLimit := w.ProjectCPULimit
	must(b.SetPolicy(ctx, bridge.System, bridge.Policy{Scope: "project", TargetID: project.ID, MaxCPUs: &projectLimit}))
	must(b.CreateScalingGroup(ctx, bridge.System, bridge.ScalingGroup{Name: "cpu", Description: "CPU nodes", Partitions: []string{"cpu"}}))
	must(b.CreateImage(ctx, bridge.System, bridge.Image{Name: "host", Tag: "latest", Location: "/", Runtime: "none"}))

	// The Slurm side of the project, as the account sync would make it (and
	// owned by the world's organization, so the sync manages it).
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: w.Domain, Organization: w.Domain}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ss, _ := b.ListSessions(context.Background(), bridge.System, bridge.SessionFilter{All: true,
			States: []bridge.SessionState{bridge.StatePending, bridge.StatePreparing, bridge.StateRunning}, Limit: 500})
		for _, s := range ss {
			if s.JobID != nil {
				slurm.Cancel(context.Background(), s.Owner, slurmctl.JobID(*s.JobID))
			}
		}
		// The admin scenario's project, made in Slurm by the sync it applies.
		slurm.DeleteAccount(context.Background(), w.Domain+".robotics")
		for range 50 { // Slurm keeps an account while its cancelled jobs finish.
			err := slurm.DeleteAccount(context.Background(), w.Domain)
			if err == nil || errors.Is(err, slurmctl.ErrNotFound) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	if err := slurm.CreateAccount(ctx, slurmctl.Account{Name: project.Account(), Parent: w.Domain, Organization: w.Domain}); err != nil {
		t.Fatal(err)
	}
	if err := slurm.CreateAssociation(ctx, slurmctl.Association{Account: project.Account(), User: "alice"}); err != nil {
		t.Fatal(err)
	}
	return w
}

func artifacts(t *testing.T) string {
	dir, err := filepath.Abs(filepath.Join("e2e", "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browse runs one scenario of e2e/portal.e2e.mjs against w.
func browse(t *testing.T, w *world, scenario string) {
	t.Helper()
	cfg, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e/portal.e2e.mjs", scenario)
	cmd.Env = append(os.Environ(), "PORTAL_E2E="+string(cfg), "PORTAL_ARTIFACTS="+artifacts(t), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("browser scenario %s: %v (screenshots and gateway.log in %s)", scenario, err, artifacts(t))
	}
}

func TestPortalInBrowser(t *testing.T) {
	requireBrowser(t)
	// Screenshots of this run only.
	old, _ := filepath.Glob(filepath.Join(artifacts(t), "*.png"))
	for _, f := range old {
		os.Remove(f)
	}
	w := newWorld(t)
	// In order: each builds on what the one before left (alice's finished
	// session shows on the phone dashboard).
	for _, sc := range []string{"batch", "over-quota", "keypairs", "terminal", "admin", "vfolders", "invitation", "vfolder-quota", "signout", "phone", "device"} {
		t.Run(sc, func(t *testing.T) {
			if sc == "device" {
				deviceLogin(t, w)
				return
			}
			browse(t, w, sc)
			if sc == "admin" {
				requireSynced(t, w, "robotics", "bob")
			}
		})
	}
}

// requireSynced checks in Slurm itself that the sync the admin scenario
// applied from the browser made user's association in the project's account.
func requireSynced(t *testing.T, w *world, project, user string) {
	t.Helper()
	env := cluster.Require(t)
	slurm, err := slurmctl.New(slurmctl.Config{URL: env.RestURL, Cluster: env.Name, JWTKey: env.JWTKey(t), SlurmConf: env.SlurmConf})
	if err != nil {
		t.Fatal(err)
	}
	account := w.Domain + "." + project
	as, err := slurm.Associations(t.Context(), slurmctl.AssociationFilter{Account: account, User: user})
	if err != nil {
		t.Fatalf("reading %s's association in %s back from Slurm: %v", user, account, err)
	}
	for _, a := range as {
		if a.User == user && a.Account == account {
			t.Logf("Slurm has the association of %s in %s", a.User, a.Account)
			return
		}
	}
	t.Fatalf("after applying the sync in the browser, Slurm has no association of %s in account %s (read back: %+v)", user, account, as)
}

// deviceLogin starts two device logins through the API as `slurmgate login
// --browser` does, lets the browser (alice, signed in through the directory)
// allow one and deny the other, and checks what the polling client gets:
// a working keypair of alice's, and access_denied.
func deviceLogin(t *testing.T, w *world) {
	c, err := client.New(w.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The description is the starter's to choose, so the page must show it as text.
	const desc = `<img src=x onerror="window.__pwned=1">slurmgate CLI on login1`
	allow, err := c.StartDeviceLogin(t.Context(), desc)
	if err != nil {
		t.Fatal(err)
	}
	deny, err := c.StartDeviceLogin(t.Context(), desc)
	if err != nil {
		t.Fatal(err)
	}
	w.Device = &deviceScenario{AllowURL: allow.VerificationURIComplete, DenyCode: deny.UserCode, Client: desc}
	defer func() { w.Device = nil }()
	browse(t, w, "device")

	kp, err := c.PollDeviceLogin(t.Context(), allow.DeviceCode)
	if err != nil {
		t.Fatalf("polling the login the browser allowed: %v", err)
	}
	if kp.Username != "alice" {
		t.Fatalf("the allowed login's keypair is %q's, want alice's (the approver)", kp.Username)
	}
	as, err := client.New(w.URL, client.WithKeypair(kp.AccessKey, kp.SecretKey))
	if err != nil {
		t.Fatal(err)
	}
	me, err := as.Me(t.Context())
	if err != nil {
		t.Fatalf("the keypair the device login gave does not work: %v", err)
	}
	if me.Username != "alice" {
		t.Fatalf("the device login's keypair acts as %q, want alice", me.Username)
	}
	_, err = c.PollDeviceLogin(t.Context(), deny.DeviceCode)
	var p *client.Problem
	if !errors.As(err, &p) || p.Type != client.ProblemAccessDenied {
		t.Fatalf("polling the login the browser denied: got %v, want the problem %s", err, client.ProblemAccessDenied)
	}
}
