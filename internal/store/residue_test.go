package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestMayVacuumStatistics: the tests' role (the throwaway cluster's
// superuser) may vacuum pg_statistic; a role that neither owns the
// database nor is a superuser may not, and the service warns about it at
// start. SQLite has no such catalog.
func TestMayVacuumStatistics(t *testing.T) {
	ctx := context.Background()
	if may, err := storetest.Open(t, store.SQLite, nil).MayVacuumStatistics(ctx); err != nil || !may {
		t.Fatalf("SQLite: %v %v, want true", may, err)
	}
	cfg := storetest.Config(t, store.Postgres)
	roleURL, _, _ := storetest.ServiceRole(t, cfg)
	if may, err := storetest.OpenConfig(t, cfg, nil).MayVacuumStatistics(ctx); err != nil || !may {
		t.Fatalf("superuser: %v %v, want true", may, err)
	}
	db, err := store.Open(ctx, store.Config{DatabaseURL: roleURL})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if may, err := db.MayVacuumStatistics(ctx); err != nil || may {
		t.Fatalf("a plain role: %v %v, want false", may, err)
	}
}

// TestPurgeResidueAfterACrash: a process that died after a delete
// committed, before its run's purge, left the table's mark
// (privacy_residue, written in the delete's transaction); the next run's
// purge, with nothing of its own to purge, purges that table and clears
// the mark. A mark made after the run began is that run's own business
// (another workflow running at the same time) and is left alone. Checked
// on the files: the deleted row's value is gone from them.
func TestPurgeResidueAfterACrash(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			conn := storetest.SQLOf(t, db)
			const token = "Crashresidue51c2"
			execAll(t, conn,
				"CREATE TABLE residue_probe (id INTEGER PRIMARY KEY, v TEXT)",
				"INSERT INTO residue_probe VALUES (1, 'filler'), (2, '"+token+"')",
				// What the crashed run's delete committed: the row gone, the mark.
				"DELETE FROM residue_probe WHERE id = 2",
			)
			if err := conn.Exec(ctx, "INSERT INTO privacy_residue (table_name, since) VALUES (?, ?)", "residue_probe", clock.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Hour)
			purge := store.ResiduePurge{Rewrite: true, Wait: 30 * time.Second}

			// A run that began before the mark leaves it.
			purged, pending, err := db.PurgeResidue(ctx, nil, clock.Now().Add(-2*time.Hour), purge)
			if err != nil || len(purged)+len(pending) != 0 {
				t.Fatalf("a run older than the mark: purged %v, pending %v, %v", purged, pending, err)
			}
			purged, pending, err = db.PurgeResidue(ctx, nil, clock.Now(), purge)
			if err != nil || !slices.Equal(purged, []string{"residue_probe"}) || len(pending) != 0 {
				t.Fatalf("purged %v, pending %v, %v; want the marked table", purged, pending, err)
			}
			if n, err := conn.Int(ctx, "SELECT count(DISTINCT table_name) FROM privacy_residue"); err != nil || n != 0 {
				t.Fatalf("%d marks left (%v)", n, err)
			}
			var n int
			if dialect == store.Postgres {
				n = conn.PostgresFileCount(t, ctx, "residue_probe", token)
			} else {
				n = storetest.SQLiteFileCount(t, storetest.ConfigOf(t, db), token)
			}
			if n != 0 {
				t.Fatalf("the deleted value is still in the files %d time(s)", n)
			}
		})
	}
}

// TestPurgeResidueLockedTable: a reader holds the table (ACCESS SHARE, as
// any open transaction that read it does) longer than the purge may wait:
// the rewrite gives up after its tries, a plain VACUUM frees what it can,
// the purge says the lock was not granted, and the mark stays; once the
// reader is gone, the next purge rewrites the table.
func TestPurgeResidueLockedTable(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.Postgres, clock.Now)
	conn := storetest.SQLOf(t, db)
	execAll(t, conn,
		"CREATE TABLE residue_probe (id INTEGER PRIMARY KEY, v TEXT)",
		"INSERT INTO residue_probe VALUES (1, 'filler')",
		"INSERT INTO privacy_residue (table_name, since) VALUES ('residue_probe', now() - interval '1 hour')",
	)
	release, err := conn.LockTableIn(ctx, "residue_probe", "ACCESS SHARE")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// The wait is first spent on the transactions older than the purge:
	// other test packages share the cluster, and theirs must end before
	// the lock is asked for. 10 s leaves them room.
	start := time.Now()
	purge := store.ResiduePurge{Rewrite: true, Wait: 10 * time.Second}
	purged, pending, err := db.PurgeResidue(ctx, nil, clock.Now(), purge)
	if apperr.CodeOf(err) != apperr.Busy || !strings.Contains(err.Error(), "lock to rewrite") ||
		len(purged) != 0 || !slices.Equal(pending, []string{"residue_probe"}) {
		t.Fatalf("purged %v, pending %v, %v; want the lock refused", purged, pending, err)
	}
	if d := time.Since(start); d < 10*time.Second || d > 40*time.Second {
		t.Fatalf("the purge took %v, want the 10 s wait for the lock", d)
	}
	if n, err := conn.Int(ctx, "SELECT count(DISTINCT table_name) FROM privacy_residue"); err != nil || n != 1 {
		t.Fatalf("%d marks (%v), want the table's to stay", n, err)
	}
	release()
	purged, pending, err = db.PurgeResidue(ctx, nil, clock.Now(), purge)
	if err != nil || !slices.Equal(purged, []string{"residue_probe"}) || len(pending) != 0 {
		t.Fatalf("after the reader: purged %v, pending %v, %v", purged, pending, err)
	}
}

