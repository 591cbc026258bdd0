package client

// Password login, for clients that start from a user name and a password
// rather than a keypair: the CLI logs in, mints itself a keypair and logs
// out again.

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"time"
)

// PasswordLogin logs in to the gateway at baseURL with a user name and
// password (a local account or LDAP) and returns a client that acts through
// the portal session this opens: its cookie, and its CSRF token on every
// request. Use it to mint a keypair (CreateKeypair), then Logout.
func PasswordLogin(ctx context.Context, baseURL, username, password string, opts ...Option) (*Client, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	ct := &csrfTransport{base: http.DefaultTransport}
	c, err := New(baseURL, append(opts, WithHTTPClient(&http.Client{Jar: jar, Transport: ct, Timeout: time.Minute}))...)
	if err != nil {
		return nil, err
	}
	c.accessKey, c.secret, c.token = "", nil, "" // the cookie is the credential
	in := struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}{username, password}
	var out struct {
		CSRFToken string `json:"csrf_token"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/auth/login", in, &out); err != nil {
		return nil, err
	}
	ct.set(out.CSRFToken)
	return c, nil
}

// Logout ends the portal session of a client from PasswordLogin.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/v1/auth/logout", nil, nil)
}

// csrfTransport adds the portal session's CSRF token to every request, as
// the gateway wants on state changes a cookie authenticates.
type csrfTransport struct {
	base  http.RoundTripper
	mu    sync.Mutex
	token string
}

func (t *csrfTransport) set(token string) {
	t.mu.Lock()
	t.token = token
	t.mu.Unlock()
}

func (t *csrfTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	token := t.token
	t.mu.Unlock()
	if token != "" {
		r = r.Clone(r.Context())
		r.Header.Set("X-CSRF-Token", token)
	}
	return t.base.RoundTrip(r)
}
