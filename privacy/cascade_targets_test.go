package privacy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestCascadeTargetWithQuotedNameEmptied: a DBA's cascade target (J149)
// whose name needs quotes (mixed case, a space, a hyphen), emptied by the
// cascade and with planner statistics (an ANALYZE, autovacuum's or the
// DBA's): its statistics are dropped as a data-model table's are, and the
// runs complete. Found by review: dropStatisticsIfEmpty cast the raw name
// to regclass, which folds case or refuses it — the purge failed on every
// run after, for every subject.
func TestCascadeTargetWithQuotedNameEmptied(t *testing.T) {
	for _, name := range []string{"CallNote", "call note", "call-note"} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, store.Postgres, servertest.Options{Privacy: withReceipts})
			conn := storetest.SQLOf(t, f.env.DB)
			subject := recipientID(t, f, 3)
			q := `"` + name + `"`
			for _, ddl := range []string{
				"CREATE TABLE " + q + " (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))",
			} {
				if err := conn.Exec(f.ctx, ddl); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				if err := conn.InsertRow(f.ctx, name, map[string]any{"id": int64(50 + i), "recipient_id": subject, "body": "Mixedcasetoken called"}); err != nil {
					t.Fatal(err)
				}
			}
			if err := conn.Exec(f.ctx, "ANALYZE "+q); err != nil {
				t.Fatal(err)
			}
			id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
			_, err := f.env.Privacy.Run(f.ctx, "all")
			if err != nil {
				t.Errorf("first run: %v", err)
			}
			_, err = f.env.Privacy.Run(f.ctx, privacy.Delete)
			if err != nil {
				t.Errorf("second run: %v", err)
			}
			if got := f.status(t, id); got != privacy.StatusComplete {
				t.Errorf("status %v, want complete", got)
			}
			// Another subject's delete, unrelated to the DBA's table's rows.
			other := f.create(t, "defaultNamespace1", demodata.Email(5), privacy.TypeDelete, false)
			if _, err := f.env.Privacy.Run(f.ctx, "all"); err != nil {
				t.Errorf("another subject's delete run: %v", err)
			}
			if got := f.status(t, other); got != privacy.StatusComplete {
				t.Errorf("another subject's delete: status %v, want complete", got)
			}
		})
	}
}

