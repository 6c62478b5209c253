package privacy_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// The one-step deletes of one claim end in one batch commit: their rows,
// the check, their step's end and its audit chain lines, all or nothing.
// These tests break that transaction in its middle (after the deletes and
// the status updates ran, at the hook called for each request under the
// chain head) and check, against plain counts, that every request is
// either complete with its receipt or still resumable, never half-applied.

// batchFixture: four one-step deletes of demo recipients 1-4, collected.
func batchFixture(t *testing.T, dialect string, failpoint func(name string) error) (*fixture, []int64, map[string]int64) {
	f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
		withReceipts(c)
		c.Failpoint = failpoint
		// One worker: its claim takes the four requests, one batch. The
		// four workers PostgreSQL has by default can split them between
		// their claims (SKIP LOCKED, on a busy machine), and the
		// failpoint's count then falls on other batches.
		c.Workers = 1
	}})
	var ids []int64
	for n := int64(1); n <= 4; n++ {
		ids = append(ids, f.create(t, "defaultNamespace1", demodata.Email(n), privacy.TypeDelete, false))
	}
	if rep := f.run(t, privacy.Collect); rep.Processed != 4 {
		t.Fatalf("collect: %+v", rep)
	}
	before := map[string]int64{}
	for table := range ownedTables {
		before[table] = f.count(t, table)
	}
	for _, table := range sharedTables {
		before[table] = f.count(t, table)
	}
	return f, ids, before
}

// checkErased: exactly the rows of n subjects are gone from every owned
// table, nothing from the shared ones, and the chain verifies.
func checkErased(t *testing.T, f *fixture, before map[string]int64, n int64) {
	t.Helper()
	for table, per := range ownedTables {
		if got := f.count(t, table); got != before[table]-n*per {
			t.Fatalf("%s: %d rows, want %d", table, got, before[table]-n*per)
		}
	}
	for _, table := range sharedTables {
		if f.count(t, table) != before[table] {
			t.Fatalf("%s changed", table)
		}
	}
	if _, err := f.env.DB.VerifyAuditChain(f.ctx, nil); err != nil {
		t.Fatal(err)
	}
}

// checkReceipts: every request is complete with a receipt that verifies,
// says "passed", and carries a chain head of its own (each request's
// lines end at a different place in the one chain).
func checkReceipts(t *testing.T, f *fixture, ids []int64) {
	t.Helper()
	seen := map[int64]bool{}
	for _, id := range ids {
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("request %d: %s", id, s)
		}
		_, c := f.receiptOf(t, id)
		if c.RequestID != id || c.Status != "complete" || c.Tables[0].Deleted != 1 || seen[c.AuditChainSeq] {
			t.Fatalf("receipt of %d: %+v", id, c)
		}
		seen[c.AuditChainSeq] = true
	}
}

func TestBatchCommitAllOrNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		// The process dies at the batch's third request under the chain
		// head: the deletes and updates already ran in the transaction.
		crashCtx, crash := context.WithCancel(context.Background())
		var signs atomic.Int32
		f, ids, before := batchFixture(t, dialect, func(name string) error {
			if name == "batch-item" && signs.Add(1) == 3 {
				crash()
				return context.Canceled
			}
			return nil
		})
		if _, err := f.env.Privacy.Run(crashCtx, privacy.Delete); err == nil {
			t.Fatal("the crashed run reported success")
		}
		if signs.Load() < 3 {
			t.Fatalf("the batch did not reach its receipts (%d signed)", signs.Load())
		}
		// Nothing of the batch is applied: no row deleted, no request
		// finished, no receipt; each is still claimed, to be taken back.
		checkErased(t, f, before, 0)
		for _, id := range ids {
			if s := f.status(t, id); s != privacy.StatusDeleteInProgress {
				t.Fatalf("request %d after the crash: %s", id, s)
			}
			if _, err := f.env.Privacy.Receipt(f.ctx, id); err == nil {
				t.Fatalf("request %d has a receipt", id)
			}
		}
		f.env.Clock.Advance(16 * time.Minute)
		if rep := f.run(t, privacy.Delete); rep.Processed != 4 || rep.Failed != 0 {
			t.Fatalf("resume: %+v", rep)
		}
		checkErased(t, f, before, 4)
		checkReceipts(t, f, ids)
	})
}

