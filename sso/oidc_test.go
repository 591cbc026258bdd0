package sso_test

import (
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slurmgate/slurmgate/sso"
	"github.com/slurmgate/slurmgate/sso/ssotest"
)

// oidcWorld is a provider, a relying party over it, and a browser whose
// redirects stop at the relying party's callback.
type oidcWorld struct {
	op       *ssotest.Provider
	rp       *sso.OIDC
	callback string
	browser  *http.Client
}

func newOIDCWorld(t *testing.T) *oidcWorld {
	t.Helper()
	cb := httptest.NewServer(http.NotFoundHandler()) // only its address matters
	t.Cleanup(cb.Close)
	w := &oidcWorld{callback: cb.URL + "/callback"}
	w.op = ssotest.New(t, w.callback,
		ssotest.User{Username: "alice", Password: "alice-op-pw", Email: "alice@example.org", Name: "Alice Liddell", Groups: []string{"vision", "staff"}},
		ssotest.User{Username: "Not A Posix Name", Password: "x-op-pw"},
		ssotest.User{Username: "daemon", Password: "daemon-op-pw"},
		ssotest.User{Username: "nobody", Password: "nobody-op-pw"})
	rp, err := sso.NewOIDC(t.Context(), sso.OIDCConfig{Issuer: w.op.Issuer, ClientID: w.op.ClientID, ClientSecret: w.op.ClientSecret,
		RedirectURL: w.callback, Groups: []sso.GroupRule{{Group: "vision", Project: "lab/vision"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.rp = rp
	jar, _ := cookiejar.New(nil)
	w.browser = &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), w.callback) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	return w
}

// login runs the browser part and returns the callback's state and code.
func (w *oidcWorld) login(t *testing.T, authURL, user, password string) (state, code string) {
	t.Helper()
	resp, err := w.op.Login(w.browser, authURL, user, password)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), w.callback) {
		t.Fatalf("the provider did not redirect to the callback: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("state"), loc.Query().Get("code")
}

func TestOIDCCodeFlowWithPKCE(t *testing.T) {
	w := newOIDCWorld(t)
	authURL, flow, _ := w.rp.Begin(t.Context())
	q, _ := url.Parse(authURL)
	if q.Query().Get("code_challenge_method") != "S256" || q.Query().Get("nonce") != flow.Nonce || q.Query().Get("state") != flow.State {
		t.Fatalf("auth URL lacks PKCE, nonce or state: %s", authURL)
	}
	state, code := w.login(t, authURL, "alice", "alice-op-pw")
	id, raw, err := w.rp.Finish(t.Context(), flow, state, code)
	if err != nil {
		t.Fatal(err)
	}
	if id.Username != "alice" || id.Email != "alice@example.org" || id.FullName != "Alice Liddell" || id.Subject != "sub-alice" || raw == "" {
		t.Fatalf("identity = %+v", id)
	}
	if want := []sso.ProjectGrant{{Project: "lab/vision", Role: "member"}}; !slices.Equal(id.Projects, want) {
		t.Fatalf("projects = %v (groups %v), want %v", id.Projects, id.Groups, want)
	}
	// The code is single-use at the provider.
	if _, _, err := w.rp.Finish(t.Context(), flow, state, code); sso.ReasonOf(err) != sso.Refused {
		t.Fatalf("a code used twice: %v", err)
	}
	// RP-initiated logout goes to the provider's end_session_endpoint.
	lo := w.rp.LogoutURL(raw)
	if !strings.HasPrefix(lo, w.op.Issuer) || !strings.Contains(lo, "id_token_hint=") {
		t.Fatalf("logout URL %q", lo)
	}
}

func TestOIDCRefusals(t *testing.T) {
	w := newOIDCWorld(t)
	for _, tc := range []struct {
		name    string
		tamper  func(c map[string]any) bool
		mention string
	}{
		{"expired token", func(c map[string]any) bool { c["exp"] = time.Now().Add(-time.Hour).Unix(); return false }, "expired"},
		{"wrong audience", func(c map[string]any) bool { c["aud"] = []string{"someone-else"}; return false }, "audience"},
		{"bad signature", func(map[string]any) bool { return true }, "signature"},
		{"replayed nonce", func(c map[string]any) bool { c["nonce"] = "a nonce from an earlier login"; return false }, "replayed"},
		{"other issuer", func(c map[string]any) bool { c["iss"] = "https://evil.example"; return false }, "different provider"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.op.TamperIDTokens(tc.tamper)
			defer w.op.TamperIDTokens(nil)
			authURL, flow, _ := w.rp.Begin(t.Context())
			state, code := w.login(t, authURL, "alice", "alice-op-pw")
			_, _, err := w.rp.Finish(t.Context(), flow, state, code)
			if sso.ReasonOf(err) != sso.Refused || !strings.Contains(strings.ToLower(err.Error()), tc.mention) {
				t.Fatalf("err = %v; want refused, mentioning %q", err, tc.mention)
			}
		})
	}
	t.Run("state mismatch", func(t *testing.T) {
		authURL, _, _ := w.rp.Begin(t.Context())
		_, other, _ := w.rp.Begin(t.Context())
		state, code := w.login(t, authURL, "alice", "alice-op-pw")
		_, _, err := w.rp.Finish(t.Context(), other, state, code)
		if sso.ReasonOf(err) != sso.Refused || !strings.Contains(err.Error(), "state") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("wrong password stays at the provider", func(t *testing.T) {
		authURL, _, _ := w.rp.Begin(t.Context())
		resp, err := w.op.Login(w.browser, authURL, "alice", "wrong")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Location") != "" {
			t.Fatalf("wrong password: %d, Location %q; want the login form again", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("not a POSIX name", func(t *testing.T) {
		s, err := sso.New(t.Context(), sso.Config{OIDC: &sso.OIDCConfig{Issuer: w.op.Issuer, ClientID: w.op.ClientID,
			ClientSecret: w.op.ClientSecret, RedirectURL: w.callback}}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		authURL, flow, _ := s.OIDC().Begin(t.Context())
		state, code := w.login(t, authURL, "Not A Posix Name", "x-op-pw")
		_, _, err = s.FinishOIDC(t.Context(), flow, state, code)
		if sso.ReasonOf(err) != sso.NoPOSIXUser || !strings.Contains(err.Error(), "username_claim") {
			t.Fatalf("err = %v", err)
		}
	})
}

// A provider that is down when the gateway starts must not keep the gateway
// down: discovery is retried by the logins that need it.
func TestOIDCProviderDownAtStartIsNotFatal(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	issuer := dead.URL
	dead.Close() // nothing listens there any more
	rp, err := sso.NewOIDC(t.Context(), sso.OIDCConfig{Issuer: issuer, ClientID: "c", RedirectURL: "http://127.0.0.1/cb"}, nil)
	if err != nil {
		t.Fatalf("NewOIDC with an unreachable provider: %v; want it to start and retry later", err)
	}
	_, _, err = rp.Begin(t.Context())
	var e *sso.Error
	if !errors.As(err, &e) || e.Reason != sso.Unavailable || !strings.Contains(e.Message, "cannot be reached") {
		t.Fatalf("Begin with the provider down: %v; want Unavailable saying it cannot be reached", err)
	}
	if rp.LogoutURL("hint") != "" {
		t.Error("a logout URL without a discovered provider")
	}
}

// A configured uid_claim is a check: a token whose claim is missing, not a
// number or not positive is refused rather than let through unchecked.
func TestOIDCUIDClaimRequired(t *testing.T) {
	w := newOIDCWorld(t)
	rp, err := sso.NewOIDC(t.Context(), sso.OIDCConfig{Issuer: w.op.Issuer, ClientID: w.op.ClientID, ClientSecret: w.op.ClientSecret,
		RedirectURL: w.callback, UIDClaim: "uid_number"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		value any // nil: the claim is absent
		want  int // 0: refused
	}{
		{"missing", nil, 0},
		{"not a number", "alice", 0},
		{"negative", -5, 0},
		{"zero", 0, 0},
		{"fractional", 2001.5, 0},
		{"number", 2001, 2001},
		{"numeric string", "2001", 2001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.op.TamperIDTokens(func(c map[string]any) bool {
				if tc.value != nil {
					c["uid_number"] = tc.value
				}
				return false
			})
			defer w.op.TamperIDTokens(nil)
			authURL, flow, _ := rp.Begin(t.Context())
			state, code := w.login(t, authURL, "alice", "alice-op-pw")
			id, _, err := rp.Finish(t.Context(), flow, state, code)
			if tc.want == 0 {
				if sso.ReasonOf(err) != sso.NoPOSIXUser || !strings.Contains(err.Error(), "uid_claim") {
					t.Fatalf("uid claim %v: %v, uid %d; want refused naming uid_claim", tc.value, err, id.UID)
				}
				return
			}
			if err != nil || id.UID != tc.want {
				t.Fatalf("uid claim %v: %v, uid %d; want uid %d", tc.value, err, id.UID, tc.want)
			}
		})
	}
}

// LDAP and OIDC logins never become system accounts (below sso.min_uid,
// 1000 by default) nor nobody.
func TestSSOMinUID(t *testing.T) {
	w := newOIDCWorld(t)
	for _, tc := range []struct {
		name, user, password string
		minUID               int
		mention              string // "" means allowed
	}{
		{"system account under the default", "daemon", "daemon-op-pw", 0, "min_uid 1000"},
		{"nobody", "nobody", "nobody-op-pw", 1, "nobody"},
		{"a person under a raised minimum", "alice", "alice-op-pw", 3000, "min_uid 3000"},
		{"a person", "alice", "alice-op-pw", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sso.New(t.Context(), sso.Config{MinUID: tc.minUID, OIDC: &sso.OIDCConfig{Issuer: w.op.Issuer, ClientID: w.op.ClientID,
				ClientSecret: w.op.ClientSecret, RedirectURL: w.callback}}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			authURL, flow, _ := s.OIDC().Begin(t.Context())
			state, code := w.login(t, authURL, tc.user, tc.password)
			id, _, err := s.FinishOIDC(t.Context(), flow, state, code)
			if tc.mention == "" {
				if err != nil || id.UID != 2001 {
					t.Fatalf("%s: %v, uid %d", tc.user, err, id.UID)
				}
				return
			}
			if sso.ReasonOf(err) != sso.NoPOSIXUser || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("%s: %v; want refused mentioning %q", tc.user, err, tc.mention)
			}
		})
	}
}
