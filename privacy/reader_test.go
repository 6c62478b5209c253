package privacy_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// chunkBytes is the plaintext size of a stored chunk.
const chunkBytes = privacy.ChunkSize

// multiChunkFile collects a file of about 2.8 MB, 11 chunks: more than the
// reader's pipeline holds at once. It returns the request and the file as
// read with plain Reads.
func multiChunkFile(t *testing.T, dialect string) (*servertest.Env, int64, []byte) {
	env := servertest.New(t, dialect, servertest.Options{})
	ctx := context.Background()
	env.BigSubject(t, 17_000)
	id := env.CollectedAccess(t, operator, servertest.BigSubjectEmail)
	e, r, err := env.Privacy.OpenExport(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	doc, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(r, 300)))
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(struct{ io.Reader }{r}) // Read only, not WriteTo
	if err != nil {
		t.Fatal(err)
	}
	doc = append(doc, rest...)
	if int64(len(doc)) != e.Size || len(doc) <= 10*chunkBytes {
		t.Fatalf("read %d bytes of %d, want about 11 chunks", len(doc), e.Size)
	}
	if !bytes.HasSuffix(doc, []byte("</gdprRequestData>\n")) || !bytes.Contains(doc, []byte(` id="17000" `)) {
		t.Fatalf("the file is not whole: ends with %q", doc[len(doc)-100:])
	}
	return env, id, doc
}

// TestExportReaderSeek: the pipelined reader gives the same bytes through
// WriteTo, through Reads of any size, and after seeks behind, inside and
// beyond what it has decrypted ahead (what HTTP Range requests do).
func TestExportReaderSeek(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env, id, doc := multiChunkFile(t, dialect)
		ctx := context.Background()
		open := func() io.ReadSeekCloser {
			t.Helper()
			_, r, err := env.Privacy.OpenExport(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			return r
		}

		var whole bytes.Buffer
		if n, err := io.Copy(&whole, open()); err != nil || n != int64(len(doc)) || !bytes.Equal(whole.Bytes(), doc) {
			t.Fatalf("WriteTo: %d bytes of %d, equal %t, %v", n, len(doc), bytes.Equal(whole.Bytes(), doc), err)
		}
		// iotest.TestReader reads, seeks back and forth and compares.
		if err := iotest.TestReader(open(), doc); err != nil {
			t.Fatal(err)
		}

		r := open()
		// Read chunk 0 and let the pipeline run ahead, then seek behind
		// it, into the chunk it holds, past everything it decrypted, and
		// from the end.
		if _, err := io.ReadFull(r, make([]byte, chunkBytes+10)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
		for _, at := range []struct {
			offset int64
			whence int
		}{
			{100, io.SeekStart},
			{chunkBytes - 5, io.SeekStart},
			{3 * chunkBytes, io.SeekCurrent},
			{10*chunkBytes + 7, io.SeekStart},
			{2 * chunkBytes, io.SeekStart},
			{-chunkBytes - 3, io.SeekEnd},
			{int64(len(doc)) - 1, io.SeekStart},
		} {
			pos, err := r.Seek(at.offset, at.whence)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, min(chunkBytes+20, int64(len(doc))-pos))
			if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, doc[pos:pos+int64(len(got))]) {
				t.Fatalf("after Seek(%d, %d) to %d: %v, bytes equal %t", at.offset, at.whence, pos, err, bytes.Equal(got, doc[pos:pos+int64(len(got))]))
			}
		}
	})
}

