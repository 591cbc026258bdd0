package tunnel

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Kind says what a stream carries.
type Kind string

const (
	KindHTTP   Kind = "http"   // HTTP/1.1 to Header.Service
	KindTCP    Kind = "tcp"    // raw bytes to Header.Service or 127.0.0.1:Header.Port
	KindPTY    Kind = "pty"    // a terminal: Frames both ways
	KindExec   Kind = "exec"   // a process without a terminal: Frames both ways
	KindReport Kind = "report" // agent to gateway: JSON Reports
	KindStop   Kind = "stop"   // gateway to agent: end the session
)

// Header opens every stream.
type Header struct {
	Kind Kind `json:"kind"`
	// Service names one of the session's services (http, tcp).
	Service string `json:"service,omitempty"`
	// Port is a TCP port on the node's loopback, for tcp without Service.
	Port int `json:"port,omitempty"`
	// Argv is the command of an exec stream; for pty, empty means the
	// container's login shell.
	Argv []string `json:"argv,omitempty"`
	// Env is added to the process's environment ("KEY=value"), pty and exec.
	Env []string `json:"env,omitempty"`
	// Rows and Cols are a terminal's initial size.
	Rows uint16 `json:"rows,omitempty"`
	Cols uint16 `json:"cols,omitempty"`
	// Reason says why, for stop.
	Reason string `json:"reason,omitempty"`
	// Shaped says the gateway has already done to this http stream's
	// requests what the service's HTTPShape asks, so the agent passes
	// the stream to the app unparsed.
	Shaped bool `json:"shaped,omitempty"`
}

// maxHeader bounds a header or reply; both are small JSON objects.
const maxHeader = 1 << 16

// reply answers a header: empty Error means the stream is accepted.
type reply struct {
	Error string `json:"error,omitempty"`
}

// StreamError is the reason the agent gave for refusing a stream, such as
// an unknown service.
type StreamError struct{ Reason string }

func (e *StreamError) Error() string { return "agent refused the stream: " + e.Reason }

func writeJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > maxHeader {
		return fmt.Errorf("tunnel header of %d bytes exceeds %d", len(b), maxHeader)
	}
	buf := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(buf, uint32(len(b)))
	copy(buf[4:], b)
	_, err = w.Write(buf)
	return err
}

func readJSON(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxHeader {
		return fmt.Errorf("tunnel header of %d bytes exceeds %d; is the peer speaking this protocol?", size, maxHeader)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return json.Unmarshal(b, v)
}
