package api

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/slurmgate/slurmgate/bridge"
	"github.com/slurmgate/slurmgate/tunnel"
)

// A terminal or TCP handshake from a page of another origin is refused
// with a problem before anything is opened in the session: no login shell
// is started for a connection that will never be.
func TestTerminalRefusesOtherOriginsBeforeOpening(t *testing.T) {
	w := newRuntimeWorld(t)
	ag := w.ready(t)
	cookie := w.portalLogin(t, w.alice)
	for _, c := range []struct {
		path string
		kind tunnel.Kind
	}{
		{"/api/v1/sessions/" + w.sid + "/terminal", tunnel.KindPTY},
		{"/api/v1/sessions/" + w.sid + "/tcp/web", tunnel.KindTCP},
	} {
		r := w.request("GET", c.path, nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		r.Header.Set("Origin", "http://evil.example")
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		p, _ := w.wantProblem(r, 403)
		if !strings.Contains(p.Detail, "evil.example") {
			t.Errorf("%s: detail %q; want it to name the refused origin", c.path, p.Detail)
		}
		if n := ag.streams(c.kind); n != 0 {
			t.Errorf("%s: the agent was asked for %d %s streams for a refused handshake; want none", c.path, n, c.kind)
		}
	}
}

// signedTerminal opens a terminal in the session as u, with a signed
// handshake; it is closed when the test ends.
func (w *runtimeWorld) signedTerminal(t *testing.T, u testUser) *websocket.Conn {
	t.Helper()
	path := "/api/v1/sessions/" + w.sid + "/terminal"
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(w.ts.URL, "http")+path, w.signedHeader(u, path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The client's pongs are handled while the terminal is read (run under
// -race: the pong handler is set before any goroutine reads).
func TestTerminalPongsFromTheClient(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	c := w.signedTerminal(t, w.alice)
	for range 3 {
		if err := c.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	c.WriteMessage(websocket.BinaryMessage, []byte("echo p''ong\nexit\n"))
	var out bytes.Buffer
	readUntil(t, c, &out, `{"exit_code":0}`)
	if !strings.Contains(out.String(), "pong") {
		t.Errorf("terminal showed %q; want the echo", out.String())
	}
}

// A terminal opened with a keypair ends, saying why, once the keypair is
// deleted: the keypair is checked again while the connection lives.
func TestTerminalEndsWhenItsKeypairIsDeleted(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	c := w.signedTerminal(t, w.alice)
	if err := w.client(w.alice).RevokeKeypair(t.Context(), w.alice.accessKey); err != nil {
		t.Fatal(err)
	}
	wantClosed(t, c, errCredentialRevoked.Error(), "after its keypair was deleted")
}

// A terminal opened with the portal cookie ends when the login passes its
// idle expiry, unless the login is used meanwhile.
func TestTerminalEndsAtThePortalLoginsIdleExpiry(t *testing.T) {
	w := newRuntimeWorld(t)
	w.ready(t)
	token, _, err := w.b.CreatePortalSession(t.Context(), bridge.NewPortalSession{UserID: w.alice.UserID, Source: "local", IdleTimeout: 2 * time.Second, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(w.ts.URL, "http")+"/api/v1/sessions/"+w.sid+"/terminal",
		http.Header{"Cookie": {sessionCookie + "=" + token}, "Origin": {w.ts.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The portal in use (another tab) keeps the login, and the terminal,
	// alive past the idle expiry the terminal opened under.
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		r := w.request("GET", "/api/v1/auth/session", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
		w.wantStatus(r, 200)
	}
	c.WriteMessage(websocket.BinaryMessage, []byte("echo st''ill open\n"))
	var out bytes.Buffer
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for !strings.Contains(out.String(), "still open") {
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("the terminal of a login in use closed: %v", err)
		}
		out.Write(msg)
	}
	// Unused, the login ends at its idle expiry, and the terminal with it.
	wantClosed(t, c, errCredentialExpired.Error(), "after its portal login's idle expiry")
}

// wantClosed reads c until the server closes it with reason, failing
// after 10 s.
func wantClosed(t *testing.T, c *websocket.Conn, reason, when string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue // the shell's output
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Text != reason {
			t.Fatalf("terminal %s: %v; want a close frame saying %q", when, err, reason)
		}
		return
	}
}
