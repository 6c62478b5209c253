package privacy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// A purge that ends in error clears no mark, and the plain VACUUM waits at
// most the residue wait (J158): found by a review of it (J159). Each test's
// comment tells what the review found, as it found it; the test fails if
// that comes back.

// TestCleanupBetweenBusyAndCompletion: a delete run ends Busy on a
// locked materialized view (zz_locked); the request is released
// deleteInProgress, every mark kept so that "the next run finds again what
// it cannot remove and names it with the requests it completes". But the
// next run to purge is the cleanup (the next workflow of "all", or an
// operator's cleanup run) once the report session has ended: it purges
// every marked table, finds the view whose refresh fails (aa_fails) and
// the emptied view's statistics (aa_only), records them in no request
// (the cleanup had none), and clears the marks. The delete run that then
// completes the held request has no mark to start from. One-step: the
// taken-back request's deletes touch the tables again, and the views are
// found and named (passes). Two-step: the record says "of 2 table(s)" and
// names neither view, while both hold the subject's email (fails).
func TestCleanupBetweenBusyAndCompletion(t *testing.T) {
	for _, twoStep := range []bool{false, true} {
		t.Run(map[bool]string{false: "one-step", true: "two-step"}[twoStep], func(t *testing.T) { busyViewThenComplete(t, "_r25cl", twoStep, true) })
	}
}

