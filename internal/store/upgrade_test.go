package store_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// reviewSplitSQL is store.splitSQL: a migration file's statements.
func reviewSplitSQL(s string) []string {
	var out []string
	for _, stmt := range strings.Split(s, ";") {
		var lines []string
		for _, line := range strings.Split(stmt, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, line)
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
		}
	}
	return out
}

// reviewBuildAt builds, through a test connection, the schema the previous
// release left (migrations 1..upTo from this tree's files, recorded in
// schema_migrations as its Migrate records them).
func reviewBuildAt(t *testing.T, ctx context.Context, dialect string, upTo int) (store.Config, *storetest.Conn) {
	t.Helper()
	cfg := storetest.Config(t, dialect)
	conn := storetest.SQL(t, cfg)
	dir := filepath.Join("migrations", dialect)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			t.Fatal(err)
		}
		if v > upTo {
			break
		}
		body, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, stmt := range reviewSplitSQL(string(body)) {
			if err := conn.Exec(ctx, stmt); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		if err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", v, name, time.Now().UTC()); err != nil {
			t.Fatal(err)
		}
	}
	return cfg, conn
}

// TestUpgradeFrom0018WithMarksRequestsAndChainLines: the previous release's
// newest migration is 0018. A database it wrote, holding residue marks
// (one row per table, the 0015 shape), requests of both types in every
// status, reviewed rows and audit chain lines, is upgraded by this
// binary's Migrate (0019, 0020 and on). The result must keep every mark with
// its time (the residue age metric and the next purge), seed the deleted
// counts of the deletes in flight from their chain lines only, leave
// every request readable, and let a purge clear the marks it reads.
func TestUpgradeFrom0018WithMarksRequestsAndChainLines(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			cfg, conn := reviewBuildAt(t, ctx, dialect, 18)
			base := time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(conn.InsertRow(ctx, "privacy_namespaces", map[string]any{"id": 1, "name": "ns1", "label": "NS", "target_schema": "nms:recipient",
				"reconciliation_key": "email", "created": base, "last_modified": base}))
			type req struct {
				id          int64
				typ, status int
				twoStep     bool
			}
			var reqs []req
			id := int64(0)
			for typ := 1; typ <= 2; typ++ {
				for status := 0; status <= 9; status++ {
					for _, two := range []bool{false, true} {
						id++
						reqs = append(reqs, req{id, typ, status, two})
						row := map[string]any{"id": id, "name": "PR-" + strconv.FormatInt(id, 10), "namespace_id": 1,
							"reconciliation_value": "p" + strconv.FormatInt(id, 10) + "@example.com", "type": typ, "regulation": 1,
							"status": status, "confirm_delete_pending": two, "operator_id": 1, "created": base, "last_modified": base,
							"audit": "x"}
						if status == 4 {
							row["confirm_deadline"] = base.Add(72 * time.Hour)
						}
						if status == 6 {
							row["claimed_by"] = "old-worker"
							row["claimed_until"] = base.Add(time.Minute)
						}
						must(conn.InsertRow(ctx, "privacy_requests", row))
						must(conn.InsertRow(ctx, "privacy_request_rows", map[string]any{"request_id": id, "schema_name": "nms:recipient",
							"row_id": 100 + id, "deleted": typ == 2 && two && status >= 5}))
					}
				}
			}
			seq := int64(0)
			line := func(request int64, text string) {
				seq++
				must(conn.InsertRow(ctx, "privacy_audit_chain", map[string]any{"seq": seq, "request_id": request,
					"at": base.Format(time.RFC3339Nano), "line": text, "prev_hash": "p", "hash": "h"}))
			}
			for _, r := range reqs {
				line(r.id, "Request created by operator 'admin'.")
				if r.typ == 2 && r.status >= 5 {
					line(r.id, "3 record(s) deleted in nms:broadLogRcp")
					line(r.id, "2 record(s) deleted in nms:broadLogRcp")
					line(r.id, "1 record(s) deleted in nms:recipient")
				}
			}
			// Two marks, the 0015 shape: one row per table.
			oldest := base.Add(-3 * time.Hour)
			must(conn.InsertRow(ctx, "privacy_residue", map[string]any{"table_name": "privacy_request_rows", "since": oldest}))
			must(conn.InsertRow(ctx, "privacy_residue", map[string]any{"table_name": "privacy_requests", "since": base.Add(-time.Hour)}))

			clock := storetest.NewClock()
			cfg.Now = clock.Now
			db, err := store.Open(ctx, cfg)
			must(err)
			t.Cleanup(func() { db.Close() })
			applied, err := db.Migrate(ctx)
			if err != nil {
				t.Fatalf("the upgrade from 0018 failed: %v", err)
			}
			latest, err := db.LatestVersion()
			must(err)
			if len(applied) != latest-18 || applied[0] != 19 || applied[len(applied)-1] != latest {
				t.Fatalf("applied %v, want 19 to %d", applied, latest)
			}
			n, got, err := db.ResidueMarks(ctx)
			must(err)
			if n != 2 || !got.Equal(oldest) {
				t.Errorf("after the upgrade: %d marked table(s), oldest %v; want 2, %v", n, got, oldest)
			}
			for _, r := range reqs {
				fr, err := db.FindRequestByID(ctx, r.id)
				if err != nil {
					t.Fatalf("request %d (type %d, status %d) after the upgrade: %v", r.id, r.typ, r.status, err)
				}
				if int(fr.Status) != r.status {
					t.Errorf("request %d: status %d, want %d", r.id, fr.Status, r.status)
				}
				if r.status == 4 && (fr.ConfirmDeadline == nil || !fr.ConfirmDeadline.Equal(base.Add(72*time.Hour))) {
					t.Errorf("request %d: confirm deadline %v after the upgrade", r.id, fr.ConfirmDeadline)
				}
				logs, err := conn.Int(ctx, "SELECT coalesce(sum(deleted), -1) FROM privacy_request_deleted WHERE request_id = ? AND schema_name = 'nms:broadLogRcp'", r.id)
				must(err)
				rcp, err := conn.Int(ctx, "SELECT coalesce(sum(deleted), -1) FROM privacy_request_deleted WHERE request_id = ? AND schema_name = 'nms:recipient'", r.id)
				must(err)
				wantLogs, wantRcp := int64(-1), int64(-1)
				if r.typ == 2 && (r.status == 5 || r.status == 6) {
					wantLogs, wantRcp = 5, 1
				}
				if logs != wantLogs || rcp != wantRcp {
					t.Errorf("request %d (type %d, status %d): seeded deleted counts logs=%d recipient=%d, want %d, %d", r.id, r.typ, r.status, logs, rcp, wantLogs, wantRcp)
				}
			}
			// The next run's purge takes the upgraded marks as stale, and
			// clears them.
			purged, pending, err := db.PurgeResidue(ctx, nil, clock.Now(), store.ResiduePurge{Wait: 10 * time.Second})
			if err != nil || len(pending) != 0 || len(purged) != 2 {
				t.Fatalf("purge after the upgrade: purged %v pending %v err %v", purged, pending, err)
			}
			if n, _, err := db.ResidueMarks(ctx); err != nil || n != 0 {
				t.Errorf("after the purge: %d marked table(s), err %v", n, err)
			}
			// A mark written after the upgrade takes the new id column.
			left, err := conn.Int(ctx, "SELECT count(*) FROM privacy_residue")
			must(err)
			if left != 0 {
				t.Errorf("%d mark row(s) left after the purge", left)
			}
		})
	}
}

