package privacy_test

import (
	"errors"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestReceiptOfADeleteThatFoundNothingSaysNothingDeleted:
// a one-step delete is collected (the collect counts the subject's rows:
// 1 recipient, 3 delivery logs…), then, before the delete run, the value
// stops matching (the recipient's e-mail was changed in ACC). The delete
// "removes what the value matches now" — nothing — and completes. Its
// receipt must then say 0 rows deleted; instead receiptFunc finds no
// recorded rows (deletedBy == nil) and signReceipt falls back to the
// collect's counts (t.Deleted = d.RecordCount), so the signed receipt
// claims 1 nms:recipient and 3 nms:broadLogRcp rows deleted, with
// "verification: passed", while plain SQL finds every one of them still
// in the database.
// Harm: a signed proof of erasure for rows that were never erased (J26's
// fix does not cover a delete that recorded no rows).
func TestReceiptOfADeleteThatFoundNothingSaysNothingDeleted(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 2)
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if s := f.status(t, id); s != privacy.StatusDeletePending {
			t.Fatalf("after the collect: %s", s)
		}
		if err := sql.Exec(f.ctx, "UPDATE nms_recipient SET email = ? WHERE id = ?", "changed-address@example.org", rcp); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Skipf("the delete ends %s, not complete", s)
		}
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp)
		if err != nil {
			t.Fatal(err)
		}
		logs, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
		if err != nil {
			t.Fatal(err)
		}
		_, c := f.receiptOf(t, id)
		if got := deletedOf(c, "nms:recipient"); got != 1-left {
			t.Errorf("the signed receipt says %d nms:recipient row(s) deleted (verification %q); plain SQL: %d of 1 still there", got, c.Verification, left)
		}
		if got := deletedOf(c, "nms:broadLogRcp"); got > 0 && logs > 0 {
			t.Errorf("the signed receipt says %d nms:broadLogRcp row(s) deleted; plain SQL: %d still there", got, logs)
		}
	})
}

// TestErrorReceiptCountsWhatAFailedAttemptDeleted: a one-step delete whose
// subject needs two delete transactions (DeleteBatch 13, 14 rows) commits
// the first — 13 child rows (delivery logs, tracking logs, subscriptions…)
// are gone — and then fails for good (MaxAttempts 1). It ends in error
// and, as README "The receipt" promises ("or error once its delete had
// started": rows may be gone, the receipt says so), gets a signed receipt.
// That receipt counts only rows "marked deleted" (receiptFunc: gone),
// and a one-step delete never marks its recorded rows deleted
// (DeleteOwned markDeleted=false): every table says deleted 0 although
// plain SQL shows 13 of the subject's rows removed. J49 fixed this for
// two-step deletes only.
// Harm: the signed proof handed to the DPO/auditor says the failed delete
// removed nothing, so nobody knows the data subject's data is half erased
// (the request's own delivery history is gone while the recipient stays).
func TestErrorReceiptCountsWhatAFailedAttemptDeleted(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.MaxAttempts = 1
			c.DeleteBatch = 13 // two delete transactions for the 14 rows
			c.Failpoint = func(name string) error {
				if name == "delete-after-batch" {
					return errors.New("disk on fire")
				}
				return nil
			}
		}})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 2)
		logs := func() int64 {
			n, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := logs()
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.env.Privacy.Run(f.ctx, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusError {
			t.Fatalf("status %s", s)
		}
		after := logs()
		if after == before {
			t.Fatalf("the failed attempt deleted no delivery log (%d before and after)", before)
		}
		_, c := f.receiptOf(t, id)
		var claimed int64
		for _, tb := range c.Tables {
			claimed += tb.Deleted
		}
		if got := deletedOf(c, "nms:broadLogRcp"); got != before-after {
			t.Errorf("the signed error receipt says %d nms:broadLogRcp row(s) deleted (%d in all tables); plain SQL: %d of %d deleted by the failed attempt\ntables: %+v",
				got, claimed, before-after, before, c.Tables)
		}
	})
}

// TestTwoStepReceiptCountsOnlyWhatItDeleted: a confirmed
// two-step delete's receipt counts, per table, every row of the reviewed
// set (receiptFunc: deletedBy from the recorded rows), not the rows its
// deletes removed. A reviewed delivery log deleted by someone else between
// the review and the delete run (ACC's own cleanup, an operator) is
// counted as deleted by this request: the receipt says 3
// nms:broadLogRcp rows deleted while the request's own audit line (the
// DELETE's RowsAffected) says "2 record(s) deleted in nms:broadLogRcp".
// Harm: the signed receipt and the audit it anchors disagree; the
// receipt claims an erasure the service did not perform.
func TestTwoStepReceiptCountsOnlyWhatItDeleted(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 2)
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		reviewed, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
		if err != nil || reviewed < 2 {
			t.Fatalf("%d logs (%v)", reviewed, err)
		}
		logID, err := sql.Int(f.ctx, "SELECT min(id) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
		if err != nil {
			t.Fatal(err)
		}
		if err := sql.Exec(f.ctx, "DELETE FROM nms_broad_log_rcp WHERE id = ?", logID); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("delete: %s", s)
		}
		r, err := f.env.DB.FindRequestByID(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		_, c := f.receiptOf(t, id)
		if got := deletedOf(c, "nms:broadLogRcp"); got != reviewed-1 {
			t.Errorf("the signed receipt says %d nms:broadLogRcp row(s) deleted; the delete removed %d (1 of the %d reviewed was already gone)\naudit tail:\n%s",
				got, reviewed-1, reviewed, tail(r.Audit, 900))
		}
	})
}
