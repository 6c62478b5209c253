package privacy_test

import (
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestCascadedRowsLeaveNoResidue: a DBA's table outside the data model
// whose foreign key into nms:recipient is ON DELETE CASCADE loses the
// subject's rows with the recipient's delete — the database deletes them,
// the service never names them. Their bytes stayed in that table's pages on
// PostgreSQL: the residue purge rewrote only the tables the service
// deleted from. It now covers the tables whose foreign keys cascade (or set
// null) from those, so nothing of the subject is left in their files
// either. (SQLite's secure_delete zeroes every deleted row, cascaded or
// not.)
func TestCascadedRowsLeaveNoResidue(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		cfg := storetest.ConfigOf(t, f.env.DB)
		conn := storetest.SQLOf(t, f.env.DB)
		subject := recipientID(t, f, 3)
		const token = "Cascadednotetoken5e1f"
		for _, ddl := range []string{
			"CREATE TABLE dba_call_note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))",
			"CREATE TABLE dba_call_tag (id BIGINT PRIMARY KEY, note_id BIGINT REFERENCES dba_call_note (id) ON DELETE SET NULL, tag VARCHAR(200))",
		} {
			if err := conn.Exec(f.ctx, ddl); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			if err := conn.InsertRow(f.ctx, "dba_call_note", map[string]any{"id": int64(50 + i), "recipient_id": subject, "body": token + " called about the order"}); err != nil {
				t.Fatal(err)
			}
			if err := conn.InsertRow(f.ctx, "dba_call_tag", map[string]any{"id": int64(80 + i), "note_id": int64(50 + i), "tag": token + " tag"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := conn.InsertRow(f.ctx, "dba_call_note", map[string]any{"id": int64(90), "recipient_id": recipientID(t, f, 4), "body": "another person's call"}); err != nil {
			t.Fatal(err)
		}
		count := func() int {
			if dialect == store.Postgres {
				// The note's words: the tags keep the token, their rows stay.
				return conn.PostgresFileCount(t, f.ctx, "dba_call_note", token+" called")
			}
			return storetest.SQLiteFileCount(t, cfg, token+" called")
		}
		if n := count(); n < 3 {
			t.Fatalf("the files hold the notes' token %d time(s) before the delete: the check would prove nothing", n)
		}
		id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
		runAll(t, f)
		if got := f.status(t, id); got != privacy.StatusComplete {
			t.Fatalf("status %v, want complete", got)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM dba_call_note WHERE recipient_id = ?", subject); err != nil || n != 0 {
			t.Fatalf("%d cascaded note(s) left (%v)", n, err)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM dba_call_note"); err != nil || n != 1 {
			t.Fatalf("%d note(s) left in all, want the other person's one (%v)", n, err)
		}
		if n := count(); n != 0 {
			t.Errorf("the cascaded notes are still in the table's files %d time(s) after the delete", n)
		}
	})
}
