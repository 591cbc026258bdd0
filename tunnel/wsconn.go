package tunnel

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
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
// yamux can run over it. gorilla/websocket parses what arrives; what leaves
// is framed here, because batching is the point of this type:
//
// yamux's send loop writes one frame at a time and, through Stream.Write,
// makes the stream's writer wait for each. If Write went to the socket, each
// 32 KiB that io.Copy hands a stream would cost a WebSocket message, a
// system call and two goroutine switches on the sender's critical path.
// Instead Write appends to the message being gathered (masking on the way
// when this end is the client, RFC 6455 §5.3, so the bytes are touched
// once) and returns; a flusher goroutine sends all that is pending as one
// message in one write. When the connection is idle a frame goes out at
// once (the flusher is waiting); under load, frames queue up behind the
// write in progress and share the next message, and the sender prepares
// them while the kernel copies the previous batch.
//
// Every write to the socket after the hello is this type's, one at a time
// (wmu): the flusher's, or a large Write of the gateway's (directMin).
// Pings, pongs and the close message are queued to the flusher too, so
// gorilla's writer is never used beside ours. (gorilla still writes a
// close frame itself on a protocol error; a Go net.Conn write is atomic,
// so that frame lands between two of ours, and the connection is closing
// anyway.)
type wsConn struct {
	ws     *websocket.Conn
	nc     net.Conn
	client bool // this end masks what it sends
	ka     Keepalive

	r io.Reader // the message being read; nil between messages
	// aliveDue asks the reader to push the read deadline out at the next
	// message. Data counts as a sign of life, but setting a deadline costs
	// a runtime timer update, so it is done once per keepalive interval,
	// not once per message.
	aliveDue atomic.Bool

	mu      sync.Mutex
	room    sync.Cond // signalled when the flusher takes pending, or fails
	pending []byte    // nil, or msgHeadroom bytes and the payload of the message being gathered
	key     [4]byte   // pending's mask key (client)
	ctrl    []byte    // whole control frames to send after pending
	closing bool      // ctrl holds the close frame; nothing may follow it
	err     error     // why writing failed; sticky
	wake    chan struct{}

	wmu         sync.Mutex // held while writing to nc: by the flusher, or a direct Write
	deadlineSet time.Time  // when nc's write deadline was last moved; wmu

	closeOnce sync.Once
	done      chan struct{} // closed by Close
	flushed   chan struct{} // closed when the flusher has exited
}

const (
	// msgHeadroom is kept in front of a gathered payload for the largest
	// WebSocket frame header (2 + 8 length bytes + 4 mask bytes), so that
	// header and payload go out in one write without a copy.
	msgHeadroom = 14
	// maxMessage is where a Write waits for the flusher instead of growing
	// the gathered message further. It makes a slow peer push back on
	// yamux, and hence on the streams, and bounds both memory and what a
	// terminal's keystroke may find queued ahead of it besides the
	// kernel's socket buffer (256 KiB: a quarter second at 1 MB/s). Larger
	// batches save little: at 256 KiB a write's fixed cost is a fraction
	// of a percent of copying the bytes.
	maxMessage = 256 << 10
	// directMin is the size from which the gateway's Write sends p from
	// where it lies, after what is gathered, instead of copying it. The
	// agent copies anyway, as it masks in the same pass; the gateway need
	// not, and for a large write the copy costs more than the overlap
	// with the next frame saves.
	directMin = 128 << 10
)

// msgBufs holds message buffers between batches. A connection holds one
// only while it has something to send, so thousands of idle agent
// connections on a gateway hold none, and a burst's buffers go back to
// the pool (and to the garbage collector) once the burst is over.
var msgBufs = sync.Pool{New: func() any {
	b := make([]byte, msgHeadroom, 64<<10)
	return &b
}}

func getMsgBuf() []byte { return (*msgBufs.Get().(*[]byte))[:msgHeadroom] }

func putMsgBuf(b []byte) {
	if cap(b) <= 4<<20 { // a frame of a whole stream window, and some; not a freak
		msgBufs.Put(&b)
	}
}

