// Package client is the typed Go client of Slurmgate's REST API, used by the
// CLI and by tests. It signs requests with a keypair (package api/sign) or
// sends a bearer token, and returns API errors as *Problem. It imports
// nothing of the server.
//
// Each resource's methods live in a file named after it; they are thin
// wrappers around (*Client).do.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/slurmgate/slurmgate/api/sign"
)

// Client calls one Slurmgate gateway. It is safe for concurrent use.
type Client struct {
	base      string // scheme://host[/prefix], without a trailing slash
	http      *http.Client
	userAgent string
	accessKey string
	secret    []byte
	token     string
}

// Option configures a Client.
type Option func(*Client)

// WithKeypair signs every request with the keypair.
func WithKeypair(accessKey, secretKey string) Option {
	return func(c *Client) { c.accessKey, c.secret, c.token = accessKey, []byte(secretKey), "" }
}

// WithToken sends the bearer token with every request.
func WithToken(token string) Option {
	return func(c *Client) { c.token, c.accessKey, c.secret = token, "", nil }
}

// WithHTTPClient sends requests through hc instead of a client with a
// one-minute timeout.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sets the User-Agent header, e.g. "slurmgate-cli/1.2".
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the gateway at baseURL, e.g.
// "https://gateway.example.org" (a path prefix is kept).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("gateway URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("gateway URL %q: want http(s)://host[:port][/prefix]", baseURL)
	}
	c := &Client{
		base:      strings.TrimSuffix(u.String(), "/"),
		http:      &http.Client{Timeout: time.Minute},
		userAgent: "slurmgate-client",
	}
	for _, opt := range opts {
		opt(c)
	}
	return c, nil
}

// do sends a request and decodes the answer. path is the request target
// below the base URL, escaped, with any query ("/api/v1/keypairs?limit=10").
// in, when not nil, is sent as the JSON body; out, when not nil, receives
// the JSON response. An error status comes back as *Problem.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in, "application/json, application/problem+json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return readProblem(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, resp.Body) // lets the connection be reused
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decoding the answer to %s %s: %w", method, path, err)
	}
	return nil
}

// send signs and sends a request with in, when not nil, as its JSON body,
// and returns the response whatever its status; the caller closes its body.
// It is do without the decoding, for answers that are not JSON (logs).
func (c *Client) send(ctx context.Context, method, path string, in any, accept string) (*http.Response, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("encoding the %s %s request: %w", method, path, err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.accessKey != "":
		if err := sign.Sign(req, body, c.accessKey, c.secret, time.Now()); err != nil {
			return nil, err
		}
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.http.Do(req)
}

// Problem is an error answer from the API (RFC 9457 problem details).
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	// Instance is the request path.
	Instance string `json:"instance"`
	// Field names the request field at fault, for 400 and 422.
	Field string `json:"field"`
	// Quota is set when a resource limit refused the request.
	Quota *Quota `json:"quota"`
	// RequestID identifies the request in the gateway's log.
	RequestID string `json:"request_id"`
}

// Quota names the limit that refused a request, the amount asked and what
// is already in use.
type Quota struct {
	Scope     string `json:"scope"`      // "user", "project" or "domain"
	ScopeName string `json:"scope_name"` // e.g. "acme/vision"
	Limit     string `json:"limit"`      // e.g. "gpus", "max_concurrent_sessions"
	Max       int64  `json:"max"`
	InUse     int64  `json:"in_use"`
	Requested int64  `json:"requested"`
}

func (p *Problem) Error() string {
	msg := p.Title
	if p.Detail != "" {
		msg = p.Detail
	}
	if p.RequestID != "" {
		return fmt.Sprintf("%s (HTTP %d, request %s)", msg, p.Status, p.RequestID)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, p.Status)
}

// readProblem decodes an error response. Anything in front of the gateway
// (a proxy, a load balancer) may answer in its own format, so a body that is
// not problem+json becomes a Problem carrying the start of the body.
func readProblem(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	p := &Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mediaType == "application/problem+json" || mediaType == "application/json" {
		if json.Unmarshal(raw, p) == nil && p.Status != 0 {
			return p
		}
		p.Status = resp.StatusCode
	}
	p.Detail = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
	if p.RequestID == "" {
		p.RequestID = resp.Header.Get("X-Request-Id")
	}
	return p
}

// ListOptions selects a page of a list: Cursor is the previous page's Next
// (empty for the first page), Limit the most items (0 means the server's
// default, 50).
type ListOptions struct {
	Cursor string
	Limit  int
}

// values adds the options to a query.
func (o ListOptions) values(q url.Values) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

// Page is one page of a list; Next, when not empty, continues it.
type Page[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// withQuery appends a query to a path when it has parameters.
func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}
