package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/tunnel"
)

// terminalRoutes: WebSockets into a running session, through its agent's
// tunnel: a terminal (PTY) and raw TCP to a service or node port (the CLI's
// port forwarding and ssh). Only the session's owner may open them.
//
// Terminal protocol: binary messages carry bytes both ways (keystrokes in,
// what the terminal shows out); a text message {"resize":[rows,cols]} from
// the client resizes the terminal; when the shell exits the server sends a
// text message {"exit_code":N} and closes with a normal closure. The server
// pings every wsPing; a client that stops answering is hung up.
func (s *Server) terminalRoutes() []route {
	return []route{
		{method: "GET", pattern: "/api/v1/sessions/{id}/terminal",
			summary: `WebSocket terminal in the session's container: binary messages are bytes both ways; text {"resize":[rows,cols]} resizes; the server ends with text {"exit_code":N}`,
			access:  authenticated, handler: s.sessionTerminal,
			query: []param{
				{"rows", "integer", "initial terminal rows (default 24)"},
				{"cols", "integer", "initial terminal columns (default 80)"},
			}},
		{method: "GET", pattern: "/api/v1/sessions/{id}/tcp/{service}",
			summary: "WebSocket carrying raw TCP bytes (binary messages) to a service of the session, or to a port on the node's loopback when {service} is a number",
			access:  authenticated, handler: s.sessionTCP},
	}
}

const (
	wsPing      = 20 * time.Second
	wsPongWait  = 60 * time.Second
	wsWriteWait = 10 * time.Second
)

// upgrader: browsers send cookies with cross-site WebSocket handshakes, so
// a handshake that carries an Origin must come from the gateway's own.
var upgrader = websocket.Upgrader{
	ReadBufferSize:  32 << 10,
	WriteBufferSize: 32 << 10,
	CheckOrigin:     sameOrigin,
}

func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// refuseOtherOrigin answers a handshake that the upgrader would refuse for
// its Origin, with a problem, before anything is opened in the session for
// it (a terminal starts a login shell). It reports whether it answered.
func refuseOtherOrigin(w http.ResponseWriter, r *http.Request) bool {
	if sameOrigin(r) {
		return false
	}
	writeProblem(w, r, forbiddenProblem.with("a WebSocket from a page of origin %s cannot open %s on %s: browsers send cookies with any page's handshake, so only the gateway's own pages may open one",
		r.Header.Get("Origin"), r.URL.Path, r.Host))
	return true
}

// useSession resolves the session's agent for the request's actor, or
// answers: with the problem, or by forwarding the request to the replica
// holding the agent (replicas.go), which must see it untouched: call it
// before reading the body or upgrading.
func (s *Server) useSession(w http.ResponseWriter, r *http.Request) (*bridge.Agent, bool) {
	ag, err := s.b.UseSession(r.Context(), ActorFrom(r.Context()), r.PathValue("id"))
	if err != nil {
		if !s.forwardIfElsewhere(w, r, err) {
			writeError(w, r, err)
		}
		return nil, false
	}
	return ag, true
}

// wsConn serialises writes to a WebSocket (output, pings, the final
// message) and keeps it alive.
type wsConn struct {
	*websocket.Conn
	mu sync.Mutex
}

// newWSConn wraps an upgraded connection. The read deadline and the pong
// handler are set here, before any goroutine reads: the handler is called
// by the reader, so setting it later would race with ReadMessage.
func newWSConn(ws *websocket.Conn) *wsConn {
	ws.SetReadDeadline(time.Now().Add(wsPongWait))
	ws.SetPongHandler(func(string) error { return ws.SetReadDeadline(time.Now().Add(wsPongWait)) })
	return &wsConn{Conn: ws}
}

func (c *wsConn) write(typ int, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.SetWriteDeadline(time.Now().Add(wsWriteWait))
	return c.WriteMessage(typ, p)
}

// keepalive pings until ctx ends; a peer that answers nothing for
// wsPongWait fails its next read (newWSConn).
func (c *wsConn) keepalive(ctx context.Context) {
	t := time.NewTicker(wsPing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.mu.Lock()
			err := c.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteWait))
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// close ends the WebSocket with a close frame saying why.
func (c *wsConn) close(code int, reason string) {
	c.mu.Lock()
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	c.mu.Unlock()
	c.Close()
}

// wsWriter sends what is written as binary messages.
type wsWriter struct{ c *wsConn }

