package privacy_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// Layouts of cascade targets and copies outside the data model, found by a
// review of J153 (cascade targets in any schema): J154.
// Each test's comment tells what the review found, as it found it; the
// test fails if that comes back.

// cascadeFixture is a fixture whose store logs into logs (the store's warnings).
type cascadeFixture struct {
	f    *fixture
	conn *storetest.Conn
	logs *servertest.SyncBuffer
	base string // the service's schema
}

func newCascadeFixture(t *testing.T, opts ...func(*privacy.Config)) *cascadeFixture {
	t.Helper()
	logs := &servertest.SyncBuffer{}
	cfg := storetest.Config(t, store.Postgres)
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := storetest.NewClock() // the service's and the store's: the cleanup reads both
	db := storetest.OpenConfig(t, cfg, clock.Now)
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Clock: clock, Privacy: func(c *privacy.Config) {
		withReceipts(c)
		for _, o := range opts {
			o(c)
		}
	}})
	conn := storetest.SQLOf(t, db)
	b, err := conn.Bytes(f.ctx, "SELECT current_schema()::text")
	if err != nil {
		t.Fatal(err)
	}
	return &cascadeFixture{f: f, conn: conn, logs: logs, base: string(b)}
}

// schema creates a schema named the service's schema's name + suffix and
// returns it as SQL names it; it is dropped when the test ends.
func (r *cascadeFixture) schema(t *testing.T, suffix string) string {
	t.Helper()
	q := `"` + strings.ReplaceAll(r.base+suffix, `"`, `""`) + `"`
	if err := r.conn.Exec(r.f.ctx, "CREATE SCHEMA "+q); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+q+" CASCADE") })
	return q
}