// TestCascadeTargetLockNotGranted: the cascade target's rewrite lock is
// not granted within the wait (a reader holds ACCESS SHARE). The run says
// Busy and the request waits, as for a data-model table; once the reader
// ends, the next run finds the target again (it has no mark of its own),
// rewrites it and completes the request, nothing left in its files.
func TestCascadeTargetLockNotGranted(t *testing.T) {
	f := newFixture(t, store.Postgres, servertest.Options{Privacy: func(c *privacy.Config) {
		withReceipts(c)
		c.ResidueWait = 2 * time.Second
	}})
	conn := storetest.SQLOf(t, f.env.DB)
	subject := recipientID(t, f, 3)
	const token = "Lockednotetoken7c2a"
	if err := conn.Exec(f.ctx, "CREATE TABLE dba_call_note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := conn.InsertRow(f.ctx, "dba_call_note", map[string]any{"id": int64(50 + i), "recipient_id": subject, "body": token + " called"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.InsertRow(f.ctx, "dba_call_note", map[string]any{"id": int64(90), "recipient_id": recipientID(t, f, 4), "body": "another person's call"}); err != nil {
		t.Fatal(err)
	}
	if n := conn.PostgresFileCount(t, f.ctx, "dba_call_note", token); n < 3 {
		t.Fatalf("before: %d", n)
	}
	release, err := conn.LockTableIn(f.ctx, "dba_call_note", "ACCESS SHARE")
	if err != nil {
		t.Fatal(err)
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	_, err = f.env.Privacy.Run(f.ctx, "all")
	release()
	t.Logf("first run (lock held): %v", err)
	if err == nil {
		t.Fatal("the first run should have said the rewrite lock was not granted")
	}
	if got := f.status(t, id); got != privacy.StatusDeleteInProgress {
		t.Fatalf("status %v after a run whose purge was not finished", got)
	}
	for i := 0; i < 5 && f.status(t, id) != privacy.StatusComplete; i++ {
		_, err = f.env.Privacy.Run(f.ctx, privacy.Delete)
		t.Logf("next run: %v", err)
	}
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	r, _ := f.env.Privacy.Receipt(f.ctx, id)
	t.Logf("audit/receipt excerpt: %.300s", strings.ReplaceAll(string(r), "\n", " "))
	if n := conn.PostgresFileCount(t, f.ctx, "dba_call_note", token); n != 0 {
		t.Errorf("the request is complete, but the cascaded notes are still in dba_call_note's files %d time(s)", n)
	}
}

// TestCascadeTargetPartitioned: the cascade target is a partitioned table
// whose partitions keep other rows: rewritten, nothing of the subject left.
func TestCascadeTargetPartitioned(t *testing.T) {
	f := newFixture(t, store.Postgres, servertest.Options{Privacy: withReceipts})
	conn := storetest.SQLOf(t, f.env.DB)
	subject := recipientID(t, f, 3)
	const token = "Partitionedtoken93d1"
	for _, ddl := range []string{
		"CREATE TABLE dba_pnote (id BIGINT, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200), PRIMARY KEY (id)) PARTITION BY RANGE (id)",
		"CREATE TABLE dba_pnote_a PARTITION OF dba_pnote FOR VALUES FROM (0) TO (1000)",
		"CREATE TABLE dba_pnote_b PARTITION OF dba_pnote FOR VALUES FROM (1000) TO (2000)",
	} {
		if err := conn.Exec(f.ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := conn.InsertRow(f.ctx, "dba_pnote", map[string]any{"id": int64(50 + 1000*(i%2) + i), "recipient_id": subject, "body": token + " called"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.InsertRow(f.ctx, "dba_pnote", map[string]any{"id": int64(90), "recipient_id": recipientID(t, f, 4), "body": "another"}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		return conn.PostgresFileCount(t, f.ctx, "dba_pnote_a", token) + conn.PostgresFileCount(t, f.ctx, "dba_pnote_b", token)
	}
	if n := count(); n < 3 {
		t.Fatalf("before: %d", n)
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	runAll(t, f)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v", got)
	}
	if n := count(); n != 0 {
		t.Errorf("partitioned cascade target: %d left", n)
	}
}

// TestCascadeTargetPartitionEmptied: a partitioned cascade target, one of
// whose partitions holds only the subject's rows and has statistics
// (autovacuum analyzes partitions, not their parent). The cascade empties
// that partition: the runs complete. Found by review: the purge dropped an
// emptied table's statistics by ALTER COLUMN TYPE, which PostgreSQL refuses
// on a partition's inherited columns — every run failed after. The
// statistics go with the change made on the parent, which PostgreSQL
// passes to its partitions (J150).
func TestCascadeTargetPartitionEmptied(t *testing.T) {
	f := newFixture(t, store.Postgres, servertest.Options{Privacy: withReceipts})
	conn := storetest.SQLOf(t, f.env.DB)
	subject := recipientID(t, f, 3)
	for _, ddl := range []string{
		"CREATE TABLE dba_pnote (id BIGINT, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200), PRIMARY KEY (id)) PARTITION BY RANGE (id)",
		"CREATE TABLE dba_pnote_a PARTITION OF dba_pnote FOR VALUES FROM (0) TO (1000)",
		"CREATE TABLE dba_pnote_b PARTITION OF dba_pnote FOR VALUES FROM (1000) TO (2000)",
	} {
		if err := conn.Exec(f.ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := conn.InsertRow(f.ctx, "dba_pnote", map[string]any{"id": int64(50 + i), "recipient_id": subject, "body": "Partitiontoken called"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.InsertRow(f.ctx, "dba_pnote", map[string]any{"id": int64(1090), "recipient_id": recipientID(t, f, 4), "body": "another"}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(f.ctx, "ANALYZE dba_pnote_a"); err != nil {
		t.Fatal(err)
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	if _, err := f.env.Privacy.Run(f.ctx, "all"); err != nil {
		t.Errorf("first run: %v", err)
	}
	if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err != nil {
		t.Errorf("second run: %v", err)
	}
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Errorf("status %v, want complete", got)
	}
	if n, _ := conn.Int(f.ctx, "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND most_common_vals::text LIKE ?", "%Partitiontoken%"); n != 0 {
		t.Errorf("%d statistics row(s) of the emptied partition still hold the cascaded notes", n)
	}
}

// TestCascadeTargetWithQuotedNameKeptRows: the same mixed-case cascade target,
// not emptied (another person's row stays): its rewrite quotes the name
// right, and the cascaded rows leave its files.
func TestCascadeTargetWithQuotedNameKeptRows(t *testing.T) {
	f := newFixture(t, store.Postgres, servertest.Options{Privacy: withReceipts})
	conn := storetest.SQLOf(t, f.env.DB)
	subject := recipientID(t, f, 3)
	const token = "Mixedkepttoken66aa"
	if err := conn.Exec(f.ctx, `CREATE TABLE "Call Note" (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))`); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := conn.InsertRow(f.ctx, "Call Note", map[string]any{"id": int64(50 + i), "recipient_id": subject, "body": token + " called"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.InsertRow(f.ctx, "Call Note", map[string]any{"id": int64(90), "recipient_id": recipientID(t, f, 4), "body": "another"}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(f.ctx, `ANALYZE "Call Note"`); err != nil {
		t.Fatal(err)
	}
	if n := conn.PostgresFileCount(t, f.ctx, `"Call Note"`, token); n < 3 {
		t.Fatalf("before: %d", n)
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	runAll(t, f)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v", got)
	}
	if n := conn.PostgresFileCount(t, f.ctx, `"Call Note"`, token); n != 0 {
		t.Errorf("%d left", n)
	}
}

// TestCascadeTargetInAnotherSchema: a DBA's table in a schema of its own
// (crm.call_note) whose foreign key cascades a delete from nms:recipient,
// and one in the service's schema cascading from that one in turn: the
// database deletes the subject's rows from both with the recipient's, and
// both are rewritten, nothing of the subject left in their files. A table
// in the other schema that the role does not own (another role's) is not
// rewritten and holds back nothing: the run completes and the service's
// log names it. Found as a gap: the purge looked for cascade targets in
// the service's schema only, and the deleted notes stayed in crm's file
// after complete.
func TestCascadeTargetInAnotherSchema(t *testing.T) {
	f := newFixture(t, store.Postgres, servertest.Options{Privacy: withReceipts})
	conn := storetest.SQLOf(t, f.env.DB)
	subject := recipientID(t, f, 3)
	name, err := conn.Bytes(f.ctx, "SELECT current_schema() || '_crm'")
	if err != nil {
		t.Fatal(err)
	}
	schema := string(name)
	crm := `"` + schema + `"`
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+crm+" CASCADE") })
	const token, tagToken = "Otherschematoken4b7e", "Backintoken90c1"
	for _, ddl := range []string{
		"CREATE SCHEMA " + crm,
		"CREATE TABLE " + crm + ".call_note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))",
		"CREATE TABLE dba_note_tag (id BIGINT PRIMARY KEY, note_id BIGINT REFERENCES " + crm + ".call_note (id) ON DELETE CASCADE, tag VARCHAR(200))",
	} {
		if err := conn.Exec(f.ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := conn.Exec(f.ctx, "INSERT INTO "+crm+".call_note VALUES (?, ?, ?)", int64(50+i), subject, token+" called"); err != nil {
			t.Fatal(err)
		}
		if err := conn.InsertRow(f.ctx, "dba_note_tag", map[string]any{"id": int64(70 + i), "note_id": int64(50 + i), "tag": tagToken}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Exec(f.ctx, "INSERT INTO "+crm+".call_note VALUES (?, ?, ?)", int64(90), recipientID(t, f, 4), "another person's call"); err != nil {
		t.Fatal(err)
	}
	count := func() (int, int) {
		return conn.PostgresFileCount(t, f.ctx, crm+".call_note", token), conn.PostgresFileCount(t, f.ctx, "dba_note_tag", tagToken)
	}
	if n, m := count(); n < 3 || m < 3 {
		t.Fatalf("before: %d, %d", n, m)
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	runAll(t, f)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	if n, err := conn.Int(f.ctx, "SELECT count(*) FROM "+crm+".call_note"); err != nil || n != 1 {
		t.Fatalf("%d note(s) left, want the other person's one (%v)", n, err)
	}
	if n, m := count(); n != 0 || m != 0 {
		t.Errorf("the request is complete, but the cascaded rows are still in the files: %d in %s.call_note, %d in dba_note_tag", n, schema, m)
	}
}
