package privacy

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// The reader builds a chunk's nonce and associated data without fmt: the
// bytes must stay those every stored export was sealed with, files
// written before compression (no codec) included.
func TestChunkNonceAndAAD(t *testing.T) {
	var n [12]byte
	a := make([]byte, 0, 64)
	for _, c := range []struct {
		req  int64
		seq  int
		last bool
	}{{1, 0, true}, {42, 7, false}, {1 << 40, 123456, true}} {
		want := []byte(fmt.Sprintf("cp-export;req=%d;seq=%d;last=%t", c.req, c.seq, c.last))
		if got := appendAAD(a[:0], c.req, c.seq, c.last, ""); !bytes.Equal(got, want) {
			t.Errorf("aad %q, want %q", got, want)
		}
		want = fmt.Appendf(nil, "cp-export;req=%d;seq=%d;last=%t;codec=lz4", c.req, c.seq, c.last)
		if got := appendAAD(a[:0], c.req, c.seq, c.last, codecLZ4); !bytes.Equal(got, want) {
			t.Errorf("aad %q, want %q", got, want)
		}
		n = [12]byte{0xff, 0xff, 0xff, 0xff} // a reused buffer: the zeros are written
		want = binary.BigEndian.AppendUint64(make([]byte, 4), uint64(c.seq))
		if got := putNonce(n[:], c.seq); !bytes.Equal(got, want) || !bytes.Equal(nonce(c.seq), want) {
			t.Errorf("nonce of %d: %x, want %x", c.seq, got, want)
		}
	}
}
