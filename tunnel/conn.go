package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/yamux"
)

// Protocol is the version of this wire protocol, sent in the hello.
const Protocol = 1

// hello is the agent's first message.
type hello struct {
	Protocol int    `json:"protocol"`
	Session  string `json:"session"`
	Secret   string `json:"secret"`
	Version  string `json:"version"`
}

type helloReply struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// RejectedError is the gateway's refusal of an agent's hello.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string { return "gateway rejected the agent: " + e.Reason }

// Conn is one authenticated agent connection, seen from either end.
type Conn struct {
	sess         *yamux.Session
	ws           *wsConn
	sessionID    string
	agentVersion string
}

// SessionID is the session the agent authenticated as.
func (c *Conn) SessionID() string { return c.sessionID }

// AgentVersion is the version the agent announced.
func (c *Conn) AgentVersion() string { return c.agentVersion }

// Done is closed once the connection is closed or its peer is dead.
func (c *Conn) Done() <-chan struct{} { return c.sess.CloseChan() }

// Close closes the connection and every stream on it.
func (c *Conn) Close() error {
	err := c.sess.Close()
	c.ws.Close()
	return err
}

// NumStreams is the number of open streams.
func (c *Conn) NumStreams() int { return c.sess.NumStreams() }

// OpenStream opens a stream that starts with h and returns it once the peer
// has accepted it; a refusal is a *StreamError. ctx bounds the opening only.
func (c *Conn) OpenStream(ctx context.Context, h Header) (net.Conn, error) {
	s, err := c.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("open tunnel stream: %w", err)
	}
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { s.SetDeadline(time.Unix(1, 0)) })
	var r reply
	err = writeJSON(s, h)
	if err == nil {
		err = readJSON(s, &r)
	}
	if !stop() || ctx.Err() != nil {
		s.Close()
		return nil, fmt.Errorf("open %s stream: %w", h.Kind, ctx.Err())
	}
	s.SetDeadline(time.Time{})
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open %s stream: %w", h.Kind, err)
	}
	if r.Error != "" {
		s.Close()
		return nil, &StreamError{Reason: r.Error}
	}
	return s, nil
}

// DialService opens an HTTP stream to the named service. It is meant as
// the DialContext of an http.Transport under httputil.ReverseProxy:
//
//	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
//		return conn.DialService(ctx, "jupyter")
//	}}
//
// A Transport pools connections per host, so use one Transport per
// (session, service) or give each a distinct URL host.
func (c *Conn) DialService(ctx context.Context, service string) (net.Conn, error) {
	return c.OpenStream(ctx, Header{Kind: KindHTTP, Service: service})
}

// Stream is an incoming stream whose header has been read. The receiver
// must call Accept or Reject before anything else.
type Stream struct {
	net.Conn
	Header Header
}

// Accept tells the opener the stream is accepted; payload follows.
func (s *Stream) Accept() error { return writeJSON(s.Conn, reply{}) }

// Reject tells the opener why the stream is refused and closes it.
func (s *Stream) Reject(reason string) error {
	err := writeJSON(s.Conn, reply{Error: reason})
	s.Conn.Close()
	return err
}

// AcceptStream waits for the peer to open a stream and reads its header.
// It fails once the connection is closed.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	for {
		s, err := c.sess.AcceptStreamWithContext(ctx)
		if err != nil {
			return nil, err
		}
		// A peer that opens a stream and stalls must not block the loop
		// of the acceptor: the header must arrive promptly.
		s.SetReadDeadline(time.Now().Add(30 * time.Second))
		var h Header
		if err := readJSON(s, &h); err != nil {
			s.Close()
			continue
		}
		s.SetReadDeadline(time.Time{})
		return &Stream{Conn: s, Header: h}, nil
	}
}

// DialConfig is the agent's side of a connection.
type DialConfig struct {
	// URL of the gateway's tunnel endpoint, ws:// or wss://.
	URL       string
	SessionID string
	// Secret is the session's secret (base64url); it is sent in the hello
	// message only.
	Secret  string
	Version string
	// TLS configures wss:// (for example RootCAs for a site CA); nil uses
	// the system roots.
	TLS *tls.Config
	// Header is added to the WebSocket handshake (never put the secret here).
	Header    http.Header
	Keepalive Keepalive
	Logger    *slog.Logger
}

// Dial connects to the gateway, authenticates and returns the agent's end
// of the connection. A refusal by the gateway is a *RejectedError.
func Dial(ctx context.Context, cfg DialConfig) (*Conn, error) {
	ka := cfg.Keepalive.withDefaults()
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		TLSClientConfig:  cfg.TLS,
		HandshakeTimeout: ka.Timeout,
		ReadBufferSize:   64 << 10,
		// gorilla writes the hello only; wsConn frames the rest itself.
	}
	ws, resp, err := d.DialContext(ctx, cfg.URL, cfg.Header)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("connect to gateway %s: %s (HTTP %s)", cfg.URL, err, resp.Status)
		}
		return nil, fmt.Errorf("connect to gateway %s: %w", cfg.URL, err)
	}
	stop := context.AfterFunc(ctx, func() { ws.NetConn().SetDeadline(time.Unix(1, 0)) })
	defer stop()
	ws.SetWriteDeadline(time.Now().Add(ka.Timeout))
	ws.SetReadDeadline(time.Now().Add(ka.Timeout))
	err = ws.WriteJSON(hello{Protocol: Protocol, Session: cfg.SessionID, Secret: cfg.Secret, Version: cfg.Version})
	var rep helloReply
	if err == nil {
		err = ws.ReadJSON(&rep)
	}
	if err != nil {
		ws.Close()
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("hello to gateway %s: %w", cfg.URL, err)
	}
	if !rep.OK {
		ws.Close()
		return nil, &RejectedError{Reason: rep.Reason}
	}
	ws.SetWriteDeadline(time.Time{})
	if !stop() {
		ws.Close()
		return nil, ctx.Err()
	}
	return newConn(ws, ka, cfg.Logger, false, cfg.SessionID, cfg.Version)
}

