package privacy_test

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestStatisticsLockedRequestNotComplete: a session idle in a
// READ COMMITTED transaction that read pg_stats (a monitoring query, a DBA's
// psql) holds no snapshot, so it is no "older transaction", but it holds
// pg_statistic's AccessShareLock. The purge's VACUUM FULL of pg_statistic
// cannot get its lock; the old statistics rows of nms_recipient (the
// erased email among their samples) are then only freed by a plain
// VACUUM, not zeroed. README "Complete means purged": the request must not
// be complete while the email is still in pg_statistic's file.
func TestStatisticsLockedRequestNotComplete(t *testing.T) {
	cfg := storetest.Config(t, store.Postgres)
	db := storetest.OpenConfig(t, cfg, nil)
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Privacy: func(c *privacy.Config) {
		withReceipts(c)
		c.ResidueWait = 3 * time.Second
	}})
	conn := storetest.SQLOf(t, db)
	insertSubject(t, f, pgEmail, pgUnique)
	if err := conn.Exec(f.ctx, "ANALYZE nms_recipient"); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Int(f.ctx, "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'nms_recipient' AND histogram_bounds::text LIKE ?", "%"+pgEmail+"%"); err != nil || n == 0 {
		t.Fatalf("the statistics hold no sample of the email (%d, %v): the check would prove nothing", n, err)
	}
	other, err := sql.Open("pgx", cfg.DatabaseURL+sep(cfg.DatabaseURL)+"default_query_exec_mode=simple_protocol") // as psql
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(f.ctx, nil) // READ COMMITTED
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(f.ctx, "SELECT count(*) FROM pg_stats").Scan(&n); err != nil {
		t.Fatal(err)
	}
	// The transaction now sits idle: no snapshot, no xid, the lock held.
	var pid int
	if err := tx.QueryRowContext(f.ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	var xmin, xid, locks sql.NullString
	if err := other.QueryRowContext(f.ctx, "SELECT backend_xmin::text, backend_xid::text, (SELECT string_agg(mode, ',') FROM pg_locks WHERE pid = a.pid AND relation = 'pg_catalog.pg_statistic'::regclass) FROM pg_stat_activity a WHERE pid = $1", pid).Scan(&xmin, &xid, &locks); err != nil {
		t.Fatal(err)
	}
	t.Logf("idle session %d: backend_xmin %v, backend_xid %v, locks on pg_statistic %v", pid, xmin, xid, locks)
	id := f.create(t, "defaultNamespace1", pgEmail, privacy.TypeDelete, false)
	_, runErr := f.env.Privacy.Run(f.ctx, "all")
	status := f.status(t, id)
	if rows, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", pgEmail); err != nil || rows != 0 {
		t.Fatalf("%d recipient row(s) left (%v)", rows, err)
	}
	left := conn.PostgresFileCount(t, f.ctx, "nms_recipient", pgEmail, pgUnique)
	t.Logf("run error: %v; status %s; the erased values in nms_recipient's and pg_statistic's files: %d time(s)", runErr, status, left)
	if status == privacy.StatusComplete && left > 0 {
		r, _ := f.env.DB.FindRequestByID(f.ctx, id)
		_, c := f.receiptOf(t, id)
		t.Fatalf("request complete (receipt residue_purge %q) while the erased values are still in the files %d time(s); audit tail:\n%s",
			c.ResiduePurge, left, tail(r.Audit, 300))
	}
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

// TestNoFileKeyLeft: the wrapped keys of the files the service
// wrote for a subject (a two-step delete's review file of each round, an
// access request's file) are in none of the database's files once the
// delete is complete, and once the access request's cleanup has run.
func TestNoFileKeyLeft(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		cfg := storetest.ConfigOf(t, f.env.DB)
		conn := storetest.SQLOf(t, f.env.DB)
		keyOf := func(id int64) []byte {
			key, err := conn.Bytes(f.ctx, "SELECT wrapped_key FROM privacy_exports WHERE request_id = ?", id)
			if err != nil || len(key) < 16 {
				t.Fatalf("wrapped key %x (%v)", key, err)
			}
			return key
		}
		inFiles := func(keys ...[]byte) int {
			n := 0
			for _, k := range keys {
				if dialect == store.Postgres {
					n += conn.PostgresFileCount(t, f.ctx, "privacy_exports", string(k))
				} else {
					n += storetest.SQLiteFileCount(t, cfg, string(k))
				}
			}
			return n
		}
		rcp := recipientID(t, f, 1)
		del := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
		access := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		k1, ka := keyOf(del), keyOf(access)
		if err := conn.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990001), "recipient_id": rcp, "address": demodata.Email(1)}); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, del); err != nil {
			t.Fatal(err)
		}
		runAll(t, f)
		if s := f.status(t, del); s != privacy.StatusConfirmDeletePending {
			t.Fatalf("after round 1: %s", s)
		}
		k2 := keyOf(del)
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, del); err != nil {
			t.Fatal(err)
		}
		runAll(t, f)
		if s := f.status(t, del); s != privacy.StatusComplete {
			t.Fatalf("after round 2: %s", s)
		}
		if n := inFiles(k1, k2); n != 0 {
			t.Errorf("the review files' wrapped keys are still in the database's files %d time(s) after complete", n)
		}
		f.env.Clock.Advance(91 * 24 * time.Hour)
		runAll(t, f)
		if n, _ := conn.Int(f.ctx, "SELECT count(*) FROM privacy_exports WHERE request_id = ?", access); n != 0 {
			t.Fatal("the access file survived the cleanup")
		}
		if n := inFiles(ka); n != 0 {
			t.Errorf("the access file's wrapped key is still in the database's files %d time(s) after the cleanup", n)
		}
	})
}
