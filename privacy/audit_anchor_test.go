package privacy_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestAuditVerifyDetectsARewrittenChain: someone with write access to
// the database edits an audit line of a completed delete (its
// "Residue purged" line) and, since the chain's hash is unkeyed SHA-256,
// recomputes the rows after it and the head. The signed receipt of that
// request carries the chain head at its completion (seq and hash), which
// no longer matches the chain's row at that seq. audit verify must report
// the edit.
func TestAuditVerifyDetectsARewrittenChain(t *testing.T) {
	f := newFixture(t, store.SQLite, servertest.Options{Privacy: withReceipts})
	conn := storetest.SQLOf(t, f.env.DB)
	id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
	f.run(t, "all")
	_, c := f.receiptOf(t, id)
	seq, err := conn.Int(f.ctx, "SELECT min(seq) FROM privacy_audit_chain WHERE request_id = ? AND line LIKE 'Residue purged%'", id)
	if err != nil || seq == 0 {
		t.Fatalf("no purge line (%v)", err)
	}
	if err := conn.LiftAuditProtection(f.ctx); err != nil { // the rewrite that follows gets past it
		t.Fatal(err)
	}
	// Rewrite the chain from the edited line on.
	prev := ""
	if seq > 1 {
		b, err := conn.Bytes(f.ctx, "SELECT hash FROM privacy_audit_chain WHERE seq = ?", seq-1)
		if err != nil {
			t.Fatal(err)
		}
		prev = string(b)
	} else {
		prev = "0000000000000000000000000000000000000000000000000000000000000000"
	}
	last, err := conn.Int(f.ctx, "SELECT max(seq) FROM privacy_audit_chain")
	if err != nil {
		t.Fatal(err)
	}
	for s := seq; s <= last; s++ {
		line, err := conn.Bytes(f.ctx, "SELECT line FROM privacy_audit_chain WHERE seq = ?", s)
		if err != nil {
			t.Fatal(err)
		}
		at, _ := conn.Bytes(f.ctx, "SELECT at FROM privacy_audit_chain WHERE seq = ?", s)
		rid, _ := conn.Int(f.ctx, "SELECT request_id FROM privacy_audit_chain WHERE seq = ?", s)
		text := string(line)
		if s == seq {
			text = "Residue purge of 10 table(s) not finished (see the service log); the next run purges them again."
		}
		h, err := store.ChainHash(prev, s, rid, string(at), text)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(f.ctx, "UPDATE privacy_audit_chain SET line = ?, prev_hash = ?, hash = ? WHERE seq = ?", text, prev, h, s); err != nil {
			t.Fatal(err)
		}
		prev = h
	}
	if err := conn.Exec(f.ctx, "UPDATE privacy_audit_head SET hash = ? WHERE id = 1", prev); err != nil {
		t.Fatal(err)
	}
	row, _ := conn.Bytes(f.ctx, "SELECT hash FROM privacy_audit_chain WHERE seq = ?", c.AuditChainSeq)
	if string(row) == c.AuditChainHead {
		t.Fatal("the rewrite did not change the row the receipt anchors")
	}
	// As campaign-privacy audit verify does: the chain against the heads
	// the verified receipts carry.
	anchors := map[int64]string{}
	err = f.env.DB.EachStoredReceipt(f.ctx, nil, func(r store.StoredReceipt) error {
		if r.JWS == "" {
			return nil
		}
		c, err := privacy.CheckReceipt(r.RequestID, privacy.Status(r.Status), r.JWS, []ed25519.PublicKey{receiptKey.Public().(ed25519.PublicKey)})
		if err == nil {
			anchors[c.AuditChainSeq] = c.AuditChainHead
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if head, err := f.env.DB.VerifyAuditChain(f.ctx, anchors); err == nil {
		t.Fatalf("audit verify says the chain is intact (head %d) after line %d was edited; request %d's signed receipt anchors seq %d at %s…, the chain now has %s… there",
			head.Seq, seq, id, c.AuditChainSeq, c.AuditChainHead[:12], string(row)[:12])
	}
}
