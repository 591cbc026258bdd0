package client

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// DeviceAuthorization is a started device login (RFC 8628 §3.2): show the
// person UserCode and VerificationURI, keep DeviceCode secret and poll with
// it.
type DeviceAuthorization struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"` // seconds
	Interval                int    `json:"interval"`   // seconds between polls, at least
}

// DeviceKeypair is what an approved device login gives: a new keypair of
// the approver's.
type DeviceKeypair struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	Username  string `json:"username"`
}

// The problem types of a poll that got no keypair (RFC 8628 §3.5).
const (
	ProblemAuthorizationPending = "urn:slurmgate:problem:authorization_pending"
	ProblemSlowDown             = "urn:slurmgate:problem:slow_down"
	ProblemAccessDenied         = "urn:slurmgate:problem:access_denied"
	ProblemExpiredToken         = "urn:slurmgate:problem:expired_token"
)

// StartDeviceLogin starts a device login; it needs no credentials. client
// describes this program to the person who approves it.
func (c *Client) StartDeviceLogin(ctx context.Context, client string) (*DeviceAuthorization, error) {
	in := struct {
		Client string `json:"client"`
	}{client}
	var out DeviceAuthorization
	if err := c.do(ctx, http.MethodPost, "/api/v1/auth/device", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PollDeviceLogin asks once whether the login was approved. Until it is,
// the error is a *Problem whose Type is one of the Problem… constants.
func (c *Client) PollDeviceLogin(ctx context.Context, deviceCode string) (*DeviceKeypair, error) {
	in := struct {
		DeviceCode string `json:"device_code"`
	}{deviceCode}
	var out DeviceKeypair
	if err := c.do(ctx, http.MethodPost, "/api/v1/auth/device/token", in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WaitDeviceLogin polls until the login is approved, denied or expired, or
// ctx ends: at the interval the gateway asked for, 5 seconds longer after
// each slow_down (RFC 8628 §3.5). A denial or expiry comes back as the
// *Problem that said so.
func (c *Client) WaitDeviceLogin(ctx context.Context, d *DeviceAuthorization) (*DeviceKeypair, error) {
	interval := time.Duration(max(d.Interval, 1)) * time.Second
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
		kp, err := c.PollDeviceLogin(ctx, d.DeviceCode)
		var p *Problem
		switch {
		case err == nil:
			return kp, nil
		case errors.As(err, &p) && p.Type == ProblemAuthorizationPending:
		case errors.As(err, &p) && p.Type == ProblemSlowDown:
			interval += 5 * time.Second
		default:
			return nil, err
		}
	}
}

// ApproveDeviceLogin allows (or denies) a device login as the client's
// user, who then owns the keypair the device gets. It takes a keypair or a
// portal login (PasswordLogin).
func (c *Client) ApproveDeviceLogin(ctx context.Context, userCode string, allow bool) error {
	in := struct {
		UserCode string `json:"user_code"`
		Allow    bool   `json:"allow"`
	}{userCode, allow}
	return c.do(ctx, http.MethodPost, "/api/v1/auth/device/approve", in, nil)
}
