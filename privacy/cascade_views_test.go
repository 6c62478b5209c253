package privacy_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// The residue purge's materialized views, marks of tables outside the data
// model and the tables above a purged one: found by a review of J154 (J155).
// Each test's comment tells what the review found, as it found it; the
// test fails if that comes back.

// TestMaterializedViewOverMaterializedView: a DBA's materialized view (aa_outer)
// built on another (zz_inner) built on nms_recipient. The purge refreshes
// them in name order: the outer one first, from the inner one's stale
// rows, then the inner one. After complete the outer view still holds the
// subject's email.
func TestMaterializedViewOverMaterializedView(t *testing.T) {
	r := newCascadeFixture(t)
	m := r.schema(t, "_mvmv")
	email := demodata.Email(3)
	r.exec(t,
		"CREATE MATERIALIZED VIEW "+m+".zz_inner AS SELECT id, email FROM nms_recipient",
		"CREATE MATERIALIZED VIEW "+m+".aa_outer AS SELECT id, email FROM "+m+".zz_inner",
	)
	r.deletedSubject(t)
	for _, v := range []string{"zz_inner", "aa_outer"} {
		if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+m+"."+v+" WHERE email = $1", email); n != 0 {
			t.Errorf("complete, but the materialized view %s still holds the subject's email (%d row(s))", v, n)
		}
		if n := r.viewLeft(t, m+"."+v, email); n != 0 {
			t.Errorf("complete, but %s's files hold the email %d time(s)", v, n)
		}
	}
}

// TestMaterializedViewOverViewOverTarget: a materialized view over a view
// over a cascade target in another schema (the dependency through a view).
func TestMaterializedViewOverViewOverTarget(t *testing.T) {
	r := newCascadeFixture(t)
	a := r.schema(t, "_mvv")
	const token = "Mvviewtargettoken7c1e"
	r.exec(t,
		"CREATE TABLE "+a+".note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))",
		"CREATE VIEW "+a+".note_v AS SELECT id, body FROM "+a+".note",
	)
	r.noteRows(t, a+".note", token)
	r.exec(t, "CREATE MATERIALIZED VIEW "+a+".note_mv AS SELECT * FROM "+a+".note_v")
	r.deletedSubject(t)
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+a+".note_mv WHERE body = $1", token); n != 0 {
		t.Errorf("complete, but the materialized view still holds %d of the cascaded notes", n)
	}
	if n := r.conn.PostgresFileCount(t, r.f.ctx, a+".note_mv", token); n != 0 {
		t.Errorf("complete, but the view's files hold the token %d time(s)", n)
	}
}

// TestMaterializedViewOverPartitionOfTarget: a partitioned cascade target;
// a DBA's materialized view reads one of its partitions directly. The
// purge looks for views depending on the purged tables by name (the
// parent), not on the tables under them: the view is never refreshed.
func TestMaterializedViewOverPartitionOfTarget(t *testing.T) {
	r := newCascadeFixture(t)
	p := r.schema(t, "_mvp")
	const token = "Mvpartitiontoken3b8d"
	r.exec(t,
		"CREATE TABLE "+p+".pnote (id BIGINT, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200), PRIMARY KEY (id)) PARTITION BY RANGE (id)",
		"CREATE TABLE "+p+".pnote_a PARTITION OF "+p+".pnote FOR VALUES FROM (0) TO (1000)",
		"CREATE TABLE "+p+".pnote_b PARTITION OF "+p+".pnote FOR VALUES FROM (1000) TO (2000)",
	)
	subject := recipientID(t, r.f, 3)
	for i := range int64(3) {
		r.exec(t, "INSERT INTO "+p+".pnote VALUES ("+sqlInt(50+i)+", "+sqlInt(subject)+", '"+token+"')")
	}
	r.exec(t, "INSERT INTO "+p+".pnote VALUES (60, "+sqlInt(recipientID(t, r.f, 4))+", 'another')")
	r.exec(t, "CREATE MATERIALIZED VIEW "+p+".pnote_a_mv AS SELECT id, body FROM "+p+".pnote_a")
	r.deletedSubject(t)
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+p+".pnote_a_mv WHERE body = $1", token); n != 0 {
		t.Errorf("complete, but the materialized view over the partition still holds %d of the cascaded notes; store log mentions it: %v",
			n, strings.Contains(r.logs.String(), "pnote_a_mv"))
	}
}