// busyViewThenComplete builds the views of TestCleanupBetweenBusyAndCompletion
// and TestDisclosureKeptAfterBusyView in a schema of its own (suffix): a
// DBA's session holds zz_locked, so the first delete run ends Busy; after
// the session ends (and a cleanup run, with cleanup) the next delete runs
// complete the request, whose audit line and receipt must name the views
// still holding the subject's email.
func busyViewThenComplete(t *testing.T, suffix string, twoStep, cleanup bool) {
	r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
	m := r.schema(t, suffix)
	email := demodata.Email(3)
	r.exec(t,
		"CREATE MATERIALIZED VIEW "+m+".aa_fails AS SELECT id, lower(email) AS email FROM nms_recipient",
		"CREATE UNIQUE INDEX ON "+m+".aa_fails (email)",
		"CREATE MATERIALIZED VIEW "+m+".aa_only AS SELECT id, email FROM nms_recipient, generate_series(1, 3) WHERE email = '"+email+"'",
		"ANALYZE "+m+".aa_only",
		"UPDATE nms_recipient SET email = upper('"+demodata.Email(5)+"') WHERE email = '"+demodata.Email(4)+"'",
		"CREATE MATERIALIZED VIEW "+m+".zz_locked AS SELECT id, email FROM nms_recipient",
	)
	if r.statsHolding(t, email) == 0 {
		t.Fatal("precondition: aa_only's statistics hold the email")
	}
	tx := r.holding(t, "SELECT count(*) FROM "+m+".zz_locked")
	defer tx.Rollback()
	id := r.f.create(t, "defaultNamespace1", email, privacy.TypeDelete, twoStep)
	run := "all"
	if twoStep || cleanup {
		// The cleanup runs on its own below, not as the end of "all".
		r.f.run(t, privacy.Collect)
		run = privacy.Delete
	}
	if twoStep {
		if err := r.f.env.Privacy.ConfirmDeletePending(r.f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.f.env.Privacy.Run(r.f.ctx, run)
	t.Logf("first run (zz_locked held): %v; status %v; %s", err, r.f.status(t, id), purgeLine(r.audit(t, id)))
	if got := r.f.status(t, id); got != privacy.StatusDeleteInProgress {
		t.Fatalf("precondition: the first run should end Busy on the locked view, status %v", got)
	}
	_ = tx.Rollback()
	if cleanup {
		// The cleanup (nothing of its own to purge) runs before the next delete run.
		_, err = r.f.env.Privacy.Run(r.f.ctx, privacy.Cleanup)
		marks, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue")
		t.Logf("cleanup run: %v; marks after it: %d", err, marks)
	}
	for i := 0; i < 3 && r.f.status(t, id) != privacy.StatusComplete; i++ {
		_, err = r.f.env.Privacy.Run(r.f.ctx, privacy.Delete)
		t.Logf("next delete run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	line := purgeLine(r.audit(t, id))
	_, c := r.f.receiptOf(t, id)
	t.Logf("audit: %s; receipt residue_purge: %q", line, c.ResiduePurge)
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+m+".aa_fails WHERE email = lower($1)", email); n > 0 &&
		(!strings.Contains(line, "aa_fails") || !strings.Contains(c.ResiduePurge, "aa_fails")) {
		t.Errorf("complete, %s.aa_fails still holds the subject's email (its refresh fails), and the completing record does not name it: audit %q, receipt %q", m, line, c.ResiduePurge)
	}
	if n := r.statsHolding(t, email); n > 0 && (!strings.Contains(line, "aa_only") || !strings.Contains(c.ResiduePurge, "aa_only")) {
		t.Errorf("complete, %d pg_stats row(s) still hold the subject's email (%s.aa_only, emptied by the refresh), and the completing record does not name it: audit %q, receipt %q", n, m, line, c.ResiduePurge)
	}
}

// TestAncestorLockNotGranted: a cascade target (a DBA's note
// table) is an inheritance child of a DBA's notes_all, whose inherited
// statistics sampled the subject's notes. A session holds notes_all
// (ONLY) in SHARE UPDATE EXCLUSIVE mode while the delete runs (a DBA's
// VACUUM or ANALYZE of it in an open transaction; or, in plain mode, only
// for longer than the residue wait now left on the connection by the
// plain VACUUM). The ancestor's ANALYZE is not granted its lock: it is
// taken for a failure, "kept", the request completes and every mark is
// cleared. No later run analyzes notes_all again: once the session ends,
// its statistics keep the subject's notes for good, where any other lock
// not granted (a table, a view, pg_statistic) ends the run Busy and is
// retried.
func TestAncestorLockNotGranted(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "rewrite", true: "plain vacuum"}[plain], func(t *testing.T) {
			r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second; c.PlainVacuum = plain })
			const token = "Ancestorlocktoken7e1a"
			a := r.inheritedNotes(t, "_r25anc", token)
			if r.statsHolding(t, token) == 0 {
				t.Fatal("precondition: the statistics hold the notes")
			}
			tx := r.holding(t, "LOCK TABLE ONLY "+a+".notes_all IN SHARE UPDATE EXCLUSIVE MODE")
			defer tx.Rollback()
			id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
			_, err := r.f.env.Privacy.Run(r.f.ctx, "all")
			t.Logf("first run (notes_all held): %v; status %v; %s", err, r.f.status(t, id), purgeLine(r.audit(t, id)))
			_ = tx.Rollback()
			for i := 0; i < 3; i++ {
				_, err = r.f.env.Privacy.Run(r.f.ctx, privacy.Delete)
				t.Logf("next run: %v; status %v", err, r.f.status(t, id))
			}
			if got := r.f.status(t, id); got != privacy.StatusComplete {
				t.Fatalf("status %v, want complete", got)
			}
			// A DBA's lock on the parent may last: it holds no delete back
			// (J160), and the statistics it kept are named (the parent's
			// next ANALYZE replaces them).
			if n, line := r.statsHolding(t, token), purgeLine(r.audit(t, id)); n != 0 && !strings.Contains(line, "notes_all (inherited statistics: its lock was not granted)") {
				t.Errorf("%d pg_stats row(s) (notes_all's inherited statistics) still hold the subject's notes, and the completing record does not name them: %s", n, line)
			}
		})
	}
}

