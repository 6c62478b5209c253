package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
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
	if err := conn.LiftAuditProtection(ctx); err != nil { // the tampering that follows gets past it
		t.Fatal(err)
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

// TestAuditVerifyRefusesADeletedReceipt: README "The audit chain":
// the chain's hash is unkeyed, so `audit verify` also checks the chain
// against the heads the signed receipts carry. One who may write the
// database need not forge a signature: they delete the receipt
// (privacy_receipts and the request row's copy), which removes its
// anchor, then edit the completed delete's "Residue purged" line,
// recompute every chain row after it and the head, and the request's
// audit text to match. `audit verify` checked the receipts it found,
// never that a finished request still had the receipt every such request
// gets, and answered "audit chain intact". A request created in the chain
// era that is complete without its receipt is a removed anchor: it fails,
// naming the request.
func TestAuditVerifyRefusesADeletedReceipt(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env, conn, c := reviewProofSetup(t, dialect)
			ctx := context.Background()
			for _, stmt := range []string{"DELETE FROM privacy_receipts WHERE request_id = ?", "UPDATE privacy_requests SET receipt = NULL WHERE id = ?"} {
				if err := conn.Exec(ctx, stmt, c.RequestID); err != nil {
					t.Fatal(err)
				}
			}
			seq, err := conn.Int(ctx, "SELECT min(seq) FROM privacy_audit_chain WHERE request_id = ? AND line LIKE 'Residue purged%'", c.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			old, err := conn.Bytes(ctx, "SELECT line FROM privacy_audit_chain WHERE seq = ?", seq)
			if err != nil {
				t.Fatal(err)
			}
			edited := "Residue NOT purged (edited after the fact)."
			if err := conn.Exec(ctx, "UPDATE privacy_audit_chain SET line = ? WHERE seq = ?", edited, seq); err != nil {
				t.Fatal(err)
			}
			rewriteChainFrom(t, conn, seq)
			audit, err := conn.Bytes(ctx, "SELECT audit FROM privacy_requests WHERE id = ?", c.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Exec(ctx, "UPDATE privacy_requests SET audit = ? WHERE id = ?", strings.Replace(string(audit), string(old), edited, 1), c.RequestID); err != nil {
				t.Fatal(err)
			}
			if st, _ := conn.Int(ctx, "SELECT status FROM privacy_requests WHERE id = ?", c.RequestID); privacy.Status(st) != privacy.StatusComplete {
				t.Fatalf("status %d", st)
			}
			out, err := run(t, env, "", "audit", "verify")
			if err == nil {
				t.Fatalf("audit verify passed after request %d's receipt was deleted and its purge line (seq %d, %q) rewritten with the chain after it: %s",
					c.RequestID, seq, old, strings.TrimSpace(out))
			}
			if msg := errorText(err); !strings.Contains(msg, fmt.Sprintf("request %d is complete but has no receipt", c.RequestID)) {
				t.Errorf("audit verify's failure does not name the request without its receipt: %q", msg)
			}
		})
	}
}

// TestAuditVerifyRefusesAReceiptStoredUnderAnotherRequest: someone
// who may write the database copies the completed delete's signed
// receipt (request A) onto request B, a delete that was never run
// (status new). /nms/gdpr.jssp?id=B&receipt=1 served it (it verifies
// with the instance's key), and `audit verify`, which verified each
// stored receipt's signature but never compared its request_id with the
// request it is stored under, answered "audit chain intact". Both now
// refuse a receipt that is not its request's.
func TestAuditVerifyRefusesAReceiptStoredUnderAnotherRequest(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env, conn, c := reviewProofSetup(t, dialect)
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
			other, err := a.Privacy.CreateRequestByName(ctx, caller, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
				ReconciliationValue: demodata.Email(2), Type: privacy.TypeDelete, DownloadURL: "http://x/nms/gdpr.jssp?id="})
			if err != nil {
				t.Fatal(err)
			}
			jws, err := conn.Bytes(ctx, "SELECT jws FROM privacy_receipts WHERE request_id = ?", c.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			if err := conn.Exec(ctx, "INSERT INTO privacy_receipts (request_id, jws, created) VALUES (?, ?, CURRENT_TIMESTAMP)", other, string(jws)); err != nil {
				t.Fatal(err)
			}
			if err := conn.Exec(ctx, "UPDATE privacy_requests SET receipt = ? WHERE id = ?", string(jws), other); err != nil {
				t.Fatal(err)
			}
			// What an operator is served for B, and for A.
			op := &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}}
			if _, err := a.Privacy.OpenReceipt(ctx, op, other); apperr.CodeOf(err) != apperr.Conflict {
				t.Errorf("HEAD of request %d's receipt (request %d's): %v", other, c.RequestID, err)
			}
			if _, err := a.Privacy.DownloadReceipt(ctx, op, other, "127.0.0.1"); apperr.CodeOf(err) != apperr.Conflict {
				t.Errorf("download of request %d's receipt (request %d's): %v", other, c.RequestID, err)
			}
			if served, err := a.Privacy.DownloadReceipt(ctx, op, c.RequestID, "127.0.0.1"); err != nil || served != string(jws) {
				t.Errorf("download of request %d's own receipt: %v", c.RequestID, err)
			}
			a.Close()
			out, err := run(t, env, "", "audit", "verify")
			if err == nil {
				t.Fatalf("audit verify passed although request %d (never run) holds request %d's signed receipt: %s",
					other, c.RequestID, strings.TrimSpace(out))
			}
			if msg := errorText(err); !strings.Contains(msg, fmt.Sprintf("request %d: the receipt stored for it is request %d's", other, c.RequestID)) {
				t.Errorf("audit verify's failure: %q", msg)
			}
		})
	}
}