func newWSConn(ws *websocket.Conn, ka Keepalive, client bool) *wsConn {
	c := &wsConn{
		ws: ws, nc: ws.NetConn(), client: client, ka: ka,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		flushed: make(chan struct{}),
	}
	c.room.L = &c.mu
	c.newKey()
	alive := func() { ws.SetReadDeadline(time.Now().Add(ka.Timeout)) }
	alive()
	ws.SetPongHandler(func(string) error { alive(); return nil })
	ws.SetPingHandler(func(data string) error {
		alive()
		c.control(websocket.PongMessage, []byte(data))
		return nil
	})
	ws.SetCloseHandler(func(code int, _ string) error {
		c.control(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""))
		return nil
	})
	go c.flush()
	go c.ping()
	return c
}

func (c *wsConn) ping() {
	t := time.NewTicker(c.ka.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.aliveDue.Store(true)
			if c.control(websocket.PingMessage, nil) != nil {
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
			if c.aliveDue.Load() {
				c.aliveDue.Store(false)
				c.ws.SetReadDeadline(time.Now().Add(c.ka.Timeout))
			}
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

// Write adds p to the message being gathered and returns; the flusher
// sends it. An error from an earlier flush is returned here.
func (c *wsConn) Write(p []byte) (int, error) {
	if !c.client && len(p) >= directMin {
		return c.writeDirect(p)
	}
	c.mu.Lock()
	for c.err == nil && !c.closing && len(c.pending) > msgHeadroom && len(c.pending)+len(p) > maxMessage {
		c.room.Wait()
	}
	if err := c.writeErr(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	if c.pending == nil {
		c.pending = getMsgBuf()
	}
	n := len(c.pending)
	c.pending = slices.Grow(c.pending, len(p))[:n+len(p)]
	if c.client {
		maskCopy(c.pending[n:], p, c.key, n-msgHeadroom)
	} else {
		copy(c.pending[n:], p)
	}
	c.mu.Unlock()
	// yamux writes a frame's header and its body in two calls, and the
	// flusher woken here for the header might send it alone. It seldom
	// does: the woken goroutine runs on this P once the send loop blocks,
	// by which time the body has been added (measured: 15 of 13,000
	// messages in BenchmarkEcho).
	c.kick()
	return len(p), nil
}

// writeErr says why nothing more can be written; c.mu is held.
func (c *wsConn) writeErr() error {
	if c.err != nil {
		return c.err
	}
	if c.closing {
		return net.ErrClosed
	}
	return nil
}

func (c *wsConn) kick() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// control queues a ping, pong or close frame.
func (c *wsConn) control(op int, payload []byte) error {
	c.mu.Lock()
	if err := c.writeErr(); err != nil {
		c.mu.Unlock()
		return err
	}
	var key [4]byte
	if c.client {
		key = randomKey()
	}
	c.ctrl = appendFrameHeader(c.ctrl, op, len(payload), c.client, key)
	n := len(c.ctrl)
	c.ctrl = append(c.ctrl, payload...)
	if c.client {
		maskCopy(c.ctrl[n:], payload, key, 0)
	}
	if op == websocket.CloseMessage {
		c.closing = true
		c.room.Broadcast() // a Write waiting for room now fails instead
	}
	c.mu.Unlock()
	c.kick()
	return nil
}

func (c *wsConn) newKey() {
	if c.client {
		c.key = randomKey()
	}
}

// randomKey is a mask key. RFC 6455 asks for unpredictable keys so that
// a script cannot choose the bytes an intermediary sees; math/rand/v2's
// generator is ChaCha8, seeded from the OS.
func randomKey() [4]byte {
	var k [4]byte
	binary.LittleEndian.PutUint32(k[:], rand.Uint32())
	return k
}

// writeDirect sends what is gathered and then p as one message, without
// copying p.
func (c *wsConn) writeDirect(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if err := c.writeErr(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	msg := c.pending
	c.pending = nil
	c.room.Broadcast()
	c.mu.Unlock()
	if msg == nil {
		msg = getMsgBuf()
	}
	if err := c.send(msg, [4]byte{}, p, nil, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush sends what Write and control gathered until the close frame is
// out or a write fails.
func (c *wsConn) flush() {
	defer close(c.flushed)
	for {
		select {
		case <-c.wake:
		case <-c.done:
		}
		c.wmu.Lock()
		c.mu.Lock()
		msg, key, ctrl, last := c.pending, c.key, c.ctrl, c.closing
		c.pending, c.ctrl = nil, nil
		c.newKey()
		c.room.Broadcast()
		c.mu.Unlock()
		err := c.send(msg, key, nil, ctrl, last)
		c.wmu.Unlock()
		if err != nil || last {
			return
		}
	}
}

// send writes msg (a gathered message, or nil) followed by tail as one
// binary message, then the control frames ctrl; c.wmu is held. A failed
// write is final: it is recorded for every later Write, and the socket is
// closed, so the reader fails too and yamux shuts the session down.
func (c *wsConn) send(msg []byte, key [4]byte, tail, ctrl []byte, last bool) error {
	// The write deadline is what notices a peer that stopped reading.
	// Moving it costs a runtime timer update, so it moves once per
	// keepalive interval: a stuck write then fails after between
	// Timeout-Interval and Timeout.
	if now := time.Now(); last || now.Sub(c.deadlineSet) > c.ka.Interval {
		d := now.Add(c.ka.Timeout)
		if last {
			d = now.Add(time.Second)
		}
		c.nc.SetWriteDeadline(d)
		c.deadlineSet = now
	}
	var err error
	if payload := len(msg) - msgHeadroom + len(tail); msg != nil && payload > 0 {
		var h [msgHeadroom]byte
		hdr := appendFrameHeader(h[:0], websocket.BinaryMessage, payload, c.client, key)
		start := msgHeadroom - len(hdr)
		copy(msg[start:], hdr)
		if tail == nil {
			_, err = c.nc.Write(msg[start:])
		} else {
			bufs := net.Buffers{msg[start:], tail}
			_, err = bufs.WriteTo(c.nc)
		}
	}
	if err == nil && len(ctrl) > 0 {
		_, err = c.nc.Write(ctrl)
	}
	if msg != nil {
		putMsgBuf(msg)
	}
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.room.Broadcast()
		c.mu.Unlock()
		c.nc.Close()
	}
	return err
}

// appendFrameHeader appends the header of an unfragmented frame.
func appendFrameHeader(b []byte, op, n int, masked bool, key [4]byte) []byte {
	const fin, maskBit = 0x80, 0x80
	b = append(b, fin|byte(op))
	var m byte
	if masked {
		m = maskBit
	}
	switch {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if masked {
		b = append(b, key[:]...)
	}
	return b
}

// maskCopy sets dst[i] = src[i] ^ key[(pos+i)%4], where pos is src's
// offset in the frame's payload: one pass that copies and masks. It works
// 32 bytes a round on fixed-size subslices, whose bounds the compiler
// checks once a round (about 3× faster here than stepping the slices).
func maskCopy(dst, src []byte, key [4]byte, pos int) {
	dst = dst[:len(src)]
	var k8 [8]byte
	for i := range k8 {
		k8[i] = key[(pos+i)&3]
	}
	k := binary.LittleEndian.Uint64(k8[:])
	i := 0
	for ; i+32 <= len(src); i += 32 {
		s, d := src[i:i+32:i+32], dst[i:i+32:i+32]
		binary.LittleEndian.PutUint64(d[0:8], binary.LittleEndian.Uint64(s[0:8])^k)
		binary.LittleEndian.PutUint64(d[8:16], binary.LittleEndian.Uint64(s[8:16])^k)
		binary.LittleEndian.PutUint64(d[16:24], binary.LittleEndian.Uint64(s[16:24])^k)
		binary.LittleEndian.PutUint64(d[24:32], binary.LittleEndian.Uint64(s[24:32])^k)
	}
	for ; i < len(src); i++ {
		dst[i] = src[i] ^ k8[i&7]
	}
}

// Close sends the close message after whatever is pending (waiting up to a
// second for it to go out) and closes the socket.
func (c *wsConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.control(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		close(c.done)
		select {
		case <-c.flushed:
		case <-time.After(2 * time.Second):
		}
		err = c.nc.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

func (c *wsConn) LocalAddr() net.Addr                { return c.nc.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.nc.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.nc.SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.nc.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.nc.SetWriteDeadline(t) }
