package privacy_test

import (
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestExpiredRoundReceiptCountsDeleted: a two-step delete whose
// first confirmed round deleted the recipient and its rows, back in review
// with one log written after the review, whose second confirmation never
// comes. The expired round ends in error with a receipt (09b0b62) and the
// audit line "the records confirmed before were deleted". README "The
// receipt": its per-table counts deleted are "the rows the delete removed,
// as it recorded them" — the rows are recorded (deleted = true). The
// receipt must count the recipient round 1 removed (plain SQL: gone).
func TestExpiredRoundReceiptCountsDeleted(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
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
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
			t.Fatal("round 1 did not delete the recipient")
		}
		recorded, _ := sql.Int(f.ctx, "SELECT count(*) FROM privacy_request_rows WHERE request_id = ? AND schema_name = 'nms:recipient' AND deleted = ?", id, true)
		f.env.Clock.Advance(16 * 24 * time.Hour) // past the confirmation window
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusError {
			t.Fatalf("after the window: %s", s)
		}
		_, c := f.receiptOf(t, id)
		if got := deletedOf(c, "nms:recipient"); got != 1 {
			t.Errorf("the expired round's receipt says %d nms:recipient row(s) deleted; plain SQL: round 1 deleted the recipient (0 left; %d recorded deleted); tables %+v, verification %q",
				got, recorded, c.Tables, c.Verification)
		}
	})
}