// TestUpgradeFromBefore0008CountsTheDeletesOfTheAuditText: a release
// before migration 0008 wrote audit lines to the request's text only (0008
// creates the chain empty). A delete in flight at such an upgrade, whose
// first attempt deleted rows, has its "N record(s) deleted in X" lines
// there: migration 0020 seeded the deleted counts from the chain alone,
// 0021 adds those of the text written before the request's first chain
// line, once; a finished delete and an access request are left alone.
func TestUpgradeFromBefore0008CountsTheDeletesOfTheAuditText(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			cfg, conn := reviewBuildAt(t, ctx, dialect, 7)
			base := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(conn.InsertRow(ctx, "privacy_namespaces", map[string]any{"id": 1, "name": "ns1", "label": "NS", "target_schema": "nms:recipient",
				"reconciliation_key": "email", "created": base, "last_modified": base}))
			old := "2026-06-01 10:00:00.000Z Request created by operator 'admin'.\n" +
				"2026-06-01 10:01:00.000Z 3 record(s) deleted in nms:broadLogRcp\n" +
				"2026-06-01 10:01:00.000Z 10 record(s) deleted in nms:trackingLogRcp\n" +
				"2026-06-01 10:01:00.000Z Attempt 1 failed (the database is busy); retrying after 2026-06-01 10:11:00Z.\n"
			for id, r := range map[int64]struct{ typ, status int }{1: {2, 5}, 2: {2, 7}, 3: {1, 5}} {
				must(conn.InsertRow(ctx, "privacy_requests", map[string]any{"id": id, "name": "PR-" + strconv.FormatInt(id, 10), "namespace_id": 1,
					"reconciliation_value": "p@example.com", "type": r.typ, "regulation": 1, "status": r.status, "confirm_delete_pending": false,
					"operator_id": 1, "created": base, "last_modified": base, "audit": old}))
			}
			db, err := store.Open(ctx, cfg)
			must(err)
			t.Cleanup(func() { db.Close() })
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatalf("the upgrade from 0007 failed: %v", err)
			}
			for _, c := range []struct {
				id     int64
				schema string
				want   int64
			}{{1, "nms:broadLogRcp", 3}, {1, "nms:trackingLogRcp", 10}, {2, "nms:broadLogRcp", -1}, {3, "nms:broadLogRcp", -1}} {
				got, err := conn.Int(ctx, "SELECT coalesce(sum(deleted), -1) FROM privacy_request_deleted WHERE request_id = ? AND schema_name = ?", c.id, c.schema)
				must(err)
				if got != c.want {
					t.Errorf("request %d: %d %s row(s) counted deleted after the upgrade, want %d (-1: none)", c.id, got, c.schema, c.want)
				}
			}
		})
	}
}