// TestMaterializedViewEmptiedStatsNamed: a DBA's materialized view holding
// only the subject's cascaded notes, analyzed. The refresh empties it and
// its ANALYZE leaves an empty relation's statistics as they were (the
// purge drops an emptied table's, dropStatisticsIfEmpty, not an emptied
// view's): pg_stats still samples the subject's notes after complete.
func TestMaterializedViewEmptiedStatsNamed(t *testing.T) {
	r := newCascadeFixture(t)
	a := r.schema(t, "_mvst")
	const token = "Mvemptiedstatstoken5a2c"
	r.exec(t,
		"CREATE TABLE "+a+".note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))",
	)
	r.noteRows(t, a+".note", token)
	r.exec(t, "CREATE MATERIALIZED VIEW "+a+".flagged AS SELECT id, body FROM "+a+".note WHERE body LIKE 'Mv%'",
		"ANALYZE "+a+".flagged")
	if r.statsHolding(t, token) == 0 {
		t.Fatal("precondition: the view's statistics hold the token")
	}
	id := r.deletedSubject(t)
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+a+".flagged"); n != 0 {
		t.Fatalf("the view was not refreshed: %d row(s)", n)
	}
	// PostgreSQL keeps an emptied relation's statistics through ANALYZE, and
	// a view's columns cannot be altered to drop them: they stay, and the
	// purge's record (the audit line, the receipt's claim) names the view.
	which, _ := r.conn.Bytes(r.f.ctx, `SELECT coalesce(string_agg(schemaname || '.' || tablename || '.' || attname, ', '), '')
		FROM pg_stats WHERE (coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE $1`, "%"+token+"%")
	if line := purgeLine(r.audit(t, id)); len(which) > 0 && !strings.Contains(line, "flagged") {
		t.Errorf("complete, but the emptied materialized view's statistics still sample the subject's notes (%s), and the purge's record does not say so: %s", which, line)
	}
	if n := heapFileCount(t, r.conn, a+".flagged", token); n != 0 {
		t.Errorf("complete, but the view's file holds the token %d time(s)", n)
	}
}