// TestPlainVacuumStatisticLockedMessage: CP_RESIDUE_PURGE=vacuum;
// a session holds pg_statistic in SHARE UPDATE EXCLUSIVE mode (a DBA's
// VACUUM of it in an open transaction). The plain VACUUM of pg_statistic
// now times out after the residue wait: it did not run at all. The run's
// error says "it was vacuumed, and the next run rewrites it": neither is
// true in plain mode.
func TestPlainVacuumStatisticLockedMessage(t *testing.T) {
	r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second; c.PlainVacuum = true })
	sdb := r.openSession(t)
	tx, err := sdb.BeginTx(r.f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(r.f.ctx, "LOCK TABLE pg_catalog.pg_statistic IN SHARE UPDATE EXCLUSIVE MODE"); err != nil {
		t.Skipf("cannot lock pg_statistic: %v", err)
	}
	id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	_, err = r.f.env.Privacy.Run(r.f.ctx, "all")
	t.Logf("run: %v; status %v", err, r.f.status(t, id))
	if apperr.CodeOf(err) != apperr.Busy {
		t.Fatalf("want Busy, got %v", err)
	}
	if strings.Contains(err.Error(), "it was vacuumed") || strings.Contains(err.Error(), "rewrites it") {
		t.Errorf("plain mode, the plain VACUUM of pg_statistic was not granted its lock (it did not run), but the error says: %v", err)
	}
	_ = tx.Rollback()
	if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil {
		t.Errorf("next run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Errorf("status %v, want complete", got)
	}
}

// TestOlderTransactionThenComplete: a REPEATABLE READ transaction
// (a pg_dump) open past ResidueWait: the run ends Busy, the request held,
// no mark cleared. Once it ends, a two-step delete's next run (which
// deletes nothing) must purge every marked table, complete the request
// with a record that counts the tables purged, and clear every mark.
func TestOlderTransactionThenComplete(t *testing.T) {
	for _, twoStep := range []bool{false, true} {
		t.Run(map[bool]string{false: "one-step", true: "two-step"}[twoStep], func(t *testing.T) {
			r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
			email := demodata.Email(3)
			release, err := r.conn.HoldSnapshot(r.f.ctx, "nms_recipient")
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			id := r.f.create(t, "defaultNamespace1", email, privacy.TypeDelete, twoStep)
			run := "all"
			if twoStep {
				r.f.run(t, privacy.Collect)
				if err := r.f.env.Privacy.ConfirmDeletePending(r.f.ctx, operator, id); err != nil {
					t.Fatal(err)
				}
				run = privacy.Delete
			}
			_, err = r.f.env.Privacy.Run(r.f.ctx, run)
			t.Logf("first run (snapshot held): %v; status %v; %s", err, r.f.status(t, id), purgeLine(r.audit(t, id)))
			if apperr.CodeOf(err) != apperr.Busy || r.f.status(t, id) != privacy.StatusDeleteInProgress {
				t.Fatalf("precondition: Busy, deleteInProgress; got %v, %v", err, r.f.status(t, id))
			}
			before, _ := r.conn.Int(r.f.ctx, "SELECT count(DISTINCT table_name) FROM privacy_residue")
			release()
			var errs []error
			for i := 0; i < 2 && r.f.status(t, id) != privacy.StatusComplete; i++ {
				if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil {
					errs = append(errs, err)
				}
			}
			r.check(t, id, errs, nil, email)
			if n := r.viewLeft(t, "nms_recipient", email); n != 0 {
				t.Errorf("complete, but nms_recipient's files (or its statistics) hold the email %d time(s)", n)
			}
			line := purgeLine(r.audit(t, id))
			_, c := r.f.receiptOf(t, id)
			t.Logf("marked tables before: %d; audit: %s; receipt: %q", before, line, c.ResiduePurge)
			if strings.Contains(c.ResiduePurge, "of 0 table(s)") {
				t.Errorf("the completing receipt says %q", c.ResiduePurge)
			}
			if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue"); n != 0 {
				t.Errorf("%d mark(s) left after the run that completed", n)
			}
		})
	}
}

