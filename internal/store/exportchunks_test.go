package store_test

import (
	"bytes"
	"context"
	"errors"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestExportChunks: the chunks come in order, from seq, at most n of them;
// fewer at the end is no error, a gap is an error at the missing chunk
// after the chunks before it; an error of fn stops the scan and comes back
// as is.
//
// On PostgreSQL the chunks are pgx's own wire bytes, in binary; a URL
// asking for the simple protocol (as behind a pooler) gets them as text,
// which "postgres-simple-protocol" reads the same.
func TestExportChunks(t *testing.T) {
	for _, variant := range append(slices.Clone(storetest.Dialects), "postgres-simple-protocol") {
		t.Run(variant, func(t *testing.T) {
			ctx := context.Background()
			dialect, simple := strings.CutSuffix(variant, "-simple-protocol")
			cfg := storetest.Config(t, dialect)
			if simple {
				cfg.DatabaseURL = storetest.SimpleProtocol(t, cfg.DatabaseURL)
			}
			db := storetest.OpenConfig(t, cfg, storetest.NewClock().Now)
			id := newRequest(t, db, &store.Request{ReconciliationValue: "v", Type: 1, Regulation: 1})
			if err := storetest.SQLOf(t, db).Exec(ctx, "UPDATE privacy_requests SET claimed_by = 'w' WHERE id = ?", id); err != nil {
				t.Fatal(err)
			}
			// Only the worker holding the request writes its file.
			if err := db.BeginExport(ctx, id, "other", []byte("wrapped"), ""); !errors.Is(err, store.ErrLostClaim) {
				t.Fatalf("another worker began the export: %v", err)
			}
			if err := db.BeginExport(ctx, id, "w", []byte("wrapped"), ""); err != nil {
				t.Fatal(err)
			}
			if err := db.AppendExportChunk(ctx, id, "other", 0, []byte("x")); !errors.Is(err, store.ErrLostClaim) {
				t.Fatalf("another worker appended a chunk: %v", err)
			}
			if err := db.DropExport(ctx, id, "other"); !errors.Is(err, store.ErrLostClaim) {
				t.Fatalf("another worker dropped the export: %v", err)
			}
			// Every byte value: a chunk is sealed, not text.
			chunk := func(seq int) []byte {
				b := make([]byte, 1000+seq)
				for i := range b {
					b[i] = byte(i*7 + seq)
				}
				return b
			}
			for seq := range 6 {
				if err := db.AppendExportChunk(ctx, id, "w", seq, chunk(seq)); err != nil {
					t.Fatal(err)
				}
			}
			read := func(from, n int, stop error) ([]int, error) {
				var seqs []int
				err := db.ExportChunks(ctx, id, from, n, func(seq int, sealed []byte) error {
					if !bytes.Equal(sealed, chunk(seq)) {
						t.Errorf("chunk %d: %d bytes, not its own", seq, len(sealed))
					}
					seqs = append(seqs, seq)
					if stop != nil && len(seqs) == 2 {
						return stop
					}
					return nil
				})
				return seqs, err
			}
			for _, c := range []struct {
				from, n int
				want    []int
			}{{0, 4, []int{0, 1, 2, 3}}, {4, 4, []int{4, 5}}, {6, 4, nil}, {2, 1, []int{2}}} {
				if got, err := read(c.from, c.n, nil); err != nil || !slices.Equal(got, c.want) {
					t.Errorf("from %d, %d: %v %v, want %v", c.from, c.n, got, err, c.want)
				}
			}
			stop := errors.New("stop")
			if got, err := read(0, 4, stop); err != stop || !slices.Equal(got, []int{0, 1}) {
				t.Errorf("fn's error: %v %v", got, err)
			}
			if err := storetest.SQLOf(t, db).Exec(ctx, "DELETE FROM privacy_export_chunks WHERE request_id = ? AND seq = ?", id, 2); err != nil {
				t.Fatal(err)
			}
			if got, err := read(0, 4, nil); apperr.CodeOf(err) != apperr.Internal || !slices.Equal(got, []int{0, 1}) {
				t.Errorf("a gap: %v %v", got, err)
			}
			if got, err := read(2, 4, nil); apperr.CodeOf(err) != apperr.Internal || len(got) != 0 {
				t.Errorf("a gap at the start: %v %v", got, err)
			}
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if err := db.ExportChunks(cancelled, id, 0, 4, func(int, []byte) error { return nil }); apperr.CodeOf(err) != apperr.Busy {
				t.Errorf("a cancelled context: %v", err)
			}
		})
	}
}

// TestExportChunksLeaveNoGarbage: a chunk reaches fn as the driver's
// memory, not a copy of its own: a read of a 256 KiB chunk allocates far
// less than the chunk. SQLite's driver copies every blob a row
// returns (security-bar #84: 20 downloads at once grew the heap by their
// garbage); PostgreSQL's database/sql driver copies every bytea.
func TestExportChunksLeaveNoGarbage(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, storetest.NewClock().Now)
			id := beginExport(t, db)
			chunk := bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 0}, 1<<15) // 256 KiB, a chunk of privacy/export.go at most
			if err := db.AppendExportChunk(ctx, id, "w", 0, chunk); err != nil {
				t.Fatal(err)
			}
			read := func() {
				err := db.ExportChunks(ctx, id, 0, 1, func(_ int, sealed []byte) error {
					if !bytes.Equal(sealed, chunk) {
						t.Fatalf("%d bytes, not the chunk", len(sealed))
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			read() // the statement prepared, the pool's connection open
			// A copy is the chunk's size at every read. The least of 20
			// reads: pgx takes its buffers from a sync.Pool, which the race
			// detector empties at random (186 KB a read on average in CI).
			least := uint64(math.MaxUint64)
			for range 20 {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				read()
				runtime.ReadMemStats(&after)
				least = min(least, after.TotalAlloc-before.TotalAlloc)
			}
			if least > uint64(len(chunk)/4) {
				t.Errorf("a read of a %d-byte chunk allocated %d bytes", len(chunk), least)
			}
			t.Logf("%d bytes allocated by the least of 20 reads", least)
		})
	}
}