// TestMaterializedViewLockedByReader: a reader holds ACCESS SHARE on the
// DBA's materialized view (a report in a long transaction) during the
// purge. The refresh waits the residue wait and gives up with a warning;
// does the request complete with the view still holding the email (no
// mark: no later run refreshes it)?
func TestMaterializedViewLockedByReader(t *testing.T) {
	r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
	m := r.schema(t, "_mvlk")
	email := demodata.Email(3)
	r.exec(t, "CREATE MATERIALIZED VIEW "+m+".rcp AS SELECT id, email FROM nms_recipient")
	id := r.f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
	sdb, err := sql.Open("pgx", storetest.ConfigOf(t, r.f.env.DB).DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	tx, err := sdb.BeginTx(r.f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(r.f.ctx, "SELECT count(*) FROM "+m+".rcp"); err != nil { // ACCESS SHARE until the end
		t.Fatal(err)
	}
	start := time.Now()
	_, err = r.f.env.Privacy.Run(r.f.ctx, "all")
	took := time.Since(start)
	_ = tx.Rollback()
	t.Logf("delete run (view locked): %v, took %v, status %v", err, took, r.f.status(t, id))
	if took > 30*time.Second {
		t.Errorf("the run hung %v behind the view's reader (wait 2s)", took)
	}
	if got := r.f.status(t, id); got == privacy.StatusComplete {
		t.Errorf("the request is complete, though the view whose lock was not granted was not refreshed")
	}
	// The reader is gone: the next run (nothing left to delete) refreshes
	// the marked view and completes the request.
	for i := 0; i < 5 && r.f.status(t, id) != privacy.StatusComplete; i++ {
		_, err = r.f.env.Privacy.Run(r.f.ctx, privacy.Delete)
		t.Logf("next run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+m+".rcp WHERE email = $1", email); n != 0 {
		marks, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue")
		t.Errorf("the request is complete, but the materialized view whose lock was not granted still holds the subject's email (%d row(s)); %d residue mark(s) left for a later run", n, marks)
	}
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue"); n != 0 {
		t.Errorf("%d residue mark(s) left after the view was refreshed", n)
	}
}

// TestMarkedTargetRenamed: a cascade target whose lock was not
// granted is marked by its SQL name; before the next run (a two-step
// delete's: it deletes nothing) the DBA renames its schema, or the table.
// markedTargets finds no table of that name and takes it as dropped: the
// mark is cleared as purged, the request completes, and the cascaded
// notes stay in the (renamed) table's file.
func TestMarkedTargetRenamed(t *testing.T) {
	for _, what := range []string{"schema", "table"} {
		t.Run(what, func(t *testing.T) {
			r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
			a := r.schema(t, "_ren")
			renamed := `"` + r.base + `_ren2"`
			t.Cleanup(func() { _ = r.conn.Exec(r.f.ctx, "DROP SCHEMA IF EXISTS "+renamed+" CASCADE") })
			tbl := a + ".note"
			const token = "Renamedtargettoken9e4a"
			r.noteTarget(t, tbl, token)
			id := r.confirmedDelete(t)
			err := r.runWhileLocked(t, tbl, privacy.Delete)
			t.Logf("first run (lock held): %v; status %v", err, r.f.status(t, id))
			if n, err := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue WHERE table_name LIKE '%.note'"); err != nil || n == 0 {
				t.Fatalf("precondition: the target is not marked (%v)", err)
			}
			now := tbl
			if what == "schema" {
				r.exec(t, "ALTER SCHEMA "+a+" RENAME TO "+renamed)
				now = renamed + ".note"
			} else {
				r.exec(t, "ALTER TABLE "+tbl+" RENAME TO note_old")
				now = a + ".note_old"
			}
			for i := 0; i < 5 && r.f.status(t, id) != privacy.StatusComplete; i++ {
				_, err = r.f.env.Privacy.Run(r.f.ctx, privacy.Delete)
				t.Logf("next run: %v", err)
			}
			if got := r.f.status(t, id); got != privacy.StatusComplete {
				t.Logf("status %v (not complete)", got)
				return
			}
			if n := r.conn.PostgresFileCount(t, r.f.ctx, now, token); n != 0 {
				t.Errorf("the request is complete, but the cascaded notes are still in the renamed %s's files %d time(s); %s", now, n, purgeLine(r.audit(t, id)))
			}
		})
	}
}

// TestMarkedTargetCraftedName: a cascade target whose schema and
// table names look like SQL; it is locked during the first run (so it is
// marked by name), then the next run purges it from the mark. Nothing else
// may be dropped, the request completes, the file is clean.
func TestMarkedTargetCraftedName(t *testing.T) {
	r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
	a := r.schema(t, `_x.y"; DROP TABLE nms_recipient; --`)
	tbl := a + `."n.o""te; DROP TABLE privacy_residue; --"`
	const token = "Craftednametoken2d7f"
	r.noteTarget(t, tbl, token)
	id := r.confirmedDelete(t)
	err := r.runWhileLocked(t, tbl, privacy.Delete)
	t.Logf("first run (lock held): %v; status %v", err, r.f.status(t, id))
	for i := 0; i < 5 && r.f.status(t, id) != privacy.StatusComplete; i++ {
		_, err = r.f.env.Privacy.Run(r.f.ctx, privacy.Delete)
		t.Logf("next run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	for _, must := range []string{"nms_recipient", "privacy_residue"} {
		if n, err := r.conn.Int(r.f.ctx, "SELECT count(*) FROM pg_class WHERE relname = $1 AND relnamespace = current_schema()::regnamespace", must); err != nil || n != 1 {
			t.Errorf("%s is gone (%v)", must, err)
		}
	}
	if n := r.conn.PostgresFileCount(t, r.f.ctx, tbl, token); n != 0 {
		t.Errorf("complete, but the crafted target's files hold the token %d time(s)", n)
	}
}

// TestMaterializedViewWithNoData: a DBA's materialized view created WITH
// NO DATA over nms_recipient must stay unpopulated (a refresh would fill
// it with every recipient: data the run should not write).
func TestMaterializedViewWithNoData(t *testing.T) {
	r := newCascadeFixture(t)
	m := r.schema(t, "_mvnd")
	r.exec(t, "CREATE MATERIALIZED VIEW "+m+".rcp AS SELECT id, email FROM nms_recipient WITH NO DATA")
	id, errs := r.deleteSubject(t)
	r.check(t, id, errs, nil)
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM pg_class WHERE oid = '"+m+".rcp'::regclass AND relispopulated"); n != 0 {
		t.Errorf("the purge populated a materialized view created WITH NO DATA")
	}
}

// TestMaterializedViewRefreshFails: a DBA's materialized view whose query
// raises, at refresh, an error whose message holds another recipient's
// email (a function that validates it). The run must not fail, and the
// log must not hold the email.
func TestMaterializedViewRefreshFails(t *testing.T) {
	r := newCascadeFixture(t)
	m := r.schema(t, "_mvfail")
	other := demodata.Email(4)
	r.exec(t,
		"CREATE FUNCTION "+m+`.check_email(e text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN
			IF e LIKE 'flagged-%' THEN RAISE EXCEPTION 'bad email %', e; END IF; RETURN e; END $$`,
		"CREATE MATERIALIZED VIEW "+m+".rcp AS SELECT id, "+m+".check_email(email) AS email FROM nms_recipient",
		"UPDATE nms_recipient SET email = 'flagged-' || email WHERE email = '"+other+"'",
	)
	id, errs := r.deleteSubject(t)
	for _, err := range errs {
		t.Errorf("run: %v", err)
	}
	t.Logf("status %v; view still holds the subject: %v", r.f.status(t, id),
		func() int64 {
			n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+m+".rcp WHERE email = $1", demodata.Email(3))
			return n
		}())
	if logs := r.logs.String() + r.f.env.Logs.String(); strings.Contains(logs, other) || strings.Contains(logs, demodata.Email(3)) {
		t.Errorf("the log holds an email")
	}
}

