package privacy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestDeleteDestroysTheSubjectsOtherFiles: a subject asked for their
// data (an access request, collected: an encrypted file whose key the
// database keeps wrapped), then for its erasure. Once the delete is
// `complete`, with a receipt whose method claims "export key destruction",
// nothing of the subject may be left in the service (README "How erasure
// is proven"; J13 destroyed a two-step delete's reviewed file for this very
// reason: "complete, yet the subject's data stayed in the service
// (encrypted, its key wrapped in the database) and downloadable for 90
// days"). The earlier access file is the same copy of the same person's
// rows: it must be gone or unreadable after the delete.
func TestDeleteDestroysTheSubjectsOtherFiles(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		conn := storetest.SQLOf(t, f.env.DB)
		const email, unique = "forensic-access@example.com", "Forensicaccess5b1e"
		if err := conn.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9311), "email": email, "first_name": unique}); err != nil {
			t.Fatal(err)
		}
		access := f.create(t, "defaultNamespace1", email, privacy.TypeAccess, false)
		other := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeAccess, false) // another person's
		f.run(t, privacy.Collect)
		if got := f.status(t, access); got != privacy.StatusComplete {
			t.Fatalf("access request status %v, want complete", got)
		}
		if doc := f.export(t, access); !strings.Contains(doc, unique) {
			t.Fatal("the access file does not hold the subject's name: the check would prove nothing")
		}

		del := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
		runAll(t, f)
		if got := f.status(t, del); got != privacy.StatusComplete {
			t.Fatalf("delete status %v, want complete", got)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", email); err != nil || n != 0 {
			t.Fatalf("%d recipient row(s) left (%v)", n, err)
		}
		_, c := f.receiptOf(t, del)
		t.Logf("delete receipt method: %q", c.Method)

		// The erased person's data, still downloadable in plain text.
		if _, r, err := f.env.Privacy.OpenExport(f.ctx, access); err == nil {
			b, _ := io.ReadAll(r)
			r.Close()
			t.Errorf("after the `complete` delete the earlier access file still opens (%d bytes, holds the erased name: %v); want it destroyed with the delete",
				len(b), strings.Contains(string(b), unique))
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM privacy_exports WHERE request_id = ?", access); err != nil || n != 0 {
			t.Errorf("%d wrapped key row(s) of the access file left after the delete (%v), want 0", n, err)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM privacy_export_chunks WHERE request_id = ?", access); err != nil || n != 0 {
			t.Errorf("%d encrypted chunk(s) of the access file left after the delete (%v), want 0", n, err)
		}
		if _, _, err := f.env.Privacy.OpenExport(f.ctx, access); !errors.Is(err, privacy.ErrErased) {
			t.Errorf("opening the destroyed access file: %v, want %v", err, privacy.ErrErased)
		}
		r, err := f.env.DB.FindRequestByID(f.ctx, access)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(store.ErasedFileLine, del); !strings.Contains(r.Audit, want) {
			t.Errorf("the access request's audit does not say its file was destroyed (%q):\n%s", want, r.Audit)
		}
		if _, r, err := f.env.Privacy.OpenExport(f.ctx, other); err != nil {
			t.Errorf("another person's access file was destroyed with the delete: %v", err)
		} else {
			r.Close()
		}
		if _, err := f.env.DB.VerifyAuditChain(f.ctx, nil); err != nil {
			t.Errorf("the audit chain after the files' destruction: %v", err)
		}
	})
}

// forensicNoteSchemas give the subject large fields: a memo on the
// recipient itself (an extension) and a table of notes each recipient owns,
// whose memo holds a long text (a case's history, a big delivery log).
var forensicNoteSchemas = fstest.MapFS{
	"cus_note.xml": {Data: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="note" label="Notes">
  <element name="note" autopk="true" label="Notes">
    <attribute name="body" type="memo" label="Body"/>
    <element name="recipient" type="link" target="nms:recipient" revIntegrity="own" label="Recipient"/>
  </element>
</schema>`)},
	"cus_recipient.xml": {Data: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="recipient" extendedSchema="nms:recipient" label="Recipients (comment)">
  <element name="recipient">
    <attribute name="comment" type="memo" label="Comment"/>
  </element>
</schema>`)},
}

// bigValue is n bytes of random base64 (incompressible, so PostgreSQL
// stores it out of line in the TOAST table as it is, and SQLite on
// overflow pages) with token at its start, middle and end: a token cut by
// a TOAST chunk's or an overflow page's boundary is still found once.
func bigValue(t *testing.T, token string, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	s := base64.StdEncoding.EncodeToString(b)[:n]
	return token + s[:n/2] + token + s[n/2:] + token
}

