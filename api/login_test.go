package api

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/bridge/bridgetest"
	"github.com/slurmgate/slurmgate/sso"
	"github.com/slurmgate/slurmgate/sso/ssotest"
	"github.com/slurmgate/slurmgate/testdata/cluster"
)

// loginAPI is the API with every way in configured: local accounts, the
// test cluster's slapd (StartTLS) and an in-process OpenID Provider, with
// first-login provisioning into domain "lab" (which has project vision).
// carol is a bootstrap superadmin with a local password.
type loginAPI struct {
	*testAPI
	op     *ssotest.Provider
	vision bridge.Project
}

const carolLocalPassword = "carol's local password"

func newLoginAPI(t *testing.T) *loginAPI {
	t.Helper()
	ldapEnv := cluster.RequireLDAP(t)
	key := make([]byte, 32)
	rand.Read(key)
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := bridgetest.Pool(t)
	b := bridge.New(db, nil, bridge.Config{SecretKey: key}, log)
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	op := ssotest.New(t, base+"/api/v1/auth/oidc/callback",
		ssotest.User{Username: "bob", Password: "bob-op-pw", Email: "bob@example.org", Name: "Bob Builder", Groups: []string{"vision"}},
		ssotest.User{Username: "alice", Password: "alice-op-pw"},
		ssotest.User{Username: "mallory", Password: "mallory-op-pw"})
	cfg := sso.Config{
		LocalAccounts:   true,
		ProvisionDomain: "lab",
		LDAP: &sso.LDAPConfig{URL: ldapEnv.URL, StartTLS: true, CAFile: ldapEnv.CAFile, BaseDN: "ou=people," + ldapEnv.BaseDN,
			BindDN: ldapEnv.BindDN, BindPassword: ldapEnv.BindPassword, DisabledFilter: "(loginShell=/sbin/nologin)",
			Groups: []sso.GroupRule{{Group: "vision", Project: "lab/vision"}, {Group: "vision-admins", Project: "lab/vision", Role: "project-admin"}}},
		OIDC: &sso.OIDCConfig{Name: "Test SSO", Issuer: op.Issuer, ClientID: op.ClientID, ClientSecret: op.ClientSecret,
			RedirectURL: base + "/api/v1/auth/oidc/callback", Groups: []sso.GroupRule{{Group: "vision", Project: "lab/vision"}}},
	}
	svc, err := sso.New(t.Context(), cfg, NewPasswordStore(b), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(b, Options{Logger: log, SSO: svc})
	ts.Config.Handler = srv
	ts.Start()
	t.Cleanup(ts.Close)

	ctx := t.Context()
	if _, err := b.CreateDomain(ctx, bridge.System, "lab", ""); err != nil {
		t.Fatal(err)
	}
	vision, err := b.CreateProject(ctx, bridge.System, "lab", "vision", "")
	if err != nil {
		t.Fatal(err)
	}
	carol, err := b.CreateUser(ctx, bridge.System, bridge.NewUser{Username: "carol", UID: 2003, Domain: "lab", Role: bridge.RoleSuperadmin})
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := sso.HashPassword(carolLocalPassword)
	if err := b.SetLocalPassword(ctx, bridge.System, carol.ID, hash); err != nil {
		t.Fatal(err)
	}
	return &loginAPI{testAPI: &testAPI{t: t, db: db, b: b, srv: srv, ts: ts, logs: logs}, op: op, vision: vision}
}

// browser is an http.Client with a cookie jar that follows redirects, except
// out of the API's auth routes (where the portal would take over).
func (a *loginAPI) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second, CheckRedirect: func(r *http.Request, via []*http.Request) error {
		if r.URL.Host == a.ts.Listener.Addr().String() && !strings.HasPrefix(r.URL.Path, "/api/v1/auth/oidc/") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

// sessionCookieOf returns the portal cookie the browser holds for the API.
func (a *loginAPI) sessionCookieOf(c *http.Client) string {
	u, _ := url.Parse(a.ts.URL + "/")
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	return ""
}

// passwordLogin posts a login and returns the response and its body.
func (a *loginAPI) passwordLogin(user, password string, header http.Header) (*http.Response, []byte) {
	a.t.Helper()
	body, _ := json.Marshal(loginRequest{Username: user, Password: password})
	r := a.request("POST", "/api/v1/auth/login", body)
	for k, v := range header {
		r.Header[k] = v
	}
	resp, err := a.ts.Client().Do(r)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, c := range resp.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// withCookie is a request carrying the portal cookie and, if given, the CSRF token.
func (a *loginAPI) withCookie(method, path string, body []byte, cookie, csrf string) *http.Request {
	r := a.request(method, path, body)
	r.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	if csrf != "" {
		r.Header.Set(csrfHeader, csrf)
	}
	return r
}

func TestLoginLDAPCookieAndCSRF(t *testing.T) {
	a := newLoginAPI(t)
	resp, body := a.passwordLogin("alice", "alice-pw", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	c := cookieNamed(resp, sessionCookie)
	if c == nil || !c.HttpOnly || c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, not Secure over plain HTTP", c)
	}
	var got portalSessionResponse
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.User.Username != "alice" || got.User.UID != 2001 || got.User.Domain != "lab" || got.Source != "ldap" ||
		got.CSRFToken == "" || got.ExpiresAt == nil || got.Auth != "cookie" || strings.Contains(string(body), c.Value) {
		t.Fatalf("login answer %s", body)
	}
	members, _ := a.b.Members(t.Context(), bridge.System, a.vision.ID)
	if len(members) != 1 || members[0].Username != "alice" || members[0].Role != "project-admin" {
		t.Fatalf("vision members after alice's first login: %+v", members)
	}

	// The cookie authenticates reads; state changes need the CSRF token too.
	me := a.wantStatus(a.withCookie("GET", "/api/v1/me", nil, c.Value, ""), 200)
	if !strings.Contains(string(me), `"method":"cookie"`) {
		t.Fatalf("/me with the cookie: %s", me)
	}
	for _, csrf := range []string{"", "wrong"} {
		p, _ := a.wantProblem(a.withCookie("POST", "/api/v1/keypairs", []byte(`{}`), c.Value, csrf), http.StatusForbidden)
		if !strings.Contains(p.Detail, csrfHeader) {
			t.Fatalf("CSRF %q: %s", csrf, p.Detail)
		}
	}
	a.wantStatus(a.withCookie("POST", "/api/v1/keypairs", []byte(`{"description":"from the portal"}`), c.Value, got.CSRFToken), http.StatusCreated)
	var sess portalSessionResponse
	json.Unmarshal(a.wantStatus(a.withCookie("GET", "/api/v1/auth/session", nil, c.Value, ""), 200), &sess)
	if sess.CSRFToken != got.CSRFToken || sess.User.Username != "alice" || sess.IdleExpiresAt == nil {
		t.Fatalf("session %+v", sess)
	}

	// Logout revokes it at once, and says so to LoginRevocations subscribers.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	revocations := a.b.LoginRevocations(ctx)
	a.wantProblem(a.withCookie("POST", "/api/v1/auth/logout", nil, c.Value, ""), http.StatusForbidden)
	status, h, out := a.send(a.withCookie("POST", "/api/v1/auth/logout", nil, c.Value, got.CSRFToken))
	loggedOut := time.Now()
	if status != 200 || strings.Contains(string(out), "logout_url") {
		t.Fatalf("logout: %d %s", status, out)
	}
	if cleared := cookieNamed(&http.Response{Header: h}, sessionCookie); cleared == nil || cleared.MaxAge >= 0 {
		t.Fatalf("logout did not clear the cookie: %v", h["Set-Cookie"])
	}
	select {
	case r := <-revocations:
		if r.SessionID == "" || r.UserID != got.User.ID {
			t.Fatalf("revocation %+v", r)
		}
		t.Logf("logout reached LoginRevocations after %v", time.Since(loggedOut))
	case <-time.After(time.Second):
		t.Fatal("the logout was not announced within a second")
	}
	p, _ := a.wantProblem(a.withCookie("GET", "/api/v1/me", nil, c.Value, ""), http.StatusUnauthorized)
	if !strings.Contains(p.Detail, "logged out") {
		t.Fatalf("after logout: %s", p.Detail)
	}

	// Behind a TLS-terminating proxy the cookie is Secure.
	resp, _ = a.passwordLogin("bob", "bob-pw", http.Header{"X-Forwarded-Proto": {"https"}})
	if c := cookieNamed(resp, sessionCookie); c == nil || !c.Secure {
		t.Fatalf("cookie over https: %+v", c)
	}
}

func TestLoginPasswordRefusals(t *testing.T) {
	a := newLoginAPI(t)
	for _, tc := range []struct {
		name, user, password string
		status               int
		mention              string
	}{
		{"wrong password", "alice", "not-alice-pw", 401, "wrong user name or password"},
		{"unknown user", "nobody", "x", 401, "wrong user name or password"},
		{"locked account", "dave", "dave-pw", 403, "locked"},
		{"disabled account", "erin", "erin-pw", 403, "disabled"},
		{"no POSIX account", "mallory", "mallory-pw", 403, "no POSIX account"},
		{"local account, wrong password", "carol", "carol-pw", 401, "wrong user name or password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := a.passwordLogin(tc.user, tc.password, nil)
			p := checkProblem(t, resp.StatusCode, resp.Header, body, tc.status)
			if !strings.Contains(p.Detail, tc.mention) {
				t.Fatalf("detail %q should say %q", p.Detail, tc.mention)
			}
			if c := cookieNamed(resp, sessionCookie); c != nil {
				t.Fatalf("a refused login set a session cookie")
			}
		})
	}
	// A user an admin locked in Slurmgate is refused although LDAP accepts.
	resp, _ := a.passwordLogin("bob", "bob-pw", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("bob's first login: %d", resp.StatusCode)
	}
	bob, _ := a.b.UserByName(t.Context(), bridge.System, "bob")
	locked := "locked"
	a.b.UpdateUser(t.Context(), bridge.System, bob.ID, bridge.UserUpdate{Status: &locked})
	resp, body := a.passwordLogin("bob", "bob-pw", nil)
	if p := checkProblem(t, resp.StatusCode, resp.Header, body, 403); !strings.Contains(p.Detail, "locked") {
		t.Fatalf("locked in Slurmgate: %s", p.Detail)
	}
	// Bad bodies.
	resp, body = a.passwordLogin("", "", nil)
	checkProblem(t, resp.StatusCode, resp.Header, body, 422)
}

func TestLoginLocalAccount(t *testing.T) {
	a := newLoginAPI(t)
	resp, body := a.passwordLogin("carol", carolLocalPassword, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("local login: %d %s", resp.StatusCode, body)
	}
	var got portalSessionResponse
	json.Unmarshal(body, &got)
	if got.Source != "local" || got.User.Role != bridge.RoleSuperadmin {
		t.Fatalf("local login: %s", body)
	}
	var prov sso.Providers
	json.Unmarshal(a.wantStatus(a.request("GET", "/api/v1/auth/providers", nil), 200), &prov)
	if !prov.Password || !prov.LDAP || !prov.OIDC || prov.OIDCName != "Test SSO" {
		t.Fatalf("providers %+v", prov)
	}
}

// oidcLogin runs a browser through the OIDC login and returns the last
// response (the API's redirect to return_to on success).
func (a *loginAPI) oidcLogin(t *testing.T, br *http.Client, user, password string) (*http.Response, []byte) {
	t.Helper()
	resp, err := a.op.Login(br, a.ts.URL+"/api/v1/auth/oidc/login?return_to=/sessions", user, password)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestLoginOIDCBrowserFlow(t *testing.T) {
	a := newLoginAPI(t)
	br := a.browser()
	resp, body := a.oidcLogin(t, br, "bob", "bob-op-pw")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/sessions" {
		t.Fatalf("callback: %d Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	cookie := a.sessionCookieOf(br)
	if cookie == "" {
		t.Fatal("no session cookie after the OIDC login")
	}
	var sess portalSessionResponse
	json.Unmarshal(a.wantStatus(a.withCookie("GET", "/api/v1/auth/session", nil, cookie, ""), 200), &sess)
	if sess.User.Username != "bob" || sess.User.UID != 2002 || sess.Source != "oidc" || sess.User.Email != "bob@example.org" {
		t.Fatalf("session after OIDC login: %+v", sess)
	}
	members, _ := a.b.Members(t.Context(), bridge.System, a.vision.ID)
	if len(members) != 1 || members[0].Username != "bob" {
		t.Fatalf("vision members from the groups claim: %+v", members)
	}
	// The callback cannot be replayed: its state was used.
	first := resp.Request.URL.String()
	if !strings.Contains(first, "/api/v1/auth/oidc/callback") {
		t.Fatalf("last request %s was not the callback", first)
	}
	replay, err := br.Get(first)
	if err != nil {
		t.Fatal(err)
	}
	replay.Body.Close()
	if replay.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed callback: %d", replay.StatusCode)
	}

	// Logout points at the provider's end_session_endpoint with the ID token.
	status, _, out := a.send(a.withCookie("POST", "/api/v1/auth/logout", nil, cookie, sess.CSRFToken))
	var lo logoutResponse
	json.Unmarshal(out, &lo)
	if status != 200 || !strings.HasPrefix(lo.LogoutURL, a.op.Issuer) || !strings.Contains(lo.LogoutURL, "id_token_hint=") {
		t.Fatalf("logout: %d %s", status, out)
	}
	end, err := br.Get(lo.LogoutURL)
	if err != nil {
		t.Fatal(err)
	}
	end.Body.Close()
	if end.StatusCode != 200 {
		t.Fatalf("the provider's end-session endpoint answered %d at %s", end.StatusCode, end.Request.URL)
	}
}

func TestLoginOIDCRefusals(t *testing.T) {
	a := newLoginAPI(t)
	// alice exists in Slurmgate, locked by an admin.
	alice, err := a.b.CreateUser(t.Context(), bridge.System, bridge.NewUser{Username: "alice", UID: 2001, Domain: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	locked := "locked"
	a.b.UpdateUser(t.Context(), bridge.System, alice.ID, bridge.UserUpdate{Status: &locked})

	for _, tc := range []struct {
		name, user, password string
		tamper               func(map[string]any) bool
		status               int // 0: the browser stays at the provider's form
		mention              string
	}{
		{"wrong password", "bob", "wrong", nil, 0, ""},
		{"unknown user", "zed", "zed-pw", nil, 0, ""},
		{"locked account", "alice", "alice-op-pw", nil, 403, "locked"},
		{"no POSIX account", "mallory", "mallory-op-pw", nil, 403, "no POSIX account"},
		{"expired token", "bob", "bob-op-pw", func(c map[string]any) bool { c["exp"] = time.Now().Add(-time.Minute).Unix(); return false }, 401, "expired"},
		{"wrong audience", "bob", "bob-op-pw", func(c map[string]any) bool { c["aud"] = "another-client"; return false }, 401, "audience"},
		{"bad signature", "bob", "bob-op-pw", func(map[string]any) bool { return true }, 401, "signature"},
		{"replayed nonce", "bob", "bob-op-pw", func(c map[string]any) bool { c["nonce"] = "nonce-of-an-earlier-login"; return false }, 401, "replayed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.op.TamperIDTokens(tc.tamper)
			defer a.op.TamperIDTokens(nil)
			br := a.browser()
			resp, body := a.oidcLogin(t, br, tc.user, tc.password)
			if tc.status == 0 {
				if resp.StatusCode != 200 || !strings.Contains(string(body), "username or password wrong") {
					t.Fatalf("%d %s; want the provider's form with its error", resp.StatusCode, body)
				}
			} else {
				p := checkProblem(t, resp.StatusCode, resp.Header, body, tc.status)
				if !strings.Contains(p.Detail, tc.mention) {
					t.Fatalf("detail %q should say %q", p.Detail, tc.mention)
				}
			}
			if c := a.sessionCookieOf(br); c != "" {
				t.Fatal("a refused login left a session cookie")
			}
		})
	}

	t.Run("state mismatch", func(t *testing.T) {
		// The victim's browser is handed a callback URL from the
		// attacker's login: it started no login, so it is refused.
		attacker := a.browser()
		attacker.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(r.URL.Path, "/api/v1/auth/oidc/callback") {
				return http.ErrUseLastResponse
			}
			return nil
		}
		resp, err := a.op.Login(attacker, a.ts.URL+"/api/v1/auth/oidc/login", "bob", "bob-op-pw")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		callback := resp.Header.Get("Location")
		if !strings.Contains(callback, "/api/v1/auth/oidc/callback") {
			t.Fatalf("the provider redirected to %q", callback)
		}
		victim := a.browser()
		vr, err := victim.Get(callback)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(vr.Body)
		vr.Body.Close()
		if p := checkProblem(t, vr.StatusCode, vr.Header, body, 401); !strings.Contains(p.Detail, "state") {
			t.Fatalf("detail %q should name the state", p.Detail)
		}
		if a.sessionCookieOf(victim) != "" {
			t.Fatal("the victim was logged in")
		}
	})

	t.Run("provider error", func(t *testing.T) {
		br := a.browser()
		resp, err := br.Get(a.ts.URL + "/api/v1/auth/oidc/callback?error=access_denied&error_description=user+cancelled")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if p := checkProblem(t, resp.StatusCode, resp.Header, body, 401); !strings.Contains(p.Detail, "access_denied: user cancelled") {
			t.Fatalf("detail %q", p.Detail)
		}
	})
}

// The CLI's `slurmgate login --username`: a password login through the
// typed client, a keypair minted with the portal session, then logout.
func TestLoginClientMintsKeypairWithPortalSession(t *testing.T) {
	a := newLoginAPI(t)
	c, err := client.PasswordLogin(t.Context(), a.ts.URL, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := c.CreateKeypair(t.Context(), 0, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Logout(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Me(t.Context()); err == nil {
		t.Fatal("the portal session still works after logout")
	}
	kc, err := client.New(a.ts.URL, client.WithKeypair(kp.AccessKey, kp.SecretKey))
	if err != nil {
		t.Fatal(err)
	}
	if me, err := kc.Me(t.Context()); err != nil || me.Username != "alice" {
		t.Fatalf("the minted keypair: %+v, %v", me, err)
	}
	if _, err := client.PasswordLogin(t.Context(), a.ts.URL, "alice", "wrong"); err == nil {
		t.Fatal("a wrong password logged in")
	}
}

func TestLoginSafeReturnTo(t *testing.T) {
	for in, want := range map[string]string{
		"/sessions":                 "/sessions",
		"/sessions?state=RUNNING#x": "/sessions?state=RUNNING#x",
		"":                          "/",
		"sessions":                  "/",
		"//evil.example/":           "/",
		"/\\evil.example/":          "/",
		"https://evil.example/":     "/",
		"/ok\r\nSet-Cookie: x=y":    "/",
		"javascript:alert(1)":       "/",
	} {
		if got := safeReturnTo(in); got != want {
			t.Errorf("safeReturnTo(%q) = %q, want %q", in, got, want)
		}
	}
}

// Logging in again from a browser that holds a session replaces it.
func TestLoginAgainRevokesThePortalSessionItReplaces(t *testing.T) {
	a := newLoginAPI(t)
	resp, _ := a.passwordLogin("alice", "alice-pw", nil)
	first := cookieNamed(resp, sessionCookie)
	if first == nil {
		t.Fatal("no cookie")
	}
	resp, body := a.passwordLogin("alice", "alice-pw", http.Header{"Cookie": {sessionCookie + "=" + first.Value}})
	second := cookieNamed(resp, sessionCookie)
	if resp.StatusCode != 200 || second == nil || second.Value == first.Value {
		t.Fatalf("second login: %d %s", resp.StatusCode, body)
	}
	a.wantProblem(a.withCookie("GET", "/api/v1/me", nil, first.Value, ""), http.StatusUnauthorized)
	a.wantStatus(a.withCookie("GET", "/api/v1/me", nil, second.Value, ""), http.StatusOK)
}

func TestLoginThrottledAfterRepeatedFailures(t *testing.T) {
	// carol's local account: the test directory locks an account after
	// five failed binds (its password policy), as many sites' do.
	a := newLoginAPI(t)
	var mu sync.Mutex
	now := time.Now()
	a.srv.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	wantThrottled := func(password, retryAfter string) {
		t.Helper()
		resp, body := a.passwordLogin("carol", password, nil)
		p := checkProblem(t, resp.StatusCode, resp.Header, body, http.StatusTooManyRequests)
		if resp.Header.Get("Retry-After") != retryAfter || !strings.Contains(p.Detail, "try again in "+retryAfter+" s") {
			t.Fatalf("throttled login: Retry-After %q, detail %q; want %s s", resp.Header.Get("Retry-After"), p.Detail, retryAfter)
		}
	}
	wrong := func() {
		t.Helper()
		resp, body := a.passwordLogin("carol", "not-carols-pw", nil)
		checkProblem(t, resp.StatusCode, resp.Header, body, http.StatusUnauthorized)
	}

	for range freeUserFailures {
		wrong()
	}
	// Now even the right password waits: it is not checked at all.
	wantThrottled(carolLocalPassword, "1")
	// Another user at the same address is not held up.
	if resp, body := a.passwordLogin("bob", "bob-pw", nil); resp.StatusCode != 200 {
		t.Fatalf("bob's login while carol is throttled: %d %s", resp.StatusCode, body)
	}
	// After the wait the right password works, and clears the count.
	advance(time.Second)
	if resp, body := a.passwordLogin("carol", carolLocalPassword, nil); resp.StatusCode != 200 {
		t.Fatalf("carol's login after the wait: %d %s", resp.StatusCode, body)
	}
	for range freeUserFailures {
		wrong()
	}
	// Each failure past the allowance doubles the wait.
	advance(time.Second)
	wrong()
	wantThrottled("not-carols-pw", "2")
	advance(2 * time.Second)
	wrong()
	wantThrottled("not-carols-pw", "4")
}

// A login name is trimmed and lower-cased before anything counts it, so
// " carol" and "carol " spend carol's allowance; a name that cannot be a
// POSIX user never reaches the directory.
func TestLoginThrottleNormalisesNames(t *testing.T) {
	a := newLoginAPI(t)
	for _, name := range []string{"carol ", " carol", "Carol", "\tcarol", "carol"} {
		resp, body := a.passwordLogin(name, "not-carols-pw", nil)
		checkProblem(t, resp.StatusCode, resp.Header, body, http.StatusUnauthorized)
	}
	resp, body := a.passwordLogin("carol", carolLocalPassword, nil)
	checkProblem(t, resp.StatusCode, resp.Header, body, http.StatusTooManyRequests)
	resp, body = a.passwordLogin("carol)(uid=*", "x", nil)
	if p := checkProblem(t, resp.StatusCode, resp.Header, body, http.StatusUnprocessableEntity); !strings.Contains(p.Detail, "not a user name") {
		t.Fatalf("a name that is no POSIX name: %q", p.Detail)
	}
}