// TestAncestorWithPartitionOfAnotherOwner: the cascade target is a
// partition (its own foreign key) of a partitioned table the service's
// role owns; a sibling partition, with others' rows, belongs to the DBA
// (no grant). The purge analyzes the parent (refreshAncestors) and walks
// its tree (dropStatisticsIfEmpty): the run must not fail, the request
// completes, and the parent's inherited statistics no longer sample the
// subject's notes.
func TestAncestorWithPartitionOfAnotherOwner(t *testing.T) {
	db, aconn, role, storeLogs := appRoleLogged(t)
	ctx := context.Background()
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Privacy: withReceipts})
	subject := recipientID(t, f, 3)
	schema := dbaSchema(t, aconn, role, "cp_anc_", "USAGE")
	const token = "Ancestorpartowner8c3f"
	for _, q := range []string{
		"CREATE TABLE " + schema + ".pnote (id BIGINT, recipient_id BIGINT, body VARCHAR(200)) PARTITION BY RANGE (id)",
		"CREATE TABLE " + schema + ".pnote_a PARTITION OF " + schema + ".pnote FOR VALUES FROM (0) TO (1000)",
		"ALTER TABLE " + schema + ".pnote_a ADD FOREIGN KEY (recipient_id) REFERENCES nms_recipient (id) ON DELETE CASCADE",
		"CREATE TABLE " + schema + ".pnote_b PARTITION OF " + schema + ".pnote FOR VALUES FROM (1000) TO (2000)",
		"ALTER TABLE " + schema + ".pnote OWNER TO " + role,
		"ALTER TABLE " + schema + ".pnote_a OWNER TO " + role,
		"REVOKE ALL ON " + schema + ".pnote_b FROM " + role,
	} {
		if err := aconn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for j := range int64(5) {
		if err := aconn.Exec(ctx, "INSERT INTO "+schema+".pnote VALUES ($1, $2, $3)", 10+j, subject, token); err != nil {
			t.Fatal(err)
		}
		if err := aconn.Exec(ctx, "INSERT INTO "+schema+".pnote VALUES ($1, $2, $3)", 1010+j, recipientID(t, f, 4), "another's note"); err != nil {
			t.Fatal(err)
		}
	}
	if err := aconn.Exec(ctx, "ANALYZE "+schema+".pnote"); err != nil {
		t.Fatal(err)
	}
	stats := func() int64 {
		n, err := aconn.Int(ctx, `SELECT count(*) FROM pg_stats WHERE
			(coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE ?`, "%"+token+"%")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if stats() == 0 {
		t.Fatal("precondition: no statistics hold the token")
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	if _, err := f.env.Privacy.Run(f.ctx, "all"); err != nil {
		t.Errorf("run: %v", err)
	}
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Errorf("status %v, want complete", got)
	}
	if n := heapFileCount(t, aconn, schema+".pnote_a", token); n != 0 {
		t.Errorf("the partition's file holds the token %d time(s)", n)
	}
	if n := stats(); n != 0 {
		which, _ := aconn.Bytes(ctx, `SELECT string_agg(schemaname || '.' || tablename || '.' || attname || CASE WHEN inherited THEN ' (inherited)' ELSE '' END, ', ')
			FROM pg_stats WHERE (coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE ?`, "%"+token+"%")
		audit, _ := aconn.Bytes(ctx, "SELECT audit FROM privacy_requests WHERE id = ?", id)
		if line := purgeLine(string(audit)); !strings.Contains(line, "kept") {
			t.Errorf("complete, but %d pg_stats row(s) still hold the token (%s), and the audit does not say so: %s", n, which, line)
		} else {
			t.Logf("statistics kept (%s), disclosed: %s", which, line)
		}
	}
	for _, l := range strings.Split(storeLogs.String(), "\n") {
		if strings.Contains(l, "WARN") {
			t.Logf("store log: %.300s", l)
		}
	}
}

// openSession opens a second session on the test database.
func (r *cascadeFixture) openSession(t *testing.T) *sql.DB {
	t.Helper()
	sdb, err := sql.Open("pgx", storetest.ConfigOf(t, r.f.env.DB).DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sdb.Close() })
	return sdb
}

