package privacy_test

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// What a review of J161 (a helper, failing tests only) found, fixed by
// J162: each test's comment tells what it found, as it found it; the test
// fails if that comes back.

// cascadedOf is a receipt's deleted_by_foreign_keys, by table name without
// its schema.
func (r *cascadeFixture) cascadedOf(t *testing.T, id int64) map[string]int64 {
	t.Helper()
	_, c := r.f.receiptOf(t, id)
	got := map[string]int64{}
	for _, d := range c.DeletedByForeignKeys {
		got[d.Table[strings.LastIndexByte(d.Table, '.')+1:]] += d.Deleted
	}
	return got
}

// TestCascadedCountTwoPersonsOneRun: two one-step deletes of two persons in
// one delete run, each person with 3 notes in a DBA's table cascading from
// nms_recipient. Each receipt must count its own person's 3 notes.
func TestCascadedCountTwoPersonsOneRun(t *testing.T) {
	r := newCascadeFixture(t)
	a := r.schema(t, "_r161two")
	r.exec(t, "CREATE TABLE "+a+".note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))")
	for _, n := range []int64{1, 2, 3} {
		rid := recipientID(t, r.f, n)
		for i := range int64(3) {
			r.exec(t, "INSERT INTO "+a+".note VALUES ("+sqlInt(n*100+i)+", "+sqlInt(rid)+", 'x')")
		}
	}
	var ids []int64
	for _, n := range []int64{1, 2, 3} {
		ids = append(ids, r.f.create(t, "defaultNamespace1", demodata.Email(n), privacy.TypeDelete, false))
	}
	if _, err := r.f.env.Privacy.Run(r.f.ctx, "all"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil {
		t.Fatal(err)
	}
	left, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+a+".note")
	if left != 0 {
		t.Fatalf("precondition: %d notes left", left)
	}
	for i, id := range ids {
		if got := r.f.status(t, id); got != privacy.StatusComplete {
			t.Fatalf("request %d: status %v", id, got)
		}
		if got := r.cascadedOf(t, id)["note"]; got != 3 {
			t.Errorf("person %d (request %d): the receipt counts %d note(s) deleted by the foreign key, plain SQL 3", i+1, id, got)
		}
	}
}

// TestCascadedCountFailedDeleteCountedForAnother: two persons in one delete
// run. The first person's delete transaction fails after the cascade has
// deleted its 3 notes (a DBA's trigger refuses it), so it rolls back: the
// notes are still there. The second person's receipt must count its own 3
// notes, not the rolled-back ones too.
func TestCascadedCountFailedDeleteCountedForAnother(t *testing.T) {
	r := newCascadeFixture(t)
	a := r.schema(t, "_r161fail")
	r.exec(t, "CREATE TABLE "+a+".note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))")
	first := recipientID(t, r.f, 1)
	for _, n := range []int64{1, 2} {
		rid := recipientID(t, r.f, n)
		for i := range int64(3) {
			r.exec(t, "INSERT INTO "+a+".note VALUES ("+sqlInt(n*100+i)+", "+sqlInt(rid)+", 'x')")
		}
	}
	r.exec(t, "CREATE FUNCTION "+a+".refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'r161 refused'; END$$",
		"CREATE TRIGGER refuse AFTER DELETE ON "+a+".note FOR EACH ROW WHEN (OLD.recipient_id = "+sqlInt(first)+") EXECUTE FUNCTION "+a+".refuse()")
	id1 := r.f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, false)
	id2 := r.f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
	_, _ = r.f.env.Privacy.Run(r.f.ctx, "all")
	_, _ = r.f.env.Privacy.Run(r.f.ctx, privacy.Delete)
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+a+".note WHERE recipient_id = "+sqlInt(first)); n != 3 {
		t.Fatalf("precondition: the first person's notes: %d left, want 3 (rolled back)", n)
	}
	if got := r.f.status(t, id1); got == privacy.StatusComplete {
		t.Fatalf("precondition: request %d complete", id1)
	}
	if got := r.f.status(t, id2); got != privacy.StatusComplete {
		t.Fatalf("request %d: status %v", id2, got)
	}
	if got := r.cascadedOf(t, id2)["note"]; got != 3 {
		t.Errorf("the second person's receipt counts %d note(s) deleted by the foreign key, plain SQL 3 (the first person's 3 notes are still there)\naudit:\n%s", got, r.audit(t, id2))
	}
}

