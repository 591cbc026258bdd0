package sso

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// OIDCConfig is the [oidc] section.
type OIDCConfig struct {
	// Name is what the login page's button says, e.g. "University SSO".
	Name string `toml:"name"`
	// Issuer is the provider's issuer URL; discovery reads
	// <issuer>/.well-known/openid-configuration.
	Issuer       string `toml:"issuer"`
	ClientID     string `toml:"client_id"`
	ClientSecret string `toml:"client_secret" secret:"true"`
	// RedirectURL is the gateway's callback as registered with the
	// provider: <public_url>/api/v1/auth/oidc/callback.
	RedirectURL string `toml:"redirect_url"`
	// PostLogoutRedirectURL is where the provider sends the browser after
	// RP-initiated logout; it must be registered with the provider too.
	PostLogoutRedirectURL string `toml:"post_logout_redirect_url"`
	// Scopes besides "openid"; default profile and email.
	Scopes []string `toml:"scopes"`
	// UsernameClaim holds the POSIX user name; default "preferred_username".
	UsernameClaim string `toml:"username_claim"`
	// UIDClaim, when set, holds the POSIX uid, which must then match.
	UIDClaim string `toml:"uid_claim"`
	// GroupsClaim holds the user's groups; default "groups".
	GroupsClaim string `toml:"groups_claim"`
	// Groups maps group claim values to projects.
	Groups []GroupRule `toml:"groups"`
}

// OIDC is an OpenID Connect relying party: authorization code flow with
// PKCE (S256), state and nonce, ID tokens verified by go-oidc (issuer,
// audience, expiry, signature against the provider's JWKS).
//
// Discovery is lazy and retried: a provider that is down when the gateway
// starts must not keep the gateway (and its LDAP and keypair users) down.
// Until discovery succeeds, logins through this provider fail with
// Unavailable and try discovery again, at most every discoveryRetry.
type OIDC struct {
	cfg    OIDCConfig
	groups *GroupMapper
	client *http.Client

	mu      sync.Mutex
	ep      *oidcEndpoints // nil until discovery succeeds
	lastTry time.Time
	lastErr error
}

// oidcEndpoints is what discovery learns about the provider.
type oidcEndpoints struct {
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
}

// discoveryRetry spaces discovery attempts while the provider is down, so a
// burst of logins does not become a burst of requests to a struggling server.
const discoveryRetry = 10 * time.Second

// NewOIDC runs discovery against the issuer. client is used for every
// request to the provider (discovery, token, JWKS); nil means
// http.DefaultClient.
func NewOIDC(ctx context.Context, cfg OIDCConfig, client *http.Client) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc: issuer, client_id and redirect_url are required")
	}
	if cfg.Name == "" {
		cfg.Name = "OpenID Connect"
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"profile", "email"}
	}
	groups, err := NewGroupMapper(cfg.Groups)
	if err != nil {
		return nil, fmt.Errorf("oidc: %w", err)
	}
	if client == nil {
		client = http.DefaultClient
	}
	o := &OIDC{cfg: cfg, groups: groups, client: client}
	// A first attempt now, so a misconfigured issuer shows in the start-up
	// log; failing here is not fatal.
	if _, err := o.endpoints(ctx); err != nil {
		slog.Warn("OIDC provider not reachable yet; logins through it will retry discovery", "issuer", cfg.Issuer, "err", err)
	}
	return o, nil
}

// endpoints returns the discovered provider, discovering it if needed.
func (o *OIDC) endpoints(ctx context.Context) (*oidcEndpoints, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ep != nil {
		return o.ep, nil
	}
	if !o.lastTry.IsZero() && time.Since(o.lastTry) < discoveryRetry {
		return nil, o.lastErr
	}
	o.lastTry = time.Now()
	ep, err := o.discover(ctx)
	if err != nil {
		o.lastErr = refuse(Unavailable, err, "the identity provider %s cannot be reached: try again shortly, or log in another way", o.cfg.Issuer)
		return nil, o.lastErr
	}
	o.ep = ep
	return ep, nil
}

func (o *OIDC) discover(ctx context.Context) (*oidcEndpoints, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, o.client), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery at %s: %w", o.cfg.Issuer, err)
	}
	var extra struct {
		EndSession string   `json:"end_session_endpoint"`
		PKCE       []string `json:"code_challenge_methods_supported"`
	}
	if err := provider.Claims(&extra); err != nil {
		return nil, fmt.Errorf("oidc discovery at %s: %w", o.cfg.Issuer, err)
	}
	return &oidcEndpoints{
		verifier:   provider.Verifier(&oidc.Config{ClientID: o.cfg.ClientID}),
		endSession: extra.EndSession,
		oauth: oauth2.Config{
			ClientID:     o.cfg.ClientID,
			ClientSecret: o.cfg.ClientSecret,
			Endpoint:     provider.Endpoint(),
			RedirectURL:  o.cfg.RedirectURL,
			Scopes:       append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...),
		},
	}, nil
}