// rewriteChainFrom recomputes the audit chain's hashes from seq on, and
// its head, as one who may write the database can (the hash is unkeyed).
func rewriteChainFrom(t *testing.T, conn *storetest.Conn, seq int64) {
	t.Helper()
	ctx := context.Background()
	last, err := conn.Int(ctx, "SELECT max(seq) FROM privacy_audit_chain")
	if err != nil {
		t.Fatal(err)
	}
	prev, err := conn.Bytes(ctx, "SELECT prev_hash FROM privacy_audit_chain WHERE seq = ?", seq)
	if err != nil {
		t.Fatal(err)
	}
	hash := string(prev)
	for s := seq; s <= last; s++ {
		rid, err := conn.Int(ctx, "SELECT request_id FROM privacy_audit_chain WHERE seq = ?", s)
		if err != nil {
			t.Fatal(err)
		}
		at, err := conn.Bytes(ctx, "SELECT at FROM privacy_audit_chain WHERE seq = ?", s)
		if err != nil {
			t.Fatal(err)
		}
		line, err := conn.Bytes(ctx, "SELECT line FROM privacy_audit_chain WHERE seq = ?", s)
		if err != nil {
			t.Fatal(err)
		}
		next, err := store.ChainHash(hash, s, rid, string(at), string(line))
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(ctx, "UPDATE privacy_audit_chain SET prev_hash = ?, hash = ? WHERE seq = ?", hash, next, s); err != nil {
			t.Fatal(err)
		}
		hash = next
	}
	if err := conn.Exec(ctx, "UPDATE privacy_audit_head SET seq = ?, hash = ? WHERE id = 1", last, hash); err != nil {
		t.Fatal(err)
	}
}

// TestAuditVerifyNamesTheReceiptSignedWithAnUnknownKey: a rotation of
// the receipt key (README "Key rotation": the old public key kept in
// CP_RECEIPT_PREVIOUS_KEYS) verifies; once the old key is dropped from
// CP_RECEIPT_PREVIOUS_KEYS, `audit verify` fails on the first receipt it
// signed — rightly — but said only "the receipt does not verify: token
// signature is invalid: ed25519: verification error": not which
// request's, nor that no key of the instance verifies it. The message
// names the request and says what to do for a retired key.
func TestAuditVerifyNamesTheReceiptSignedWithAnUnknownKey(t *testing.T) {
	env, _, c := reviewProofSetup(t, "sqlite")
	pem, err := run(t, env, "", "receipt", "public-key")
	if err != nil {
		t.Fatal(err)
	}
	old := t.TempDir() + "/old-receipt.pub"
	if err := os.WriteFile(old, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	env["CP_RECEIPT_KEY"] = strings.Repeat("ab", 32) // the new key
	env["CP_RECEIPT_PREVIOUS_KEYS"] = old
	if out, err := run(t, env, "", "audit", "verify"); err != nil {
		t.Fatalf("audit verify after a rotation that keeps the old key: %v %s", err, out)
	}
	env["CP_RECEIPT_PREVIOUS_KEYS"] = ""
	out, err := run(t, env, "", "audit", "verify")
	if err == nil {
		t.Fatalf("audit verify passed with the receipt's key removed: %s", out)
	}
	msg := errorText(err) + out
	if !strings.Contains(msg, "request "+strconv.FormatInt(c.RequestID, 10)) && !strings.Contains(msg, c.RequestName) {
		t.Errorf("audit verify's failure does not name the request whose receipt does not verify (request %d, %s): %q", c.RequestID, c.RequestName, msg)
	}
	if !strings.Contains(msg, "CP_RECEIPT_PREVIOUS_KEYS") {
		t.Errorf("audit verify's failure does not say a retired key is listed in CP_RECEIPT_PREVIOUS_KEYS: %q", msg)
	}
}

// TestAuditVerifyChecksTheReceiptQueryDefServes: a request's receipt
// is stored twice: privacy_receipts (what `audit verify`, the console and
// /nms/gdpr.jssp?receipt=1 read) and privacy_requests.receipt (what
// xtk:queryDef serves as @receipt to ACC clients, README "The receipt").
// One who may write the database replaces the request row's copy (here:
// the receipt with its claims edited and its signature kept). `audit
// verify` walked privacy_receipts only and answered "audit chain intact":
// the proof ACC clients are handed was never checked. It fails when
// @receipt is not the stored receipt.
func TestAuditVerifyChecksTheReceiptQueryDefServes(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env, conn, c := reviewProofSetup(t, dialect)
			ctx := context.Background()
			jws, err := conn.Bytes(ctx, "SELECT receipt FROM privacy_requests WHERE id = ?", c.RequestID)
			if err != nil || strings.Count(string(jws), ".") != 2 {
				t.Fatalf("@receipt of %d: %q %v", c.RequestID, jws, err)
			}
			parts := strings.Split(string(jws), ".")
			payload, err := base64.RawURLEncoding.DecodeString(parts[1])
			if err != nil {
				t.Fatal(err)
			}
			edited := strings.Replace(string(payload), `"status":"complete"`, `"status":"complete","note":"edited"`, 1)
			forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(edited)) + "." + parts[2]
			if err := conn.Exec(ctx, "UPDATE privacy_requests SET receipt = ? WHERE id = ?", forged, c.RequestID); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, env, "", "audit", "verify")
			if err == nil {
				t.Fatalf("audit verify passed although request %d's @receipt (what queryDef serves) no longer verifies: %s",
					c.RequestID, strings.TrimSpace(out))
			}
		})
	}
}
