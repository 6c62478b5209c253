package main

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// TestMain removes the binary buildBinary built, with its directory.
func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// buildBinary builds campaign-privacy once for the tests that need a real
// process to kill, with the flags of the README's build (-trimpath: one
// build cache for both). -buildvcs=auto stamps the revision `version` prints,
// whatever GOFLAGS says.
func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cp-fault-bin-*")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "campaign-privacy")
		out, err := exec.Command("go", "build", "-trimpath", "-buildvcs=auto", "-o", binary, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New(string(out))
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binary
}

// faultSetup seeds five demo recipients and one one-step delete request
// for demo-3, collected and waiting for deletion. It returns the request id
// and the row counts before the delete.
func faultSetup(t *testing.T, env map[string]string) (int64, map[string]int64) {
	t.Helper()
	ids := slices.Collect(maps.Keys(demoRequests(t, env, privacy.TypeDelete, 3)))
	id := ids[0]
	if out, err := run(t, env, "", "workflow", "run", privacy.Collect); err != nil || !strings.Contains(out, "1 processed") {
		t.Fatalf("collect: %v %s", err, out)
	}
	return id, counts(t, env)
}

// demoRequests loads 5 demo recipients and creates, over SOAP on the real
// serve, a one-step request of type typ for each demo recipient n given. It
// returns their values by id.
func demoRequests(t *testing.T, env map[string]string, typ int, ns ...int64) map[int64]string {
	t.Helper()
	if out, err := run(t, env, "", "demo-data", "--recipients", "5"); err != nil {
		t.Fatalf("demo-data: %v %s", err, out)
	}
	env["CP_ADMIN_PASSWORD"] = "admin pass 1"
	url, _, stop := serve(t, env)
	defer stop()
	body := post(t, url, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("admin", "admin pass 1")))
	token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
	values := map[int64]string{}
	for _, n := range ns {
		call := servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+
			`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue>`+demodata.Email(n)+
			`</reconciliationValue><type>`+strconv.Itoa(typ)+`</type><confirmDeletePending>false</confirmDeletePending><regulation>1</regulation></m:CreateRequestByName>`)
		id, err := strconv.ParseInt(servertest.Between(post(t, url, "nms:privacyRequest#CreateRequestByName", call), "<id xsi:type='xsd:int'>", "<"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		values[id] = demodata.Email(n)
	}
	return values
}

var faultTables = []string{"nms_recipient", "nms_broad_log_rcp", "nms_tracking_log_rcp", "nms_broad_log_event_histo", "nms_rcp_grp_rel",
	"nms_visitor", "nms_proposition_visitor", "nms_sub_histo", "nms_subscription", "nms_proposition_rcp", "nms_delivery", "nms_broad_log_msg", "nms_tracking_url", "nms_group", "nms_service"}

// subjectRows are what demo-3 owns in each table (see internal/demodata).
var subjectRows = map[string]int64{"nms_recipient": 1, "nms_broad_log_rcp": 3, "nms_tracking_log_rcp": 2, "nms_broad_log_event_histo": 1,
	"nms_rcp_grp_rel": 1, "nms_visitor": 1, "nms_proposition_visitor": 1, "nms_sub_histo": 2, "nms_subscription": 1, "nms_proposition_rcp": 1}