// AcceptConfig is the gateway's side of a connection.
type AcceptConfig struct {
	// Authenticate checks an agent's session id and secret; an error
	// rejects the agent, and its text is sent to the agent as the reason,
	// so it must not reveal the expected secret. Required.
	Authenticate func(ctx context.Context, sessionID, secret string) error
	Keepalive    Keepalive
	Logger       *slog.Logger
}

// Accept upgrades an agent's request to the tunnel, authenticates the
// agent and returns the gateway's end. On error it has answered the request
// (or closed the WebSocket) already.
func Accept(w http.ResponseWriter, r *http.Request, cfg AcceptConfig) (*Conn, error) {
	if cfg.Authenticate == nil {
		http.Error(w, "tunnel endpoint has no authenticator", http.StatusInternalServerError)
		return nil, errors.New("tunnel.AcceptConfig.Authenticate is nil")
	}
	ka := cfg.Keepalive.withDefaults()
	u := websocket.Upgrader{
		HandshakeTimeout: ka.Timeout,
		ReadBufferSize:   64 << 10,
		// Agents are not browsers: they authenticate with the session's
		// secret, not with ambient cookies, so the origin proves nothing.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	ws, err := u.Upgrade(w, r, nil)
	if err != nil {
		return nil, fmt.Errorf("agent tunnel upgrade: %w", err)
	}
	ws.SetReadDeadline(time.Now().Add(ka.Timeout))
	ws.SetReadLimit(maxHeader)
	var h hello
	if err := ws.ReadJSON(&h); err != nil {
		ws.Close()
		return nil, fmt.Errorf("agent hello: %w", err)
	}
	reject := func(reason string) (*Conn, error) {
		ws.SetWriteDeadline(time.Now().Add(ka.Timeout))
		ws.WriteJSON(helloReply{Reason: reason})
		ws.Close()
		return nil, &RejectedError{Reason: reason}
	}
	if h.Protocol != Protocol {
		return reject(fmt.Sprintf("agent speaks tunnel protocol %d, gateway speaks %d: run the same slurmgate version on nodes and gateway", h.Protocol, Protocol))
	}
	if h.Session == "" || h.Secret == "" {
		return reject("hello lacks a session id or secret")
	}
	if err := cfg.Authenticate(r.Context(), h.Session, h.Secret); err != nil {
		return reject(err.Error())
	}
	ws.SetWriteDeadline(time.Now().Add(ka.Timeout))
	if err := ws.WriteJSON(helloReply{OK: true}); err != nil {
		ws.Close()
		return nil, fmt.Errorf("agent hello reply: %w", err)
	}
	ws.SetWriteDeadline(time.Time{})
	ws.SetReadLimit(0)
	return newConn(ws, ka, cfg.Logger, true, h.Session, h.Version)
}

func newConn(ws *websocket.Conn, ka Keepalive, logger *slog.Logger, gateway bool, sessionID, version string) (*Conn, error) {
	wc := newWSConn(ws, ka, !gateway)
	yc := yamux.DefaultConfig()
	yc.KeepAliveInterval = ka.Interval
	yc.ConnectionWriteTimeout = ka.Timeout
	yc.MaxStreamWindowSize = 1 << 20
	yc.StreamOpenTimeout = ka.Timeout
	// A closed stream whose peer goes on sending is reset after this
	// (yamux v0.1.2 arms the timer only in Stream.Close, when this end
	// closes a stream its peer has not: a half-close; the peer's FIN
	// stops it). The gateway closes a stream when it is done with it,
	// aborts included (a browser leaving a download), and the agent's
	// app would otherwise go on filling the window, its copy and
	// connection pinned, for yamux's default of 5 minutes. Streams
	// neither end has closed, however idle (terminals, WebSockets),
	// have no such timer. What it costs: an agent-side half-close (an
	// app that ends its output but reads on, such as `nc -l > file`)
	// receives for at most this long after it.
	yc.StreamCloseTimeout = ka.Timeout
	yc.LogOutput = nil
	if logger == nil {
		logger = slog.Default()
	}
	yc.Logger = log.New(slogWriter{logger.With("session", sessionID)}, "", 0)
	var (
		s   *yamux.Session
		err error
	)
	if gateway {
		s, err = yamux.Client(wc, yc)
	} else {
		s, err = yamux.Server(wc, yc)
	}
	if err != nil {
		wc.Close()
		return nil, err
	}
	go func() { <-s.CloseChan(); wc.Close() }()
	return &Conn{sess: s, ws: wc, sessionID: sessionID, agentVersion: version}, nil
}

// slogWriter turns yamux's log lines into debug records.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Debug("yamux: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

var _ io.Writer = slogWriter{}
