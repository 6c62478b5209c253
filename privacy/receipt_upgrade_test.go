package privacy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// upgradeTo0020 replays what migration 0020 does to a database written by
// the previous version: privacy_request_deleted starts empty (the old
// binary never wrote it) and is seeded by the migration's INSERT … SELECT,
// read from the migration file itself.
func upgradeTo0020(t *testing.T, f *fixture, dialect string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "internal", "store", "migrations", dialect, "0020_deleted_counts.sql"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.Index(text, "INSERT INTO privacy_request_deleted")
	if i < 0 {
		t.Fatal("no INSERT in migration 0020")
	}
	sql := storetest.SQLOf(t, f.env.DB)
	if err := sql.Exec(f.ctx, "DELETE FROM privacy_request_deleted"); err != nil {
		t.Fatal(err)
	}
	if err := sql.Exec(f.ctx, strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(text[i:]), ";"))); err != nil {
		t.Fatal(err)
	}
}

// upgradeMidDelete runs a one-step delete of demo subject 2 whose 14 rows
// need two delete transactions (DeleteBatch 13): the first commits — the 13
// child rows go, and the recorded set of all 14 rows with them — and then
// the attempt ends (stopRun: the process stops, as a restart for the
// upgrade stops it, leaving the request deleteInProgress; otherwise the
// attempt fails and waits for its retry, deletePending). The upgrade
// (upgradeTo0020, or another) then runs, the clock passes the lease and
// the retry, and the next run completes the delete. It returns the
// receipt's claims, the request's audit, and the subject's delivery logs
// before the delete.
func upgradeMidDelete(t *testing.T, dialect string, stopRun bool, upgrade func(*testing.T, *fixture, string)) (c *privacy.ReceiptClaims, audit string, logs int64, status privacy.Status) {
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	failed := false
	f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
		withReceipts(c)
		c.DeleteBatch = 13 // two delete transactions for the 14 rows
		c.Failpoint = func(name string) error {
			if name == "delete-after-batch" && !failed {
				failed = true
				if stopRun {
					stop() // the process stops right after the first batch's commit
					return nil
				}
				return errors.New("the first attempt fails after its first batch")
			}
			return nil
		}
	}})
	sql := storetest.SQLOf(t, f.env.DB)
	rcp := recipientID(t, f, 2)
	logs, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
	if err != nil {
		t.Fatal(err)
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
	f.run(t, privacy.Collect)
	_, _ = f.env.Privacy.Run(runCtx, privacy.Delete)
	status = f.status(t, id)
	if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 1 {
		t.Fatalf("the first attempt was to leave the recipient (children first); %d left", n)
	}
	if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp); n != 0 {
		t.Fatalf("the first attempt was to delete the delivery logs; %d left", n)
	}
	upgrade(t, f, dialect)
	f.env.Clock.Advance(20 * time.Minute) // past the lease and the retry time
	f.run(t, privacy.Delete)
	if s := f.status(t, id); s != privacy.StatusComplete {
		t.Fatalf("after the run following the upgrade: %s", s)
	}
	if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
		t.Fatalf("the recipient is still there")
	}
	r, err := f.env.DB.FindRequestByID(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	_, c = f.receiptOf(t, id)
	return c, r.Audit, logs, status
}

// TestReceiptOfADeleteStoppedByTheUpgradeCountsEachRowOnce: a one-step
// delete stopped by the restart of the upgrade after its first delete
// transaction is left deleteInProgress (6), its recorded set holding all
// 14 rows of which 13 are gone. Migration 0020 seeds
// privacy_request_deleted with "every recorded row of one whose deletes
// are done (deleteInProgress, 6)" — but status 6 is also the status of a
// delete whose run was stopped mid-way (DeleteRequestsData claims
// deletePending → deleteInProgress before it deletes anything): the
// recipient, still in the database, is counted as deleted, and the run
// after the upgrade deletes it and countDeleted adds it again.
// Harm: the signed receipt says 2 nms:recipient rows were deleted for a
// person with one recipient, disagreeing with the audit lines it anchors
// ("1 record(s) deleted in nms:recipient"): J80's promise is broken for
// the deletes in flight at the upgrade.
func TestReceiptOfADeleteStoppedByTheUpgradeCountsEachRowOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		c, audit, logs, status := upgradeMidDelete(t, dialect, true, upgradeTo0020)
		if status != privacy.StatusDeleteInProgress {
			t.Fatalf("the stopped run left the request %s", status)
		}
		if got := deletedOf(c, "nms:recipient"); got != 1 {
			t.Errorf("the signed receipt says %d nms:recipient row(s) deleted; the subject had 1 recipient, deleted once (tables %+v)\naudit tail:\n%s", got, c.Tables, tail(audit, 600))
		}
		if got := deletedOf(c, "nms:broadLogRcp"); got != logs {
			t.Errorf("the signed receipt says %d nms:broadLogRcp row(s) deleted; the subject had %d, all deleted", got, logs)
		}
	})
}