// TestCascadedCountLockedPartitionOfUntouchedTarget: a DBA's partitioned table
// cascading from nms_proposition_rcp, in which the subject has no row (so
// the subject's delete cascades nothing there). A DBA's session holds an
// ACCESS EXCLUSIVE lock on one of its partitions (a VACUUM FULL, a
// TRUNCATE, a DETACH in an open transaction). The subject's deletes must
// not wait for that lock: the count reads the catalogs and the counters,
// which take none. (The purge then waits, at most the residue wait, for
// that session's transaction, older than the deletes: README, "Older
// transactions and locks".)
func TestCascadedCountLockedPartitionOfUntouchedTarget(t *testing.T) {
	r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
	a := r.schema(t, "_r161lock")
	subject := recipientID(t, r.f, 3)
	r.exec(t, "DELETE FROM nms_proposition_rcp WHERE recipient_id = "+sqlInt(subject),
		"CREATE TABLE "+a+".offer_log (id BIGINT, prop_id BIGINT REFERENCES nms_proposition_rcp (id) ON DELETE CASCADE, day INT, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)",
		"CREATE TABLE "+a+".offer_log_1 PARTITION OF "+a+".offer_log FOR VALUES FROM (0) TO (10)",
		"CREATE TABLE "+a+".offer_log_2 PARTITION OF "+a+".offer_log FOR VALUES FROM (10) TO (20)",
		"INSERT INTO "+a+".offer_log SELECT id, id, 15 FROM nms_proposition_rcp",
	)
	tx, err := r.openSession(t).BeginTx(r.f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(r.f.ctx, "LOCK TABLE "+a+".offer_log_2 IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Collect); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(r.f.ctx, 15*time.Second)
	defer cancel()
	_, err = r.f.env.Privacy.Run(ctx, privacy.Delete)
	if audit := r.audit(t, id); ctx.Err() != nil || !strings.Contains(audit, "Records deleted;") {
		t.Fatalf("a lock on a partition of a table the subject's delete cascades nothing into held the deletes back: the delete run: %v, request %v\n%s", err, r.f.status(t, id), audit)
	}
	_ = tx.Rollback()
	if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil || r.f.status(t, id) != privacy.StatusComplete {
		t.Errorf("after the session ended: %v, request %v", err, r.f.status(t, id))
	}
}

// TestCascadedCountTargetSchemaWithColon: the DBA's note table sits in a schema
// whose name has a colon. Its rows counted must go to
// deleted_by_foreign_keys, and the receipt's tables (the data model's)
// must not list it.
func TestCascadedCountTargetSchemaWithColon(t *testing.T) {
	r := newCascadeFixture(t)
	a := r.schema(t, "_crm:notes")
	r.noteTarget(t, a+".note", "Colontoken161")
	id := r.deletedSubject(t)
	_, c := r.f.receiptOf(t, id)
	for _, tt := range c.Tables {
		if strings.Contains(tt.Table, ".") {
			t.Errorf("the receipt's tables (the data model's) list %s (deleted %d)", tt.Table, tt.Deleted)
		}
	}
	if got := r.cascadedOf(t, id)["note"]; got != 3 {
		t.Errorf("deleted_by_foreign_keys %+v, want %s.note: 3", c.DeletedByForeignKeys, a)
	}
}

// TestCascadedCountTargetAddedMidRun: the DBA creates the note table (and the
// subject's notes) while the delete run is under way, before the subject's
// deletes: the cascade deletes the notes, and the receipt must count them.
func TestCascadedCountTargetAddedMidRun(t *testing.T) {
	var hook func(string)
	r := newCascadeFixture(t, func(c *privacy.Config) {
		c.Failpoint = func(name string) error {
			if hook != nil {
				hook(name)
			}
			return nil
		}
	})
	a := r.schema(t, "_r161mid")
	id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Collect); err != nil {
		t.Fatal(err)
	}
	if got := r.f.status(t, id); got == privacy.StatusComplete {
		t.Fatalf("precondition: complete after all")
	}
	done := false
	hook = func(name string) {
		if name == "delete-lookup" && !done {
			done = true
			r.noteTarget(t, a+".note", "Midruntoken161")
		}
	}
	if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil {
		t.Fatal(err)
	}
	if !done {
		t.Fatal("precondition: the hook did not run")
	}
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+a+".note"); n != 1 {
		t.Fatalf("precondition: %d note(s) left, want 1 (another person's)", n)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v", got)
	}
	// Counted, or said not to be: the purge's record (audit and receipt)
	// names the table a foreign key added during the run deletes from.
	_, c := r.f.receiptOf(t, id)
	said := "a foreign key added during the run deletes rows in "
	if got := r.cascadedOf(t, id)["note"]; got != 3 &&
		(!strings.Contains(purgeLine(r.audit(t, id)), said) || !strings.Contains(purgeLine(r.audit(t, id)), ".note") || !strings.Contains(c.ResiduePurge, said)) {
		t.Errorf("the cascade deleted the subject's 3 notes; deleted_by_foreign_keys %+v, and the purge's record does not say they are not counted: %q\naudit:\n%s", c.DeletedByForeignKeys, c.ResiduePurge, r.audit(t, id))
	}
}

