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

// TestExpiredRoundReceiptClaimsWhatWasDone: a two-step delete whose
// first round deleted the recipient, back in review with a delivery log
// written after the review, whose second confirmation never comes: it
// ends in error with a receipt. That receipt signed the completed
// delete's method, "… + destruction of every file of the subject, with
// its key", while the second round's reviewed file, which holds the
// subject's delivery log and address, was still stored and opened. The
// expiry destroys that file, as a confirmed delete that ends in error
// does (nobody will confirm it; a new request collects what is left), and
// the error receipt's method says what was done: the reviewed file
// destroyed, no residue purge nor destruction of the subject's other
// files claimed.
func TestExpiredRoundReceiptClaimsWhatWasDone(t *testing.T) {
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
		if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
			t.Fatalf("after round 1: %s", s)
		}
		if xml := f.export(t, id); !strings.Contains(xml, demodata.Email(1)) {
			t.Fatal("round 2's reviewed file does not hold the subject")
		}
		f.env.Clock.Advance(16 * 24 * time.Hour) // past the confirmation window
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusError {
			t.Fatalf("after the window: %s", s)
		}
		_, c := f.receiptOf(t, id)
		if _, r, err := f.env.Privacy.OpenExport(f.ctx, id); err == nil {
			r.Close()
			t.Errorf("the expired round's reviewed file is still stored and opens (receipt method %q)", c.Method)
		}
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM privacy_exports WHERE request_id = ?", id); n != 0 {
			t.Errorf("%d export row(s) left of the expired request", n)
		}
		if c.Method != privacy.ReceiptMethodUnfinishedFileDestroyed || strings.Contains(c.Method, "every file of the subject") {
			t.Errorf("the error receipt signs method %q (verification %q); what was done: %q", c.Method, c.Verification, privacy.ReceiptMethodUnfinishedFileDestroyed)
		}
		if today := f.env.Clock.Now().UTC().Format("2006-01-02"); c.FilePurgedOn != today || c.ResiduePurge != "" {
			t.Errorf("file_purged_on %s (the file was destroyed on %s), residue_purge %q", c.FilePurgedOn, today, c.ResiduePurge)
		}
		if exportedOf(c, "nms:recipient") != 1 || deletedOf(c, "nms:recipient") != 1 {
			t.Errorf("tables %+v: round 1 exported and deleted the recipient", c.Tables)
		}
	})
}
