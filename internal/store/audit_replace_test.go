package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestAuditReplaceThroughAnotherUniqueIndex (J167, SQLite): REPLACE
// deletes the rows of any unique index it conflicts with without firing a
// DELETE trigger. With a unique index on an expression of seq, a line can
// be replaced away by a row with a new, higher seq; the edited line must
// then not be insertable back at its own seq (only after the last line),
// so the rewrite stays a gap that audit verify names. Refusing only an
// existing seq (J163's first fix) let the edited line in, its hashes
// recomputed, and verify passed.
func TestAuditReplaceThroughAnotherUniqueIndex(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, nil)
	conn := storetest.SQLOf(t, db)
	head := chainOfThree(t, db)

	str := func(q string, args ...any) string {
		b, err := conn.Bytes(ctx, q, args...)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	refused := false
	exec := func(q string, args ...any) {
		if refused {
			return
		}
		if err := conn.Exec(ctx, q, args...); err != nil {
			t.Logf("refused (as it should be): %s: %v", q, err)
			refused = true
		}
	}
	exec("CREATE UNIQUE INDEX rv2_chain_mod ON privacy_audit_chain(seq % 1000000)")
	prev := str("SELECT prev_hash FROM privacy_audit_chain WHERE seq = 2")
	for seq := int64(2); seq <= head.Seq; seq++ {
		req, err := conn.Int(ctx, "SELECT request_id FROM privacy_audit_chain WHERE seq = ?", seq)
		if err != nil {
			t.Fatal(err)
		}
		at := str("SELECT at FROM privacy_audit_chain WHERE seq = ?", seq)
		line := str("SELECT line FROM privacy_audit_chain WHERE seq = ?", seq)
		if seq == 2 {
			// The request row's audit text (not protected) follows.
			exec("UPDATE privacy_requests SET audit = replace(audit, ?, ?) WHERE id = ?", line, "rv2 edited: nothing was deleted", req)
			line = "rv2 edited: nothing was deleted"
		}
		hash, err := store.ChainHash(prev, seq, req, at, line)
		if err != nil {
			t.Fatal(err)
		}
		// Away with line seq (REPLACE on the expression index)…
		exec("INSERT OR REPLACE INTO privacy_audit_chain (seq, request_id, at, line, prev_hash, hash) VALUES (?, 0, 'x', 'x', 'x', 'x')", 1000000+seq)
		// …and back, edited, the helper row replaced away in turn.
		exec("INSERT OR REPLACE INTO privacy_audit_chain (seq, request_id, at, line, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?)", seq, req, at, line, prev, hash)
		prev = hash
	}
	exec("UPDATE privacy_audit_head SET hash = ? WHERE id = 1", prev)
	exec("DROP INDEX rv2_chain_mod")

	if refused {
		return
	}
	got := str("SELECT line FROM privacy_audit_chain WHERE seq = 2")
	_, verr := db.VerifyAuditChain(ctx, nil)
	n, _ := conn.Int(ctx, "SELECT count(*) FROM privacy_audit_chain")
	t.Errorf("line 2 of the append-only chain rewritten with every trigger in place: now %q; %d lines; audit verify: %v (nil = passes)",
		got, n, fmt.Sprint(verr))
}
