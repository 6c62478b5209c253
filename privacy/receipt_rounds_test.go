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
	"github.com/campaign-privacy/campaign-privacy/session"
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

// TestMultiRoundReceiptNamesEveryConfirmer: a two-step delete whose
// first round, confirmed by operator ana, deleted the reviewed rows (the
// recipient among them) and went back to review with a delivery log
// written after the review; operator bob confirms the second round, which
// completes. The receipt's reviewed_set_sha256 covers the rows of both
// rounds, and README "The receipt" says it names who confirmed it when:
// a receipt that kept only the last confirmation said bob confirmed the
// whole set, the recipient ana reviewed included, and named ana nowhere.
// Every round's confirmer is named, in order; confirmed_by stays the
// last round's.
func TestMultiRoundReceiptNamesEveryConfirmer(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 1)
		id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if err := sql.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990001), "recipient_id": rcp, "address": demodata.Email(1)}); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil { // ana
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
			t.Fatalf("after round 1: %s", s)
		}
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
			t.Fatal("round 1 did not delete the recipient")
		}
		bob := &session.Caller{OperatorID: 2, Login: "bob", Rights: []string{session.RightPrivacy}}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, bob, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("after round 2: %s", s)
		}
		_, c := f.receiptOf(t, id)
		if c.ReviewedSetSHA256 == "" || deletedOf(c, "nms:recipient") != 1 {
			t.Fatalf("receipt: %+v", c)
		}
		var by []string
		for _, r := range c.Confirmations {
			if r.At == "" {
				t.Errorf("confirmation without its time: %+v", c.Confirmations)
			}
			by = append(by, r.By)
		}
		if strings.Join(by, ",") != "ana,bob" {
			t.Errorf("the receipt names the confirmations %q for a reviewed set whose first round (the recipient) operator ana confirmed, its second bob", by)
		}
		if c.ConfirmedBy != "bob" || c.ConfirmedAt == "" {
			t.Errorf("confirmed_by %q at %q: the last round's confirmation (bob's)", c.ConfirmedBy, c.ConfirmedAt)
		}
	})
}

// exportedOf is the receipt's "exported" claim for a schema (0 when absent).
func exportedOf(c *privacy.ReceiptClaims, schema string) int64 {
	for _, t := range c.Tables {
		if t.Table == schema {
			return t.Exported
		}
	}
	return 0
}

// TestMultiRoundReceiptCountsEveryRoundsExport: J26 made a multi-round
// two-step delete's "deleted" counts cover every round; its "exported"
// counts must too. A two-step delete removes exactly the reviewed set,
// whose rows the operator saw in the files. Round 1's file held the
// recipient and its delivery logs (ana reviewed and confirmed them, round
// 1 deleted them); round 2's file held only the delivery log written
// after the review. A receipt counting the last round's file said
// nms:recipient exported 0, deleted 1: read as signed, the delete removed
// rows nobody was shown. The receipt counts every round's file.
func TestMultiRoundReceiptCountsEveryRoundsExport(t *testing.T) {
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
		if xml := f.export(t, id); !strings.Contains(xml, demodata.Email(1)) {
			t.Fatal("round 1's reviewed file does not hold the recipient")
		}
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
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("after round 2: %s", s)
		}
		_, c := f.receiptOf(t, id)
		if got, del := exportedOf(c, "nms:recipient"), deletedOf(c, "nms:recipient"); got != 1 {
			t.Errorf("receipt: nms:recipient exported %d, deleted %d; round 1's reviewed file exported the recipient (1 row)", got, del)
		}
		if got, del := exportedOf(c, "nms:broadLogRcp"), deletedOf(c, "nms:broadLogRcp"); got != logsBefore+1 {
			t.Errorf("receipt: nms:broadLogRcp exported %d, deleted %d; the two rounds' files exported %d (%d, then 1)", got, del, logsBefore+1, logsBefore)
		}
	})
}
