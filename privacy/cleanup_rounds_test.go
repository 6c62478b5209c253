package privacy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestCleanupKeepsDeletedRoundsProof: with a retention equal to the
// confirmation window (Validate accepts it), a two-step delete whose
// first round deleted the recipient goes back to review and its second
// round is never confirmed. After the deadline a cleanup run comes before
// any collect or delete run. It must not purge the request while it still
// waits for its confirmation: the purge would take the "deleted" marks
// the expiry reads to know that earlier rounds deleted rows, and the
// request would end as "nothing was deleted", without a receipt. The
// request ends in error with its receipt, and its data is purged once
// its retention ends.
func TestCleanupKeepsDeletedRoundsProof(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.ConfirmWindow, c.Retention = 15*24*time.Hour, 15*24*time.Hour
		}})
		if err := (privacy.Config{ConfirmWindow: 15 * 24 * time.Hour, Retention: 15 * 24 * time.Hour}).Validate(); err != nil {
			t.Fatalf("the settings are refused: %v", err)
		}
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 1)
		id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if err := sql.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990001), "recipient_id": rcp, "address": demodata.Email(1)}); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 || f.status(t, id) != privacy.StatusConfirmDeletePending {
			t.Fatalf("round 1 did not delete the recipient and go back to review (%d left, %s)", n, f.status(t, id))
		}
		f.env.Clock.Advance(15*24*time.Hour + time.Hour) // past round 2's deadline
		f.run(t, privacy.Cleanup)
		f.run(t, privacy.Collect)
		r, err := f.env.DB.FindRequestByID(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if privacy.Status(r.Status) != privacy.StatusError || !strings.Contains(r.Audit, "the records confirmed before were deleted") {
			t.Fatalf("status %s; the expiry does not say that round 1 deleted the recipient (plain SQL: gone):\n%s", privacy.Status(r.Status), tail(r.Audit, 500))
		}
		if _, c := f.receiptOf(t, id); deletedOf(c, "nms:recipient") != 1 {
			t.Errorf("the receipt says %d nms:recipient row(s) deleted, want 1", deletedOf(c, "nms:recipient"))
		}
		// Once ended, the request's data goes at the first cleanup after
		// its retention: the expiry destroyed its reviewed file (J141), so
		// the retention counts from the expiry, as for any request that
		// ends without a file.
		f.run(t, privacy.Cleanup)
		if r, err = f.env.DB.FindRequestByID(f.ctx, id); err != nil || r.PurgedAt != nil {
			t.Fatalf("purged before its retention: %v %v", r.PurgedAt, err)
		}
		f.env.Clock.Advance(15*24*time.Hour + time.Hour)
		f.run(t, privacy.Cleanup)
		if r, err = f.env.DB.FindRequestByID(f.ctx, id); err != nil || r.PurgedAt == nil || r.ReconciliationValue != "" {
			t.Fatalf("the ended request was not purged: %v %v", r.PurgedAt, err)
		}
	})
}
