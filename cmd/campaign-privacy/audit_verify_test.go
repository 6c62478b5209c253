package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// reviewProofSetup seeds demo data, runs one one-step delete to complete
// (so it has a signed receipt anchored in the audit chain) and returns the
// environment, a raw SQL connection and the receipt's claims.
func reviewProofSetup(t *testing.T, dialect string) (map[string]string, *storetest.Conn, *privacy.ReceiptClaims) {
	t.Helper()
	env := testEnv(t, dialect)
	if out, err := run(t, env, "", "demo-data", "--recipients", "3"); err != nil {
		t.Fatalf("demo-data: %v %s", err, out)
	}
	ctx := context.Background()
	m := &Main{Stderr: os.Stderr, Getenv: func(k string) string { return env[k] }}
	_, s, err := m.parse("test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.open(ctx, s, m.logger(s))
	if err != nil {
		t.Fatal(err)
	}
	caller := &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}}
	id, err := a.Privacy.CreateRequestByName(ctx, caller, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
		ReconciliationValue: demodata.Email(1), Type: privacy.TypeDelete, DownloadURL: "http://x/nms/gdpr.jssp?id="})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if out, err := run(t, env, "", "workflow", "run", "all"); err != nil {
		t.Fatalf("workflow run all: %v %s", err, out)
	}
	if out, err := run(t, env, "", "audit", "verify"); err != nil || !strings.Contains(out, "audit chain intact") {
		t.Fatalf("audit verify on the untouched chain: %v %s", err, out)
	}
	conn := storetest.SQL(t, store.Config{DatabaseURL: env["CP_DATABASE_URL"], DataDir: env["CP_DATA_DIR"]})
	jws, err := conn.Bytes(ctx, "SELECT jws FROM privacy_receipts WHERE request_id = ?", id)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := receiptPublicKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	c, err := privacy.VerifyReceipt(string(jws), keys)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != "complete" || c.AuditChainSeq < 3 {
		t.Fatalf("receipt: %+v", c)
	}
	return env, conn, c
}

// TestAuditVerifyRefusesAChainCutBelowAReceiptAnchor:
// someone with write access to the database deletes the tail of the audit
// chain — every line from the delete's own lines on, including the seq the
// signed receipt anchors — and points the one-row head at the new last
// line (no hash to recompute: the remaining rows are untouched).
// VerifyAuditChain only compares an anchor with a row it walks, so a
// receipt whose anchor lies beyond the (shortened) chain is silently
// ignored and `audit verify` says "audit chain intact". The receipt
// proves the chain had reached seq N with hash H; a chain that now ends
// before N was truncated.
// Harm: the audit of an erasure (its lines, the residue purge's) can be
// removed without `audit verify` noticing, although the signed receipt
// that should catch it is in the database.
func TestAuditVerifyRefusesAChainCutBelowAReceiptAnchor(t *testing.T) {
	env, conn, c := reviewProofSetup(t, "sqlite")
	ctx := context.Background()
	keep := c.AuditChainSeq / 2
	if err := conn.Exec(ctx, "DELETE FROM privacy_audit_chain WHERE seq > ?", keep); err != nil {
		t.Fatal(err)
	}
	h, err := conn.Bytes(ctx, "SELECT hash FROM privacy_audit_chain WHERE seq = ?", keep)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "UPDATE privacy_audit_head SET seq = ?, hash = ? WHERE id = 1", keep, string(h)); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, env, "", "audit", "verify")
	if err == nil {
		t.Fatalf("audit verify passed on a chain cut to %d line(s) although a signed receipt anchors seq %d: %s",
			keep, c.AuditChainSeq, strings.TrimSpace(out))
	}
}

// TestAuditVerifyRefusesAnEmptiedChain: the extreme case of the
// above: every chain row deleted and the head reset to the genesis
// (seq 0, 64 zeros). `audit verify` answers "audit chain intact: 0
// line(s)" while the database holds signed receipts anchored at seq > 0.
// Harm: the whole audit of the instance can be wiped undetected.
func TestAuditVerifyRefusesAnEmptiedChain(t *testing.T) {
	env, conn, c := reviewProofSetup(t, "sqlite")
	ctx := context.Background()
	if err := conn.Exec(ctx, "DELETE FROM privacy_audit_chain"); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(ctx, "UPDATE privacy_audit_head SET seq = 0, hash = ? WHERE id = 1", strings.Repeat("0", 64)); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, env, "", "audit", "verify")
	if err == nil {
		t.Fatalf("audit verify passed on an emptied chain although a signed receipt anchors seq %d: %s",
			c.AuditChainSeq, strings.TrimSpace(out))
	}
}

// TestAuditVerifyChecksRequestAuditText: the audit that the
// console's request page, queryDef's @audit and ACC clients show is the
// request row's audit text (privacy_requests.audit). README: "Every audit
// line is also appended ... to one hash chain ... `audit verify` walks it
// and names the first edited or missing line". Someone who may write the
// database replaces the completed delete's "Residue purged: …" line in
// that text (or removes a "downloaded by operator" line); the chain rows
// are left alone. `audit verify` only walks privacy_audit_chain and never
// compares it with the text every reader is shown, so it answers "audit
// chain intact" for an audit that was edited.
// Harm: the audit the DPO reads can be falsified without the one
// verification command noticing.
func TestAuditVerifyChecksRequestAuditText(t *testing.T) {
	env, conn, c := reviewProofSetup(t, "sqlite")
	ctx := context.Background()
	audit, err := conn.Bytes(ctx, "SELECT audit FROM privacy_requests WHERE id = ?", c.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(audit), "Residue purged: ", "Residue NOT purged (edited): ", 1)
	if edited == string(audit) {
		t.Fatalf("no purge line in the audit:\n%s", audit)
	}
	if err := conn.Exec(ctx, "UPDATE privacy_requests SET audit = ? WHERE id = ?", edited, c.RequestID); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, env, "", "audit", "verify")
	if err == nil {
		t.Fatalf("audit verify passed although request %d's audit text was edited (its purge line no longer matches the chain's): %s",
			c.RequestID, strings.TrimSpace(out))
	}
}