// TestCascadedCountTrackCountsOff: the server runs with track_counts off (a
// DBA's postgresql.conf; here the service's sessions). The cascade still
// deletes the subject's 3 notes; the receipt must count them (or the run
// must say it cannot), not be silent.
func TestCascadedCountTrackCountsOff(t *testing.T) {
	logs := &servertest.SyncBuffer{}
	cfg := storetest.Config(t, store.Postgres)
	cfg.DatabaseURL += "&track_counts=off"
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db := storetest.OpenConfig(t, cfg, nil)
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Privacy: withReceipts})
	conn := storetest.SQLOf(t, db)
	if b, _ := conn.Bytes(f.ctx, "SELECT current_setting('track_counts')"); string(b) != "off" {
		t.Fatalf("precondition: track_counts %q", b)
	}
	b, _ := conn.Bytes(f.ctx, "SELECT current_schema()::text")
	r := &cascadeFixture{f: f, conn: conn, logs: logs, base: string(b)}
	a := r.schema(t, "_r161tc")
	r.noteTarget(t, a+".note", "Trackcountstoken161")
	id := r.deletedSubject(t)
	if n, _ := conn.Int(f.ctx, "SELECT count(*) FROM "+a+".note"); n != 1 {
		t.Fatalf("precondition: %d note(s) left, want 1", n)
	}
	// Counted, or said not to be, naming the table.
	_, c := f.receiptOf(t, id)
	audit := r.audit(t, id)
	if got := r.cascadedOf(t, id)["note"]; got != 3 &&
		!regexp.MustCompile(`deleted in \S+\.note \(ON DELETE CASCADE\) are not counted: track_counts is off`).MatchString(audit) {
		t.Errorf("the cascade deleted the subject's 3 notes; deleted_by_foreign_keys %+v, and the audit does not say they are not counted:\n%s", c.DeletedByForeignKeys, audit)
	}
}

// TestCascadedCountSetNullMovesPartition: a DBA's partitioned table, partitioned
// by its link to nms_recipient, whose foreign key sets the link to null
// (ON DELETE SET NULL): the subject's 3 rows are kept, unlinked, moved to
// the default partition. No row of it was deleted: the receipt must not
// say 3 were deleted by a foreign key (nor the audit "ON DELETE CASCADE").
func TestCascadedCountSetNullMovesPartition(t *testing.T) {
	r := newCascadeFixture(t)
	a := r.schema(t, "_r161null")
	subject := recipientID(t, r.f, 3)
	r.exec(t,
		"CREATE TABLE "+a+".visit (id BIGINT, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE SET NULL, page VARCHAR(200)) PARTITION BY RANGE (recipient_id)",
		"CREATE TABLE "+a+".visit_linked PARTITION OF "+a+".visit FOR VALUES FROM (MINVALUE) TO (MAXVALUE)",
		"CREATE TABLE "+a+".visit_unlinked PARTITION OF "+a+".visit DEFAULT",
		"INSERT INTO "+a+".visit VALUES (1, "+sqlInt(subject)+", 'a'), (2, "+sqlInt(subject)+", 'b'), (3, "+sqlInt(subject)+", 'c'), (4, "+sqlInt(recipientID(t, r.f, 4))+", 'd')",
	)
	id := r.deletedSubject(t)
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+a+".visit WHERE recipient_id IS NULL"); n != 3 {
		t.Fatalf("precondition: %d unlinked row(s), want 3 (kept)", n)
	}
	if got := r.cascadedOf(t, id); got["visit"] != 0 {
		t.Errorf("no row of %s.visit was deleted (3 kept, unlinked), the receipt's deleted_by_foreign_keys says %d", a, got["visit"])
	}
	if audit := r.audit(t, id); strings.Contains(audit, "visit by a foreign key") {
		for _, l := range strings.Split(audit, "\n") {
			if strings.Contains(l, "visit by a foreign key") {
				t.Errorf("the audit: %s", strings.TrimSpace(l))
			}
		}
	}
}
