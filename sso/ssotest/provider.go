// Package ssotest runs a real OpenID Provider in-process for tests:
// zitadel/oidc's pkg/op with its example login form, serving discovery,
// authorization (with PKCE), token, JWKS and end-session endpoints. Tests
// can tamper with the ID tokens it issues (expiry, audience, nonce,
// signature) to check that the relying party refuses them.
package ssotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is an account at the provider.
type User struct {
	Username string // the preferred_username claim and the login name
	Password string
	Email    string
	Name     string
	Groups   []string // the "groups" claim
}

// Provider is a running OpenID Provider.
type Provider struct {
	Issuer       string
	ClientID     string
	ClientSecret string

	key    *rsa.PrivateKey
	keyID  string
	mu     sync.Mutex
	tamper func(claims map[string]any) (foreignKey bool)
}

// New starts a provider with one confidential web client whose only
// redirect URI is redirectURL, and the given users; it stops when t ends.
func New(t testing.TB, redirectURL string, users ...User) *Provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{ClientID: "slurmgate", ClientSecret: rand.Text(), key: key, keyID: "test-" + rand.Text()[:8]}
	srv := httptest.NewUnstartedServer(nil)
	p.Issuer = "http://" + srv.Listener.Addr().String()

	us := userStore{byID: map[string]*storage.User{}, groups: map[string][]string{}}
	for i, u := range users {
		id := "sub-" + u.Username
		first, last, _ := strings.Cut(u.Name, " ")
		us.byID[id] = &storage.User{ID: id, Username: u.Username, Password: u.Password, FirstName: first, LastName: last,
			Email: u.Email, EmailVerified: true}
		us.groups[id] = users[i].Groups
	}
	client := storage.WebClient(p.ClientID, p.ClientSecret, redirectURL)
	st := &store{Storage: storage.NewStorageWithClients(us, map[string]*storage.Client{p.ClientID: client}), p: p, users: us}
	handler := exampleop.SetupServer(p.Issuer, st, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	srv.Config.Handler = p.tamperTokens(handler)
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// Login is the browser's part of a login: it follows authURL to the
// provider's login form, submits username and password, and follows the
// redirects from there with client (give it a cookie jar, and a
// CheckRedirect that stops where the test wants to look). It returns the
// last response; on a wrong password that is the form again, with the
// provider's error in its body.
func (p *Provider) Login(client *http.Client, authURL, username, password string) (*http.Response, error) {
	resp, err := client.Get(authURL)
	if err != nil {
		return nil, err
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := authRequestID.FindSubmatch(page)
	if m == nil {
		return nil, fmt.Errorf("GET %s ended at %s (%d) without the provider's login form: %.300s", authURL, resp.Request.URL, resp.StatusCode, page)
	}
	return client.PostForm(p.Issuer+"/login/username", url.Values{"id": {string(m[1])}, "username": {username}, "password": {password}})
}

var authRequestID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// TamperIDTokens makes the token endpoint rewrite every ID token's claims
// with f and sign it again: with the provider's key, or with a key nobody
// published when f returns true. nil stops tampering.
func (p *Provider) TamperIDTokens(f func(claims map[string]any) (foreignKey bool)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tamper = f
}

func (p *Provider) tamperTokens(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		f := p.tamper
		p.mu.Unlock()
		if f == nil || r.Method != http.MethodPost || r.URL.Path != "/oauth/token" {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			copyResponse(w, rec)
			return
		}
		raw, _ := body["id_token"].(string)
		parts := strings.Split(raw, ".")
		if len(parts) != 3 {
			copyResponse(w, rec)
			return
		}
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var claims map[string]any
		json.Unmarshal(payload, &claims)
		foreign := f(claims)
		key := p.key
		if foreign {
			key, _ = rsa.GenerateKey(rand.Reader, 2048)
		}
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: p.keyID}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		payload, _ = json.Marshal(claims)
		jws, err := signer.Sign(payload)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		body["id_token"], _ = jws.CompactSerialize()
		out, _ := json.Marshal(body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	io.Copy(w, bytes.NewReader(rec.Body.Bytes()))
}

// userStore is the example storage's user lookup over our users.
type userStore struct {
	byID   map[string]*storage.User
	groups map[string][]string
}

func (u userStore) GetUserByID(id string) *storage.User { return u.byID[id] }
func (u userStore) GetUserByUsername(name string) *storage.User {
	for _, x := range u.byID {
		if x.Username == name {
			return x
		}
	}
	return nil
}
func (u userStore) ExampleClientID() string { return "service" }

// store is the example storage with our signing key and with the profile,
// e-mail and groups claims always in the ID token (the example puts them
// only in userinfo once an access token is issued).
type store struct {
	*storage.Storage
	p     *Provider
	users userStore
}

func (s *store) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	u := s.users.byID[req.GetSubject()]
	if u == nil {
		return nil
	}
	info.PreferredUsername = u.Username
	info.Email = u.Email
	info.Name = strings.TrimSpace(u.FirstName + " " + u.LastName)
	if g := s.users.groups[u.ID]; g != nil {
		info.AppendClaims("groups", g)
	}
	return nil
}

type signingKey struct{ p *Provider }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.p.key }
func (k signingKey) ID() string                                  { return k.p.keyID }

type publicKey struct{ p *Provider }

func (k publicKey) ID() string                                     { return k.p.keyID }
func (k publicKey) Algorithm() jose.SignatureAlgorithm             { return jose.RS256 }
func (k publicKey) Use() string                                    { return "sig" }
func (k publicKey) Key() any                                       { return &k.p.key.PublicKey }
func (s *store) SigningKey(context.Context) (op.SigningKey, error) { return signingKey{s.p}, nil }
func (s *store) KeySet(context.Context) ([]op.Key, error)          { return []op.Key{publicKey{s.p}}, nil }