// TestForbiddenMarksBounded: a data-model table with an
// inheritance child of another owner: every run ends Forbidden. The marks
// must stay bounded (two per table) however many runs fail, the oldest
// mark's age (the metric) must keep growing, and once the DBA hands the
// table over the next run must complete the request and clear every
// mark. It logs whether each failing run rewrote nms_recipient again.
func TestForbiddenMarksBounded(t *testing.T) {
	db, aconn, role := appRole(t)
	ctx := context.Background()
	conn := storetest.SQLOf(t, db)
	if err := conn.Exec(ctx, "CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE crm_orders_archive (CHECK (id < 1000)) INHERITS (crm_orders)",
		"GRANT SELECT, INSERT, DELETE ON crm_orders_archive TO " + role} {
		if err := aconn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Schemas: crmOrderSchema, Privacy: func(c *privacy.Config) {
		withReceipts(c)
		c.ResidueWait = 2 * time.Second
	}})
	const token = "Forbiddenmarks3d9e"
	var ids []int64
	for n := int64(3); n <= 5; n++ {
		if err := aconn.InsertRow(ctx, "crm_orders_archive", map[string]any{"id": 10 + n, "product": token, "recipient_id": recipientID(t, f, n)}); err != nil {
			t.Fatal(err)
		}
	}
	_, oldest0, _ := db.ResidueMarks(ctx)
	var firstOldest time.Time
	for n := int64(3); n <= 5; n++ {
		id := f.create(t, "defaultNamespace1", demodata.Email(n), privacy.TypeDelete, false)
		ids = append(ids, id)
		node0, _ := aconn.Int(ctx, "SELECT relfilenode FROM pg_class WHERE oid = 'nms_recipient'::regclass")
		_, err := f.env.Privacy.Run(f.ctx, "all")
		if apperr.CodeOf(err) != apperr.Forbidden {
			t.Fatalf("run %d: %v, want Forbidden", n, err)
		}
		node1, _ := aconn.Int(ctx, "SELECT relfilenode FROM pg_class WHERE oid = 'nms_recipient'::regclass")
		rows, _ := aconn.Int(ctx, "SELECT count(*) FROM privacy_residue")
		tables, _ := aconn.Int(ctx, "SELECT count(DISTINCT table_name) FROM privacy_residue")
		_, oldest, _ := db.ResidueMarks(ctx)
		if firstOldest.IsZero() {
			firstOldest = oldest
		}
		t.Logf("run %d: %d mark row(s) for %d table(s), oldest %v (before any: %v), nms_recipient rewritten: %v", n, rows, tables, oldest, oldest0, node0 != node1)
		if rows > 2*tables {
			t.Errorf("run %d: %d mark rows for %d tables: the marks grow", n, rows, tables)
		}
		if !oldest.Equal(firstOldest) {
			t.Errorf("run %d: the oldest mark moved from %v to %v: the metric hides how long the purge has failed", n, firstOldest, oldest)
		}
	}
	if err := aconn.Exec(ctx, "ALTER TABLE crm_orders_archive OWNER TO "+role); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err != nil {
		t.Fatalf("the run after the table was handed over: %v", err)
	}
	for _, id := range ids {
		if got := f.status(t, id); got != privacy.StatusComplete {
			t.Errorf("request %d: status %v, want complete", id, got)
		}
	}
	if n, _ := aconn.Int(ctx, "SELECT count(*) FROM privacy_residue"); n != 0 {
		t.Errorf("%d mark(s) left after the run that completed", n)
	}
	if n := heapFileCount(t, aconn, "crm_orders_archive", token); n != 0 {
		t.Errorf("complete, but crm_orders_archive's file holds the orders %d time(s)", n)
	}
}

// TestAncestorLockParentNamed: a DBA's session holds the inheritance
// parent notes_all (ONLY) in SHARE UPDATE EXCLUSIVE mode for as long as the
// runs go on. Since J159 the parent's ANALYZE not granted its lock ends
// the run Busy and keeps the request deleteInProgress, run after run. What
// holds the request back must be named: the parent whose lock was not
// granted (notes_all), in the run's error or the service log; and the
// error must not say the child table's lock was not granted (it was: the
// child was rewritten).
func TestAncestorLockParentNamed(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(map[bool]string{false: "rewrite", true: "plain vacuum"}[plain], func(t *testing.T) {
			r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second; c.PlainVacuum = plain })
			const token = "Review26ancestorA91c"
			a := r.inheritedNotes(t, "_r26anc", token)
			tx := r.holding(t, "LOCK TABLE ONLY "+a+".notes_all IN SHARE UPDATE EXCLUSIVE MODE")
			defer tx.Rollback()
			id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
			var errs []string
			if _, err := r.f.env.Privacy.Run(r.f.ctx, "all"); err != nil {
				errs = append(errs, err.Error())
			}
			for i := 0; i < 2; i++ {
				if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil {
					errs = append(errs, err.Error())
				}
			}
			st, line := r.f.status(t, id), purgeLine(r.audit(t, id))
			t.Logf("status %v; errors: %q; audit: %s", st, errs, line)
			logs := r.logs.String() + r.f.env.Logs.String()
			// J160: the parent's lock holds no delete back; the statistics
			// it kept are named in the record, the parent in the log.
			if st != privacy.StatusComplete {
				t.Errorf("the request is held %v by a DBA's lock on notes_all: %q", st, errs)
			}
			if !strings.Contains(line, "notes_all (inherited statistics: its lock was not granted)") || !strings.Contains(logs, "notes_all") {
				t.Errorf("the statistics notes_all kept are not named in the record (%s) or the parent not in the log", line)
			}
			if !strings.Contains(strings.Join(errs, "\n"), "notes_all") && !strings.Contains(logs, "notes_all") {
				t.Errorf("the request is held %v by notes_all's lock (a DBA's session), but neither the runs' errors nor the log name notes_all: %q", st, errs[len(errs)-1])
			}
			for _, e := range errs {
				if strings.Contains(e, "note)") && strings.Contains(e, "was not granted") && !strings.Contains(e, "notes_all") {
					t.Errorf("the error says the lock of the child table note was not granted (it was rewritten: it is its parent's): %s", e)
					break
				}
			}
		})
	}
}

