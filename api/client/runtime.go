package client

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/slurmgate/slurmgate/api/sign"
)

// App is one of a session's apps (services).
type App struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
	// URL is the app's path on the gateway, /s/{session}/{app}/.
	URL string `json:"url"`
	// SubdomainURL is the app's own origin when the gateway serves apps on
	// subdomains.
	SubdomainURL string `json:"subdomain_url,omitempty"`
}

// Apps lists a session's apps.
type Apps struct {
	AgentConnected bool  `json:"agent_connected"`
	Apps           []App `json:"apps"`
}

// SessionApps returns a session's apps and their readiness.
func (c *Client) SessionApps(ctx context.Context, id string) (*Apps, error) {
	return call[Apps](ctx, c, http.MethodGet, "/api/v1/sessions/"+url.PathEscape(id)+"/apps", nil)
}

// GPUMetrics is one allocated GPU's use.
type GPUMetrics struct {
	Index            int    `json:"index"`
	UUID             string `json:"uuid,omitempty"`
	Name             string `json:"name,omitempty"`
	UtilizationPct   int    `json:"utilization_pct"`
	MemoryUsedBytes  uint64 `json:"memory_used_bytes"`
	MemoryTotalBytes uint64 `json:"memory_total_bytes"`
}

// Allocation is what a session was given.
type Allocation struct {
	CPUs     int   `json:"cpus"`
	MemoryMB int64 `json:"memory_mb"`
	GPUs     int   `json:"gpus"`
}

// Metrics is a session's latest resource use; At is nil until its agent
// has reported.
type Metrics struct {
	SessionID        string       `json:"session_id"`
	At               *time.Time   `json:"at"`
	Allocated        Allocation   `json:"allocated"`
	CPUSeconds       float64      `json:"cpu_seconds"`
	CPUCores         float64      `json:"cpu_cores"`
	MemoryBytes      uint64       `json:"memory_bytes"`
	MemoryLimitBytes uint64       `json:"memory_limit_bytes"`
	GPUs             []GPUMetrics `json:"gpus"`
	// Unavailable names metrics the agent could not read, and why.
	Unavailable []string `json:"unavailable"`
	// GPUStatus is "ok" or "GPU metrics unavailable: <reason>" for a
	// session with GPUs.
	GPUStatus string `json:"gpu_status"`
}

// SessionMetrics returns a session's latest CPU, memory and GPU use.
func (c *Client) SessionMetrics(ctx context.Context, id string) (*Metrics, error) {
	return call[Metrics](ctx, c, http.MethodGet, "/api/v1/sessions/"+url.PathEscape(id)+"/metrics", nil)
}

// ExecRequest is a command to run in a session's container.
type ExecRequest struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"` // "KEY=value"
	// Stdin is the command's whole input.
	Stdin string `json:"stdin,omitempty"`
}

