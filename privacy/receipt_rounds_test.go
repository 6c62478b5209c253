package privacy_test

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// deletedOf is the receipt's "deleted" claim for a schema (0 when absent).
func deletedOf(c *privacy.ReceiptClaims, schema string) int64 {
	for _, t := range c.Tables {
		if t.Table == schema {
			return t.Deleted
		}
	}
	return 0
}

// TestMultiRoundReceiptCountsEveryRound: a confirmed two-step
// delete whose first round deleted the reviewed rows (the recipient among
// them) and went back to review with a delivery log written after the
// review; the second round deletes that log and completes. The receipt
// (whose reviewed-set digest covers every round) must not say that the
// recipient was not deleted.
func TestMultiRoundReceiptCountsEveryRound(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 1)
		logsBefore, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
		if err != nil {
			t.Fatal(err)
		}
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
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
			t.Fatal("round 1 did not delete the recipient")
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("after round 2: %s", s)
		}
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp); n != 0 {
			t.Fatalf("%d logs left", n)
		}
		_, c := f.receiptOf(t, id)
		if got := deletedOf(c, "nms:recipient"); got != 1 {
			t.Errorf("receipt says %d nms:recipient row(s) deleted; plain SQL: the recipient (1 row) was deleted in round 1 (tables %+v)", got, c.Tables)
		}
		if got := deletedOf(c, "nms:broadLogRcp"); got != logsBefore+1 {
			t.Errorf("receipt says %d nms:broadLogRcp row(s) deleted; plain SQL: %d deleted over the rounds", got, logsBefore+1)
		}
	})
}

// TestExpiredSecondRoundKeepsItsProof: a confirmed two-step delete
// whose first round deleted the reviewed rows (the recipient) and went back
// to review with a row written after the review; its second confirmation
// never comes. The request ends in error once the window closes, after its
// delete had started and deleted rows (plain SQL): README "The receipt" —
// every request that reaches error once its delete had started gets a
// receipt — and its audit must not say that nothing was deleted.
func TestExpiredSecondRoundKeepsItsProof(t *testing.T) {
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
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
			t.Fatal("round 1 did not delete the recipient")
		}
		f.env.Clock.Advance(15 * 24 * time.Hour) // past the confirmation window
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusError {
			t.Fatalf("after the window: %s", s)
		}
		r, err := f.env.DB.FindRequestByID(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(r.Audit, "nothing was deleted") {
			t.Errorf("the audit says nothing was deleted, yet round 1 deleted the recipient (plain SQL: 0 rows left of id %d):\n%s", rcp, tail(r.Audit, 400))
		}
		if jws, err := f.env.Privacy.Receipt(f.ctx, id); err != nil || jws == "" {
			t.Errorf("no receipt for a request that ended in error after its delete had deleted rows: %q %v", jws, err)
		}
	})
}

// TestChangedByteOfAReceiptFails: README "The receipt": "A changed
// byte fails with 'does not verify'". A receipt whose signature's last
// character (or a line break inside the signature) was changed must not
// verify.
func TestChangedByteOfAReceiptFails(t *testing.T) {
	f := newFixture(t, "sqlite", servertest.Options{Privacy: withReceipts})
	id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
	f.run(t, "all")
	jws, _ := f.receiptOf(t, id)
	pub := []ed25519.PublicKey{receiptKey.Public().(ed25519.PublicKey)}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, jws[len(jws)-1])
	changed := jws[:len(jws)-1] + string(alphabet[last&0x30|(last+1)&0x0f])
	broken := jws[:len(jws)-10] + "\n" + jws[len(jws)-10:]
	for name, tampered := range map[string]string{"last character": changed, "line break in the signature": broken} {
		if tampered == jws {
			t.Fatal("not changed")
		}
		if _, err := privacy.VerifyReceipt(tampered, pub); err == nil {
			t.Errorf("%s changed (…%q → …%q): the receipt still verifies", name, jws[len(jws)-12:], tampered[len(tampered)-12:])
		}
	}
}
