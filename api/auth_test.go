package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/api/client"
	"github.com/slurmgate/slurmgate/api/sign"
	"github.com/slurmgate/slurmgate/bridge"
)

func TestAuthSignedRequestAccepted(t *testing.T) {
	a := newTestAPI(t, Options{})
	me, err := a.client(a.alice).Me(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if me.Username != "alice" || me.Role != "user" || me.Domain != "lab" || me.Auth.Method != "keypair" || me.Auth.AccessKey != a.alice.accessKey {
		t.Fatalf("Me = %+v", me)
	}
	// A signed POST with a body and a signed query string work too.
	if _, err := a.client(a.alice).CreateKeypair(t.Context(), 0, "second"); err != nil {
		t.Fatal(err)
	}
	page, err := a.client(a.alice).ListKeypairs(t.Context(), 0, client.ListOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var used bool
	for _, k := range page.Items {
		used = used || (k.AccessKey == a.alice.accessKey && k.LastUsedAt != nil)
	}
	if !used {
		t.Fatalf("the signing keypair has no last_used_at: %+v", page.Items)
	}
}

func TestAuthWrongSecret(t *testing.T) {
	a := newTestAPI(t, Options{})
	wrong := a.alice
	wrong.secret = a.bob.secret
	_, err := a.client(wrong).Me(t.Context())
	p := wantClientProblem(t, err, http.StatusUnauthorized)
	if !strings.Contains(p.Detail, "signature does not match") || !strings.Contains(p.Detail, "server time") {
		t.Fatalf("detail %q should say the signature does not match and give the server time", p.Detail)
	}
	_, h := a.wantProblem(a.signed(wrong, "GET", "/api/v1/me", nil, time.Now()), http.StatusUnauthorized)
	if got := h.Values("WWW-Authenticate"); len(got) != 2 || !strings.HasPrefix(got[0], sign.Scheme) || !strings.HasPrefix(got[1], "Bearer") {
		t.Fatalf("WWW-Authenticate = %q, want a challenge for each scheme", got)
	}
}

func TestAuthBodyTampered(t *testing.T) {
	a := newTestAPI(t, Options{})
	body := []byte(`{"description":"mine"}`)
	tampered := []byte(`{"description":"evil"}`)

	// The body changed, its declared hash not.
	r := a.signed(a.alice, "POST", "/api/v1/keypairs", body, time.Now())
	r2 := a.request("POST", "/api/v1/keypairs", tampered)
	r2.Header = r.Header.Clone()
	p, _ := a.wantProblem(r2, http.StatusUnauthorized)
	if !strings.Contains(p.Detail, sign.ContentSHA256Header) {
		t.Fatalf("detail %q should name %s", p.Detail, sign.ContentSHA256Header)
	}

	// Body and hash changed together: the signature no longer covers them.
	r3 := a.request("POST", "/api/v1/keypairs", tampered)
	r3.Header = r.Header.Clone()
	r3.Header.Set(sign.ContentSHA256Header, sign.BodyHash(tampered))
	p, _ = a.wantProblem(r3, http.StatusUnauthorized)
	if !strings.Contains(p.Detail, "signature does not match") {
		t.Fatalf("detail %q should say the signature does not match", p.Detail)
	}

	// The path or the query changed.
	r4 := a.signed(a.alice, "GET", "/api/v1/keypairs?limit=1", nil, time.Now())
	r4.URL.RawQuery = "limit=2"
	a.wantProblem(r4, http.StatusUnauthorized)

	// Nothing of it reached the database.
	page, err := a.client(a.alice).ListKeypairs(t.Context(), 0, client.ListOptions{})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("alice has %d keypairs (%v), want only her first", len(page.Items), err)
	}
}

func TestAuthDateOutsideSkew(t *testing.T) {
	a := newTestAPI(t, Options{ClockSkew: 5 * time.Minute})
	for _, tc := range []struct {
		offset  time.Duration
		mention string
	}{{-10 * time.Minute, "behind"}, {10 * time.Minute, "ahead of"}} {
		p, _ := a.wantProblem(a.signed(a.alice, "GET", "/api/v1/me", nil, time.Now().Add(tc.offset)), http.StatusUnauthorized)
		if !strings.Contains(p.Detail, tc.mention) || !strings.Contains(p.Detail, "server time") || !strings.Contains(p.Detail, "±5m0s") {
			t.Fatalf("offset %v: detail %q should say how far off the date is, the server time and the bound", tc.offset, p.Detail)
		}
	}
	a.wantStatus(a.signed(a.alice, "GET", "/api/v1/me", nil, time.Now().Add(-4*time.Minute)), http.StatusOK)

	r := a.signed(a.alice, "GET", "/api/v1/me", nil, time.Now())
	r.Header.Set(sign.DateHeader, "yesterday")
	a.wantProblem(r, http.StatusUnauthorized)
	r.Header.Del(sign.DateHeader)
	a.wantProblem(r, http.StatusUnauthorized)
}

func TestAuthReplay(t *testing.T) {
	a := newTestAPI(t, Options{})
	body := []byte(`{"description":"once"}`)
	first := a.signed(a.alice, "POST", "/api/v1/keypairs", body, time.Now())
	again := a.request("POST", "/api/v1/keypairs", body)
	again.Header = first.Header.Clone()
	a.wantStatus(first, http.StatusCreated)
	p, _ := a.wantProblem(again, http.StatusUnauthorized)
	if !strings.Contains(p.Detail, "already") {
		t.Fatalf("detail %q should say the request was seen before", p.Detail)
	}
	// A new nonce under the old signature does not sign; without a nonce
	// nothing does.
	again = a.request("POST", "/api/v1/keypairs", body)
	again.Header = first.Header.Clone()
	again.Header.Set(sign.NonceHeader, "fresh")
	if p, _ := a.wantProblem(again, http.StatusUnauthorized); !strings.Contains(p.Detail, "signature does not match") {
		t.Fatalf("a swapped nonce: detail %q", p.Detail)
	}
	again.Header.Del(sign.NonceHeader)
	if p, _ := a.wantProblem(again, http.StatusUnauthorized); !strings.Contains(p.Detail, sign.NonceHeader) {
		t.Fatalf("no nonce: detail %q should name %s", p.Detail, sign.NonceHeader)
	}
	// The same request signed anew is fine, even within the same second.
	a.wantStatus(a.signed(a.alice, "POST", "/api/v1/keypairs", body, time.Now()), http.StatusCreated)
}

func TestAuthRevokedKeypair(t *testing.T) {
	a := newTestAPI(t, Options{})
	c := a.client(a.alice)
	if err := c.RevokeKeypair(t.Context(), a.alice.accessKey); err != nil {
		t.Fatal(err)
	}
	_, err := c.Me(t.Context())
	if p := wantClientProblem(t, err, http.StatusUnauthorized); !strings.Contains(p.Detail, "revoked") {
		t.Fatalf("detail %q should say the keypair was revoked", p.Detail)
	}
	unknown := a.alice
	unknown.accessKey = "SGAKAAAAAAAAAAAAAAAA"
	_, err = a.client(unknown).Me(t.Context())
	wantClientProblem(t, err, http.StatusUnauthorized)
}

func TestAuthBearerToken(t *testing.T) {
	a := newTestAPI(t, Options{})
	c, token := a.tokenClient(a.alice)
	me, err := c.Me(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if me.Username != "alice" || me.Auth.Method != "token" || me.Auth.ExpiresAt == nil || time.Until(*me.Auth.ExpiresAt) > time.Hour {
		t.Fatalf("Me with a token = %+v", me)
	}
	// A token cannot mint tokens: revoking the keypair ends the chain.
	_, err = c.CreateToken(t.Context(), time.Hour)
	wantClientProblem(t, err, http.StatusForbidden)

	if _, _, err := a.b.ActorForToken(t.Context(), token); err != nil {
		t.Fatal(err)
	}
	expire(t, a, token)
	r := a.request("GET", "/api/v1/me", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	p, h := a.wantProblem(r, http.StatusUnauthorized)
	if !strings.Contains(p.Detail, "expired") || len(h.Values("WWW-Authenticate")) == 0 {
		t.Fatalf("an expired token: detail %q, WWW-Authenticate %q", p.Detail, h.Values("WWW-Authenticate"))
	}
}

// expire makes a token expire a second ago.
func expire(t *testing.T, a *testAPI, token string) {
	t.Helper()
	hash := sha256.Sum256([]byte(token))
	tag, err := a.db.Exec(t.Context(), `UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1`, hash[:])
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("expiring the token: %v, %d rows", err, tag.RowsAffected())
	}
}

func TestAuthMissingOrUnsupportedCredentials(t *testing.T) {
	a := newTestAPI(t, Options{})
	p, _ := a.wantProblem(a.request("GET", "/api/v1/me", nil), http.StatusUnauthorized)
	if !strings.Contains(p.Detail, sign.Scheme) || !strings.Contains(p.Detail, "Bearer") {
		t.Fatalf("detail %q should say how to authenticate", p.Detail)
	}
	for _, h := range []string{"Basic YWxpY2U6eA==", "Bearer ", "Bearer sgt_nope", sign.Scheme + " Credential=x"} {
		r := a.request("GET", "/api/v1/me", nil)
		r.Header.Set("Authorization", h)
		a.wantProblem(r, http.StatusUnauthorized)
	}
	// Public routes read no credentials, so bad ones do not matter there.
	r := a.request("GET", "/healthz", nil)
	r.Header.Set("Authorization", "Bearer sgt_nope")
	a.wantStatus(r, http.StatusOK)
}

func TestAuthMetricsLoopbackOrSuperadmin(t *testing.T) {
	a := newTestAPI(t, Options{})
	if _, err := a.client(a.alice).Me(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.wantStatus(a.request("GET", "/no/such/route", nil), http.StatusNotFound)
	// The test server listens on loopback: no credentials needed.
	body := string(a.wantStatus(a.request("GET", "/metrics", nil), http.StatusOK))
	for _, want := range []string{
		`slurmgate_http_request_duration_seconds_count{method="GET",route="/api/v1/me",status="2xx"} 1`,
		`route="unmatched",status="4xx"`,
		// The domain's own series: sessions by state, the last reconcile pass.
		`slurmgate_sessions{state="PENDING"} 0`,
		`slurmgate_sessions{state="TERMINATED"} 0`,
		`slurmgate_reconcile_duration_seconds`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "/no/such/route") {
		t.Fatal("a raw path became a metric label")
	}

	// From elsewhere, only superadmins.
	remote := func(auth string) int {
		r := httptest.NewRequest("GET", "/metrics", nil)
		r.RemoteAddr = "192.0.2.7:40000"
		if auth != "" {
			r.Header.Set("Authorization", "Bearer "+auth)
		}
		w := httptest.NewRecorder()
		a.srv.ServeHTTP(w, r)
		return w.Code
	}
	_, aliceToken := a.tokenClient(a.alice)
	_, rootToken := a.tokenClient(a.root)
	if got := remote(""); got != http.StatusUnauthorized {
		t.Errorf("remote, no credentials: %d, want 401", got)
	}
	if got := remote(aliceToken); got != http.StatusForbidden {
		t.Errorf("remote, a user: %d, want 403", got)
	}
	if got := remote(rootToken); got != http.StatusOK {
		t.Errorf("remote, a superadmin: %d, want 200", got)
	}
}

func TestAuthSecretsNeverLogged(t *testing.T) {
	a := newTestAPI(t, Options{})
	c := a.client(a.alice)
	kp, err := c.CreateKeypair(t.Context(), 0, "logged?")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateToken(t.Context(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := client.New(a.ts.URL, client.WithToken(tok.Token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tc.Me(t.Context()); err != nil {
		t.Fatal(err)
	}
	signed := a.signed(a.bob, "GET", "/api/v1/me", nil, time.Now())
	a.wantStatus(signed, http.StatusOK)
	replayed := a.request("GET", "/api/v1/me", nil)
	replayed.Header = signed.Header.Clone()
	a.wantStatus(replayed, http.StatusUnauthorized)
	wrong := a.signed(testUser{a.bob.Actor, a.bob.accessKey, "wrong"}, "GET", "/api/v1/me", nil, time.Now())
	a.wantStatus(wrong, http.StatusUnauthorized)
	bad := a.request("GET", "/api/v1/me", nil)
	bad.Header.Set("Authorization", "Bearer "+tok.Token+"x")
	a.wantStatus(bad, http.StatusUnauthorized)

	a.ts.Close() // waits for handlers, and so for their log lines
	logs := a.logs.String()
	if !strings.Contains(logs, `"path":"/api/v1/me"`) {
		t.Fatalf("no access log lines captured:\n%s", logs)
	}
	sigOf := func(r *http.Request) string {
		_, sig, err := sign.ParseAuthorization(r.Header.Get("Authorization"))
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(sig)
	}
	for what, secret := range map[string]string{
		"alice's secret key":      a.alice.secret,
		"bob's secret key":        a.bob.secret,
		"the new secret key":      kp.SecretKey,
		"the bearer token":        tok.Token,
		"bob's signature":         sigOf(signed),
		"the wrong signature":     sigOf(wrong),
		"the token's random part": strings.TrimPrefix(tok.Token, "sgt_"),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains %s", what)
		}
	}
}

// Why a keypair is refused (revoked when, its user locked) is not told to
// someone who only knows the access key: the answer is the same whatever
// the reason, and the detail is in the log.
func TestAuthKeypairRefusalSaysNothingBeforeTheSignature(t *testing.T) {
	a := newTestAPI(t, Options{})
	locked := "locked"
	if _, err := a.b.UpdateUser(t.Context(), bridge.System, a.bob.UserID, bridge.UserUpdate{Status: &locked}); err != nil {
		t.Fatal(err)
	}
	if err := a.client(a.alice).RevokeKeypair(t.Context(), a.alice.accessKey); err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, u := range []testUser{a.alice, a.bob, {accessKey: "SGAKAAAAAAAAAAAAAAAA"}} {
		u.secret = "not the secret"
		_, err := a.client(u).Me(t.Context())
		p := wantClientProblem(t, err, http.StatusUnauthorized)
		if strings.Contains(p.Detail, "bob") || strings.Contains(p.Detail, "locked") || strings.Contains(p.Detail, "revoked at") {
			t.Fatalf("refusal of %s with a wrong secret tells why: %q", u.accessKey, p.Detail)
		}
		details = append(details, strings.ReplaceAll(p.Detail, u.accessKey, "KEY"))
	}
	if details[0] != details[1] || details[1] != details[2] {
		t.Fatalf("refusals differ by reason: %q", details)
	}
	if !strings.Contains(a.logs.String(), "revoked at") {
		t.Error("the log lacks why the revoked keypair was refused")
	}
}