func (r *cascadeFixture) exec(t *testing.T, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if err := r.conn.Exec(r.f.ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// statsHolding counts the pg_stats rows of the test's schemas (its own and
// those schema made) whose samples hold token: the other tests' subjects
// have the same demo emails.
func (r *cascadeFixture) statsHolding(t *testing.T, token string) int64 {
	t.Helper()
	n, err := r.conn.Int(r.f.ctx, `SELECT count(*) FROM pg_stats WHERE left(schemaname, length($2)) = $2 AND
		(coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE $1`, "%"+token+"%", r.base)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (r *cascadeFixture) audit(t *testing.T, id int64) string {
	t.Helper()
	b, err := r.conn.Bytes(r.f.ctx, "SELECT audit FROM privacy_requests WHERE id = $1", id)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// deleteSubject files a delete of recipient 3 and runs "all", then a
// delete run; it returns the request and the runs' errors.
func (r *cascadeFixture) deleteSubject(t *testing.T) (int64, []error) {
	t.Helper()
	id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
	var errs []error
	if _, err := r.f.env.Privacy.Run(r.f.ctx, "all"); err != nil {
		errs = append(errs, err)
	}
	if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil {
		errs = append(errs, err)
	}
	return id, errs
}

// deletedSubject is deleteSubject, requiring the runs to succeed and the
// request to complete.
func (r *cascadeFixture) deletedSubject(t *testing.T) int64 {
	t.Helper()
	id, errs := r.deleteSubject(t)
	for _, err := range errs {
		t.Errorf("run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	return id
}

// check asserts the common rule: the runs did not fail, the request is
// complete, the tables' files (with pg_statistic) and pg_stats do not hold
// the tokens, and the log holds no personal data.
func (r *cascadeFixture) check(t *testing.T, id int64, errs []error, tables []string, tokens ...string) {
	t.Helper()
	for _, err := range errs {
		t.Errorf("run: %v", err)
	}
	if got := r.f.status(t, id); got != privacy.StatusComplete {
		t.Errorf("status %v, want complete", got)
	}
	for _, tbl := range tables {
		if n := r.conn.PostgresFileCount(t, r.f.ctx, tbl, tokens...); n != 0 {
			t.Errorf("after the delete, %s's files (or pg_statistic) still hold the cascaded rows' tokens %d time(s)", tbl, n)
		}
	}
	for _, tok := range tokens {
		if n := r.statsHolding(t, tok); n != 0 {
			t.Errorf("%d pg_stats row(s) still hold %s", n, tok)
		}
	}
	logs := r.logs.String() + r.f.env.Logs.String()
	for _, tok := range append(tokens, demodata.Email(3)) {
		if strings.Contains(logs, tok) {
			t.Errorf("the log holds %s", tok)
		}
	}
	if testing.Verbose() {
		for _, l := range strings.Split(r.logs.String(), "\n") {
			if strings.Contains(l, "WARN") {
				t.Logf("store log: %.400s", l)
			}
		}
	}
}

// sqlInt is n in SQL.
func sqlInt[T int | int64](n T) string { return fmt.Sprint(n) }

// TestCascadeTargetPartitionsInAnotherSchema: a partitioned cascade target in
// one schema, its partitions in yet another; the subject's partition is
// emptied and analyzed. The run must not fail, the statistics must go,
// and (the purge's record) no statistics may be claimed kept that were
// dropped.
func TestCascadeTargetPartitionsInAnotherSchema(t *testing.T) {
	r := newCascadeFixture(t)
	p := r.schema(t, "_P")
	q := r.schema(t, "_q part")
	const token = "Partschematoken2e9f"
	r.exec(t,
		"CREATE TABLE "+p+".pnote (id BIGINT, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200), PRIMARY KEY (id)) PARTITION BY RANGE (id)",
		"CREATE TABLE "+q+".pnote_a PARTITION OF "+p+".pnote FOR VALUES FROM (0) TO (1000)",
		"CREATE TABLE "+q+".pnote_b PARTITION OF "+p+".pnote FOR VALUES FROM (1000) TO (2000)",
	)
	subject := recipientID(t, r.f, 3)
	for i := range 3 {
		r.exec(t, "INSERT INTO "+p+".pnote VALUES ("+sqlInt(int64(50+i))+", "+sqlInt(subject)+", '"+token+" called')")
	}
	r.exec(t, "INSERT INTO "+p+".pnote VALUES (1090, "+sqlInt(recipientID(t, r.f, 4))+", 'another')")
	r.exec(t, "ANALYZE "+q+".pnote_a", "ANALYZE "+p+".pnote")
	if r.statsHolding(t, token) == 0 {
		t.Fatal("precondition: no statistics")
	}
	id, errs := r.deleteSubject(t)
	r.check(t, id, errs, []string{q + ".pnote_a", q + ".pnote_b"}, token)
	// The partition key's statistics stay (PostgreSQL will not drop them),
	// and the record says so; no other column is claimed kept: they went
	// with the parent's purge (the partition is not a target of its own).
	if a := purgeLine(r.audit(t, id)); strings.Contains(a, `"body"`) || strings.Contains(a, `"recipient_id"`) || !strings.Contains(a, `pnote_a."id"`) {
		t.Errorf("the audit's record of the statistics kept is not the partition key's alone: %s", a)
	}
}

// TestMaterializedViewRefreshed: a DBA's materialized view over
// nms_recipient in another schema, analyzed, keeps a copy of the rows as of
// its last refresh. The purge refreshes it (a new file, the old one
// removed) and takes its statistics again: after complete, neither the view
// nor its files nor pg_stats hold the subject's email.
func TestMaterializedViewRefreshed(t *testing.T) {
	r := newCascadeFixture(t)
	m := r.schema(t, "_mv")
	email := demodata.Email(3)
	r.exec(t, "CREATE MATERIALIZED VIEW "+m+".rcp AS SELECT id, email FROM nms_recipient",
		"CREATE INDEX ON "+m+".rcp (email)", "ANALYZE "+m+".rcp")
	if n := r.viewLeft(t, m+".rcp", email); n == 0 {
		t.Fatal("precondition: the view's files hold the email")
	}
	r.deletedSubject(t)
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+m+".rcp WHERE email = $1", email); n != 0 {
		t.Errorf("complete, but the DBA's materialized view still holds the subject's email (%d row(s))", n)
	}
	if n, _ := r.conn.Int(r.f.ctx, "SELECT count(*) FROM "+m+".rcp"); n == 0 {
		t.Errorf("the view lost the other recipients' rows")
	}
	if n := r.viewLeft(t, m+".rcp", email); n != 0 {
		t.Errorf("complete, but the view's files (or its statistics) hold the email %d time(s)", n)
	}
}

// TestCascadeTargetInheritanceParentStats: a DBA's archive table in another
// schema (no foreign key of its own) whose INHERITS child, in another
// schema, cascades from nms_recipient (foreign keys are not inherited: the
// DBA declared it on the child). ANALYZE of the parent (autovacuum's or
// the DBA's) sampled the child's rows into the parent's inherited
// statistics. The child is rewritten and re-analyzed; the parent, not a
// cascade target, is not, and its inherited statistics keep the subject's
// rows — with nothing in the audit saying so.
func TestCascadeTargetInheritanceParentStats(t *testing.T) {
	r := newCascadeFixture(t)
	a := r.schema(t, "_arch")
	b := r.schema(t, "_arch2024")
	const token = "Archiveparenttoken4f1a"
	r.exec(t,
		"CREATE TABLE "+a+".note (id BIGINT PRIMARY KEY, recipient_id BIGINT, body VARCHAR(200))",
		"CREATE TABLE "+b+".note_2024 () INHERITS ("+a+".note)",
		"ALTER TABLE "+b+".note_2024 ADD FOREIGN KEY (recipient_id) REFERENCES nms_recipient (id) ON DELETE CASCADE",
	)
	r.noteRows(t, b+".note_2024", token)
	r.exec(t, "INSERT INTO "+a+".note VALUES (91, "+sqlInt(recipientID(t, r.f, 4))+", 'another, archived')")
	r.exec(t, "ANALYZE "+a+".note", "ANALYZE "+b+".note_2024")
	if r.statsHolding(t, token) < 2 {
		t.Fatal("precondition: the parent's inherited and the child's statistics hold the token")
	}
	id := r.deletedSubject(t)
	if n := heapFileCount(t, r.conn, b+".note_2024", token); n != 0 {
		t.Errorf("the child's file still holds the token %d time(s)", n)
	}
	which, _ := r.conn.Bytes(r.f.ctx, `SELECT coalesce(string_agg(schemaname || '.' || tablename || '.' || attname || CASE WHEN inherited THEN ' (inherited)' ELSE '' END, ', '), '')
		FROM pg_stats WHERE (coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE $1`, "%"+token+"%")
	if len(which) > 0 {
		au := r.audit(t, id)
		t.Errorf("the request is complete, but statistics still hold the cascaded notes: %s; the audit says kept: %v",
			which, strings.Contains(au, "could not drop kept"))
	}
}

// TestCascadeTargetChildOfAnotherOwner: the cascade target (another
// schema, the service's role owns it) has an INHERITS child of another
// role's, without a foreign key: the cascade deleted from the parent only
// (PostgreSQL's RI deletes FROM ONLY the referencing table), never from
// the child. The parent's rewrite is refused because of the child, and the
// deleted rows stay in the parent's file after complete — though the role
// may rewrite the parent, and the child holds nothing of the subject.
func TestCascadeTargetChildOfAnotherOwner(t *testing.T) {
	db, aconn, role, storeLogs := appRoleLogged(t)
	ctx := context.Background()
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Privacy: withReceipts})
	subject := recipientID(t, f, 3)
	schema := dbaSchema(t, aconn, role, "cp_casc_", "USAGE")
	const token = "Childownertoken6a2b"
	for _, q := range []string{
		"CREATE TABLE " + schema + ".note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))",
		"ALTER TABLE " + schema + ".note OWNER TO " + role,
		"CREATE TABLE " + schema + ".note_audit (changed_at TIMESTAMP) INHERITS (" + schema + ".note)",
	} {
		if err := aconn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for j := range int64(3) {
		if err := aconn.Exec(ctx, "INSERT INTO "+schema+".note VALUES ($1, $2, $3)", 10+j, subject, token); err != nil {
			t.Fatal(err)
		}
	}
	if err := aconn.Exec(ctx, "INSERT INTO "+schema+".note VALUES (90, $1, 'another')", recipientID(t, f, 4)); err != nil {
		t.Fatal(err)
	}
	if n := heapFileCount(t, aconn, schema+".note", token); n != 3 {
		t.Fatalf("before: %d", n)
	}
	completeDelete(t, f, 3)
	if n, _ := aconn.Int(ctx, "SELECT count(*) FROM "+schema+".note WHERE recipient_id = $1", subject); n != 0 {
		t.Fatalf("%d cascaded note(s) left", n)
	}
	if n := heapFileCount(t, aconn, schema+".note", token); n != 0 {
		t.Errorf("complete, but the cascaded notes are still in %s.note's file %d time(s) (the role owns it)", schema, n)
	}
	for _, l := range strings.Split(storeLogs.String(), "\n") {
		if strings.Contains(l, "WARN") {
			t.Logf("store log: %.300s", l)
		}
	}
	if strings.Contains(storeLogs.String()+f.env.Logs.String(), token) {
		t.Errorf("the log holds the token")
	}
}

// TestCascadeFromChildOfModelTable: crm_orders is a data-model
// table (crmOrderSchema) with a DBA's inheritance child, or partition, in
// another schema; a DBA's table there cascades from that child (a foreign
// key may reference a child or a partition, not its parent). The
// service's delete of crm_orders reaches the child's rows, the database
// cascades to the notes; the purge rewrites the child (a table under
// crm_orders) but looks for cascade targets from the data model's tables
// by name only, so the notes' table is never rewritten.
func TestCascadeFromChildOfModelTable(t *testing.T) {
	for _, c := range []struct {
		name string
		ddl  func(x string) []string
	}{
		{"inheritance child", func(x string) []string {
			return []string{
				"CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)",
				"CREATE TABLE " + x + ".crm_orders_old (CHECK (id < 1000)) INHERITS (crm_orders)",
				"ALTER TABLE " + x + ".crm_orders_old ADD PRIMARY KEY (id)",
			}
		}},
		{"partition", func(x string) []string {
			return []string{
				"CREATE TABLE crm_orders (id BIGINT, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT, PRIMARY KEY (id)) PARTITION BY RANGE (id)",
				"CREATE TABLE " + x + ".crm_orders_old PARTITION OF crm_orders FOR VALUES FROM (0) TO (1000)",
				"CREATE TABLE crm_orders_new PARTITION OF crm_orders FOR VALUES FROM (1000) TO (2000)",
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			logs := &servertest.SyncBuffer{}
			cfg := storetest.Config(t, store.Postgres)
			cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
			db := storetest.OpenConfig(t, cfg, nil)
			conn := storetest.SQLOf(t, db)
			ctx := context.Background()
			b, err := conn.Bytes(ctx, "SELECT current_schema()::text")
			if err != nil {
				t.Fatal(err)
			}
			x := `"` + string(b) + `_X"`
			t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+x+" CASCADE") })
			const token = "Childcascadetoken3d9e"
			for _, q := range append(append([]string{"CREATE SCHEMA " + x}, c.ddl(x)...),
				"CREATE TABLE "+x+".order_note (id BIGINT PRIMARY KEY, order_id BIGINT REFERENCES "+x+".crm_orders_old (id) ON DELETE CASCADE, body VARCHAR(200))") {
				if err := conn.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			f := newFixture(t, store.Postgres, servertest.Options{DB: db, Schemas: crmOrderSchema, Privacy: withReceipts})
			subject, other := recipientID(t, f, 4), recipientID(t, f, 5)
			for i := range int64(3) {
				if err := conn.Exec(ctx, "INSERT INTO "+x+".crm_orders_old VALUES ($1, 'bike', $2, NULL)", 10+i, subject); err != nil {
					t.Fatal(err)
				}
				if err := conn.Exec(ctx, "INSERT INTO "+x+".order_note VALUES ($1, $2, $3)", 10+i, 10+i, token+" called about the bike"); err != nil {
					t.Fatal(err)
				}
			}
			if err := conn.Exec(ctx, "INSERT INTO crm_orders VALUES (1500, 'lamp', $1, NULL)", other); err != nil {
				t.Fatal(err)
			}
			if n := heapFileCount(t, conn, x+".order_note", token); n != 3 {
				t.Fatalf("before: %d", n)
			}
			completeDelete(t, f, 4)
			if n, _ := conn.Int(ctx, "SELECT count(*) FROM "+x+".order_note"); n != 0 {
				t.Fatalf("%d note(s) left: the cascade did not run", n)
			}
			if n := heapFileCount(t, conn, x+".order_note", token); n != 0 {
				t.Errorf("complete, but the notes the cascade deleted are still in %s.order_note's file %d time(s); the log says nothing of it: %v",
					x, n, strings.Contains(logs.String(), "order_note"))
			}
		})
	}
}

// purgeLine is the audit's residue purge line.
func purgeLine(audit string) string {
	line := ""
	for _, l := range strings.Split(audit, "\n") {
		if i := strings.Index(l, "Residue purge"); i >= 0 {
			line = l[i:] // the last one
		}
	}
	return line
}

// TestCascadeTargetLockedTwoStep: the cascade target (another schema)
// is locked by a reader while the purge runs, so it is only vacuumed, not
// rewritten; the run says Busy. The targets have no residue mark of their
// own: the next run must find them again before the request completes.
// A two-step delete's next run deletes nothing and touches no table, the
// data model's marks were cleared by the first purge: PurgeResidue has no
// table to start from, finds no cascade target, and the request completes
// with the target only vacuumed.
func TestCascadeTargetLockedTwoStep(t *testing.T) {
	// One-step deletes find the target again (TestCascadeTargetLockNotGranted);
	// the two-step one did not. A target dropped before the next run has
	// its mark cleared.
	for _, dropped := range []bool{false, true} {
		t.Run(map[bool]string{false: "two-step", true: "two-step, target dropped"}[dropped], func(t *testing.T) {
			r := newCascadeFixture(t, func(c *privacy.Config) { c.ResidueWait = 2 * time.Second })
			a := r.schema(t, "_lock")
			tbl := a + ".note"
			const token = "Lockedotherschema1f6d"
			r.noteTarget(t, tbl, token)
			id := r.confirmedDelete(t)
			err := r.runWhileLocked(t, tbl, privacy.Delete)
			t.Logf("first run (lock held): %v; status %v", err, r.f.status(t, id))
			if n, err := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue WHERE table_name LIKE '%.note'"); err != nil || n == 0 {
				t.Errorf("the target whose lock was not granted is not marked (%v)", err)
			}
			if dropped {
				r.exec(t, "DROP TABLE "+tbl)
			}
			for i := 0; i < 5 && r.f.status(t, id) != privacy.StatusComplete; i++ {
				_, err = r.f.env.Privacy.Run(r.f.ctx, privacy.Delete)
				t.Logf("next run: %v", err)
			}
			if got := r.f.status(t, id); got != privacy.StatusComplete {
				t.Fatalf("status %v, want complete", got)
			}
			if dropped {
				if n, err := r.conn.Int(r.f.ctx, "SELECT count(*) FROM privacy_residue"); err != nil || n != 0 {
					t.Errorf("%d residue mark(s) left after the marked target was dropped (%v)", n, err)
				}
				return
			}
			if n := r.conn.PostgresFileCount(t, r.f.ctx, tbl, token); n != 0 {
				t.Errorf("the request is complete, but the cascaded notes are still in %s's files %d time(s); %s", tbl, n, purgeLine(r.audit(t, id)))
			}
		})
	}
}

// completeDelete files a one-step delete of demo recipient n's email, runs
// the workflows and requires the request complete.
func completeDelete(t *testing.T, f *fixture, n int64) int64 {
	t.Helper()
	id := f.create(t, "defaultNamespace1", demodata.Email(n), privacy.TypeDelete, false)
	runAll(t, f)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	return id
}

// noteTarget creates table (as SQL names it) as a DBA's cascade target of
// nms_recipient, with three notes of recipient 3 holding token and one of
// recipient 4.
func (r *cascadeFixture) noteTarget(t *testing.T, table, token string) {
	t.Helper()
	r.exec(t, "CREATE TABLE "+table+" (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))")
	r.noteRows(t, table, token)
}

// noteRows writes into table three notes of recipient 3 holding token and
// one of recipient 4.
func (r *cascadeFixture) noteRows(t *testing.T, table, token string) {
	t.Helper()
	subject := recipientID(t, r.f, 3)
	for i := range int64(3) {
		r.exec(t, "INSERT INTO "+table+" VALUES ("+sqlInt(50+i)+", "+sqlInt(subject)+", '"+token+"')")
	}
	r.exec(t, "INSERT INTO "+table+" VALUES (90, "+sqlInt(recipientID(t, r.f, 4))+", 'another')")
}

// confirmedDelete files a two-step delete of recipient 3, collects and
// confirms it: the next delete run deletes its rows.
func (r *cascadeFixture) confirmedDelete(t *testing.T) int64 {
	t.Helper()
	id := r.f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, true)
	r.f.run(t, privacy.Collect)
	if err := r.f.env.Privacy.ConfirmDeletePending(r.f.ctx, operator, id); err != nil {
		t.Fatal(err)
	}
	return id
}

// runWhileLocked runs workflow while another session holds ACCESS SHARE on
// table (as a reader in a long transaction does), and returns its error.
func (r *cascadeFixture) runWhileLocked(t *testing.T, table, workflow string) error {
	t.Helper()
	tx := r.holding(t, "LOCK TABLE "+table+" IN ACCESS SHARE MODE")
	defer tx.Rollback()
	_, err := r.f.env.Privacy.Run(r.f.ctx, workflow)
	return err
}

// viewLeft counts token in a view's (or table's) own files, its heap and
// indexes (after a CHECKPOINT), and in its rows of pg_stats. Not in
// pg_statistic's file: the tests share it, and their subjects have the
// same demo emails.
func (r *cascadeFixture) viewLeft(t *testing.T, view, token string) int {
	t.Helper()
	n := heapFileCount(t, r.conn, view, token)
	idx, err := r.conn.Bytes(r.f.ctx, "SELECT coalesce(string_agg(indexrelid::regclass::text, ' '), '') FROM pg_index WHERE indrelid = $1::regclass", view)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range strings.Fields(string(idx)) {
		n += heapFileCount(t, r.conn, i, token)
	}
	stats, err := r.conn.Int(r.f.ctx, `SELECT count(*) FROM pg_stats s JOIN pg_namespace n ON n.nspname = s.schemaname
		JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
		WHERE c.oid = $1::regclass AND (coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE $2`, view, "%"+token+"%")
	if err != nil {
		t.Fatal(err)
	}
	return n + int(stats)
}