// TestLargeValuesLeaveNoResidue: values over 2 KB (PostgreSQL
// TOASTs them, SQLite puts them on overflow pages), in the subject's own
// row and in rows it owns, one of them repeating the subject's email.
// After the `complete` delete, no byte of them is in the tables' files,
// their TOAST tables and indexes, pg_statistic, or the SQLite file and WAL.
func TestLargeValuesLeaveNoResidue(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: forensicNoteSchemas, Privacy: withReceipts})
		cfg := storetest.ConfigOf(t, f.env.DB)
		conn := storetest.SQLOf(t, f.env.DB)
		const email, tokComment, tokNote = "forensic-big@example.com", "Bigcommenttoken31c7", "Bignotetoken8d02"
		if err := conn.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9321), "email": email, "comment": bigValue(t, tokComment, 6000)}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			if err := conn.InsertRow(f.ctx, "cus_note", map[string]any{"id": int64(700 + i), "recipient_id": int64(9321),
				"body": email + " " + bigValue(t, tokNote, 5000)}); err != nil {
				t.Fatal(err)
			}
		}
		if dialect == store.Postgres {
			if err := conn.Exec(f.ctx, "ANALYZE nms_recipient; ANALYZE cus_note"); err != nil {
				t.Fatal(err)
			}
		}
		count := func(tokens ...string) int {
			if dialect == store.Postgres {
				return conn.PostgresFileCount(t, f.ctx, "nms_recipient", tokens...) + conn.PostgresFileCount(t, f.ctx, "cus_note", tokens...)
			}
			return storetest.SQLiteFileCount(t, cfg, tokens...)
		}
		if n := count(tokComment, tokNote); n < 3+9 {
			t.Fatalf("the files hold the large values' tokens %d time(s) before the delete: the check would prove nothing", n)
		}
		id := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
		runAll(t, f)
		if got := f.status(t, id); got != privacy.StatusComplete {
			t.Fatalf("status %v, want complete", got)
		}
		if n := f.count(t, "cus_note"); n != 0 {
			t.Fatalf("%d note(s) left", n)
		}
		if n := count(tokComment, tokNote); n != 0 {
			t.Errorf("the erased large values are still in the files %d time(s) after the delete", n)
		}
	})
}

// pgCatalogFileCount counts tokens in the files of a catalog relation (its
// heap, its TOAST table and their indexes), read from the disk after a
// CHECKPOINT, as storetest.PostgresFileCount does for a table.
func pgCatalogFileCount(t *testing.T, f *fixture, rel string, tokens ...string) int {
	t.Helper()
	dataDir := os.Getenv("CP_TEST_PG_DATA")
	if dataDir == "" {
		t.Skip("reading PostgreSQL's files needs scripts/with-test-postgres (CP_TEST_PG_DATA)")
	}
	cfg := storetest.ConfigOf(t, f.env.DB)
	db, err := sql.Open("pgx", cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(f.ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(f.ctx, `
		WITH rel AS (SELECT oid, reltoastrelid FROM pg_class WHERE oid = $1::text::regclass),
		all_rel AS (SELECT oid FROM rel UNION SELECT reltoastrelid FROM rel WHERE reltoastrelid <> 0)
		SELECT pg_relation_filepath(oid) FROM all_rel
		UNION SELECT pg_relation_filepath(indexrelid) FROM pg_index WHERE indrelid IN (SELECT oid FROM all_rel)`, rel)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dataDir, p))
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range tokens {
			n += bytes.Count(b, []byte(tok))
		}
	}
	return n
}

// TestExtendedStatisticsPurged: README ("What
// residue remains where") says that after a delete run nothing of the
// erased rows stays in the live database's files, and handles an
// operator's ANALYZE samples on SQLite (sqlite_stat4) and the planner's
// samples on PostgreSQL (pg_statistic). A DBA's extended statistics
// (CREATE STATISTICS, here on an expression, as one would to plan
// lower(email) lookups) keep their samples in pg_statistic_ext_data: the
// purge's ANALYZE replaces the row, the old version (with the erased
// person's values in its histogram) stays in that catalog's file, which
// the purge never rewrites.
func TestExtendedStatisticsPurged(t *testing.T) {
	f := newFixture(t, store.Postgres, servertest.Options{Privacy: withReceipts})
	conn := storetest.SQLOf(t, f.env.DB)
	const email, unique = "forensic-extstat@example.com", "Forensicextstat42d9"
	if err := conn.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9331), "email": email, "first_name": unique}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(f.ctx, "CREATE STATISTICS review_forensic_rcp ON (lower(first_name)), (lower(email)) FROM nms_recipient"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(f.ctx, "ANALYZE nms_recipient"); err != nil {
		t.Fatal(err)
	}
	low := strings.ToLower(unique)
	if n := pgCatalogFileCount(t, f, "pg_catalog.pg_statistic_ext_data", low); n == 0 {
		t.Fatal("the extended statistics do not sample the subject's name: the check would prove nothing")
	}
	id := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
	runAll(t, f)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	if n := conn.PostgresFileCount(t, f.ctx, "nms_recipient", unique, low); n != 0 {
		t.Fatalf("the table's own files still hold the name %d time(s)", n)
	}
	if n := pgCatalogFileCount(t, f, "pg_catalog.pg_statistic_ext_data", low, email); n != 0 {
		t.Errorf("after the `complete` delete pg_statistic_ext_data's files still hold the erased person's values %d time(s)", n)
	}
}