// TestReceiptOfADeleteRetriedAcrossTheUpgradeCountsTheFirstAttempt: the
// same delete whose first attempt failed after its first delete
// transaction waits for its retry, deletePending (5), at the upgrade.
// Migration 0020 counts only rows "marked deleted (earlier rounds)" for
// it — a one-step delete never marks its rows deleted — so the 13 rows
// its first attempt deleted (3 delivery logs among them) are counted
// nowhere; the retry after the upgrade deletes the recipient only. The
// previous version's receipt counted them (every recorded row of the
// attempts, withEarlierAttempt's union).
// Harm: the signed receipt says 0 delivery logs were deleted while the
// request's own audit says "3 record(s) deleted in nms:broadLogRcp": a
// proof of erasure that understates what was erased, for every delete
// retrying at the upgrade.
func TestReceiptOfADeleteRetriedAcrossTheUpgradeCountsTheFirstAttempt(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		c, audit, logs, status := upgradeMidDelete(t, dialect, false, upgradeTo0020)
		if status != privacy.StatusDeletePending {
			t.Fatalf("the failed attempt left the request %s", status)
		}
		if got := deletedOf(c, "nms:broadLogRcp"); got != logs {
			t.Errorf("the signed receipt says %d nms:broadLogRcp row(s) deleted; the first attempt deleted all %d (tables %+v)\naudit tail:\n%s", got, logs, c.Tables, tail(audit, 900))
		}
		if got := deletedOf(c, "nms:recipient"); got != 1 {
			t.Errorf("the signed receipt says %d nms:recipient row(s) deleted; want 1", got)
		}
	})
}

// upgradeFromBefore0008 puts the database in the shape a release before
// migration 0008 left it — no audit chain (0008 creates it empty: the
// lines written before it stay in the requests' audit text only), no
// deleted counts — and upgrades it as this binary's Migrate does: 0020's
// seed (upgradeTo0020), then 0021.
func upgradeFromBefore0008(t *testing.T, f *fixture, dialect string) {
	t.Helper()
	sql := storetest.SQLOf(t, f.env.DB)
	if err := sql.LiftAuditProtection(f.ctx); err != nil { // a release before 0022 had none
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"DELETE FROM privacy_audit_chain",
		"UPDATE privacy_audit_head SET seq = 0, hash = '" + strings.Repeat("0", 64) + "'",
	} {
		if err := sql.Exec(f.ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	upgradeTo0020(t, f, dialect)
	if err := sql.Exec(f.ctx, "DELETE FROM schema_migrations WHERE version >= 21"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.env.DB.Migrate(f.ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReceiptOfADeleteRetriedAcrossAnUpgradeFromBefore0008CountsTheFirstAttempt:
// the delete of TestReceiptOfADeleteRetriedAcrossTheUpgradeCountsTheFirstAttempt
// whose first attempt ran under a release before migration 0008. Its
// "N record(s) deleted in X" lines are in its audit text only; 0020's seed
// read the chain alone, so the receipt said 0 delivery logs deleted while
// the request's own audit says "3 record(s) deleted in nms:broadLogRcp".
// Migration 0021 adds up the lines of the text that came before the chain.
func TestReceiptOfADeleteRetriedAcrossAnUpgradeFromBefore0008CountsTheFirstAttempt(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		c, audit, logs, status := upgradeMidDelete(t, dialect, false, upgradeFromBefore0008)
		if status != privacy.StatusDeletePending {
			t.Fatalf("the failed attempt left the request %s", status)
		}
		if got := deletedOf(c, "nms:broadLogRcp"); got != logs {
			t.Errorf("the signed receipt says %d nms:broadLogRcp row(s) deleted; the first attempt (before 0008) deleted all %d (tables %+v)\naudit tail:\n%s", got, logs, c.Tables, tail(audit, 900))
		}
		if got := deletedOf(c, "nms:recipient"); got != 1 {
			t.Errorf("the signed receipt says %d nms:recipient row(s) deleted; want 1", got)
		}
	})
}