func openDB(t *testing.T, env map[string]string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), store.Config{DatabaseURL: env["CP_DATABASE_URL"], DataDir: env["CP_DATA_DIR"]})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// counts counts each table's rows with plain SQL, not through the store.
func counts(t *testing.T, env map[string]string) map[string]int64 {
	t.Helper()
	conn := plainSQL(t, env)
	out := map[string]int64{}
	for _, table := range faultTables {
		n, err := conn.Int(context.Background(), "SELECT count(*) FROM "+table)
		if err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// plainSQL is a connection of its own to the test's database.
func plainSQL(t *testing.T, env map[string]string) *storetest.Conn {
	t.Helper()
	return storetest.SQLOf(t, storetest.OpenConfig(t, store.Config{DatabaseURL: env["CP_DATABASE_URL"], DataDir: env["CP_DATA_DIR"]}, nil))
}

// residueMarks counts the tables marked for a residue purge.
func residueMarks(t *testing.T, env map[string]string) int64 {
	t.Helper()
	n, err := plainSQL(t, env).Int(context.Background(), "SELECT count(DISTINCT table_name) FROM privacy_residue")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkInvariants verifies I1 (one legal request row), I2 (each table of
// the subject fully cleared or untouched, neighbours untouched) and I4
// (exactly one terminal audit line) after a fault.
func checkInvariants(t *testing.T, env map[string]string, id int64, before map[string]int64, done bool) {
	t.Helper()
	after := counts(t, env)
	for _, table := range faultTables {
		want := before[table]
		if done {
			want -= subjectRows[table]
		}
		if after[table] != want {
			t.Errorf("%s: %d rows, want %d", table, after[table], want)
		}
	}
	db := openDB(t, env)
	defer db.Close()
	r, err := db.FindRequestByID(context.Background(), id)
	if err != nil {
		t.Fatalf("I1: the request row is lost: %v", err)
	}
	if done && (privacy.Status(r.Status) != privacy.StatusComplete || strings.Count(r.Audit, "Request is complete.") != 1) {
		t.Fatalf("I1/I4: status %s, audit:\n%s", privacy.Status(r.Status), r.Audit)
	}
}

// TestKill9DuringDelete: the process is killed (SIGKILL) right after the
// first delete batch; a later run takes the request back once the lease
// has run out and finishes the delete exactly.
func TestKill9DuringDelete(t *testing.T) {
	bin := buildBinary(t)
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			env["CP_DELETE_BATCH"] = "1"
			env["CP_WORKFLOW_LEASE"] = "2s"
			id, before := faultSetup(t, env)

			runKilled(t, bin, env, privacy.Delete, "delete-after-batch")
			db := openDB(t, env)
			r, err := db.FindRequestByID(context.Background(), id)
			db.Close()
			if err != nil || privacy.Status(r.Status) != privacy.StatusDeleteInProgress || strings.Count(r.Audit, "record(s) deleted in") != 1 {
				t.Fatalf("after the kill: %v %+v", err, r)
			}
			// The recorded progress matches the data: one row is gone.
			mid := counts(t, env)
			var gone int64
			for table := range subjectRows {
				gone += before[table] - mid[table]
			}
			if gone != 1 {
				t.Fatalf("%d rows gone after one batch of 1", gone)
			}
			// The batch marked its table for the residue purge the killed
			// run never reached; the resumed run purges it.
			if n := residueMarks(t, env); n != 1 {
				t.Fatalf("%d residue marks after the kill, want the batch's table", n)
			}

			time.Sleep(2100 * time.Millisecond) // the dead worker's lease
			if out, err := run(t, env, "", "workflow", "run", privacy.Delete); err != nil || !strings.Contains(out, "1 processed") {
				t.Fatalf("resume: %v %s", err, out)
			}
			checkInvariants(t, env, id, before, true)
			if n := residueMarks(t, env); n != 0 {
				t.Fatalf("%d residue marks after the resumed run", n)
			}
		})
	}
}

// testClusterRestart returns a function that restarts the test's own
// throwaway PostgreSQL cluster (CP_TEST_PG_DATA, set by
// scripts/with-test-postgres) in a pg_ctl shutdown mode ("fast", or
// "immediate": a crash, recovered from the WAL at the start), never the
// machine's server. It skips the test unless CP_TEST_PG_RESTART is set:
// every test sharing the cluster would see the restart, so make test runs
// these tests alone, after the main suite. what says what the restart
// interrupts.
func testClusterRestart(t *testing.T, what string) func(mode string) {
	t.Helper()
	if os.Getenv("CP_TEST_PG_RESTART") == "" {
		t.Skip("set CP_TEST_PG_RESTART=1 to restart the test cluster during " + what + " (make test does, alone)")
	}
	data, pgBin := os.Getenv("CP_TEST_PG_DATA"), os.Getenv("CP_TEST_PG_BIN")
	if data == "" || pgBin == "" {
		msg := "restarting PostgreSQL needs the throwaway cluster of scripts/with-test-postgres (CP_TEST_PG_DATA, CP_TEST_PG_BIN)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return func(mode string) {
		t.Helper()
		// -l: the restarted server logs to the file, not to this pipe.
		args := []string{filepath.Join(pgBin, "pg_ctl"), "-D", data, "-l", filepath.Join(filepath.Dir(data), "server.log"), "-w", "-m", mode, "restart"}
		if os.Geteuid() == 0 {
			args = append([]string{"runuser", "-u", "postgres", "--"}, args...)
		}
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("restart: %v %s", err, out)
		}
	}
}