// Name is what the login page offers the provider as.
func (o *OIDC) Name() string { return o.cfg.Name }

// Flow is one login in progress: what the callback must match. The caller
// keeps it server-side, keyed by State, and uses it once.
type Flow struct {
	State    string
	Nonce    string
	Verifier string // the PKCE code verifier
}

// Begin starts a login: the URL to send the browser to, and its Flow. It
// fails (Unavailable) only while the provider has never been reached.
func (o *OIDC) Begin(ctx context.Context) (authURL string, f Flow, err error) {
	ep, err := o.endpoints(ctx)
	if err != nil {
		return "", Flow{}, err
	}
	f = Flow{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	return ep.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), f, nil
}

// Finish completes the login the provider redirected back from: state must
// be the Flow's, the code is exchanged (with the PKCE verifier) and the ID
// token verified, its nonce compared with the Flow's. It returns the
// identity, not yet POSIX-resolved, and the raw ID token (the hint for
// RP-initiated logout).
func (o *OIDC) Finish(ctx context.Context, f Flow, state, code string) (Identity, string, error) {
	if f.State == "" || state != f.State {
		return Identity{}, "", refuse(Refused, nil, "the login's state does not match the one this browser started: start the login again (and do not follow login links from others)")
	}
	if code == "" {
		return Identity{}, "", refuse(Refused, nil, "the identity provider returned no authorization code")
	}
	ep, err := o.endpoints(ctx)
	if err != nil {
		return Identity{}, "", err
	}
	ctx = oidc.ClientContext(ctx, o.client)
	tok, err := ep.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return Identity{}, "", refuse(Refused, err, "the identity provider refused the authorization code (%s): start the login again", re.ErrorCode)
		}
		return Identity{}, "", refuse(Unavailable, err, "the identity provider's token endpoint cannot be reached")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, "", refuse(Refused, nil, "the identity provider returned no ID token: is the openid scope allowed for client %s?", o.cfg.ClientID)
	}
	idt, err := ep.verifier.Verify(ctx, raw)
	if err != nil {
		// go-oidc's reason (expired, audience, signature, issuer) names no
		// secret and tells an admin what is wrong, so it is in the message.
		return Identity{}, "", refuse(Refused, nil, "the identity provider's ID token was refused (%v): start the login again; if it recurs, check the gateway's clock and client_id", err)
	}
	if idt.Nonce != f.Nonce {
		return Identity{}, "", refuse(Refused, nil, "the ID token's nonce is not this login's: it was issued for another login (a replayed token); start the login again")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, "", refuse(Refused, err, "the ID token's claims cannot be read")
	}
	id := Identity{Source: "oidc", Subject: idt.Subject}
	id.Username, _ = claims[o.cfg.UsernameClaim].(string)
	if id.Username == "" {
		return Identity{}, "", refuse(NoPOSIXUser, nil, "the ID token has no %q claim to take the user name from: an administrator must set username_claim or release the claim at the provider", o.cfg.UsernameClaim)
	}
	id.Email, _ = claims["email"].(string)
	id.FullName, _ = claims["name"].(string)
	if o.cfg.UIDClaim != "" {
		// A configured uid claim is a check the site asked for: a token
		// without a usable one is refused, never let through unchecked.
		uid, ok := 0, false
		switch v := claims[o.cfg.UIDClaim].(type) {
		case float64:
			uid, ok = int(v), v == float64(int(v))
		case string:
			n, err := strconv.Atoi(v)
			uid, ok = n, err == nil
		}
		if !ok || uid <= 0 {
			return Identity{}, "", refuse(NoPOSIXUser, nil, "the ID token's %q claim (%v) is not a POSIX uid, and uid_claim requires one: an administrator must release the claim at the provider or unset uid_claim", o.cfg.UIDClaim, claims[o.cfg.UIDClaim])
		}
		id.UID = uid
	}
	switch v := claims[o.cfg.GroupsClaim].(type) {
	case []any:
		for _, g := range v {
			if s, ok := g.(string); ok {
				id.Groups = append(id.Groups, s)
			}
		}
	case string:
		id.Groups = []string{v}
	}
	id.Projects = o.groups.Projects(id.Groups)
	return id, raw, nil
}

// LogoutURL is where to send the browser to end the provider's session too
// (RP-initiated logout), or "" when the provider has no end_session_endpoint.
func (o *OIDC) LogoutURL(idTokenHint string) string {
	o.mu.Lock()
	ep := o.ep
	o.mu.Unlock()
	if ep == nil || ep.endSession == "" {
		return ""
	}
	u, err := url.Parse(ep.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", o.cfg.ClientID)
	if idTokenHint != "" {
		q.Set("id_token_hint", idTokenHint)
	}
	if o.cfg.PostLogoutRedirectURL != "" {
		q.Set("post_logout_redirect_uri", o.cfg.PostLogoutRedirectURL)
	}
	u.RawQuery = q.Encode()
	return u.String()
}