// TestMarkOfMissingTableCleared: a residue mark that names no table of the
// service's schema any more (a custom table dropped since; here a name in
// "schema.table" form, which a data-model table's never has) made every
// later purge VACUUM a relation that does not exist: every delete run
// failed, no request completed again. Such a mark is now cleared, and the
// table it may have meant, still a cascade target, is purged as one.
func TestMarkOfMissingTableCleared(t *testing.T) {
	for _, what := range []string{"target still cascaded", "target's foreign key dropped", "target dropped"} {
		t.Run(what, func(t *testing.T) {
			r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
			a := r.schema(t, "_gone")
			tbl := a + ".note"
			r.exec(t, "CREATE TABLE "+tbl+" (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))")
			b, err := r.conn.Bytes(r.f.ctx, "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = '"+tbl+"'::regclass")
			if err != nil {
				t.Fatal(err)
			}
			legacy := string(b) // a mark of no table the schema has
			if err := r.conn.Exec(r.f.ctx, "INSERT INTO privacy_residue (table_name, since) VALUES ($1, now() - interval '1 hour')", legacy); err != nil {
				t.Fatal(err)
			}
			switch what {
			case "target dropped":
				r.exec(t, "DROP TABLE "+tbl)
			case "target's foreign key dropped": // still there, no longer reached by this run's cascade
				r.exec(t, "ALTER TABLE "+tbl+" DROP CONSTRAINT note_recipient_id_fkey")
			}
			id, errs := r.deleteSubject(t)
			if testing.Verbose() {
				b, _ := r.conn.Bytes(r.f.ctx, "SELECT string_agg(table_name || ' ' || since::text, '; ') || ' now ' || now()::text FROM privacy_residue")
				t.Logf("after the first runs: %v; marks: %s", errs, b)
			}
			for i := 0; i < 3 && r.f.status(t, id) != privacy.StatusComplete; i++ {
				_, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete)
				errs = append(errs, err)
				t.Logf("next run: %v; status %v", err, r.f.status(t, id))
			}
			if got := r.f.status(t, id); got != privacy.StatusComplete {
				t.Errorf("a residue mark of no existing table (%q) keeps the request %v after %d runs; runs: %v", legacy, got, len(errs), errs)
			}
			if testing.Verbose() {
				for _, l := range strings.Split(r.logs.String(), "\n") {
					if strings.Contains(l, "WARN") || strings.Contains(l, "ERR") {
						t.Logf("store log: %.300s", l)
					}
				}
			}
			if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue WHERE table_name = $1", legacy); n != 0 {
				t.Errorf("the mark %q is still there after the runs", legacy)
			}
		})
	}
}