// Exec runs a command in a session's container, copying its output to
// stdout and stderr as it streams, and returns its exit code. A client whose
// HTTP timeout is shorter than the command cuts it short (WithHTTPClient).
func (c *Client) Exec(ctx context.Context, id string, req ExecRequest, stdout, stderr io.Writer) (int, error) {
	resp, err := c.send(ctx, http.MethodPost, "/api/v1/sessions/"+url.PathEscape(id)+"/exec", req, "application/x-ndjson, application/problem+json")
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return -1, readProblem(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		var l struct {
			Stream   string `json:"stream"`
			Data     string `json:"data"`
			DataB64  string `json:"data_b64"`
			ExitCode *int   `json:"exit_code"`
			Error    string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return -1, fmt.Errorf("exec in session %s: malformed line %q: %w", id, sc.Text(), err)
		}
		if l.ExitCode != nil {
			if l.Error != "" {
				return *l.ExitCode, fmt.Errorf("exec in session %s: %s", id, l.Error)
			}
			return *l.ExitCode, nil
		}
		data := []byte(l.Data)
		if l.DataB64 != "" {
			if data, err = base64.StdEncoding.DecodeString(l.DataB64); err != nil {
				return -1, fmt.Errorf("exec in session %s: %w", id, err)
			}
		}
		w := stdout
		if l.Stream == "stderr" {
			w = stderr
		}
		if w != nil {
			if _, err := w.Write(data); err != nil {
				return -1, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return -1, fmt.Errorf("exec in session %s: the output stream broke: %w", id, err)
	}
	return -1, fmt.Errorf("exec in session %s: the output ended without an exit code", id)
}

// Authorize adds the client's credentials to a request of the caller's
// making (an app request through the gateway's app proxy); body is the
// request's body, which a keypair signature covers.
func (c *Client) Authorize(req *http.Request, body []byte) error {
	switch {
	case c.accessKey != "":
		return sign.Sign(req, body, c.accessKey, c.secret, time.Now())
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return nil
}

// AppURL is the URL of a session's app on this gateway, path mode.
func (c *Client) AppURL(sessionID, app string) string {
	return c.base + "/s/" + url.PathEscape(sessionID) + "/" + url.PathEscape(app) + "/"
}

// dialWebSocket opens an authenticated WebSocket to path (with query).
func (c *Client) dialWebSocket(ctx context.Context, path string) (*websocket.Conn, error) {
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Authorize(req, nil); err != nil {
		return nil, err
	}
	h := http.Header{"User-Agent": {c.userAgent}}
	for _, k := range []string{"Authorization", sign.DateHeader, sign.NonceHeader, sign.ContentSHA256Header} {
		if v := req.Header.Get(k); v != "" {
			h.Set(k, v)
		}
	}
	u := "ws" + strings.TrimPrefix(c.base, "http") + path
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 {
			return nil, readProblem(resp)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return ws, nil
}

// Terminal is a terminal in a session's container. Read returns what the
// terminal shows; Write types; it is safe to Write, Resize and Read from
// different goroutines.
type Terminal struct {
	ws       *websocket.Conn
	wmu      sync.Mutex
	pending  []byte
	exitCode *int
}

// OpenTerminal opens a terminal of rows × cols in a session.
func (c *Client) OpenTerminal(ctx context.Context, id string, rows, cols int) (*Terminal, error) {
	q := url.Values{"rows": {strconv.Itoa(rows)}, "cols": {strconv.Itoa(cols)}}
	ws, err := c.dialWebSocket(ctx, withQuery("/api/v1/sessions/"+url.PathEscape(id)+"/terminal", q))
	if err != nil {
		return nil, err
	}
	return &Terminal{ws: ws}, nil
}

// Read reads terminal output; io.EOF once the shell has exited (ExitCode
// then says how).
func (t *Terminal) Read(p []byte) (int, error) {
	for len(t.pending) == 0 {
		typ, msg, err := t.ws.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return 0, io.EOF
			}
			return 0, err
		}
		if typ == websocket.TextMessage {
			var end struct {
				ExitCode *int `json:"exit_code"`
			}
			if json.Unmarshal(msg, &end) == nil && end.ExitCode != nil {
				t.exitCode = end.ExitCode
			}
			continue
		}
		t.pending = msg
	}
	n := copy(p, t.pending)
	t.pending = t.pending[n:]
	return n, nil
}

// Write sends keystrokes.
func (t *Terminal) Write(p []byte) (int, error) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if err := t.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Resize changes the terminal's size.
func (t *Terminal) Resize(rows, cols int) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	return t.ws.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"resize":[%d,%d]}`, rows, cols))
}

// ExitCode is the shell's exit code once Read has returned io.EOF.
func (t *Terminal) ExitCode() (int, bool) {
	if t.exitCode == nil {
		return 0, false
	}
	return *t.exitCode, true
}

// Close hangs up.
func (t *Terminal) Close() error { return t.ws.Close() }

// DialTCP opens a raw TCP connection to a service of a session, or to a
// port on its node's loopback when service is a number, carried over a
// WebSocket (for port forwarding and ssh).
func (c *Client) DialTCP(ctx context.Context, id, service string) (net.Conn, error) {
	ws, err := c.dialWebSocket(ctx, "/api/v1/sessions/"+url.PathEscape(id)+"/tcp/"+url.PathEscape(service))
	if err != nil {
		return nil, err
	}
	return &wsNetConn{ws: ws}, nil
}

// wsNetConn is a WebSocket of binary messages as a net.Conn.
type wsNetConn struct {
	ws      *websocket.Conn
	wmu     sync.Mutex
	pending []byte
}

func (c *wsNetConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		typ, msg, err := c.ws.ReadMessage()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return 0, io.EOF
			}
			return 0, err
		}
		if typ == websocket.BinaryMessage {
			c.pending = msg
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *wsNetConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsNetConn) Close() error                       { return c.ws.Close() }
func (c *wsNetConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsNetConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsNetConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsNetConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
func (c *wsNetConn) SetDeadline(t time.Time) error {
	return errorsJoin(c.ws.SetReadDeadline(t), c.ws.SetWriteDeadline(t))
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