func TestBatchCommitFailureFallsBackOneByOne(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		// The hook fails at the batch's second request: the batch rolls
		// back and each request runs alone. The first to run alone fails again (its own failure):
		// only it is failed — its rows are gone, it waits for its retry
		// without a receipt — and the others complete.
		var signs atomic.Int32
		f, ids, before := batchFixture(t, dialect, func(name string) error {
			if name == "batch-item" {
				if n := signs.Add(1); n == 2 || n == 3 {
					return errors.New("signing device unplugged")
				}
			}
			return nil
		})
		rep := f.run(t, privacy.Delete)
		if rep.Processed != 3 || rep.Failed != 1 {
			t.Fatalf("run: %+v", rep)
		}
		var failed int64
		for _, id := range ids {
			if f.status(t, id) == privacy.StatusDeletePending {
				failed = id
			}
		}
		if failed == 0 {
			t.Fatal("no request waits for its retry")
		}
		if _, err := f.env.Privacy.Receipt(f.ctx, failed); err == nil {
			t.Fatal("the failed request has a receipt")
		}
		// Every row of the four subjects is gone (the failed one's deletes
		// committed before its completion failed), and the retry finishes it.
		checkErased(t, f, before, 4)
		f.env.Clock.Advance(2 * time.Minute)
		if rep := f.run(t, privacy.Delete); rep.Processed != 1 || rep.Failed != 0 {
			t.Fatalf("retry: %+v", rep)
		}
		checkErased(t, f, before, 4)
		checkReceipts(t, f, ids)
	})
}

// TestStoppedDeleteRun: a delete run stopped after its deletes committed (a
// shutdown, ^C) does not start the residue purge, which may take minutes.
// Its requests stay deleteInProgress, without a receipt, released so that
// the next run need not wait for their lease; the tables keep their marks;
// the next run finds nothing to delete, purges and completes them.
func TestStoppedDeleteRun(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		runCtx, stop := context.WithCancel(context.Background())
		defer stop()
		var armed atomic.Bool // not during the fixture's collect
		f, ids, before := batchFixture(t, dialect, func(name string) error {
			if name == "batch-after-commit" && armed.Load() {
				stop()
			}
			return nil
		})
		armed.Store(true)
		if _, err := f.env.Privacy.Run(runCtx, privacy.Delete); err == nil {
			t.Fatal("the stopped run reported success")
		}
		conn := storetest.SQLOf(t, f.env.DB)
		stepped, err := conn.Int(f.ctx, "SELECT count(*) FROM privacy_requests WHERE status = ? AND claimed_by IS NULL", int(privacy.StatusDeleteInProgress))
		if err != nil || stepped == 0 {
			t.Fatalf("%d released deleteInProgress requests after the stop (%v)", stepped, err)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM privacy_requests WHERE status = ?", int(privacy.StatusComplete)); err != nil || n != 0 {
			t.Fatalf("%d requests complete before any purge (%v)", n, err)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM privacy_receipts"); err != nil || n != 0 {
			t.Fatalf("%d receipts before any purge (%v)", n, err)
		}
		if n, err := conn.Int(f.ctx, "SELECT count(DISTINCT table_name) FROM privacy_residue"); err != nil || n == 0 {
			t.Fatalf("no residue mark after the stopped run (%v)", err)
		}
		// No lease to wait for: the next run at once.
		if rep := f.run(t, privacy.Delete); rep.Failed != 0 {
			t.Fatalf("the next run: %+v", rep)
		}
		checkErased(t, f, before, 4)
		checkReceipts(t, f, ids)
		marksLeft(t, f, 0)
	})
}