// TestPostgresRestartDuringDelete restarts the PostgreSQL server while a
// delete pauses between batches. It restarts the test's own throwaway
// cluster (CP_TEST_PG_DATA, set by scripts/with-test-postgres), never the
// machine's server, and runs only when CP_TEST_PG_RESTART is set: every
// test sharing the cluster would see the restart, so make test runs it
// alone, after the main suite.
func TestPostgresRestartDuringDelete(t *testing.T) {
	restart := testClusterRestart(t, "a delete")
	bin := buildBinary(t)
	// fast: the server stops its sessions and checkpoints; immediate: it
	// crashes, and recovers from its WAL as it starts again.
	for _, mode := range []string{"fast", "immediate"} {
		t.Run(mode, func(t *testing.T) {
			env := testEnv(t, store.Postgres)
			env["CP_DELETE_BATCH"] = "1"
			env["CP_WORKFLOW_LEASE"] = "2s"
			env["CP_RETRY_DELAY"] = "1s"
			id, before := faultSetup(t, env)
			deleted := func() bool { return counts(t, env)["nms_recipient"] < before["nms_recipient"] }
			restartDuringRun(t, bin, env, privacy.Delete, "delete-after-batch", deleted, func() { restart(mode) })
			untilProcessedNone(t, env, privacy.Delete, id)
			checkInvariants(t, env, id, before, true)
		})
	}
}

// TestPostgresCrashDuringCollect (security-bar #90, the collect's side):
// the test cluster crashes (pg_ctl -m immediate) while a collect run
// writes the first of three access files, then recovers from its WAL.
// The runs after it complete every request once: each has one file,
// complete, whose chunks are all there; its audit says once that the data
// is ready;
// the audit chain verifies; no file is left half written.
func TestPostgresCrashDuringCollect(t *testing.T) {
	restart := testClusterRestart(t, "a collect")
	bin := buildBinary(t)
	env := testEnv(t, store.Postgres)
	env["CP_WORKFLOW_LEASE"] = "2s"
	env["CP_RETRY_DELAY"] = "1s"
	values := demoRequests(t, env, privacy.TypeAccess, 1, 2, 3)
	conn := plainSQL(t, env)
	ctx := context.Background()
	writing := func() bool {
		n, err := conn.Int(ctx, "SELECT count(*) FROM privacy_exports")
		return err == nil && n > 0
	}
	restartDuringRun(t, bin, env, privacy.Collect, "export-chunk", writing, func() { restart("immediate") })
	var ids []int64
	for id := range values {
		ids = append(ids, id)
	}
	untilProcessedNone(t, env, privacy.Collect, ids...)
	for query, want := range map[string]int64{
		"SELECT count(*) FROM privacy_exports WHERE complete":                                                                                     3,
		"SELECT count(*) FROM privacy_exports WHERE NOT complete":                                                                                 0,
		"SELECT count(*) FROM privacy_exports e WHERE chunks <> (SELECT count(*) FROM privacy_export_chunks c WHERE c.request_id = e.request_id)": 0,
		"SELECT count(*) FROM privacy_export_chunks c WHERE NOT EXISTS (SELECT 1 FROM privacy_exports e WHERE e.request_id = c.request_id)":       0,
	} {
		if n, err := conn.Int(ctx, query); err != nil || n != want {
			t.Errorf("%s: %d (%v), want %d", query, n, err, want)
		}
	}
	db := openDB(t, env)
	defer db.Close()
	for _, id := range ids {
		r, err := db.FindRequestByID(ctx, id)
		if err != nil || strings.Count(r.Audit, "Collecting data is finished.") != 1 {
			t.Fatalf("request %d: %v, audit:\n%s", id, err, r.Audit)
		}
	}
	if _, err := db.VerifyAuditChain(ctx, nil); err != nil {
		t.Fatalf("audit chain: %v", err)
	}
}