// TestResidueLogStaysBoundedWhilePurgesAreHeld: since 7520a5c a residue
// mark is a row appended by every delete transaction, for each table it
// changed, and only a purge that succeeds for the table removes them. While
// purges are held (a long report or pg_dump's snapshot, a lagging standby
// or slot: the case README's residue-age alert is for), each delete run's
// purge reports the tables pending and clears nothing, so the log grows by
// one row per delete transaction and table, without bound — the old shape
// (0015) held one row per table. Every metrics scrape (ResidueMarks) and
// every purge aggregates the whole log (GROUP BY table_name), and the
// deletes themselves write to an ever larger table. What a mark needs is
// the table's oldest time and whether a change came after a purge's read:
// two rows per table suffice. Harm: unbounded table growth and ever slower
// metrics and purge reads for as long as a purge is held (hours of a
// bench-rate 19k deletes/min is millions of rows).
func TestResidueLogStaysBoundedWhilePurgesAreHeld(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.Postgres, clock.Now)
	conn := storetest.SQLOf(t, db)
	execAll(t, conn, "CREATE TABLE residue_growth (id BIGINT PRIMARY KEY, v TEXT)",
		"INSERT INTO residue_growth SELECT g, 'v' || g FROM generate_series(1, 200) g")
	id := newRequest(t, db, &store.Request{ReconciliationValue: "x@example.com", Type: 2, Regulation: 1})
	if got, err := db.ClaimRequests(ctx, []store.Status{0}, nil, 1, "w", 24*time.Hour); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	// A report's snapshot on the service's database, held throughout.
	report := storetest.SQLOf(t, db)
	release, err := report.HoldSnapshot(ctx, "residue_growth")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	row := int64(0)
	for run := 0; run < 5; run++ {
		for i := 0; i < 20; i++ {
			row++
			if err := db.DeleteOwned(ctx, id, "w", []store.DeletePart{{Table: "residue_growth", IDs: []int64{row},
				AuditLine: func(n int64) string { return strconv.FormatInt(n, 10) + " record(s) deleted" }}}, 24*time.Hour, nil, false); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second)
		}
		_, pending, _ := db.PurgeResidue(ctx, []string{"residue_growth"}, clock.Now(), store.ResiduePurge{Wait: 50 * time.Millisecond})
		if len(pending) == 0 {
			t.Fatalf("run %d: the purge was expected to be held by the snapshot", run)
		}
	}
	n, err := conn.Int(ctx, "SELECT count(*) FROM privacy_residue WHERE table_name = 'residue_growth'")
	if err != nil {
		t.Fatal(err)
	}
	if marked, _, err := db.ResidueMarks(ctx); err != nil || marked != 1 {
		t.Fatalf("marked tables %d, %v", marked, err)
	}
	if n > 2 {
		t.Errorf("one marked table holds %d mark rows after 100 delete transactions and 5 held purges: the log grows with every delete while purges are held (want at most 2: its oldest and its newest)", n)
	}
}

