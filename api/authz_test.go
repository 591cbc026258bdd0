package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/slurmgate/slurmgate/bridge"
)

// Every route × every role: a superadmin, alice (a member of lab/vision who
// owns a session), bob (in the same domain, in no project) and olga (admin of
// another domain). The table must name every route the server has, so a new
// route cannot ship without its authorization being stated here.

const (
	untested   = -1 // would change state later rows rely on
	notRefused = 0  // any status but 401, 403 and 404: validation may still refuse
)

type roleWant struct{ root, alice, bob, olga int }

func TestAuthorizationEveryRouteEveryRole(t *testing.T) {
	a := newTestAPI(t, Options{})
	ctx := t.Context()
	b := a.b
	proj, err := b.CreateProject(ctx, bridge.System, "lab", "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetMembership(ctx, bridge.System, proj.ID, a.alice.UserID, "member"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateDomain(ctx, bridge.System, "other", ""); err != nil {
		t.Fatal(err)
	}
	olgaUser, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: "olga", UID: 2009, Domain: "other", Role: bridge.RoleDomainAdmin})
	if err != nil {
		t.Fatal(err)
	}
	ak, sk, err := b.CreateKeypair(ctx, olgaUser.Actor(), olgaUser.ID, "test")
	if err != nil {
		t.Fatal(err)
	}
	olga := testUser{olgaUser.Actor(), ak, sk}
	if _, err := b.CreateScalingGroup(ctx, bridge.System, bridge.ScalingGroup{Name: "cpu", Cluster: "c", Partitions: []string{"cpu"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreatePreset(ctx, bridge.System, bridge.Preset{Name: "small", CPUs: 1, MemoryMB: 1024}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateImage(ctx, bridge.System, bridge.Image{Name: "host", Tag: "latest", Location: "/"}); err != nil {
		t.Fatal(err)
	}
	// alice's session, as a create would have written it before submitting.
	const sid = "3f1c2b7a-8e4d-4c5b-9a6f-0123456789ab"
	_, err = a.db.Exec(ctx, `INSERT INTO sessions (id, user_id, project_id, domain_id, scaling_group, partition, type,
		image, cpus, memory_mb, time_limit_s, state, stdout_path, stderr_path)
		VALUES ($1, $2, $3, $4, 'cpu', 'cpu', 'batch', 'host:latest', 1, 1024, 60, 'PENDING', '/nonexistent/o', '/nonexistent/e')`,
		sid, a.alice.UserID, proj.ID, proj.DomainID)
	if err != nil {
		t.Fatal(err)
	}
	// alice's vfolder, on a host this server does not have: authorization
	// is decided before storage is touched, so file routes answer 503 to
	// those allowed and 404 to the rest.
	const vfid = "7d2e4c1a-5b3f-4a6e-8c9d-fedcba987654"
	if _, err := a.db.Exec(ctx, `INSERT INTO vfolders (id, name, host, user_id, domain_id) VALUES ($1, 'data', 'local', $2, $3)`,
		vfid, a.alice.UserID, proj.DomainID); err != nil {
		t.Fatal(err)
	}

	vars := map[string]string{
		"{id}": "", "{name}": "", "{user_id}": fmt.Sprint(a.bob.UserID), "{access_key}": a.alice.accessKey,
		"{scope}": "project", "{ref...}": "host:latest", "{service}": "jupyter",
		"{username}": "bob", "{upload}": "0b8e9f2c-1d4a-4e7b-9c3f-123456789abc",
		"{user_code}": "BCDF-GHJK",
	}
	idFor := func(pattern string) string {
		switch {
		case strings.HasPrefix(pattern, "/api/v1/sessions/"):
			return sid
		case strings.HasPrefix(pattern, "/api/v1/users/"):
			return fmt.Sprint(a.alice.UserID)
		case strings.HasPrefix(pattern, "/api/v1/vfolders/"), strings.HasPrefix(pattern, "/api/v1/vfolder-invitations/"):
			return vfid
		}
		return fmt.Sprint(proj.ID)
	}
	nameFor := func(pattern string) string {
		switch {
		case strings.HasPrefix(pattern, "/api/v1/domains/"):
			return "lab"
		case strings.HasPrefix(pattern, "/api/v1/scaling-groups/"):
			return "cpu"
		}
		return "small"
	}

	all := func(s int) roleWant { return roleWant{s, s, s, s} }
	ownerOnly := roleWant{200, 200, 404, 404}
	superOnly := roleWant{notRefused, 403, 403, 403}
	superOnlyDelete := roleWant{untested, 403, 403, 403}
	vfolderUsers := roleWant{notRefused, notRefused, 404, 404}
	ownerUse := roleWant{403, 503, 404, 404}
	table := map[string]struct {
		body string
		want roleWant
	}{
		"GET /healthz":                         {"", all(200)},
		"GET /metrics":                         {"", all(200)}, // loopback
		"GET /api/v1/openapi.json":             {"", all(200)},
		"GET /api/v1/me":                       {"", all(200)},
		"POST /api/v1/tokens":                  {`{}`, all(notRefused)},
		"GET /api/v1/keypairs":                 {"", all(200)},
		"POST /api/v1/keypairs":                {`{}`, all(notRefused)},
		"DELETE /api/v1/keypairs/{access_key}": {"", roleWant{untested, untested, 404, 404}},

		"GET /api/v1/domains":          {"", all(200)},
		"POST /api/v1/domains":         {`{"name":"new"}`, superOnly},
		"GET /api/v1/domains/{name}":   {"", roleWant{200, 200, 200, 404}},
		"PATCH /api/v1/domains/{name}": {`{}`, superOnly},

		"GET /api/v1/projects":                           {"", all(200)},
		"POST /api/v1/projects":                          {`{"domain":"lab","name":"p2"}`, roleWant{notRefused, 403, 403, 404}},
		"GET /api/v1/projects/{id}":                      {"", ownerOnly},
		"PATCH /api/v1/projects/{id}":                    {`{}`, roleWant{notRefused, 403, 404, 404}},
		"GET /api/v1/projects/{id}/members":              {"", ownerOnly},
		"PUT /api/v1/projects/{id}/members/{user_id}":    {`{"role":"member"}`, roleWant{untested, 403, 404, 404}},
		"DELETE /api/v1/projects/{id}/members/{user_id}": {"", roleWant{untested, 403, 404, 404}},

		"GET /api/v1/users":        {"", all(200)},
		"POST /api/v1/users":       {`{"username":"dave","uid":2010,"domain":"lab"}`, roleWant{notRefused, 403, 403, 404}},
		"GET /api/v1/users/{id}":   {"", ownerOnly},
		"PATCH /api/v1/users/{id}": {`{"status":"locked"}`, roleWant{untested, 403, 404, 404}},

		"GET /api/v1/policies/{scope}/{id}":    {"", ownerOnly},
		"PUT /api/v1/policies/{scope}/{id}":    {`{"max_cpus":1}`, roleWant{untested, 403, 404, 404}},
		"DELETE /api/v1/policies/{scope}/{id}": {"", roleWant{untested, 403, 404, 404}},

		"POST /api/v1/sessions":            {`{}`, all(notRefused)}, // one's own; validation refuses {}
		"GET /api/v1/sessions":             {"", all(200)},
		"GET /api/v1/sessions/{id}":        {"", ownerOnly},
		"DELETE /api/v1/sessions/{id}":     {"", roleWant{untested, untested, 404, 404}},
		"GET /api/v1/sessions/{id}/events": {"", ownerOnly},
		"GET /api/v1/sessions/{id}/logs":   {"", ownerOnly},
		"GET /api/v1/sessions/stream":      {"", all(200)},

		"GET /api/v1/cluster/nodes":      {"", all(notRefused)}, // this test's bridge has no Slurm: 503
		"GET /api/v1/cluster/partitions": {"", all(notRefused)},
		"GET /api/v1/usage":              {"", all(200)},
		"GET /api/v1/sync/plan":          {"", superOnly},
		"POST /api/v1/sync/apply":        {"", roleWant{untested, 403, 403, 403}},

		// The agent authenticates inside the WebSocket; a plain GET is
		// refused as a bad handshake, not for lack of credentials.
		"GET /api/v1/agent/tunnel": {"", all(notRefused)},
		// Admins may read a session's apps and metrics; only its owner
		// acts inside it (403 for admins who see it). alice's session has
		// not started: 503.
		"GET /api/v1/sessions/{id}/apps":          {"", ownerOnly},
		"GET /api/v1/sessions/{id}/metrics":       {"", ownerOnly},
		"POST /api/v1/sessions/{id}/exec":         {`{"argv":["true"]}`, ownerUse},
		"GET /api/v1/sessions/{id}/terminal":      {"", ownerUse},
		"GET /api/v1/sessions/{id}/tcp/{service}": {"", ownerUse},

		"GET /api/v1/scaling-groups":           {"", all(200)},
		"POST /api/v1/scaling-groups":          {`{}`, superOnly},
		"GET /api/v1/scaling-groups/{name}":    {"", all(200)},
		"DELETE /api/v1/scaling-groups/{name}": {"", superOnlyDelete},
		"GET /api/v1/presets":                  {"", all(200)},
		"POST /api/v1/presets":                 {`{}`, superOnly},
		"DELETE /api/v1/presets/{name}":        {"", superOnlyDelete},
		"GET /api/v1/images":                   {"", all(200)},
		"POST /api/v1/images":                  {`{}`, superOnly},
		"GET /api/v1/images/{ref...}":          {"", all(200)},
		"DELETE /api/v1/images/{ref...}":       {"", superOnlyDelete},

		// Portal login (login.go). This server has no SSO configured, so the
		// login routes answer 404 (or 422 for an empty body); logout refuses
		// a keypair-signed request with 422: it ends only cookie sessions.
		"POST /api/v1/auth/login":        {`{}`, all(notRefused)},
		"GET /api/v1/auth/oidc/login":    {"", all(404)},
		"GET /api/v1/auth/oidc/callback": {"", all(404)},
		"POST /api/v1/auth/logout":       {"", all(422)},
		"GET /api/v1/auth/session":       {"", all(200)},
		"GET /api/v1/auth/providers":     {"", all(200)},
		// The app-origin handoff (apphandoff.go): this server has no apps
		// domain, so there is no app host to hand off to.
		"GET /api/v1/auth/app-handoff": {"", all(404)},

		// Device logins (devicelogin.go): starting and polling are public
		// (an unknown device code is expired_token, 400); any signed-in
		// user may look up and decide a code, here one nobody started.
		"POST /api/v1/auth/device":            {`{"client":"authz test"}`, all(200)},
		"POST /api/v1/auth/device/token":      {`{"device_code":"sgd_unknown"}`, all(400)},
		"GET /api/v1/auth/device/{user_code}": {"", all(404)},
		"POST /api/v1/auth/device/approve":    {`{"user_code":"BCDF-GHJK","allow":true}`, all(404)},

		// vfolders: alice's folder; root administers its domain. 503 (no
		// storage host in this test) counts as not refused.
		"GET /api/v1/vfolder-hosts":                     {"", all(200)},
		"POST /api/v1/vfolders":                         {`{"name":"x","host":"local"}`, all(notRefused)},
		"GET /api/v1/vfolders":                          {"", all(200)},
		"GET /api/v1/vfolders/{id}":                     {"", ownerOnly},
		"DELETE /api/v1/vfolders/{id}":                  {"", vfolderUsers}, // without ?confirm: refused as invalid
		"POST /api/v1/vfolders/{id}/usage":              {"", vfolderUsers},
		"GET /api/v1/vfolders/{id}/shares":              {"", ownerOnly},
		"PUT /api/v1/vfolders/{id}/shares/{username}":   {`{"permission":"ro"}`, vfolderUsers},
		"DELETE /api/v1/vfolders/{id}/shares/{user_id}": {"", roleWant{untested, untested, untested, 404}},
		"GET /api/v1/vfolder-invitations":               {"", all(200)},
		"POST /api/v1/vfolder-invitations/{id}":         {`{"accept":false}`, roleWant{404, 404, untested, 404}},
		"GET /api/v1/vfolders/{id}/files":               {"", vfolderUsers},
		"GET /api/v1/vfolders/{id}/stat":                {"", vfolderUsers},
		"POST /api/v1/vfolders/{id}/mkdir":              {`{"path":"d"}`, vfolderUsers},
		"POST /api/v1/vfolders/{id}/move":               {`{"from":"a","to":"b"}`, vfolderUsers},
		"POST /api/v1/vfolders/{id}/copy":               {`{"from":"a","to":"b"}`, vfolderUsers},
		"DELETE /api/v1/vfolders/{id}/files":            {"", vfolderUsers},
		"GET /api/v1/vfolders/{id}/download":            {"", vfolderUsers},
		"POST /api/v1/vfolders/{id}/uploads":            {"", vfolderUsers},
		"HEAD /api/v1/uploads/{upload}":                 {"", all(404)}, // its token, not the caller, authorises it
		"PATCH /api/v1/uploads/{upload}":                {"", all(412)}, // not tus: refused before the token is read
		"DELETE /api/v1/uploads/{upload}":               {"", all(404)},
	}

	roles := []struct {
		name string
		user testUser
		want func(roleWant) int
	}{
		{"superadmin", a.root, func(w roleWant) int { return w.root }},
		{"alice", a.alice, func(w roleWant) int { return w.alice }},
		{"bob", a.bob, func(w roleWant) int { return w.bob }},
		{"olga", olga, func(w roleWant) int { return w.olga }},
	}
	// Streaming routes answer at once but end only when told to.
	boundedQuery := map[string]string{"GET /api/v1/sessions/stream": "max_s=0.2"}
	seen := map[string]bool{}
	for _, rt := range a.srv.routes {
		key := rt.method + " " + rt.pattern
		seen[key] = true
		entry, ok := table[key]
		if !ok {
			t.Errorf("route %s has no row in the authorization table", key)
			continue
		}
		path := rt.pattern
		for k, v := range vars {
			switch k {
			case "{id}":
				v = idFor(rt.pattern)
			case "{name}":
				v = nameFor(rt.pattern)
			}
			path = strings.ReplaceAll(path, k, v)
		}
		if q, ok := boundedQuery[key]; ok {
			path += "?" + q
		}
		for _, role := range roles {
			want := role.want(entry.want)
			if want == untested {
				continue
			}
			var body []byte
			if entry.body != "" {
				body = []byte(entry.body)
			}
			status, _, resp := a.send(a.signed(role.user, rt.method, path, body, a.srv.now()))
			switch {
			case want == notRefused && (status == 401 || status == 403 || status == 404):
				t.Errorf("%s as %s: %d %s; want it not refused", key, role.name, status, resp)
			case want != notRefused && status != want:
				t.Errorf("%s as %s: %d %s; want %d", key, role.name, status, resp, want)
			}
		}
	}
	for key := range table {
		if !seen[key] {
			t.Errorf("authorization table names %s, which is not a route", key)
		}
	}
}
