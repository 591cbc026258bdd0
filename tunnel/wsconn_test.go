package tunnel

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/gorilla/websocket"
)

func TestMaskCopy(t *testing.T) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	src := make([]byte, 100)
	for i := range src {
		src[i] = byte(rand.Uint32())
	}
	for n := range len(src) {
		for pos := range 9 {
			want := make([]byte, n)
			for i := range want {
				want[i] = src[i] ^ key[(pos+i)%4]
			}
			got := make([]byte, n+1)
			maskCopy(got, src[:n], key, pos)
			if !bytes.Equal(got[:n], want) || got[n] != 0 {
				t.Fatalf("maskCopy of %d bytes at payload offset %d: %x, want %x", n, pos, got[:n], want)
			}
		}
	}
}

func TestFrameHeaderLengths(t *testing.T) {
	for _, c := range []struct {
		n    int
		want []byte
	}{
		{0, []byte{0x82, 0x00}},
		{125, []byte{0x82, 125}},
		{126, []byte{0x82, 126, 0, 126}},
		{65535, []byte{0x82, 126, 0xff, 0xff}},
		{65536, []byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
	} {
		if got := appendFrameHeader(nil, websocket.BinaryMessage, c.n, false, [4]byte{}); !bytes.Equal(got, c.want) {
			t.Errorf("header of %d bytes: %x, want %x", c.n, got, c.want)
		}
	}
	got := appendFrameHeader(nil, websocket.PingMessage, 3, true, [4]byte{1, 2, 3, 4})
	if want := []byte{0x89, 0x83, 1, 2, 3, 4}; !bytes.Equal(got, want) {
		t.Errorf("masked ping header: %x, want %x", got, want)
	}
}
