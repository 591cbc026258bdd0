package agent

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

// burstyReader hands out its data in reads that alternate between filling
// the caller's buffer (a download) and a few bytes (a trickle), so that
// pump switches buffers both ways.
type burstyReader struct {
	data  []byte
	reads int
}

func (r *burstyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.reads++
	n := len(p)
	if r.reads%7 == 0 {
		n = 3
	}
	n = copy(p, r.data[:min(n, len(r.data))])
	r.data = r.data[n:]
	return n, nil
}

func TestPumpCopiesBurstsAndTrickles(t *testing.T) {
	data := make([]byte, 5<<20+123)
	rand.Read(data)
	var out bytes.Buffer
	if err := pump(&out, &burstyReader{data: data}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("pump copied %d bytes, not the %d it read, or not in order", out.Len(), len(data))
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("peer gone") }

func TestPumpStopsAtAWriteError(t *testing.T) {
	if err := pump(failingWriter{}, &burstyReader{data: make([]byte, 1<<20)}); err == nil || err.Error() != "peer gone" {
		t.Fatalf("pump to a failing writer = %v; want its error", err)
	}
}