// sealedChunks returns the stored chunks of a file.
func sealedChunks(t *testing.T, env *servertest.Env, id int64) [][]byte {
	t.Helper()
	var chunks [][]byte
	err := env.DB.ExportChunks(context.Background(), id, 0, 1000, func(_ int, sealed []byte) error {
		chunks = append(chunks, bytes.Clone(sealed))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return chunks
}

// TestExportReaderDamage: a chunk altered, missing or cut off in the
// middle of a file fails the read where it starts, after the intact
// chunks before it and never with any byte of its own; the error stays.
// The read-ahead opens (authenticates) the chunks in order and stops at
// the first that fails, a gap included (it fails at the missing chunk, not
// at the start of its batch): the reader delivers exactly the chunks
// before it, however far ahead it has read.
func TestExportReaderDamage(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env, id, doc := multiChunkFile(t, dialect)
		ctx := context.Background()
		chunks := sealedChunks(t, env, id)
		last := len(chunks) - 1
		sql := storetest.SQLOf(t, env.DB)
		exec := func(query string, args ...any) func() {
			return func() {
				if err := sql.Exec(ctx, query, args...); err != nil {
					t.Fatal(err)
				}
			}
		}
		restore := func() {
			for seq, c := range chunks {
				if err := sql.Exec(ctx, "DELETE FROM privacy_export_chunks WHERE request_id = ? AND seq = ?", id, seq); err != nil {
					t.Fatal(err)
				}
				if err := sql.Exec(ctx, "INSERT INTO privacy_export_chunks (request_id, seq, data) VALUES (?, ?, ?)", id, seq, c); err != nil {
					t.Fatal(err)
				}
			}
			exec("UPDATE privacy_exports SET chunks = ?, size = ? WHERE request_id = ?", len(chunks), len(doc), id)()
		}
		for _, c := range []struct {
			name   string
			damage []func()
			at     int // the first chunk not delivered
		}{
			{"altered", []func(){exec("UPDATE privacy_export_chunks SET data = ? WHERE request_id = ? AND seq = ?", flip(chunks[5]), id, 5)}, 5},
			{"swapped", []func(){exec("UPDATE privacy_export_chunks SET data = ? WHERE request_id = ? AND seq = ?", chunks[7], id, 6)}, 6},
			{"missing", []func(){exec("DELETE FROM privacy_export_chunks WHERE request_id = ? AND seq = ?", id, 9)}, 9},
			// The last chunk and the count that records it removed: the
			// chunk before it was not sealed as the last.
			{"cut off", []func(){
				exec("DELETE FROM privacy_export_chunks WHERE request_id = ? AND seq = ?", id, last),
				exec("UPDATE privacy_exports SET chunks = ?, size = ? WHERE request_id = ?", last, last*chunkBytes, id),
			}, last - 1},
		} {
			t.Run(c.name, func(t *testing.T) {
				restore()
				for _, damage := range c.damage {
					damage()
				}
				for _, how := range []string{"WriteTo", "Read"} {
					_, r, err := env.Privacy.OpenExport(ctx, id)
					if err != nil {
						t.Fatalf("%s: the first chunk is intact, but: %v", how, err)
					}
					var got bytes.Buffer
					var w io.Writer = &got
					if how == "Read" {
						w = struct{ io.Writer }{&got} // no ReadFrom either: io.Copy's own Reads
						_, err = io.CopyBuffer(w, struct{ io.Reader }{r}, make([]byte, 10_000))
					} else {
						_, err = io.Copy(w, r)
					}
					if apperr.CodeOf(err) != apperr.Internal {
						t.Fatalf("%s: read a damaged file to its end: %v", how, err)
					}
					if got.Len() != c.at*chunkBytes || !bytes.Equal(got.Bytes(), doc[:got.Len()]) {
						t.Fatalf("%s: %d bytes before the error, want the %d intact chunks (%d bytes)", how, got.Len(), c.at, c.at*chunkBytes)
					}
					if _, err := r.Read(make([]byte, 10)); apperr.CodeOf(err) != apperr.Internal {
						t.Fatalf("%s: a read after the error: %v", how, err)
					}
					r.Close()
				}
			})
		}
	})
}

func flip(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)/2] ^= 1
	return b
}

