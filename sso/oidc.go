package sso

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

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
type OIDC struct {
	cfg        OIDCConfig
	provider   *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
	groups     *GroupMapper
	client     *http.Client
}

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
	provider, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery at %s: %w", cfg.Issuer, err)
	}
	var extra struct {
		EndSession string   `json:"end_session_endpoint"`
		PKCE       []string `json:"code_challenge_methods_supported"`
	}
	if err := provider.Claims(&extra); err != nil {
		return nil, fmt.Errorf("oidc discovery at %s: %w", cfg.Issuer, err)
	}
	return &OIDC{
		cfg:        cfg,
		provider:   provider,
		verifier:   provider.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		endSession: extra.EndSession,
		groups:     groups,
		client:     client,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     provider.Endpoint(),
			RedirectURL:  cfg.RedirectURL,
			Scopes:       append([]string{oidc.ScopeOpenID}, cfg.Scopes...),
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

// Begin starts a login: the URL to send the browser to, and its Flow.
func (o *OIDC) Begin() (authURL string, f Flow) {
	f = Flow{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	return o.oauth.AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), f
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
	ctx = oidc.ClientContext(ctx, o.client)
	tok, err := o.oauth.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
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
	idt, err := o.verifier.Verify(ctx, raw)
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
		switch v := claims[o.cfg.UIDClaim].(type) {
		case float64:
			id.UID = int(v)
		case string:
			id.UID, _ = strconv.Atoi(v)
		}
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
	if o.endSession == "" {
		return ""
	}
	u, err := url.Parse(o.endSession)
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