// TestPurgeResidueEmptiedTableStatistics: ANALYZE leaves the statistics of
// a table it finds empty as they were, the erased value as the most common
// one; the purge drops them. A table a view uses keeps them (its column
// type cannot be set) and the purge still succeeds, with a warning.
func TestPurgeResidueEmptiedTableStatistics(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.Postgres, clock.Now)
	conn := storetest.SQLOf(t, db)
	execAll(t, conn,
		"CREATE TABLE residue_alone (id INTEGER PRIMARY KEY, v TEXT COLLATE \"C\")",
		"CREATE TABLE residue_viewed (id INTEGER PRIMARY KEY, v TEXT)",
		"CREATE VIEW residue_view AS SELECT v FROM residue_viewed",
		"INSERT INTO residue_alone SELECT g, 'gone@example.com' FROM generate_series(1, 50) g",
		"INSERT INTO residue_viewed SELECT g, 'gone@example.com' FROM generate_series(1, 50) g",
		"ANALYZE residue_alone, residue_viewed",
		"DELETE FROM residue_alone",
		"DELETE FROM residue_viewed",
	)
	stats := func(table string) int64 {
		n, err := conn.Int(ctx, "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = ?", table)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	purge := store.ResiduePurge{Rewrite: true, Wait: 30 * time.Second}
	purged, pending, err := db.PurgeResidue(ctx, []string{"residue_alone", "residue_viewed"}, clock.Now(), purge)
	if err != nil || len(purged) != 2 || len(pending) != 0 {
		t.Fatalf("purged %v, pending %v, %v", purged, pending, err)
	}
	if n := stats("residue_alone"); n != 0 {
		t.Fatalf("the emptied table keeps %d column statistics", n)
	}
	if n := stats("residue_viewed"); n == 0 {
		t.Fatal("the viewed table's statistics should have stayed (its type cannot be set)")
	}
	if n, err := conn.Int(ctx, "SELECT count(*) FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation WHERE a.attrelid = 'residue_alone'::regclass AND a.attname = 'v' AND c.collname = 'C'"); err != nil || n != 1 {
		t.Fatalf("the column lost its collation (%d, %v)", n, err)
	}
}

// execAll runs the set-up statements of a test, in order.
func execAll(t *testing.T, conn *storetest.Conn, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if err := conn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestPurgeResidueLogicalSlot: a logical replication slot (a
// change-data-capture consumer's) keeps the catalogs' old rows for its
// decoding, pg_statistic's replaced statistics among them, whose samples
// hold the erased value. While its consumer lags, the purge says so and
// reports the table pending; once the slot has moved on (here: is
// dropped), the next purge removes them.
func TestPurgeResidueLogicalSlot(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.Postgres, clock.Now)
	conn := storetest.SQLOf(t, db)
	execAll(t, conn,
		"CREATE TABLE residue_decoded (id INTEGER PRIMARY KEY, v TEXT)",
		"INSERT INTO residue_decoded SELECT g, CASE WHEN g <= 40 THEN 'gone7c1d@example.com' ELSE 'kept' END FROM generate_series(1, 50) g",
		"ANALYZE residue_decoded",
	)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	slot := "cp_test_slot_" + hex.EncodeToString(b)
	if err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot(?, 'test_decoding')", slot); err != nil {
		if strings.Contains(err.Error(), "wal_level") {
			t.Skipf("the test server cannot decode (scripts/with-test-postgres sets wal_level=logical): %v", err)
		}
		t.Fatal(err)
	}
	dropSlot := func() {
		_ = conn.Exec(context.Background(), "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ?", slot)
	}
	t.Cleanup(dropSlot)
	// A transaction of a server process holds the horizon as well (in CI,
	// another package's test on the shared cluster may): both are named.
	release, err := conn.HoldSnapshot(ctx, "residue_decoded")
	if err != nil {
		t.Fatal(err)
	}
	execAll(t, conn, "DELETE FROM residue_decoded WHERE v <> 'kept'")
	purged, pending, err := db.PurgeResidue(ctx, []string{"residue_decoded"}, clock.Now(), store.ResiduePurge{Rewrite: true, Wait: 2 * time.Second})
	release()
	if apperr.CodeOf(err) != apperr.Busy || !strings.Contains(err.Error(), "a replication slot") || !strings.Contains(err.Error(), "server process") ||
		len(purged) != 0 || !slices.Equal(pending, []string{"residue_decoded"}) {
		t.Fatalf("purged %v, pending %v, %v; want the process and the slot named", purged, pending, err)
	}
	if n := conn.PostgresFileCount(t, ctx, "residue_decoded", "gone7c1d@example.com"); n == 0 {
		t.Fatal("the slot should have kept the old statistics in pg_statistic")
	}
	dropSlot()
	purged, pending, err = db.PurgeResidue(ctx, []string{"residue_decoded"}, clock.Now(), store.ResiduePurge{Rewrite: true, Wait: 30 * time.Second})
	if err != nil || !slices.Equal(purged, []string{"residue_decoded"}) || len(pending) != 0 {
		t.Fatalf("after the slot: purged %v, pending %v, %v", purged, pending, err)
	}
	if n := conn.PostgresFileCount(t, ctx, "residue_decoded", "gone7c1d@example.com"); n != 0 {
		t.Fatalf("the erased value is still in the files %d time(s)", n)
	}
}
