package tunnel

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// FrameType says what a Frame of a pty or exec stream carries.
type FrameType byte

const (
	// Gateway to agent.
	FrameStdin    FrameType = 1 // bytes for the process's stdin (the terminal's input)
	FrameStdinEOF FrameType = 2 // close stdin (exec only)
	FrameResize   FrameType = 3 // terminal size: rows, cols as big-endian uint16
	// Agent to gateway.
	FrameStdout FrameType = 16 // output (for a pty, everything the terminal shows)
	FrameStderr FrameType = 17 // exec only
	FrameExit   FrameType = 18 // JSON ExitStatus; the last frame
)

// maxFrame bounds one frame's payload; writers split larger buffers.
const maxFrame = 256 << 10

// ExitStatus ends a process stream. A process killed by a signal exits
// with 128+signal, as in a shell; Error is set when it could not run.
type ExitStatus struct {
	Code  int    `json:"code"`
	Error string `json:"error,omitempty"`
}

// FrameWriter writes frames; it is safe for concurrent use (the stdout and
// stderr copiers of one exec share it).
type FrameWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewFrameWriter frames what goes to w.
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// WriteFrame writes p as frames of type t (several when p is large).
func (fw *FrameWriter) WriteFrame(t FrameType, p []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for {
		chunk := p
		if len(chunk) > maxFrame {
			chunk = chunk[:maxFrame]
		}
		buf := make([]byte, 5+len(chunk))
		buf[0] = byte(t)
		binary.BigEndian.PutUint32(buf[1:], uint32(len(chunk)))
		copy(buf[5:], chunk)
		if _, err := fw.w.Write(buf); err != nil {
			return err
		}
		p = p[len(chunk):]
		if len(p) == 0 {
			return nil
		}
	}
}

// Writer returns an io.Writer that sends what is written as frames of type t.
func (fw *FrameWriter) Writer(t FrameType) io.Writer { return frameTypeWriter{fw, t} }

type frameTypeWriter struct {
	fw *FrameWriter
	t  FrameType
}

func (w frameTypeWriter) Write(p []byte) (int, error) {
	if err := w.fw.WriteFrame(w.t, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadFrame reads the next frame from r. The payload is valid until the
// next call with the same buf (pass nil to allocate).
func ReadFrame(r io.Reader, buf []byte) (FrameType, []byte, error) {
	var h [5]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("tunnel frame of %d bytes exceeds %d", n, maxFrame)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return FrameType(h[0]), buf, nil
}

// ResizePayload encodes a terminal size for FrameResize.
func ResizePayload(rows, cols uint16) []byte {
	var b [4]byte
	binary.BigEndian.PutUint16(b[:], rows)
	binary.BigEndian.PutUint16(b[2:], cols)
	return b[:]
}

// ParseResize decodes a FrameResize payload.
func ParseResize(p []byte) (rows, cols uint16, err error) {
	if len(p) != 4 {
		return 0, 0, fmt.Errorf("resize frame of %d bytes, want 4", len(p))
	}
	return binary.BigEndian.Uint16(p), binary.BigEndian.Uint16(p[2:]), nil
}

// ProcessOutput receives a process's output; Stderr may be nil for a pty
// (a terminal has one output).
type ProcessOutput struct {
	Stdout io.Writer
	Stderr io.Writer
}

// Process is the gateway's end of a pty or exec stream.
type Process struct {
	conn   net.Conn
	fw     *FrameWriter
	done   chan struct{}
	status ExitStatus
	err    error
}

// StartProcess opens a pty or exec stream and copies the process's output
// to out until it exits. Write sends stdin.
func StartProcess(ctx context.Context, c *Conn, h Header, out ProcessOutput) (*Process, error) {
	if h.Kind != KindPTY && h.Kind != KindExec {
		return nil, fmt.Errorf("StartProcess wants a pty or exec header, not %q", h.Kind)
	}
	s, err := c.OpenStream(ctx, h)
	if err != nil {
		return nil, err
	}
	if out.Stdout == nil {
		out.Stdout = io.Discard
	}
	if out.Stderr == nil {
		out.Stderr = out.Stdout
	}
	p := &Process{conn: s, fw: NewFrameWriter(s), done: make(chan struct{})}
	go p.read(out)
	return p, nil
}

func (p *Process) read(out ProcessOutput) {
	defer close(p.done)
	defer p.conn.Close()
	var buf []byte
	for {
		t, b, err := ReadFrame(p.conn, buf)
		if err != nil {
			p.err = fmt.Errorf("process stream ended without an exit status: %w", err)
			return
		}
		buf = b
		switch t {
		case FrameStdout:
			_, err = out.Stdout.Write(b)
		case FrameStderr:
			_, err = out.Stderr.Write(b)
		case FrameExit:
			if err := json.Unmarshal(b, &p.status); err != nil {
				p.err = fmt.Errorf("bad exit frame: %w", err)
			}
			return
		}
		if err != nil {
			p.err = fmt.Errorf("process output: %w", err)
			return
		}
	}
}

// Write sends b to the process's stdin.
func (p *Process) Write(b []byte) (int, error) {
	if err := p.fw.WriteFrame(FrameStdin, b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// CloseStdin ends the process's stdin.
func (p *Process) CloseStdin() error { return p.fw.WriteFrame(FrameStdinEOF, nil) }

// Resize changes the terminal's size.
func (p *Process) Resize(rows, cols uint16) error {
	return p.fw.WriteFrame(FrameResize, ResizePayload(rows, cols))
}

// Wait waits for the process to exit and returns its status. The error is
// set when the stream broke before the exit status arrived.
func (p *Process) Wait() (ExitStatus, error) {
	<-p.done
	return p.status, p.err
}

// Close hangs up: the agent kills the process (SIGHUP for a terminal).
func (p *Process) Close() error { return p.conn.Close() }