// restartDuringRun runs `workflow run <workflow>` of the real binary with a
// failpoint that sleeps 3 s at failpoint, restarts the database once
// inside says the run is inside its work (it polls it), and waits for the
// run, which may fail or finish: either way nothing may be lost.
func restartDuringRun(t *testing.T, bin string, env map[string]string, workflow, failpoint string, inside func() bool, restart func()) {
	t.Helper()
	cmd := exec.Command(bin, "workflow", "run", workflow)
	cmd.Env = append(os.Environ(), "CP_FAILPOINT="+failpoint+":sleep=3s")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); !inside(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the %s run never reached its work", workflow)
		}
	}
	restart()
	_ = cmd.Wait()
}

// untilProcessedNone runs `workflow run <workflow>` (after the 2 s lease
// of a run the restart broke) until one processes nothing and every
// request of ids is complete, for at most a minute.
func untilProcessedNone(t *testing.T, env map[string]string, workflow string, ids ...int64) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; {
		time.Sleep(2100 * time.Millisecond)
		out, err := run(t, env, "", "workflow", "run", workflow)
		if err == nil && strings.Contains(out, "0 processed") {
			db := openDB(t, env)
			complete := 0
			for _, id := range ids {
				if r, ferr := db.FindRequestByID(context.Background(), id); ferr == nil && privacy.Status(r.Status) == privacy.StatusComplete {
					complete++
				}
			}
			db.Close()
			if complete == len(ids) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the %s did not finish after the restart: %v %s", workflow, err, out)
		}
	}
}

// TestShutdownDuringDeleteRun (security-bar #12): the service is stopped
// while its scheduled delete run waits before the residue purge (the
// failpoint sleeps 2 s there). Serve waits for the run, which starts no
// purge and releases its deleted request: after the stop the request is
// deleteInProgress, claimed by no one, its rows gone (plain counts) and its
// tables marked; the next run completes it at once, without waiting for a
// lease, and purges.
func TestShutdownDuringDeleteRun(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			id, before := faultSetup(t, env)
			env["CP_WORKFLOW_SCHEDULE"] = "1s"
			env["CP_FAILPOINT"] = "residue-purge:sleep=2s"
			_, out, stop := serve(t, env)
			request := func() *store.Request {
				db := openDB(t, env)
				defer db.Close()
				r, err := db.FindRequestByID(context.Background(), id)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(request().Audit, "Records deleted;"); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the scheduled run did not delete:\n%s", out)
				}
			}
			start := time.Now()
			stop()
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("the shutdown took %s", d)
			}
			if r := request(); privacy.Status(r.Status) != privacy.StatusDeleteInProgress || r.ClaimedBy != nil || strings.Contains(r.Audit, "Request is complete.") {
				t.Fatalf("after the stop: %s, claimed by %v, audit:\n%s", privacy.Status(r.Status), r.ClaimedBy, r.Audit)
			}
			checkInvariantsRows(t, env, before)
			if n := residueMarks(t, env); n == 0 {
				t.Fatal("no residue mark after the stopped run")
			}
			if out, err := run(t, env, "", "workflow", "run", privacy.Delete); err != nil || !strings.Contains(out, "1 processed") {
				t.Fatalf("the next run: %v %s", err, out)
			}
			checkInvariants(t, env, id, before, true)
			if n := residueMarks(t, env); n != 0 {
				t.Fatalf("%d residue marks after the next run", n)
			}
		})
	}
}