// TestExportReaderStops: a download that stops half-way (Close, or its
// request's context cancelled) leaves no goroutine behind; a closed reader
// reads nothing more.
func TestExportReaderStops(t *testing.T) {
	env, id, _ := multiChunkFile(t, "sqlite")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for i := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		_, r, err := env.Privacy.OpenExport(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, (i%4)*chunkBytes+1)); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			r.Close()
			// Its buffers went back for other downloads: nothing more
			// comes out, not even the rest of the chunk it held.
			if n, err := r.Read(make([]byte, 10)); n != 0 || err == nil {
				t.Fatalf("a read after Close: %d bytes, %v", n, err)
			}
			cancel()
			continue
		}
		cancel()
		if _, err := io.Copy(io.Discard, r); err == nil {
			t.Fatal("the read went on after its context was cancelled")
		}
		r.Close()
	}
}

// TestExportCodec: a file's chunks are compressed, their codec bound into
// what they authenticate; a file written before compression (codec "",
// plain chunks) still reads whole; and changing the recorded codec, either
// way, makes the file refuse to open.
func TestExportCodec(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env, id, doc := multiChunkFile(t, dialect)
		ctx := context.Background()
		db := storetest.SQLOf(t, env.DB)
		stored := 0
		for _, c := range sealedChunks(t, env, id) {
			stored += len(c)
		}
		if stored*2 > len(doc) {
			t.Fatalf("the stored chunks take %d bytes for a file of %d: not compressed", stored, len(doc))
		}
		refused := func(when string) {
			t.Helper()
			if _, _, err := env.Privacy.OpenExport(ctx, id); apperr.CodeOf(err) != apperr.Internal {
				t.Fatalf("%s: the file opens (%v)", when, err)
			}
		}
		setCodec := func(codec string) {
			t.Helper()
			if err := db.Exec(ctx, "UPDATE privacy_exports SET codec = ? WHERE request_id = ?", codec, id); err != nil {
				t.Fatal(err)
			}
		}
		setCodec("")
		refused("compressed chunks recorded as plain")

		// The same file as it was stored before compression.
		var plains [][]byte
		for off := 0; off < len(doc); off += chunkBytes {
			plains = append(plains, doc[off:min(off+chunkBytes, len(doc))])
		}
		wrapped, err := db.Bytes(ctx, "SELECT wrapped_key FROM privacy_exports WHERE request_id = ?", id)
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := privacy.SealUncompressed(servertest.Key[:32], wrapped, id, plains)
		if err != nil {
			t.Fatal(err)
		}
		for seq, c := range sealed {
			if err := db.Exec(ctx, "UPDATE privacy_export_chunks SET data = ? WHERE request_id = ? AND seq = ?", c, id, seq); err != nil {
				t.Fatal(err)
			}
		}
		got, err := readWhole(t, env, id)
		if err != nil || !bytes.Equal(got, doc) {
			t.Fatalf("the uncompressed file: %d bytes of %d, equal %t, %v", len(got), len(doc), bytes.Equal(got, doc), err)
		}
		setCodec("lz4")
		refused("plain chunks recorded as compressed")
		setCodec("zstd")
		refused("an unknown codec")
	})
}

// TestExportRecordedSize: the size recorded with the file is not part of
// what its chunks authenticate, so the reader checks each chunk's length
// against it: a size changed either way fails the read at the last chunk,
// never a file quietly cut short or a byte too long.
func TestExportRecordedSize(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env, id, doc := multiChunkFile(t, dialect)
		ctx := context.Background()
		for _, delta := range []int{-1, 1} {
			if err := storetest.SQLOf(t, env.DB).Exec(ctx, "UPDATE privacy_exports SET size = ? WHERE request_id = ?", len(doc)+delta, id); err != nil {
				t.Fatal(err)
			}
			got, err := readWhole(t, env, id)
			last := (len(doc) - 1) / chunkBytes * chunkBytes
			if apperr.CodeOf(err) != apperr.Internal || len(got) != last || !bytes.Equal(got, doc[:last]) {
				t.Fatalf("size %+d: read %d bytes (the chunks before the last: %d), %v", delta, len(got), last, err)
			}
		}
	})
}

// readWhole opens request id's file and reads it to its end or its first
// error.
func readWhole(t *testing.T, env *servertest.Env, id int64) ([]byte, error) {
	t.Helper()
	_, r, err := env.Privacy.OpenExport(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return io.ReadAll(r)
}