// TestRowAddedDuringDeleteIsNotLeftBehind: a delivery log written for a
// subject while its one-step delete runs — after the lookup, before the
// deletes commit — is found by the check after the deletes, which have
// removed the recipient it points to. The value no longer leads to it; the
// retry still deletes it, through the rows the failed attempt recorded, and
// only then is the request complete. Counted with plain SQL; in the
// claim's batch commit, alone (a subject larger than a delete batch), and
// alone with the attempt stopped after the delete batch that removed the
// recipient, before its check (a crash, or a failure) — the row added just
// before.
func TestRowAddedDuringDeleteIsNotLeftBehind(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		for _, c := range []struct {
			deleteBatch int
			stopped     bool
		}{{0, false}, {2, false}, {2, true}} {
			t.Run(fmt.Sprintf("delete batch %d, stopped %t", c.deleteBatch, c.stopped), func(t *testing.T) {
				rowAddedDuringDelete(t, dialect, c.deleteBatch, c.stopped)
			})
		}
	})
}

func rowAddedDuringDelete(t *testing.T, dialect string, deleteBatch int, stopped bool) {
	var (
		f     *fixture
		added atomic.Bool
		rcp   int64
	)
	f = newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
		withReceipts(c)
		c.Workers = 1 // one claim, one batch
		if deleteBatch > 0 {
			c.DeleteBatch = deleteBatch
		}
		c.Failpoint = func(name string) error {
			add := func() error {
				return storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(900_001), "recipient_id": rcp})
			}
			switch {
			case !stopped && name == "delete-lookup" && added.CompareAndSwap(false, true):
				return add()
			case stopped && name == "delete-after-batch" && !added.Load():
				n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp)
				if err != nil || n > 0 {
					return err
				}
				added.Store(true)
				if err := add(); err != nil {
					return err
				}
				return errors.New("the attempt stopped before its check")
			}
			return nil
		}
	}})
	rcp = recipientID(t, f, 2)
	logs, err := f.env.DB.FindIDs(f.ctx, "nms_broad_log_rcp", "address", demodata.Email(2))
	if err != nil || len(logs) == 0 {
		t.Fatalf("the subject's delivery logs: %v %v", logs, err)
	}
	ids := []int64{
		f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, false),
		f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false),
	}
	f.run(t, privacy.Collect)
	before := map[string]int64{}
	for table := range ownedTables {
		before[table] = f.count(t, table)
	}
	left := func() int64 {
		n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if rep := f.run(t, privacy.Delete); rep.Processed != 1 || rep.Failed != 1 || !added.Load() {
		t.Fatalf("first run: %+v (row added: %t); request %s, %d delivery log(s) of the subject", rep, added.Load(), f.status(t, ids[1]), left())
	}
	if s := f.status(t, ids[1]); s != privacy.StatusDeletePending || left() != 1 {
		t.Fatalf("after the first run: %s, %d delivery log(s) of the subject", s, left())
	}
	// Another recipient's delivery log written since with the id of
	// one the attempt deleted: not the subject's, it stays.
	other := recipientID(t, f, 3)
	if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": logs[0], "recipient_id": other}); err != nil {
		t.Fatal(err)
	}
	f.env.Clock.Advance(time.Hour)
	if rep := f.run(t, privacy.Delete); rep.Processed != 1 || rep.Failed != 0 {
		t.Fatalf("retry: %+v", rep)
	}
	if n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE id = ? AND recipient_id = ?", logs[0], other); err != nil || n != 1 {
		t.Fatalf("the other recipient's delivery log with a reused id: %d %v", n, err)
	}
	for _, id := range ids {
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("request %d: %s", id, s)
		}
	}
	if n := left(); n != 0 {
		t.Fatalf("%d delivery log(s) of the subject left after complete", n)
	}
	for table, per := range ownedTables {
		want := before[table] - 2*per
		if table == "nms_broad_log_rcp" {
			want++ // the other recipient's
		}
		if got := f.count(t, table); got != want {
			t.Errorf("%s: %d rows, want %d", table, got, want)
		}
	}
}
