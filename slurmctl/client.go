package slurmctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Config says how to reach one Slurm cluster.
type Config struct {
	// URL is slurmrestd's base URL, e.g. http://127.0.0.1:6820.
	URL string
	// Cluster is Slurm's ClusterName; accounting calls are scoped to it.
	Cluster string
	// JWTKey is the HS256 key slurmctld and slurmdbd verify tokens with.
	JWTKey []byte
	// TokenTTL bounds each minted token's life; zero means DefaultTokenTTL.
	TokenTTL time.Duration
	// APIVersion picks the slurmrestd dialect; empty means the newest known.
	APIVersion string
	// AdminUser is the Slurm identity for cluster-wide reads and accounting
	// writes: SlurmUser or a user with AdminLevel=Administrator. Default "slurm".
	AdminUser string
	// SlurmConf is the slurm.conf the CLI fallback runs with (SLURM_CONF); empty
	// leaves the CLI to find its own.
	SlurmConf string
	// HTTPClient overrides the default client (30 s timeout).
	HTTPClient *http.Client
	// Observe, if set, is told of every Slurm call: its operation name
	// ("submit", "jobs", "sacctmgr"), duration and outcome. The gateway feeds
	// its Prometheus metrics from it.
	Observe func(op string, took time.Duration, err error)
}

// Client speaks to one Slurm cluster on behalf of any user. It is safe for
// concurrent use.
type Client struct {
	cfg     Config
	base    *url.URL
	minter  *Minter
	http    *http.Client
	dialect dialect
	cli     *cliRunner
}

// New returns a Client for cfg. It does not contact Slurm; use [Client.Ping].
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		return nil, errors.New("slurmctl: slurmrestd URL is required")
	}
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("slurmctl: slurmrestd URL %q: want http(s)://host:port", cfg.URL)
	}
	if cfg.Cluster == "" {
		return nil, errors.New("slurmctl: cluster name is required")
	}
	minter, err := NewMinter(cfg.JWTKey, cfg.TokenTTL)
	if err != nil {
		return nil, fmt.Errorf("slurmctl: %w", err)
	}
	d, err := dialectFor(cfg.APIVersion)
	if err != nil {
		return nil, err
	}
	if cfg.AdminUser == "" {
		cfg.AdminUser = "slurm"
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	c := &Client{cfg: cfg, base: base, minter: minter, http: hc, dialect: d}
	c.cli = &cliRunner{minter: minter, slurmConf: cfg.SlurmConf}
	return c, nil
}

// Cluster returns the Slurm cluster name this client is bound to.
func (c *Client) Cluster() string { return c.cfg.Cluster }

// APIVersion returns the slurmrestd dialect in use, e.g. "v0.0.38".
func (c *Client) APIVersion() string { return c.dialect.version() }

// errorEnvelope is the errors[] list every slurmrestd response carries; its
// shape is the same in all dialects from v0.0.36 to v0.0.40, except that
// v0.0.38's job submission names the number error_code, the rest error_number.
type errorEnvelope struct {
	Errors []struct {
		Number      int    `json:"error_number"`
		Code        int    `json:"error_code"`
		Error       string `json:"error"`
		Description string `json:"description"`
		Source      string `json:"source"`
	} `json:"errors"`
}

// envelope lets a response type that embeds errorEnvelope be decoded once.
func (e *errorEnvelope) envelope() *errorEnvelope { return e }

// call performs one slurmrestd request as user. in (if not nil) is sent as
// JSON; the response is decoded into out (if not nil). Slurm errors in the
// response body become *Error whatever the HTTP status: slurmrestd answers
// most failures with 500 and the reason in errors[].
func (c *Client) call(ctx context.Context, op, user, method, path string, query url.Values, in, out any) error {
	start := time.Now()
	err := c.roundTrip(ctx, op, user, method, path, query, in, out)
	c.observe(op, start, err)
	return err
}

func (c *Client) roundTrip(ctx context.Context, op, user, method, path string, query url.Values, in, out any) error {
	token, err := c.minter.Token(user)
	if err != nil {
		return &Error{Op: op, Kind: ErrInvalidRequest, Message: err.Error()}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("slurm %s: encoding request: %w", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("slurm %s: %w", op, err)
	}
	req.Header.Set("X-SLURM-USER-NAME", user)
	req.Header.Set("X-SLURM-USER-TOKEN", token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &Error{Op: op, Kind: ErrUnavailable, Message: "slurmrestd unreachable: " + describeNetError(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return &Error{Op: op, Kind: ErrUnavailable, Message: "reading slurmrestd response: " + err.Error()}
	}
	switch resp.StatusCode {
	case http.StatusNotModified:
		return &Error{Op: op, Kind: ErrNoChange, Message: "nothing changed"}
	case http.StatusUnauthorized, http.StatusForbidden:
		return &Error{Op: op, Kind: ErrPermissionDenied, Message: fmt.Sprintf("slurmrestd refused the token for %q (HTTP %d)", user, resp.StatusCode)}
	case http.StatusNotFound:
		if len(raw) == 0 || raw[0] != '{' {
			return &Error{Op: op, Kind: ErrNotFound, Message: fmt.Sprintf("slurmrestd has no %s (HTTP 404)", path)}
		}
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return &Error{Op: op, Kind: ErrUnavailable, Message: fmt.Sprintf("slurmrestd answered HTTP %d", resp.StatusCode)}
	}
	// The result is decoded even beside errors: some "errors" are notices
	// that come with a result (a held job's submission returns its id too).
	// A result that carries its own errors[] (it embeds errorEnvelope) is
	// decoded once: a listing of thousands of jobs is megabytes of JSON.
	var env errorEnvelope
	var decodeErr, notJSON error
	if o, ok := out.(interface{ envelope() *errorEnvelope }); ok {
		decodeErr = json.Unmarshal(raw, out)
		env = *o.envelope()
		if _, ok := decodeErr.(*json.SyntaxError); ok {
			notJSON = decodeErr
		}
	} else if notJSON = json.Unmarshal(raw, &env); notJSON == nil && out != nil {
		decodeErr = json.Unmarshal(raw, out)
	}
	if notJSON != nil {
		return &Error{Op: op, Kind: ErrUnavailable, Message: fmt.Sprintf("slurmrestd answered HTTP %d with a body that is not JSON: %.200q", resp.StatusCode, raw)}
	}
	if decodeErr != nil && len(env.Errors) == 0 {
		return fmt.Errorf("slurm %s: decoding %s response: %w", op, c.dialect.version(), decodeErr)
	}
	if len(env.Errors) > 0 {
		e := env.Errors[0]
		msg := e.Error
		if e.Description != "" && e.Description != msg {
			msg = strings.TrimPrefix(msg+": "+e.Description, ": ")
		}
		return classifySlurmError(op, max(e.Number, e.Code), msg)
	}
	if resp.StatusCode >= 400 {
		return &Error{Op: op, Kind: ErrUnavailable, Message: fmt.Sprintf("slurmrestd answered HTTP %d without an error list", resp.StatusCode)}
	}
	return nil
}

func (c *Client) observe(op string, start time.Time, err error) {
	if c.cfg.Observe != nil {
		c.cfg.Observe(op, time.Since(start), err)
	}
}

func describeNetError(err error) string {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Error()
	}
	return err.Error()
}