// TestResidueOldestMarkIsTheOldestTime: residueMarks takes a table's age
// from its lowest-id mark ("ids follow the marks' order"), but a delete
// transaction's mark time is the time DeleteOwned began, and its id is
// drawn when the mark is inserted, after its DELETEs: a delete that waited
// on a row lock (another session's update of the same table) marks with
// its early time under a later id than a delete that began after it and
// committed first. ResidueMarks then reports the later time as the oldest,
// and PurgeResidue judges staleness by it. Harm: the residue age metric
// (campaign_privacy_residue_oldest_age_seconds, which README says to alert
// on) understates how long erased rows have been waiting, by as long as
// the first delete waited; with replicas, by their clock skew too. Fix:
// MIN(since) per table.
func TestResidueOldestMarkIsTheOldestTime(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.Postgres, clock.Now)
	conn := storetest.SQLOf(t, db)
	execAll(t, conn, "CREATE TABLE residue_order (id BIGINT PRIMARY KEY, v TEXT)",
		"INSERT INTO residue_order VALUES (1, 'a'), (2, 'b')")
	var ids []int64
	for i := 0; i < 2; i++ {
		ids = append(ids, newRequest(t, db, &store.Request{ReconciliationValue: "x" + strconv.Itoa(i) + "@example.com", Type: 2, Regulation: 1}))
	}
	if got, err := db.ClaimRequests(ctx, []store.Status{0}, nil, 2, "w", 24*time.Hour); err != nil || len(got) != 2 {
		t.Fatalf("claim: %v %v", got, err)
	}
	del := func(req, row int64) error {
		return db.DeleteOwned(ctx, req, "w", []store.DeletePart{{Table: "residue_order", IDs: []int64{row},
			AuditLine: func(n int64) string { return strconv.FormatInt(n, 10) + " record(s) deleted" }}}, 24*time.Hour, nil, false)
	}
	other := storetest.SQLOf(t, db)
	commit, err := other.Uncommitted(ctx, "UPDATE residue_order SET v = 'c' WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	first := clock.Now()
	ended := make(chan error, 1)
	go func() { ended <- del(ids[0], 1) }()
	if err := conn.AwaitLockWait(ctx, ended); err != nil {
		commit()
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if err := del(ids[1], 2); err != nil {
		commit()
		t.Fatal(err)
	}
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	n, oldest, err := db.ResidueMarks(ctx)
	if err != nil || n != 1 {
		t.Fatalf("marks: %d, %v", n, err)
	}
	if !oldest.Equal(first) {
		t.Errorf("the oldest mark reads %v; the first delete's residue dates from %v (%v older)", oldest, first, oldest.Sub(first))
	}
}