// TestRetriedAndCrashedDeleteLeavesNoResidue: a one-step
// delete in batches of 2 rows whose first attempt fails after a batch (a
// transient fault: some rows gone, the request back to retryPending),
// whose retry then dies before its run's residue purge (a crash: the
// request left deleteInProgress, its tables marked), and which a later run
// takes back after the lease. Once it is `complete`, no byte of the
// subject is in the files, on either store.
func TestRetriedAndCrashedDeleteLeavesNoResidue(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		var failedBatch, crashed bool
		var statusOf func() privacy.Status // the request's, once created
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.Workers, c.DeleteBatch = 1, 2
			c.Failpoint = func(name string) error {
				switch {
				case name == "delete-after-batch" && !failedBatch:
					failedBatch = true
					return errors.New("connection reset after the first batch")
				case name == "residue-purge" && failedBatch && !crashed && statusOf != nil && statusOf() == privacy.StatusDeleteInProgress:
					crashed = true
					return errors.New("the process died before the residue purge")
				}
				return nil
			}
		}})
		cfg := storetest.ConfigOf(t, f.env.DB)
		conn := storetest.SQLOf(t, f.env.DB)
		const email, unique, label = "forensic-retry@example.com", "Forensicretry9e4a", "Forensicretrylabel"
		if err := conn.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9341), "email": email, "first_name": unique}); err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if err := conn.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(995000 + i), "recipient_id": int64(9341),
				"address": email, "delivery_label": label + strconv.Itoa(i)}); err != nil {
				t.Fatal(err)
			}
		}
		count := func() int {
			if dialect == store.Postgres {
				return conn.PostgresFileCount(t, f.ctx, "nms_recipient", unique) + conn.PostgresFileCount(t, f.ctx, "nms_broad_log_rcp", label)
			}
			return storetest.SQLiteFileCount(t, cfg, unique, label)
		}
		id := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
		statusOf = func() privacy.Status { return f.status(t, id) }
		f.run(t, privacy.Collect)
		_, _ = f.env.Privacy.Run(f.ctx, privacy.Delete) // the batch fails
		if !failedBatch {
			t.Fatal("the first attempt did not fail")
		}
		f.env.Clock.Advance(time.Hour) // past the retry delay
		if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err == nil || !crashed {
			t.Fatalf("the retry's run did not die before its purge: %v (status %v)", err, f.status(t, id))
		}
		f.env.Clock.Advance(time.Hour) // past the lease
		runAll(t, f)
		if got := f.status(t, id); got != privacy.StatusComplete {
			t.Fatalf("status %v, want complete", got)
		}
		if n := count(); n != 0 {
			t.Errorf("the erased subject's values are still in the files %d time(s)", n)
		}
	})
}

// TestReceiptSaysStatisticsNotZeroed: with a database
// role that neither is a superuser nor owns the database (the usual
// application role, owning only its tables), PostgreSQL skips the purge's
// VACUUM FULL pg_statistic with a warning, and the erased email's sample
// stays in pg_statistic's file (README says so). The delete still
// completes, and its signed receipt names the same method and purge as a
// full one ("row delete + residue purge before completion", "VACUUM
// (FULL, ANALYZE) of N table(s)"): unlike CP_RESIDUE_PURGE=vacuum, whose
// receipt says "freed space not zeroed", nothing in the proof says bytes
// of the subject were left.
func TestReceiptSaysStatisticsNotZeroed(t *testing.T) {
	ctx := context.Background()
	db, aconn, _ := appRole(t)
	if may, err := db.MayVacuumStatistics(ctx); err != nil || may {
		t.Fatalf("the application role may vacuum pg_statistic (%v %v): the check would prove nothing", may, err)
	}
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Privacy: withReceipts})
	const email, unique = "forensic-role@example.com", "Forensicrole77a1"
	if err := storetest.SQLOf(t, db).InsertRow(ctx, "nms_recipient", map[string]any{"id": int64(9351), "email": email, "first_name": unique}); err != nil {
		t.Fatal(err)
	}
	if err := storetest.SQLOf(t, db).Exec(ctx, "ANALYZE nms_recipient"); err != nil {
		t.Fatal(err)
	}
	id := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
	runAll(t, f)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	left := aconn.PostgresFileCount(t, ctx, "nms_recipient", email, unique)
	_, c := f.receiptOf(t, id)
	t.Logf("erased values left in the files: %d; receipt method %q, residue_purge %q", left, c.Method, c.ResiduePurge)
	if left == 0 {
		t.Skip("pg_statistic kept nothing of the subject this time")
	}
	if c.Method == privacy.ReceiptMethod {
		t.Errorf("the erased values are still in pg_statistic's file (%d time(s)), yet the receipt signs the full purge's method %q and residue_purge %q",
			left, c.Method, c.ResiduePurge)
	}
}
