package tunnel

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Keepalive sets how often each end shows it is alive and how long a silent
// peer is given before the connection is declared dead.
type Keepalive struct {
	// Interval between WebSocket pings and yamux pings (default 10 s).
	Interval time.Duration
	// Timeout after which a peer that sent nothing, not even a pong, is
	// dead (default 30 s). It must exceed Interval.
	Timeout time.Duration
}

func (k Keepalive) withDefaults() Keepalive {
	if k.Interval <= 0 {
		k.Interval = 10 * time.Second
	}
	if k.Timeout <= k.Interval {
		k.Timeout = 3 * k.Interval
	}
	return k
}

// wsConn carries a byte stream over a WebSocket's binary messages, so that
// yamux can run over it. One goroutine reads (yamux's receive loop) and one
// writes (its send loop); control frames are safe alongside both.
type wsConn struct {
	ws *websocket.Conn
	ka Keepalive

	r io.Reader // the message being read; nil between messages

	wmu     sync.Mutex
	pending []byte // a yamux data header held back to go out with its body

	closeOnce sync.Once
	done      chan struct{}
}

func newWSConn(ws *websocket.Conn, ka Keepalive) *wsConn {
	c := &wsConn{ws: ws, ka: ka, done: make(chan struct{})}
	alive := func() { ws.SetReadDeadline(time.Now().Add(ka.Timeout)) }
	alive()
	ws.SetPongHandler(func(string) error { alive(); return nil })
	ws.SetPingHandler(func(data string) error {
		alive()
		err := ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(ka.Timeout))
		if err == websocket.ErrCloseSent {
			return nil
		}
		return err
	})
	go c.ping()
	return c
}

func (c *wsConn) ping() {
	t := time.NewTicker(c.ka.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.ka.Timeout)); err != nil {
				c.Close()
				return
			}
		case <-c.done:
			return
		}
	}
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			typ, r, err := c.ws.NextReader()
			if err != nil {
				return 0, err
			}
			c.ws.SetReadDeadline(time.Now().Add(c.ka.Timeout))
			if typ != websocket.BinaryMessage {
				continue
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

// yamux writes a frame's 12-byte header and its body in two calls; sending
// them as one WebSocket message halves the messages on the wire. A header
// whose type is data (0) and whose length is non-zero is held back until
// its body arrives.
const yamuxHeaderSize = 12

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.pending == nil && len(p) == yamuxHeaderSize && p[1] == 0 && binary.BigEndian.Uint32(p[8:]) > 0 {
		c.pending = append(make([]byte, 0, yamuxHeaderSize), p...)
		return len(p), nil
	}
	c.ws.SetWriteDeadline(time.Now().Add(c.ka.Timeout))
	w, err := c.ws.NextWriter(websocket.BinaryMessage)
	if err != nil {
		return 0, err
	}
	if c.pending != nil {
		_, err = w.Write(c.pending)
		c.pending = nil
		if err != nil {
			return 0, err
		}
	}
	n, err := w.Write(p)
	if err != nil {
		return n, err
	}
	return n, w.Close()
}

func (c *wsConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		err = c.ws.Close()
	})
	return err
}

func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.ws.NetConn().SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }
