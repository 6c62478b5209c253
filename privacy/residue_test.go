package privacy_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// residueFixture is the usual fixture, with where its database's files are.
func residueFixture(t *testing.T, dialect string) (*fixture, store.Config) {
	f := newFixture(t, dialect, servertest.Options{})
	return f, storetest.ConfigOf(t, f.env.DB)
}

// insertSubject adds a recipient with a unique first name.
func insertSubject(t *testing.T, f *fixture, email, unique string) {
	if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9301), "email": email, "first_name": unique}); err != nil {
		t.Fatal(err)
	}
}

// TestNoResidueInSQLiteFiles reads the database file and its WAL. After the
// delete run the erased recipient's name is nowhere: not in the table, its
// indexes or sqlite_stat4 (an operator's ANALYZE samples index keys there;
// this SQLite build has STAT4); the email is only on the request row. After
// the cleanup, 90 days later, the email is gone too.
func TestNoResidueInSQLiteFiles(t *testing.T) {
	f, cfg := residueFixture(t, store.SQLite)
	insertSubject(t, f, pgEmail, pgUnique)
	if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	if n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM sqlite_stat4 WHERE tbl = 'nms_recipient'"); err != nil || n == 0 {
		t.Fatalf("sqlite_stat4 holds %d samples of nms_recipient (%v), want some", n, err)
	}
	id := f.create(t, "defaultNamespace1", pgEmail, privacy.TypeDelete, false)
	if _, err := f.env.Privacy.Run(f.ctx, "all"); err != nil {
		t.Fatal(err)
	}
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	if n := storetest.SQLiteFileCount(t, cfg, pgUnique); n != 0 {
		t.Fatalf("the files hold the erased name %d time(s) after the delete", n)
	}
	auditHas(t, f, id, "Residue purged: secure_delete and a WAL checkpoint of ")
	marksLeft(t, f, 0)
	if n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM privacy_requests WHERE reconciliation_value = ?", pgEmail); err != nil || n != 1 {
		t.Fatalf("%d request rows hold the email (%v), want 1 until the cleanup", n, err)
	}
	f.env.Clock.Advance(91 * 24 * time.Hour)
	if reps, err := f.env.Privacy.Run(f.ctx, "all"); err != nil || reps[2].Processed != 1 {
		t.Fatalf("cleanup: %v %v", reps, err)
	}
	if n := storetest.SQLiteFileCount(t, cfg, pgEmail, pgUnique); n != 0 {
		t.Fatalf("the files hold the erased values %d time(s) after the cleanup", n)
	}
	path := filepath.Join(cfg.DataDir, store.SQLiteFile)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(cfg.DataDir); st.Mode().Perm() != 0o700 {
		t.Errorf("data directory has mode %v, want 0700", st.Mode().Perm())
	}
}

func TestDataDirTightenedWhenItExists(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, store.SQLiteFile)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if st, _ := os.Stat(p); st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
}

// The erased recipient's email and first name, in PostgreSQL's files.
const (
	pgEmail  = "residue7f3a9c@example.com"
	pgUnique = "Residuetoken7f3a9c"
)

// TestPostgresNoResidueAfterDelete reads the table's files from the disk:
// after the delete run neither the email nor the first name of the erased
// recipient is in its heap, its indexes or pg_statistic, and after the
// cleanup the email is not in privacy_requests' files either. The recipient is
// the last row written, so a plain VACUUM would have left its bytes in the
// page's free space (see store.ResiduePurge).
func TestPostgresNoResidueAfterDelete(t *testing.T) {
	f, _ := residueFixture(t, store.Postgres)
	conn := storetest.SQLOf(t, f.env.DB)
	insertSubject(t, f, pgEmail, pgUnique)
	if err := conn.Exec(f.ctx, "ANALYZE nms_recipient"); err != nil {
		t.Fatal(err)
	}
	if n := conn.PostgresFileCount(t, f.ctx, "nms_recipient", pgEmail, pgUnique); n < 3 {
		t.Fatalf("the files hold the recipient's values %d time(s) before the delete, want the row, the email index and the statistics", n)
	}
	before, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient")
	if err != nil {
		t.Fatal(err)
	}
	id := f.create(t, "defaultNamespace1", pgEmail, privacy.TypeDelete, false)
	runAll(t, f)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	// Plain SQL: the subject gone, every other recipient still there.
	if after, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient"); err != nil || after != before-1 {
		t.Fatalf("recipients %d → %d (%v), want one fewer", before, after, err)
	}
	if n := conn.PostgresFileCount(t, f.ctx, "nms_recipient", pgEmail, pgUnique); n != 0 {
		t.Fatalf("the erased recipient's values are still in the table's files %d time(s)", n)
	}
	auditHas(t, f, id, "Residue purged: VACUUM (FULL, ANALYZE) of ")
	marksLeft(t, f, 0)
	// The request row keeps the email until the cleanup, 90 days later,
	// whose run ends with the same purge.
	if n := conn.PostgresFileCount(t, f.ctx, "privacy_requests", pgEmail); n == 0 {
		t.Fatal("the request row should hold the email until the cleanup")
	}
	f.env.Clock.Advance(91 * 24 * time.Hour)
	if reps := runAll(t, f); reps[2].Processed != 1 {
		t.Fatalf("cleanup: %v", reps)
	}
	if n := conn.PostgresFileCount(t, f.ctx, "privacy_requests", pgEmail); n != 0 {
		t.Fatalf("the email is still in privacy_requests' files %d time(s) after the cleanup", n)
	}
}

// TestPostgresResidueWaitsForOlderSnapshots: a transaction that began before
// the delete (a report, a pg_dump) still sees the deleted row, so no VACUUM
// may remove it. The purge waits for it; when it is still open after the
// wait, the run says so and the next run, with nothing to delete, purges
// the table again.
func TestPostgresResidueWaitsForOlderSnapshots(t *testing.T) {
	cfg := storetest.Config(t, store.Postgres)
	db := storetest.OpenConfig(t, cfg, nil)
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Privacy: func(c *privacy.Config) {
		withReceipts(c)
		c.ResidueWait = 2 * time.Second
	}})
	conn := storetest.SQLOf(t, db)

	t.Run("released while the purge waits", func(t *testing.T) {
		release, err := conn.HoldSnapshot(f.ctx, "nms_recipient")
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(time.Second, release)
		start := time.Now()
		insertSubject(t, f, pgEmail, pgUnique)
		id := f.create(t, "defaultNamespace1", pgEmail, privacy.TypeDelete, false)
		if _, err := f.env.Privacy.Run(f.ctx, "all"); err != nil {
			// Another test's transaction on the shared cluster may outlast
			// the wait: the request then waits for the next run's purge,
			// as the second case checks.
			t.Logf("the purge did not finish in its wait: %v", err)
			if got := f.status(t, id); got != privacy.StatusDeleteInProgress {
				t.Fatalf("status %v before the purge finished, want deleteInProgress", got)
			}
		} else if d := time.Since(start); d < time.Second {
			t.Fatalf("the run ended after %v, before the older snapshot was released", d)
		}
		purgeUntilClean(t, f, conn)
		if got := f.status(t, id); got != privacy.StatusComplete {
			t.Fatalf("status %v, want complete", got)
		}
	})

	t.Run("still open after the wait", func(t *testing.T) {
		release, err := conn.HoldSnapshot(f.ctx, "nms_recipient")
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		insertSubject(t, f, pgEmail, pgUnique)
		id := f.create(t, "defaultNamespace1", pgEmail, privacy.TypeDelete, false)
		_, err = f.env.Privacy.Run(f.ctx, "all")
		if apperr.CodeOf(err) != apperr.Busy || !strings.Contains(err.Error(), "older than the deletes") {
			t.Fatalf("run: %v, want the purge to say an older transaction holds the rows", err)
		}
		// The rows are gone, their bytes are not: the request is not
		// complete yet.
		if got := f.status(t, id); got != privacy.StatusDeleteInProgress {
			t.Fatalf("status %v, want deleteInProgress until the purge is done", got)
		}
		if _, err := f.env.Privacy.Receipt(f.ctx, id); err == nil {
			t.Fatal("a receipt before the purge was done")
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", pgEmail); err != nil || n != 0 {
			t.Fatalf("%d recipient row(s) of the subject left (%v)", n, err)
		}
		if n := conn.PostgresFileCount(t, f.ctx, "nms_recipient", pgUnique); n == 0 {
			t.Fatal("the held snapshot should have kept the deleted row's old version")
		}
		if logs := f.env.Logs.String(); strings.Contains(logs, pgEmail) || strings.Contains(logs, pgUnique) {
			t.Fatal("the log holds the erased recipient's values")
		}
		auditHas(t, f, id, "not finished (see the service log); the next run purges them again.")
		auditHas(t, f, id, "The request completes after the next run's residue purge.")
		if n, _ := conn.Int(f.ctx, "SELECT count(DISTINCT table_name) FROM privacy_residue"); n == 0 {
			t.Fatal("the tables left unpurged have no mark")
		}
		release()
		purgeUntilClean(t, f, conn)
		marksLeft(t, f, 0)
		auditHas(t, f, id, "Residue purged: VACUUM (FULL, ANALYZE) of ")
		if got := f.status(t, id); got != privacy.StatusComplete {
			t.Fatalf("status %v after the next run's purge, want complete", got)
		}
		if _, c := f.receiptOf(t, id); !strings.HasPrefix(c.ResiduePurge, "VACUUM (FULL, ANALYZE) of ") {
			t.Fatalf("the receipt names no purge: %+v", c)
		}
	})
}

// marksLeft fails unless privacy_residue holds want marks.
func marksLeft(t *testing.T, f *fixture, want int64) {
	t.Helper()
	if n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(DISTINCT table_name) FROM privacy_residue"); err != nil || n != want {
		t.Fatalf("%d residue marks (%v), want %d", n, err, want)
	}
}

// auditHas fails unless the request's audit holds text.
func auditHas(t *testing.T, f *fixture, id int64, text string) {
	t.Helper()
	r, err := f.env.DB.FindRequestByID(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Audit, text) {
		t.Fatalf("the audit of request %d has no %q:\n%s", id, text, r.Audit)
	}
}

// purgeUntilClean runs the delete workflow, which has nothing left to
// delete, until its purge finishes, then checks the files.
func purgeUntilClean(t *testing.T, f *fixture, conn *storetest.Conn) {
	t.Helper()
	_, err := f.env.Privacy.Run(f.ctx, privacy.Delete)
	finishPurge(t, f, err)
	if n := conn.PostgresFileCount(t, f.ctx, "nms_recipient", pgEmail, pgUnique); n != 0 {
		t.Fatalf("the erased recipient's values are still in the table's files %d time(s)", n)
	}
}

// runAll runs every workflow, and finishes a purge that another test's
// transaction held past its wait (the test cluster is shared).
func runAll(t *testing.T, f *fixture) []privacy.Report {
	t.Helper()
	reps, err := f.env.Privacy.Run(f.ctx, "all")
	finishPurge(t, f, err)
	return reps
}

// finishPurge takes a run's error: a purge held by an older transaction
// (Busy) is finished by delete runs, which have nothing left to delete,
// within a minute; any other error fails the test.
func finishPurge(t *testing.T, f *fixture, err error) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); err != nil; {
		if apperr.CodeOf(err) != apperr.Busy || time.Now().After(deadline) {
			t.Fatalf("run: %v", err)
		}
		_, err = f.env.Privacy.Run(f.ctx, privacy.Delete)
	}
}

// TestNoResidueOfALargeSubject: a subject whose 3,000 delivery logs fill
// whole pages, which the delete frees (SQLite's freelist, PostgreSQL's
// emptied pages): none of their text is left in the files after the
// delete run, and after the cleanup neither is the email.
func TestNoResidueOfALargeSubject(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		f := &fixture{env: env, ctx: context.Background()}
		cfg := storetest.ConfigOf(t, env.DB)
		conn := storetest.SQLOf(t, env.DB)
		// An email and a label of its own: other tests' statistics in the
		// shared pg_statistic hold BigSubject's.
		const email, label = "big-residue@example.com", "Residue test newsletter, edition"
		env.BigSubjectOf(t, email, label+" ", 3000)
		count := func(tokens ...string) int {
			if dialect == store.Postgres {
				return conn.PostgresFileCount(t, f.ctx, "nms_broad_log_rcp", tokens...) + conn.PostgresFileCount(t, f.ctx, "privacy_requests", tokens...)
			}
			return storetest.SQLiteFileCount(t, cfg, tokens...)
		}
		if n := count(label); n < 3000 {
			t.Fatalf("the files hold the logs' text %d time(s) before the delete, want every log", n)
		}
		rows := func(table string) int64 {
			n, err := conn.Int(f.ctx, "SELECT count(*) FROM "+table)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if rows("nms_recipient") != 1 || rows("nms_broad_log_rcp") != 3000 {
			t.Fatal("the set-up is not one recipient with 3,000 logs")
		}
		id := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
		runAll(t, f)
		if got := f.status(t, id); got != privacy.StatusComplete {
			t.Fatalf("status %v, want complete", got)
		}
		if rows("nms_recipient") != 0 || rows("nms_broad_log_rcp") != 0 {
			t.Fatal("rows of the subject are left after the delete")
		}
		if n := count(label); n != 0 {
			t.Fatalf("the logs' text is still in the files %d time(s) after the delete", n)
		}
		f.env.Clock.Advance(91 * 24 * time.Hour)
		runAll(t, f)
		if n := count(email); n != 0 {
			t.Fatalf("the email is still in the files %d time(s) after the cleanup", n)
		}
	})
}