// TestFindRequestExport: the one statement a download opens a file with
// reads what FindRequestByID and FindExport read, before the export
// exists, while it is written, once complete and after the purge.
func TestFindRequestExport(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, storetest.NewClock().Now)
			id := newRequest(t, db, &store.Request{ReconciliationValue: "v", Type: 2, Regulation: 1, ConfirmDeletePending: true, Status: 3})
			check := func(stage string) {
				t.Helper()
				req, e, err := db.FindRequestExport(ctx, id)
				if err != nil {
					t.Fatalf("%s: %v", stage, err)
				}
				want, err := db.FindRequestByID(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if req.ID != id || req.Type != want.Type || req.Status != want.Status || req.ConfirmDeletePending != want.ConfirmDeletePending ||
					(req.PurgedAt == nil) != (want.PurgedAt == nil) || (req.PurgedAt != nil && !req.PurgedAt.Equal(*want.PurgedAt)) {
					t.Errorf("%s: request %+v, want %+v", stage, req, want)
				}
				wantExport, err := db.FindExport(ctx, id)
				switch {
				case apperr.CodeOf(err) == apperr.NotFound:
					if e != nil {
						t.Errorf("%s: an export %+v where there is none", stage, e)
					}
				case err != nil:
					t.Fatal(err)
				case e == nil || e.RequestID != id || !bytes.Equal(e.WrappedKey, wantExport.WrappedKey) || e.Chunks != wantExport.Chunks ||
					e.Size != wantExport.Size || e.Complete != wantExport.Complete || !e.Created.Equal(wantExport.Created) || e.Codec != wantExport.Codec:
					t.Errorf("%s: export %+v, want %+v", stage, e, wantExport)
				}
			}
			check("no export")
			if err := storetest.SQLOf(t, db).Exec(ctx, "UPDATE privacy_requests SET claimed_by = 'w' WHERE id = ?", id); err != nil {
				t.Fatal(err)
			}
			if err := db.BeginExport(ctx, id, "w", []byte("wrapped"), "lz4"); err != nil {
				t.Fatal(err)
			}
			check("written")
			if err := storetest.SQLOf(t, db).Exec(ctx, "UPDATE privacy_exports SET chunks = 3, size = 600000, complete = ? WHERE request_id = ?", true, id); err != nil {
				t.Fatal(err)
			}
			check("complete")
			if ok, err := db.PurgeRequest(ctx, id, []store.Status{3}, "Purged."); err != nil || !ok {
				t.Fatalf("purge: %v %v", ok, err)
			}
			check("purged")
			if _, _, err := db.FindRequestExport(ctx, id+1000); apperr.CodeOf(err) != apperr.NotFound {
				t.Errorf("an unknown request: %v", err)
			}
		})
	}
}

// newNamespace creates the tests' namespace "ns" if it is missing.
func newNamespace(t *testing.T, db *store.DB) *store.Namespace {
	t.Helper()
	ns := testNamespace(t, db)
	return ns
}

// beginExport creates a request held by worker "w" and begins its export
// file, for chunks to be appended.
func beginExport(t *testing.T, db *store.DB) int64 {
	t.Helper()
	id := newRequest(t, db, &store.Request{ReconciliationValue: "v", Type: 1, Regulation: 1})
	if err := storetest.SQLOf(t, db).Exec(context.Background(), "UPDATE privacy_requests SET claimed_by = 'w' WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	if err := db.BeginExport(context.Background(), id, "w", []byte("wrapped"), ""); err != nil {
		t.Fatal(err)
	}
	return id
}

// newRequest creates req in the namespace "ns" (made if missing) and
// returns its id.
func newRequest(t *testing.T, db *store.DB, req *store.Request) int64 {
	t.Helper()
	req.NamespaceID = newNamespace(t, db).ID
	id, _, err := db.CreateRequest(context.Background(), req, "u", "Request created.")
	if err != nil {
		t.Fatal(err)
	}
	return id
}
