package privacy_test

import (
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestCascadeTargetsNamedOnSQLite (J161 on SQLite): a DBA's tables in the
// embedded database whose foreign keys cascade a delete from nms_recipient
// (a note table, replies cascading from the notes) or set it null lose or
// unlink the subject's rows with the delete, as on PostgreSQL, and the
// purge's audit line and the receipt's residue_purge claim name them
// (they named none on SQLite); another person's rows stay, and the
// database file no longer holds the subject's note text.
func TestCascadeTargetsNamedOnSQLite(t *testing.T) {
	f := newFixture(t, store.SQLite, servertest.Options{Privacy: withReceipts})
	conn := storetest.SQLOf(t, f.env.DB)
	subject, other := recipientID(t, f, 3), recipientID(t, f, 4)
	const token = "Sqlitecascadenote7"
	for _, q := range []string{
		"CREATE TABLE dba_call_note (id INTEGER PRIMARY KEY, recipient_id INTEGER REFERENCES nms_recipient (id) ON DELETE CASCADE, body TEXT)",
		"CREATE TABLE dba_reply (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES dba_call_note (id) ON DELETE CASCADE, body TEXT)",
		"CREATE TABLE dba_survey (id INTEGER PRIMARY KEY, recipient_id INTEGER REFERENCES NMS_RECIPIENT (id) ON DELETE SET NULL)",
		"CREATE TABLE dba_unlinked (id INTEGER PRIMARY KEY, recipient_id INTEGER REFERENCES nms_recipient (id))",
	} {
		if err := conn.Exec(f.ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO dba_call_note VALUES (1, ?, ?), (2, ?, 'another person')", []any{subject, token, other}},
		{"INSERT INTO dba_reply VALUES (1, 1, 'r'), (2, 2, 'another')", nil},
		{"INSERT INTO dba_survey VALUES (1, ?), (2, ?)", []any{subject, other}},
		{"INSERT INTO dba_unlinked VALUES (1, ?)", []any{other}},
	} {
		if err := conn.Exec(f.ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	f.run(t, privacy.Collect)
	f.run(t, privacy.Delete)
	if s := f.status(t, id); s != privacy.StatusComplete {
		t.Fatalf("status %s", s)
	}
	for q, want := range map[string]int64{
		"SELECT count(*) FROM dba_call_note":                                  1,
		"SELECT count(*) FROM dba_reply":                                      1,
		"SELECT count(*) FROM dba_survey WHERE recipient_id IS NULL":          1,
		"SELECT count(*) FROM dba_survey WHERE recipient_id = " + itoa(other): 1,
		"SELECT count(*) FROM dba_unlinked":                                   1,
	} {
		if n, err := conn.Int(f.ctx, q); err != nil || n != want {
			t.Fatalf("plain SQL: %s: %d (%v), want %d", q, n, err, want)
		}
	}
	r, err := f.env.DB.FindRequestByID(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	_, c := f.receiptOf(t, id)
	for _, record := range []string{purgeLine(r.Audit), c.ResiduePurge} {
		i := strings.Index(record, cascadeSaid)
		if i < 0 {
			t.Fatalf("the purge's record does not name the tables the deletes cascade into: %q", record)
		}
		named := record[i+len(cascadeSaid):]
		for _, table := range []string{"dba_call_note", "dba_reply", "dba_survey"} {
			if !strings.Contains(named, table) {
				t.Fatalf("the purge's record does not name %s: %q", table, record)
			}
		}
		if strings.Contains(named, "dba_unlinked") || strings.Contains(named, "nms_") {
			t.Fatalf("the purge's record names a table the deletes do not cascade into: %q", record)
		}
	}
	if n := storetest.SQLiteFileCount(t, storetest.ConfigOf(t, f.env.DB), token); n != 0 {
		t.Fatalf("the database files still hold the subject's note text %d time(s)", n)
	}
}