// TestTwoStepDeleteDestroysTheReviewedFile: a two-step delete's reviewed
// file holds the subject's data, encrypted under a key of its own that the
// database keeps wrapped. The file and the key go with the delete (ACC
// keeps the file until the 90-day cleanup): once the request is complete,
// no row of them is left (plain SQL), the wrapped key's bytes are in none
// of the database's files, the file cannot be opened, and the receipt says
// it was purged that day.
func TestTwoStepDeleteDestroysTheReviewedFile(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		// The clock moves on during the delete, as a real one does: the
		// file's tables are marked after the run began, so only the run's
		// own list of tables gets them purged.
		var f *fixture
		f = newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.Failpoint = func(name string) error {
				if name == "delete-after-batch" {
					f.env.Clock.Advance(time.Second)
				}
				return nil
			}
		}})
		cfg := storetest.ConfigOf(t, f.env.DB)
		conn := storetest.SQLOf(t, f.env.DB)
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		key, err := conn.Bytes(f.ctx, "SELECT wrapped_key FROM privacy_exports WHERE request_id = ?", id)
		if err != nil || len(key) < 16 {
			t.Fatalf("wrapped key %x (%v)", key, err)
		}
		rows := func() (n int64) {
			for _, table := range []string{"privacy_exports", "privacy_export_chunks"} {
				c, err := conn.Int(f.ctx, "SELECT count(*) FROM "+table+" WHERE request_id = ?", id)
				if err != nil {
					t.Fatal(err)
				}
				n += c
			}
			return n
		}
		inFiles := func() int {
			if dialect == store.Postgres {
				return conn.PostgresFileCount(t, f.ctx, "privacy_exports", string(key))
			}
			return storetest.SQLiteFileCount(t, cfg, string(key))
		}
		if rows() < 2 || inFiles() == 0 {
			t.Fatal("no reviewed file, or its key is not in the files: the check would prove nothing")
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		_, err = f.env.Privacy.Run(f.ctx, privacy.Delete)
		finishPurge(t, f, err)
		if got := f.status(t, id); got != privacy.StatusComplete {
			t.Fatalf("status %v, want complete", got)
		}
		if n := rows(); n != 0 {
			t.Fatalf("%d row(s) of the reviewed file left", n)
		}
		if n := inFiles(); n != 0 {
			t.Fatalf("the wrapped key is still in the database's files %d time(s)", n)
		}
		if _, _, err := f.env.Privacy.OpenExport(f.ctx, id); !errors.Is(err, privacy.ErrDestroyed) {
			t.Fatalf("opening the reviewed file: %v, want ErrDestroyed", err)
		}
		if v, err := f.env.Privacy.Request(f.ctx, operator, id); err != nil || !v.Destroyed || v.FileReady {
			t.Fatalf("the request's view: %+v %v", v, err)
		}
		auditHas(t, f, id, "The reviewed file and its key are destroyed.")
		if _, c := f.receiptOf(t, id); c.FilePurgedOn != f.env.Clock.Now().UTC().Format("2006-01-02") || c.Tables[0].Exported == 0 || c.Tables[0].Deleted == 0 {
			t.Fatalf("claims: %+v", c)
		}
	})
}

// TestPostgresNoResidueUnderConcurrentReads: the delete run's purge while
// other sessions of the database keep reading, as the service's own SOAP
// calls do. Each read holds a snapshot for a moment; one that began before
// the purge's ANALYZE replaced a table's statistics still sees the old
// statistics rows (the erased email among their sampled values), so a
// vacuum of pg_statistic that does not wait for it keeps them.
func TestPostgresNoResidueUnderConcurrentReads(t *testing.T) {
	f, cfg := residueFixture(t, store.Postgres)
	conn := storetest.SQLOf(t, f.env.DB)
	insertSubject(t, f, pgEmail, pgUnique)
	if err := conn.Exec(f.ctx, "ANALYZE nms_recipient"); err != nil {
		t.Fatal(err)
	}
	before, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient")
	if err != nil {
		t.Fatal(err)
	}
	readers, err := sql.Open("pgx", cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer readers.Close()
	ctx, stop := context.WithCancel(f.ctx)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 20 * time.Millisecond) // staggered: one is always running
			for ctx.Err() == nil {
				_, _ = readers.ExecContext(ctx, "SELECT count(*) FROM privacy_requests, pg_sleep(0.06)")
			}
		})
	}
	id := f.create(t, "defaultNamespace1", pgEmail, privacy.TypeDelete, false)
	_, err = f.env.Privacy.Run(f.ctx, "all")
	stop()
	wg.Wait()
	finishPurge(t, f, err)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	// Plain SQL: the subject gone, every other recipient still there.
	if after, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_recipient"); err != nil || after != before-1 {
		t.Fatalf("recipients %d → %d (%v), want one fewer", before, after, err)
	}
	if n := conn.PostgresFileCount(t, f.ctx, "nms_recipient", pgEmail, pgUnique); n != 0 {
		t.Fatalf("the erased recipient's values are still in the table's files %d time(s)", n)
	}
}
