package privacy_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestPhoneDoubleTrunkZeroIsFound: under the phone rule (region DE),
// "+49 (0) 030 1234567" (the "(0)" habit plus the national "030") read as
// E.164 is +490301234567, which the parser reads again as +49301234567.
// The canonical form is where that ends, so a write stores it and the
// lookup, which applies canon.Value to the recorded value once more
// (matchValue), finds the same: the person is found and erased. (From
// internal/canon FuzzValue: the phone form was not idempotent.)
func TestPhoneDoubleTrunkZeroIsFound(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace3", MatchRule: canon.Phone, DefaultRegion: "de"}); err != nil {
			t.Fatal(err)
		}
		const typed = "+49 (0) 030 1234567"
		f.write(t, map[string]string{"email": "hans@example.com", "phone": typed})
		if f.rows(t, "phone", "+49301234567") != 1 {
			t.Fatal("fixture: the phone is not stored as +49301234567")
		}
		access := f.create(t, "defaultNamespace3", typed, privacy.TypeAccess, false)
		del := f.create(t, "defaultNamespace3", typed, privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if s := f.status(t, access); s != privacy.StatusComplete {
			t.Errorf("access request for %q (stored under that very text): %s, want %s", typed, s, privacy.StatusComplete)
		}
		if s := f.status(t, del); s != privacy.StatusDeletePending {
			t.Errorf("delete request for %q: %s after collect, want %s", typed, s, privacy.StatusDeletePending)
		}
		f.run(t, privacy.Delete)
		if n := f.rows(t, "email", "hans@example.com"); n != 0 {
			t.Errorf("after the delete workflow the person's row is still there (%d row), request status %s", n, f.status(t, del))
		}
	})
}

// FuzzExportDamage damages a collected access file at rest (a
// chunk cut short, a byte changed, chunks missing or swapped, the
// recorded chunk count, size or codec changed) and reads it, with seeks:
// the reader fails cleanly or gives exactly the file's bytes, never a
// panic, a hang or other bytes.
func FuzzExportDamage(f *testing.F) {
	env := servertest.New(f, "sqlite", servertest.Options{})
	ctx := context.Background()
	env.BigSubject(f, 3000) // about 500 KB: two chunks
	id := env.CollectedAccess(f, operator, servertest.BigSubjectEmail)
	e, r, err := env.Privacy.OpenExport(ctx, id)
	if err != nil {
		f.Fatal(err)
	}
	doc, err := io.ReadAll(r)
	r.Close()
	if err != nil || int64(len(doc)) != e.Size {
		f.Fatalf("fixture: %d bytes of %d (%v)", len(doc), e.Size, err)
	}
	var chunks [][]byte
	if err := env.DB.ExportChunks(ctx, id, 0, 1000, func(_ int, sealed []byte) error {
		chunks = append(chunks, bytes.Clone(sealed))
		return nil
	}); err != nil {
		f.Fatal(err)
	}
	sql := storetest.SQLOf(f, env.DB)
	codec, err := sql.Bytes(ctx, "SELECT codec FROM privacy_exports WHERE request_id = ?", id)
	if err != nil {
		f.Fatal(err)
	}
	restore := func(t *testing.T) {
		if err := sql.Exec(ctx, "DELETE FROM privacy_export_chunks WHERE request_id = ?", id); err != nil {
			t.Fatal(err)
		}
		for seq, c := range chunks {
			if err := sql.Exec(ctx, "INSERT INTO privacy_export_chunks (request_id, seq, data) VALUES (?, ?, ?)", id, seq, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := sql.Exec(ctx, "UPDATE privacy_exports SET chunks = ?, size = ?, codec = ? WHERE request_id = ?", len(chunks), len(doc), string(codec), id); err != nil {
			t.Fatal(err)
		}
	}
	f.Add(uint8(0), int32(-1), int32(-1), byte(0), int8(0), int32(0), uint8(0), int64(0), int64(300_000))
	f.Add(uint8(1), int32(10), int32(-1), byte(0), int8(0), int32(0), uint8(0), int64(0), int64(0))
	f.Add(uint8(0), int32(-1), int32(100), byte(1), int8(0), int32(0), uint8(0), int64(260_000), int64(10))
	f.Add(uint8(1), int32(-1), int32(-1), byte(0), int8(-1), int32(0), uint8(0), int64(0), int64(0))
	f.Add(uint8(0), int32(-1), int32(-1), byte(0), int8(0), int32(-7), uint8(1), int64(0), int64(0))
	f.Add(uint8(1), int32(0), int32(-1), byte(0), int8(3), int32(1<<20), uint8(2), int64(-5), int64(0))
	f.Fuzz(func(t *testing.T, seq uint8, cut, flipAt int32, flip byte, chunksDelta int8, sizeDelta int32, mode uint8, seekTo, seekEnd int64) {
		restore(t)
		defer restore(t)
		s := int(seq) % (len(chunks) + 1)
		if s < len(chunks) {
			c := bytes.Clone(chunks[s])
			if flipAt >= 0 && int(flipAt) < len(c) && flip != 0 {
				c[flipAt] ^= flip
			}
			if cut >= 0 && int(cut) < len(c) {
				c = c[:cut]
			}
			if err := sql.Exec(ctx, "UPDATE privacy_export_chunks SET data = ? WHERE request_id = ? AND seq = ?", c, id, s); err != nil {
				t.Fatal(err)
			}
		}
		switch mode % 4 {
		case 1: // the chunk goes missing
			if err := sql.Exec(ctx, "DELETE FROM privacy_export_chunks WHERE request_id = ? AND seq = ?", id, s); err != nil {
				t.Fatal(err)
			}
		case 2: // another chunk in its place
			if s < len(chunks) {
				o := chunks[(s+1)%len(chunks)]
				if err := sql.Exec(ctx, "UPDATE privacy_export_chunks SET data = ? WHERE request_id = ? AND seq = ?", o, id, s); err != nil {
					t.Fatal(err)
				}
			}
		case 3: // no codec recorded
			if err := sql.Exec(ctx, "UPDATE privacy_exports SET codec = '' WHERE request_id = ?", id); err != nil {
				t.Fatal(err)
			}
		}
		if err := sql.Exec(ctx, "UPDATE privacy_exports SET chunks = ?, size = ? WHERE request_id = ?", len(chunks)+int(chunksDelta), int64(len(doc))+int64(sizeDelta), id); err != nil {
			t.Fatal(err)
		}
		_, r, err := env.Privacy.OpenExport(ctx, id)
		if err != nil {
			return
		}
		defer r.Close()
		var got []byte
		pos := int64(0)
		if seekTo > 0 {
			if pos, err = r.Seek(seekTo%int64(len(doc)+1000), io.SeekStart); err != nil {
				return
			}
		}
		got, err = io.ReadAll(io.LimitReader(r, 1<<22))
		if err == nil && pos < int64(len(doc)) {
			want := doc[pos:]
			if !bytes.Equal(got, want) {
				t.Fatalf("damaged file read without an error: %d bytes from %d, not the file's (%d bytes)", len(got), pos, len(want))
			}
		} else if err == nil && len(got) > 0 {
			t.Fatalf("%d bytes read past the file's end (position %d of %d)", len(got), pos, len(doc))
		}
		if seekEnd != 0 {
			if _, err := r.Seek(-(seekEnd%int64(len(doc)) + 1), io.SeekEnd); err == nil {
				b := make([]byte, 4096)
				_, _ = r.Read(b)
			}
		}
	})
}
