package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Identity is the caller as the gateway knows them.
type Identity struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	UID      int    `json:"uid"`
	Email    string `json:"email"`
	FullName string `json:"full_name"`
	DomainID int64  `json:"domain_id"`
	Domain   string `json:"domain"`
	Role     string `json:"role"` // "user", "domain-admin" or "superadmin"
	Status   string `json:"status"`
	Auth     struct {
		Method    string     `json:"method"` // "keypair" or "token"
		AccessKey string     `json:"access_key"`
		ExpiresAt *time.Time `json:"expires_at"`
	} `json:"auth"`
}

// Me returns who the client's credentials act as.
func (c *Client) Me(ctx context.Context) (*Identity, error) {
	var me Identity
	if err := c.do(ctx, http.MethodGet, "/api/v1/me", nil, &me); err != nil {
		return nil, err
	}
	return &me, nil
}

// NewKeypair is a keypair just created, with the secret that is shown only
// this once.
type NewKeypair struct {
	AccessKey   string `json:"access_key"`
	SecretKey   string `json:"secret_key"`
	UserID      int64  `json:"user_id"`
	Description string `json:"description"`
}

// Keypair is a keypair as listed, without its secret.
type Keypair struct {
	AccessKey   string     `json:"access_key"`
	UserID      int64      `json:"user_id"`
	Username    string     `json:"username"`
	Description string     `json:"description"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
}

// CreateKeypair creates a keypair for the caller (userID 0) or, for admins,
// for another user.
func (c *Client) CreateKeypair(ctx context.Context, userID int64, description string) (*NewKeypair, error) {
	in := struct {
		UserID      int64  `json:"user_id,omitempty"`
		Description string `json:"description,omitempty"`
	}{userID, description}
	var kp NewKeypair
	if err := c.do(ctx, http.MethodPost, "/api/v1/keypairs", in, &kp); err != nil {
		return nil, err
	}
	return &kp, nil
}

// ListKeypairs lists one page of the caller's (userID 0) or a user's
// keypairs, newest first.
func (c *Client) ListKeypairs(ctx context.Context, userID int64, opts ListOptions) (*Page[Keypair], error) {
	q := url.Values{}
	if userID != 0 {
		q.Set("user_id", strconv.FormatInt(userID, 10))
	}
	var page Page[Keypair]
	if err := c.do(ctx, http.MethodGet, withQuery("/api/v1/keypairs", opts.values(q)), nil, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// RevokeKeypair revokes a keypair; requests it signs fail from then on.
func (c *Client) RevokeKeypair(ctx context.Context, accessKey string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/keypairs/"+url.PathEscape(accessKey), nil, nil)
}

// Token is a bearer token and when it expires.
type Token struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateToken mints a bearer token for the caller, valid for ttl (at most
// 24 hours; 0 means one hour). The client must use a keypair.
func (c *Client) CreateToken(ctx context.Context, ttl time.Duration) (*Token, error) {
	in := struct {
		TTLSeconds int64 `json:"ttl_seconds,omitempty"`
	}{int64(ttl / time.Second)}
	var tok Token
	if err := c.do(ctx, http.MethodPost, "/api/v1/tokens", in, &tok); err != nil {
		return nil, err
	}
	return &tok, nil
}