// checkInvariantsRows: exactly the subject's rows are gone.
func checkInvariantsRows(t *testing.T, env map[string]string, before map[string]int64) {
	t.Helper()
	after := counts(t, env)
	for _, table := range faultTables {
		if want := before[table] - subjectRows[table]; after[table] != want {
			t.Errorf("%s: %d rows, want %d", table, after[table], want)
		}
	}
}

// TestKill9DuringCleanup (security-bar #101, a crash mid-purge): three
// access requests past the retention period (their times moved 100 days
// back by plain SQL); the cleanup is killed
// (SIGKILL) after purging the first. Each request is purged in one
// transaction: one is purged whole (value blank, file and key gone), the
// other two are untouched, and the tables are marked for the residue
// purge. The next cleanup purges the other two, each once, and clears the
// marks.
func TestKill9DuringCleanup(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			values := demoRequests(t, env, privacy.TypeAccess, 1, 2, 3)
			if out, err := run(t, env, "", "workflow", "run", privacy.Collect); err != nil || !strings.Contains(out, "3 processed") {
				t.Fatalf("collect: %v %s", err, out)
			}
			// 100 days ago: past the 90-day retention.
			conn, old := plainSQL(t, env), time.Now().Add(-100*24*time.Hour).UTC()
			if err := conn.Exec(context.Background(), "UPDATE privacy_exports SET created = ?", old); err != nil {
				t.Fatal(err)
			}
			if err := conn.Exec(context.Background(), "UPDATE privacy_requests SET last_modified = ?", old); err != nil {
				t.Fatal(err)
			}

			env["CP_WORKFLOW_LEASE"] = "2s"
			runKilled(t, buildBinary(t), env, privacy.Cleanup, "cleanup-after-request")
			// state: per request, whether it is purged whole, or untouched.
			state := func() (purged int) {
				db := openDB(t, env)
				defer db.Close()
				for id, value := range values {
					r, err := db.FindRequestByID(context.Background(), id)
					if err != nil {
						t.Fatal(err)
					}
					_, ferr := db.FindExport(context.Background(), id)
					switch lines := strings.Count(r.Audit, "Collected data deleted after"); {
					case r.PurgedAt != nil && r.ReconciliationValue == "" && apperr.CodeOf(ferr) == apperr.NotFound && lines == 1:
						purged++
					case r.PurgedAt == nil && r.ReconciliationValue == value && ferr == nil && lines == 0:
					default:
						t.Fatalf("request %d half purged: purged at %v, value %q, export %v, %d purge line(s)", id, r.PurgedAt, r.ReconciliationValue, ferr, lines)
					}
				}
				return purged
			}
			if n := state(); n != 1 {
				t.Fatalf("%d requests purged before the kill, want 1", n)
			}
			if n := residueMarks(t, env); n == 0 {
				t.Fatal("the purged request's tables are not marked")
			}
			time.Sleep(2100 * time.Millisecond) // the dead run's lease on the workflow
			if out, err := run(t, env, "", "workflow", "run", privacy.Cleanup); err != nil || !strings.Contains(out, "2 processed") {
				t.Fatalf("the next cleanup: %v %s", err, out)
			}
			if n := state(); n != 3 {
				t.Fatalf("%d requests purged after the next cleanup, want 3", n)
			}
			if n := residueMarks(t, env); n != 0 {
				t.Fatalf("%d residue marks after the next cleanup", n)
			}
		})
	}
}

// runKilled runs the workflow with the real binary and checks that it was
// killed (SIGKILL) at the failpoint.
func runKilled(t *testing.T, bin string, env map[string]string, workflow, failpoint string) {
	t.Helper()
	cmd := exec.Command(bin, "workflow", "run", workflow)
	cmd.Env = append(os.Environ(), "CP_FAILPOINT="+failpoint)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("%s was not killed at %s: %v\n%s", workflow, failpoint, err, out)
	}
}