func (w wsWriter) Write(p []byte) (int, error) {
	if err := w.c.write(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *Server) sessionTerminal(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rows, cols := 24, 80
	for _, d := range []struct {
		name string
		v    *int
	}{{"rows", &rows}, {"cols", &cols}} {
		if v := q.Get(d.name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				p := badRequest.with("%s %q: want a number from 1 to 1000", d.name, v)
				p.Field = d.name
				writeProblem(w, r, p)
				return
			}
			*d.v = n
		}
	}
	if refuseOtherOrigin(w, r) {
		return
	}
	ag, ok := s.useSession(w, r)
	if !ok {
		return
	}
	// Open the terminal before upgrading, so a refusal is still a problem
	// response rather than a closed socket.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	out := &switchWriter{}
	proc, err := tunnel.StartProcess(r.Context(), ag.Conn, tunnel.Header{Kind: tunnel.KindPTY, Rows: uint16(rows), Cols: uint16(cols)},
		tunnel.ProcessOutput{Stdout: out})
	if err != nil {
		writeProblem(w, r, badGateway.with("the agent of session %s did not open a terminal: %v", ag.SessionID, err))
		return
	}
	defer proc.Close()
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	c := newWSConn(ws)
	out.set(wsWriter{c})
	ctx, cancelCred := s.credentialContext(ctx, r)
	defer cancelCred()
	go c.keepalive(ctx)

	go func() {
		defer cancel()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			ag.Touch()
			switch typ {
			case websocket.BinaryMessage:
				if _, err := proc.Write(msg); err != nil {
					return
				}
			case websocket.TextMessage:
				var ctl struct {
					Resize []uint16 `json:"resize"`
				}
				if json.Unmarshal(msg, &ctl) != nil || len(ctl.Resize) != 2 {
					c.close(websocket.CloseUnsupportedData, `text messages must be {"resize":[rows,cols]}`)
					return
				}
				if err := proc.Resize(ctl.Resize[0], ctl.Resize[1]); err != nil {
					return
				}
			}
		}
	}()
	exited := make(chan struct{})
	var status tunnel.ExitStatus
	var waitErr error
	go func() {
		status, waitErr = proc.Wait()
		close(exited)
	}()
	select {
	case <-exited:
		if waitErr != nil {
			c.close(websocket.CloseInternalServerErr, "the terminal's stream broke: "+waitErr.Error())
			return
		}
		msg, _ := json.Marshal(map[string]any{"exit_code": status.Code})
		c.write(websocket.TextMessage, msg)
		c.close(websocket.CloseNormalClosure, fmt.Sprintf("the shell exited with code %d", status.Code))
	case <-ctx.Done():
		c.close(websocket.CloseGoingAway, closeReason(ctx))
	}
}

// switchWriter discards until set: output that arrives between opening the
// process and the WebSocket upgrade waits for the socket.
type switchWriter struct {
	mu    sync.Mutex
	w     io.Writer
	early [][]byte
}

func (s *switchWriter) set(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.early {
		w.Write(p)
	}
	s.w, s.early = w, nil
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		s.early = append(s.early, append([]byte(nil), p...))
		return len(p), nil
	}
	return s.w.Write(p)
}

func (s *Server) sessionTCP(w http.ResponseWriter, r *http.Request) {
	if refuseOtherOrigin(w, r) {
		return
	}
	ag, ok := s.useSession(w, r)
	if !ok {
		return
	}
	target := r.PathValue("service")
	h := tunnel.Header{Kind: tunnel.KindTCP, Service: target}
	if port, err := strconv.Atoi(target); err == nil {
		if port < 1 || port > 65535 {
			writeProblem(w, r, badRequest.with("port %d: want 1 to 65535", port))
			return
		}
		h = tunnel.Header{Kind: tunnel.KindTCP, Port: port}
	}
	stream, err := ag.Conn.OpenStream(r.Context(), h)
	if err != nil {
		writeProblem(w, r, badGateway.with("the agent of session %s did not connect to %s: %v", ag.SessionID, target, err))
		return
	}
	defer stream.Close()
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := newWSConn(ws)
	ctx, cancel := s.credentialContext(context.WithoutCancel(r.Context()), r)
	defer cancel()
	go c.keepalive(ctx)
	go func() {
		defer cancel()
		buf := make([]byte, 32<<10)
		for {
			n, err := stream.Read(buf)
			if n > 0 {
				ag.Touch()
				if c.write(websocket.BinaryMessage, buf[:n]) != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer cancel()
		for {
			typ, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if typ != websocket.BinaryMessage {
				continue
			}
			ag.Touch()
			if _, err := stream.Write(msg); err != nil {
				return
			}
		}
	}()
	<-ctx.Done()
	c.close(websocket.CloseNormalClosure, "connection closed")
}

// closeReason says why a connection's context ended, in words for the
// person whose terminal or app connection closes: signed out, login
// expired, credential no longer valid, or the gateway going away.
func closeReason(ctx context.Context) string {
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errSignedOut), errors.Is(cause, errCredentialExpired), errors.Is(cause, errRecheck), errors.Is(cause, errCredentialRevoked):
		return cause.Error()
	}
	return "terminal closed"
}