// TestMaterializedViewOverCycleOfViews: a DBA's two broken views over
// nms_recipient that read each other (CREATE OR REPLACE VIEW allows the
// cycle; only a query of them fails). materializedViews follows pg_depend
// through views with a growing depth, (oid, depth) never repeats, and the
// recursive query never ends: every delete run hangs in its purge (as
// soon as the database has a populated materialized view at all).
func TestMaterializedViewOverCycleOfViews(t *testing.T) {
	r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
	m := r.schema(t, "_cyc")
	r.exec(t,
		"CREATE VIEW "+m+".v1 AS SELECT id FROM nms_recipient",
		"CREATE VIEW "+m+".v2 AS SELECT id FROM "+m+".v1",
		"CREATE OR REPLACE VIEW "+m+".v1 AS SELECT id FROM nms_recipient UNION ALL SELECT id FROM "+m+".v2",
		// any populated materialized view: with none, the planner never
		// reads the recursive part (an empty hash side)
		"CREATE MATERIALIZED VIEW "+m+".rcp AS SELECT id, email FROM nms_recipient",
	)
	id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	ctx, cancel := context.WithTimeout(r.f.ctx, 45*time.Second)
	defer cancel()
	start := time.Now()
	_, err := r.f.env.Privacy.Run(ctx, "all")
	took := time.Since(start)
	if took > 30*time.Second {
		t.Errorf("the delete run hung %v in the residue purge (two views reading each other over nms_recipient; wait 2s): %v", took.Round(time.Second), err)
	} else if err != nil {
		t.Errorf("run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Errorf("status %v, want complete", got)
	}
}

// TestMaterializedViewLockedForeverNamed: an idle-in-transaction session
// (a report tool that read the DBA's materialized view and never ended its
// transaction) holds the view's ACCESS SHARE lock. Every run then ends
// Busy and the request stays deleteInProgress — by design — but what
// holds it back must be visible: the log must name the view (or the
// process holding it), as the horizon wait names its server process.
func TestMaterializedViewLockedForeverNamed(t *testing.T) {
	r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 1 * time.Second })
	m := r.schema(t, "_mvforever")
	r.exec(t, "CREATE MATERIALIZED VIEW "+m+".report_rcp AS SELECT id, email FROM nms_recipient")
	sdb := r.openSession(t)
	tx, err := sdb.BeginTx(r.f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var pid int
	if err := tx.QueryRowContext(r.f.ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(r.f.ctx, "SELECT count(*) FROM "+m+".report_rcp"); err != nil { // ACCESS SHARE until the end
		t.Fatal(err)
	}
	id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	var errs []error
	if _, err := r.f.env.Privacy.Run(r.f.ctx, "all"); err != nil {
		errs = append(errs, err)
	}
	for range 3 {
		if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil {
			errs = append(errs, err)
		}
	}
	got := r.f.status(t, id)
	t.Logf("status %v after 4 runs; errors: %v", got, errs)
	if got != privacy.StatusDeleteInProgress {
		return
	}
	logs := r.logs.String() + r.f.env.Logs.String()
	for _, err := range errs {
		logs += err.Error()
	}
	if !strings.Contains(logs, "report_rcp") && !strings.Contains(logs, fmt.Sprint(pid)) {
		var line string
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, "materialized view") {
				line = l
			}
		}
		t.Errorf("the request stays deleteInProgress run after run behind a lock on a materialized view, but neither the log nor the run's error names the view (report_rcp) or the session holding it (pid %d): %.300s", pid, line)
	}
}

