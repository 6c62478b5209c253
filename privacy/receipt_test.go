package privacy_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// receiptKey is a fixed test key (deterministic tests).
var receiptKey = ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))

func withReceipts(c *privacy.Config) { c.ReceiptKey, c.ReceiptIssuer = receiptKey, "test-instance" }

// receiptOf returns a request's stored receipt and its claims, verified
// with the test key.
func (f *fixture) receiptOf(t *testing.T, id int64) (string, *privacy.ReceiptClaims) {
	t.Helper()
	jws, err := f.env.Privacy.Receipt(f.ctx, id)
	if err != nil {
		t.Fatalf("receipt of %d: %v", id, err)
	}
	c, err := privacy.VerifyReceipt(jws, []ed25519.PublicKey{receiptKey.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatalf("receipt of %d: %v", id, err)
	}
	return jws, c
}

// TestReceipts: an access and a two-step delete each get a receipt that
// verifies with the public key, carries counts, the confirmation and the
// audit chain head, and holds no personal data; one changed byte fails.
func TestReceipts(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		pub := []ed25519.PublicKey{receiptKey.Public().(ed25519.PublicKey)}
		access := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeAccess, false)
		del := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, del); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		for _, tc := range []struct {
			id             int64
			value, typ     string
			exported, gone int64
		}{{access, demodata.Email(3), "access", 1, 0}, {del, demodata.Email(2), "delete", 1, 1}} {
			jws, err := f.env.Privacy.Receipt(f.ctx, tc.id)
			if err != nil {
				t.Fatalf("receipt of %d: %v", tc.id, err)
			}
			if strings.Contains(jws, "example.com") {
				t.Fatal("the receipt holds the value")
			}
			c, err := privacy.VerifyReceipt(jws, pub)
			if err != nil {
				t.Fatal(err)
			}
			r, err := f.env.DB.FindRequestByID(f.ctx, tc.id)
			if err != nil || r.SubjectHash == nil {
				t.Fatalf("request %d: %v", tc.id, err)
			}
			if c.RequestID != tc.id || c.Type != tc.typ || c.Status != "complete" || c.Namespace != "defaultNamespace1" ||
				c.Issuer != "test-instance" || c.IssuedAt == nil || c.SubjectHash != *r.SubjectHash || len(c.SubjectHash) != 64 ||
				len(c.AuditChainHead) != 64 || c.AuditChainSeq == 0 || c.FilePurgedOn == "" {
				t.Fatalf("claims: %+v", c)
			}
			if len(c.Tables) != 10 || c.Tables[0].Table != "nms:recipient" || c.Tables[0].Exported != tc.exported || c.Tables[0].Deleted != tc.gone {
				t.Fatalf("tables: %+v", c.Tables)
			}
			if tc.typ == "delete" && (c.ConfirmedBy != "ana" || c.ConfirmedAt == "" || c.Method != privacy.ReceiptMethod ||
				!strings.HasPrefix(c.Verification, "passed")) {
				t.Fatalf("delete claims: %+v", c)
			}
			// One changed byte of the payload fails.
			i := strings.Index(jws, ".") + 5
			b := []byte(jws)
			b[i] ^= 1
			if _, err := privacy.VerifyReceipt(string(b), pub); err == nil {
				t.Fatal("a tampered receipt verified")
			}
			other := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
			if _, err := privacy.VerifyReceipt(jws, []ed25519.PublicKey{other}); err == nil {
				t.Fatal("a receipt verified under another key")
			}
		}
		if _, err := f.env.DB.VerifyAuditChain(f.ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
}

// TestReceiptAfterFailedDelete: a delete that fails for good after it
// started still gets a receipt, saying the verification failed.
func TestReceiptAfterFailedDelete(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.MaxAttempts = 1
			c.DeleteBatch = 13 // deleted in transactions of its own (14 rows), before its completion
			c.Failpoint = func(name string) error {
				if name == "delete-after-batch" {
					return errors.New("disk on fire")
				}
				return nil
			}
		}})
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.env.Privacy.Run(f.ctx, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusError {
			t.Fatalf("status %s", s)
		}
		if _, c := f.receiptOf(t, id); c.Status != "error" || !strings.HasPrefix(c.Verification, "failed") || c.Tables[0].Deleted != 0 {
			t.Fatalf("receipt of a failed delete: %+v", c)
		}
	})
}

// TestReceiptOfTwoStepDelete: the receipt of a confirmed delete names who
// confirmed it, carries the digest of the reviewed set and the coverage
// report of what links to the subject without being erased.
func TestReceiptOfTwoStepDelete(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: ticketSchema, Privacy: withReceipts})
		sc, _ := f.env.Registry.Schema("nms:recipient")
		email, _ := sc.Data.Attribute("email")
		ids, err := f.env.DB.FindIDs(f.ctx, sc.Data.Table, email.SQLName, demodata.Email(2))
		if err != nil || len(ids) != 1 {
			t.Fatalf("recipient %v %v", ids, err)
		}
		tk, _ := f.env.Registry.Schema("cus:ticket")
		subject, _ := tk.Data.Attribute("subject")
		if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "INSERT INTO "+tk.Data.Table+" (id, "+subject.SQLName+", "+tk.Data.Links[0].SQLName+") VALUES (?, ?, ?)",
			900, "Refund", ids[0]); err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if _, c := f.receiptOf(t, id); c.ConfirmedBy != "ana" || len(c.ReviewedSetSHA256) != 64 || c.Status != "complete" ||
			len(c.LinkedNotCollected) != 1 || c.LinkedNotCollected[0].Table != "cus:ticket" || c.LinkedNotCollected[0].Count != 1 {
			t.Fatalf("claims: %+v", c)
		}
	})
}