// TestOnlyCleanupsAfterBusyDelete: a delete run ends Busy (a
// REPEATABLE READ transaction older than the deletes, past the residue
// wait): the request is released deleteInProgress, nms_recipient's marks
// kept. Then only cleanup runs come (the deployment schedules the delete
// workflow rarely, or an operator runs cleanups), three days apart. Since
// J159 a cleanup leaves the data model's marks: the deleted rows stay in
// nms_recipient's files and statistics as long as no delete run comes. The
// cleanups must at least say so (an error, or a warning in the log naming
// the marks they left); here they are checked for any such word.
func TestOnlyCleanupsAfterBusyDelete(t *testing.T) {
	r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
	email := demodata.Email(3)
	release, err := r.conn.HoldSnapshot(r.f.ctx, "nms_recipient")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	id := r.f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
	_, err = r.f.env.Privacy.Run(r.f.ctx, "all")
	t.Logf("first run (snapshot held): %v; status %v", err, r.f.status(t, id))
	if r.f.status(t, id) != privacy.StatusDeleteInProgress {
		t.Fatalf("precondition: deleteInProgress, got %v", r.f.status(t, id))
	}
	release()
	var errs []string
	for i := 0; i < 3; i++ {
		r.f.env.Clock.Advance(24 * time.Hour)
		if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Cleanup); err != nil {
			errs = append(errs, err.Error())
		}
	}
	marks, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue WHERE table_name = 'nms_recipient'")
	left := r.viewLeft(t, "nms_recipient", email)
	t.Logf("after 3 cleanups: nms_recipient marks %d, email left in its files/stats %d time(s); errors %q", marks, left, errs)
	if left == 0 {
		t.Skip("the cleanups purged nms_recipient")
	}
	logs := (r.logs.String() + r.f.env.Logs.String())
	said := len(errs) > 0
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "Cleanup") || strings.Contains(l, "cleanup") {
			if strings.Contains(l, "nms_recipient") || strings.Contains(l, "mark") || strings.Contains(l, "pending") {
				said = true
			}
		}
	}
	if !said {
		t.Errorf("3 cleanup runs over 3 days left the deleted subject's rows in nms_recipient's files/statistics (%d time(s), %d mark(s) kept) and said nothing: no error, no log line", left, marks)
	}
}

// inheritedNotes makes a schema of its own (suffix) with a DBA's notes_all
// and its inheritance child note, a cascade target of nms_recipient holding
// noteRows' notes (token), both analyzed: notes_all's inherited statistics
// sample the subject's notes. It returns the schema.
func (r *cascadeFixture) inheritedNotes(t *testing.T, suffix, token string) string {
	t.Helper()
	a := r.schema(t, suffix)
	r.exec(t,
		"CREATE TABLE "+a+".notes_all (id BIGINT, recipient_id BIGINT, body VARCHAR(200))",
		"CREATE TABLE "+a+".note (PRIMARY KEY (id), FOREIGN KEY (recipient_id) REFERENCES nms_recipient (id) ON DELETE CASCADE) INHERITS ("+a+".notes_all)")
	r.noteRows(t, a+".note", token)
	r.exec(t, "ANALYZE "+a+".notes_all", "ANALYZE "+a+".note")
	return a
}