// TestMaterializedViewRefreshFailsNamed: a DBA's materialized view over
// nms_recipient with a UNIQUE index on lower(email); two other recipients
// now share an email up to case, so its refresh fails (23505). The purge
// warns and goes on (documented), the request completes — and the view
// still holds the subject's email while neither the audit's purge line nor
// the receipt's residue_purge claim names it.
func TestMaterializedViewRefreshFailsNamed(t *testing.T) {
	r := newCascadeFixture(t)
	m := r.schema(t, "_mvuniq")
	email := demodata.Email(3)
	r.exec(t,
		"CREATE MATERIALIZED VIEW "+m+".rcp_email AS SELECT id, lower(email) AS email FROM nms_recipient",
		"CREATE UNIQUE INDEX ON "+m+".rcp_email (email)",
		"UPDATE nms_recipient SET email = upper('"+demodata.Email(5)+"') WHERE email = '"+demodata.Email(4)+"'",
	)
	id, errs := r.deleteSubject(t)
	for _, err := range errs {
		t.Errorf("run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Logf("status %v", got)
		return
	}
	n, err := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+m+".rcp_email WHERE email = lower($1)", email)
	if err != nil {
		t.Fatal(err)
	}
	line := purgeLine(r.audit(t, id))
	if n > 0 && !strings.Contains(line, "rcp_email") {
		t.Errorf("the request is complete, the materialized view %s.rcp_email still holds the subject's email (%d row(s)), and the purge's record does not name it: %q", m, n, line)
	}
	if logs := r.logs.String() + r.f.env.Logs.String(); strings.Contains(strings.ToLower(logs), strings.ToLower(demodata.Email(5))) || strings.Contains(logs, email) {
		t.Errorf("the log holds an email")
	}
}

// TestMarkedOidNamesOtherView: a residue mark of a materialized
// view ("<oid>:schema.report") whose oid now names another materialized
// view (the marked one dropped, the oid reused: a DBA's snapshot, kept
// stale on purpose, over a table outside the data model). resolveMarks
// takes any relation of kind 'm' under that oid, whatever its name and
// whatever it is built on, and refreshes it: the purge changes a view it
// has nothing to do with.
func TestMarkedOidNamesOtherView(t *testing.T) {
	r := newCascadeFixture(t)
	a := r.schema(t, "_reuse")
	r.exec(t,
		"CREATE TABLE "+a+".sales (id BIGINT PRIMARY KEY, amount INT)",
		"INSERT INTO "+a+".sales VALUES (1, 10), (2, 20)",
		"CREATE MATERIALIZED VIEW "+a+".snapshot_q1 AS SELECT count(*) AS n, sum(amount) AS total FROM "+a+".sales",
		"INSERT INTO "+a+".sales VALUES (3, 30)", // after the snapshot: it must keep saying 2
	)
	oid, err := r.conn.Int(r.f.ctx, "SELECT '"+a+".snapshot_q1'::regclass::oid::int8")
	if err != nil {
		t.Fatal(err)
	}
	mark := fmt.Sprintf("%d:%s.old_report", oid, a) // the oid of a view dropped since, now reused
	if err := r.conn.Exec(r.f.ctx, "INSERT INTO privacy_residue (table_name, since) VALUES ($1, now() - interval '1 hour')", mark); err != nil {
		t.Fatal(err)
	}
	id, errs := r.deleteSubject(t)
	for _, err := range errs {
		t.Errorf("run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Errorf("status %v, want complete", got)
	}
	if n, _ := r.conn.Int(r.f.ctx, "SELECT n FROM "+a+".snapshot_q1"); n != 2 {
		t.Errorf("the purge refreshed %s.snapshot_q1 (now n=%d, was 2): a view unrelated to the data model, under a reused oid whose mark named %s.old_report", a, n, a)
	}
}

// holding begins a transaction on a session of its own (a DBA's, a
// report's) and runs stmts in it, which take their locks or snapshot; the
// caller ends it.
func (r *cascadeFixture) holding(t *testing.T, stmts ...string) *sql.Tx {
	t.Helper()
	tx, err := r.openSession(t).BeginTx(r.f.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(r.f.ctx, q); err != nil {
			_ = tx.Rollback()
			t.Fatalf("%s: %v", q, err)
		}
	}
	return tx
}