// TestReceiptMethodPlainVacuum: with CP_RESIDUE_PURGE=vacuum the receipt of
// a PostgreSQL delete says its freed space was not zeroed; SQLite zeroes it
// whatever the setting.
func TestReceiptMethodPlainVacuum(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.PlainVacuum = true
		}})
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		f.run(t, "all")
		_, c := f.receiptOf(t, id)
		want, purge := privacy.ReceiptMethod, "secure_delete and a WAL checkpoint of "
		if dialect == store.Postgres {
			want, purge = privacy.ReceiptMethodPlainVacuum, "VACUUM (ANALYZE; freed space not zeroed) of "
		}
		if c.Status != "complete" || c.Method != want || !strings.HasPrefix(c.ResiduePurge, purge) {
			t.Fatalf("status %q, method %q, purge %q, want complete, %q and %q…", c.Status, c.Method, c.ResiduePurge, want, purge)
		}
	})
}

// TestReceiptAttestsPurge: a delete completes only after its run's residue
// purge, and its receipt names that purge and its time; the chain head it
// carries comes after the purge's line and the completion, and the request
// row (queryDef's @receipt) has the same receipt. An access request's
// receipt names no purge.
func TestReceiptAttestsPurge(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		del := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		access := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeAccess, false)
		f.run(t, "all")
		jws, c := f.receiptOf(t, del)
		want := "secure_delete and a WAL checkpoint of "
		if dialect == store.Postgres {
			want = "VACUUM (FULL, ANALYZE) of "
		}
		if !strings.HasPrefix(c.ResiduePurge, want) || !strings.Contains(c.ResiduePurge, " table(s), done 20") ||
			c.Status != "complete" || c.AuditChainSeq == 0 || !strings.HasPrefix(c.Verification, "passed") {
			t.Fatalf("claims after the purge: %+v", c)
		}
		conn := storetest.SQLOf(t, f.env.DB)
		if n, err := conn.Int(f.ctx, "SELECT count(*) FROM privacy_requests WHERE id = ? AND receipt = ?", del, jws); err != nil || n != 1 {
			t.Fatalf("the request row's receipt is not the receipt table's (%v)", err)
		}
		// The request completed after the purge: the purge's line and the
		// completion are on the chain at or before the head the receipt
		// carries, in that order.
		purgedAt, err := conn.Int(f.ctx, "SELECT max(seq) FROM privacy_audit_chain WHERE request_id = ? AND line LIKE 'Residue purged: %'", del)
		if err != nil || purgedAt == 0 {
			t.Fatalf("no purge line on the chain (%v)", err)
		}
		completeAt, err := conn.Int(f.ctx, "SELECT max(seq) FROM privacy_audit_chain WHERE request_id = ? AND line = 'Request is complete.'", del)
		if err != nil || !(purgedAt < completeAt && completeAt <= c.AuditChainSeq) {
			t.Fatalf("purge line at %d, completion at %d, receipt head at %d (%v)", purgedAt, completeAt, c.AuditChainSeq, err)
		}
		// The chain head it carries is still a head the chain went through.
		if _, err := f.env.DB.VerifyAuditChain(f.ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, c := f.receiptOf(t, access); c.ResiduePurge != "" {
			t.Fatalf("access receipt: %+v", c)
		}
	})
}

// TestReceiptCountsWhatTheDeleteRemoved: a delivery log written between a
// one-step delete's collect and its delete is deleted with the rest, and
// the receipt's count for its table is the rows the delete removed (plain
// SQL before the delete), not what the collect counted.
func TestReceiptCountsWhatTheDeleteRemoved(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 2)
		id := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		collected, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
		if err != nil {
			t.Fatal(err)
		}
		if err := sql.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990201), "recipient_id": rcp, "address": demodata.Email(2)}); err != nil {
			t.Fatal(err)
		}
		before, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp)
		if err != nil || before != collected+1 {
			t.Fatalf("%d logs before the delete, %d collected: %v", before, collected, err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("delete: %s", s)
		}
		if left, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?", rcp); left != 0 {
			t.Fatalf("%d logs left", left)
		}
		_, c := f.receiptOf(t, id)
		for _, tb := range c.Tables {
			if tb.Table == "nms:broadLogRcp" {
				if tb.Deleted != int64(before) {
					t.Fatalf("the receipt counts %d deleted logs, the delete removed %d (the collect counted %d)", tb.Deleted, before, collected)
				}
				return
			}
		}
		t.Fatalf("no nms:broadLogRcp in the receipt: %+v", c.Tables)
	})
}
