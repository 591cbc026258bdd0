package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/slurmgate/slurmgate/api/client"
)

// A device login approved from a portal session that OIDC started: the
// keypair is the approver's (bob's), the cookie needs its CSRF token, a
// second poll gets nothing, and the device code never reaches the log.
func TestDeviceLoginApprovedThroughOIDCPortalSession(t *testing.T) {
	a := newLoginAPI(t)
	ctx := t.Context()
	anon, err := client.New(a.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	d, err := anon.StartDeviceLogin(ctx, "slurmgate CLI on login1")
	if err != nil {
		t.Fatal(err)
	}
	if d.VerificationURIComplete != a.ts.URL+"/device?code="+d.UserCode || d.ExpiresIn != 600 || d.Interval != 2 {
		t.Fatalf("device authorization %+v", d)
	}
	_, err = anon.PollDeviceLogin(ctx, d.DeviceCode)
	if p := wantClientProblem(t, err, 400); p.Type != client.ProblemAuthorizationPending {
		t.Fatalf("first poll: %+v", p)
	}
	_, err = anon.PollDeviceLogin(ctx, d.DeviceCode)
	if p := wantClientProblem(t, err, 400); p.Type != client.ProblemSlowDown {
		t.Fatalf("immediate second poll: %+v", p)
	}

	br := a.browser()
	if resp, body := a.oidcLogin(t, br, "bob", "bob-op-pw"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("OIDC login: %d %s", resp.StatusCode, body)
	}
	cookie := a.sessionCookieOf(br)
	var sess portalSessionResponse
	json.Unmarshal(a.wantStatus(a.withCookie("GET", "/api/v1/auth/session", nil, cookie, ""), 200), &sess)

	// The page shows what is being allowed.
	var pending struct{ Client, UserCode string }
	json.Unmarshal(a.wantStatus(a.withCookie("GET", "/api/v1/auth/device/"+d.UserCode, nil, cookie, ""), 200), &pending)
	if pending.Client != "slurmgate CLI on login1" {
		t.Fatalf("pending login %+v", pending)
	}
	decision := []byte(`{"user_code":"` + d.UserCode + `","allow":true}`)
	a.wantProblem(a.withCookie("POST", "/api/v1/auth/device/approve", decision, cookie, ""), 403)
	a.wantStatus(a.withCookie("POST", "/api/v1/auth/device/approve", decision, cookie, sess.CSRFToken), 200)

	kp, err := anon.WaitDeviceLogin(ctx, d)
	if err != nil || kp.Username != "bob" {
		t.Fatalf("poll after approval: %+v %v", kp, err)
	}
	bob, _ := client.New(a.ts.URL, client.WithKeypair(kp.AccessKey, kp.SecretKey))
	if me, err := bob.Me(ctx); err != nil || me.Username != "bob" {
		t.Fatalf("the minted keypair acts as %+v (%v)", me, err)
	}
	_, err = anon.PollDeviceLogin(ctx, d.DeviceCode)
	if p := wantClientProblem(t, err, 400); p.Type != client.ProblemExpiredToken {
		t.Fatalf("poll after the keypair was taken: %+v", p)
	}
	if strings.Contains(a.logs.String(), d.DeviceCode) {
		t.Fatal("the device code is in the server's log")
	}
}

// Behind a proxy that rewrites Host, the configured public URL is what the
// person must open.
func TestDeviceLoginPageUsesPublicURL(t *testing.T) {
	a := newTestAPI(t, Options{PublicURL: "https://gw.example.org/"})
	anon, err := client.New(a.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	d, err := anon.StartDeviceLogin(t.Context(), "slurmgate CLI on login1")
	if err != nil {
		t.Fatal(err)
	}
	if d.VerificationURI != "https://gw.example.org/device" || d.VerificationURIComplete != "https://gw.example.org/device?code="+d.UserCode {
		t.Fatalf("device authorization %+v; want the page under the public URL", d)
	}
}
