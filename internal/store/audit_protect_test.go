package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestAuditAppendOnly (security-bar #102): once migrated, the audit chain
// refuses every rewrite through a plain connection — a line edited, one
// deleted, two seqs swapped, the whole chain deleted or truncated, the
// head deleted, a line replaced by an upsert or (SQLite) INSERT OR
// REPLACE — and still verifies; a forged row can still be appended
// (INSERT is how the service writes) and verify names it. On PostgreSQL,
// with a role that is not a superuser and ran the migrations (the tables'
// owner, as the service's role is), a rewrite gets "permission denied";
// with its privileges granted back, the trigger still refuses it.
func TestAuditAppendOnly(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, nil)
			conn := storetest.SQLOf(t, db)
			head := chainOfThree(t, db)
			rewrites := []string{
				"UPDATE privacy_audit_chain SET line = 'edited' WHERE seq = 2",
				"DELETE FROM privacy_audit_chain WHERE seq = 2",
				"UPDATE privacy_audit_chain SET seq = 5 - seq WHERE seq IN (2, 3)",
				"DELETE FROM privacy_audit_chain",
				"DELETE FROM privacy_audit_head",
			}
			if dialect == store.Postgres {
				rewrites = append(rewrites, "TRUNCATE privacy_audit_chain", "TRUNCATE privacy_audit_head",
					"INSERT INTO privacy_audit_chain (seq, request_id, at, line, prev_hash, hash) SELECT seq, request_id, at, 'edited', prev_hash, hash FROM privacy_audit_chain WHERE seq = 2 ON CONFLICT (seq) DO UPDATE SET line = excluded.line")
			} else {
				// REPLACE deletes the line it replaces without firing a
				// DELETE trigger.
				rewrites = append(rewrites,
					"INSERT OR REPLACE INTO privacy_audit_chain SELECT seq, request_id, at, 'edited', prev_hash, hash FROM privacy_audit_chain WHERE seq = 2",
					"REPLACE INTO privacy_audit_chain SELECT seq, request_id, at, 'edited', prev_hash, hash FROM privacy_audit_chain WHERE seq = 3",
					"INSERT INTO privacy_audit_chain SELECT seq, request_id, at, 'edited', prev_hash, hash FROM privacy_audit_chain WHERE seq = 2 ON CONFLICT (seq) DO UPDATE SET line = excluded.line")
			}
			for _, q := range rewrites {
				if err := conn.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Fatalf("%s: %v, want the append-only refusal", q, err)
				}
			}
			if h, err := db.VerifyAuditChain(ctx, nil); err != nil || h != head {
				t.Fatalf("after the refused rewrites: %+v %v, want %+v", h, err, head)
			}
			if err := conn.Exec(ctx, "INSERT INTO privacy_audit_chain (seq, request_id, at, line, prev_hash, hash) VALUES (?, 1, 'x', 'forged', ?, ?)",
				head.Seq+1, strings.Repeat("0", 64), strings.Repeat("1", 64)); err != nil {
				t.Fatal(err)
			}
			var b *store.ChainBreak
			if _, err := db.VerifyAuditChain(ctx, nil); !errors.As(err, &b) || b.Seq != head.Seq+1 {
				t.Fatalf("a forged row appended: %v, want the chain broken at %d", err, head.Seq+1)
			}
		})
	}
	t.Run("postgres role", func(t *testing.T) {
		ctx := context.Background()
		roleURL, _, _ := storetest.ServiceRole(t, storetest.Config(t, store.Postgres))
		cfg := store.Config{DataDir: t.TempDir(), DatabaseURL: roleURL}
		db := storetest.OpenConfig(t, cfg, nil)
		conn := storetest.SQL(t, cfg)
		head := chainOfThree(t, db)
		for _, q := range []string{
			"UPDATE privacy_audit_chain SET line = 'edited' WHERE seq = 2",
			"DELETE FROM privacy_audit_chain WHERE seq = 2",
			"TRUNCATE privacy_audit_chain",
			"DELETE FROM privacy_audit_head",
			"TRUNCATE privacy_audit_head",
		} {
			if err := conn.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "permission denied") {
				t.Fatalf("%s by the service's role: %v, want permission denied", q, err)
			}
		}
		if err := conn.Exec(ctx, "GRANT UPDATE, DELETE, TRUNCATE ON privacy_audit_chain, privacy_audit_head TO CURRENT_USER"); err != nil {
			t.Fatalf("the owner grants itself its privileges back: %v", err)
		}
		for _, q := range []string{"UPDATE privacy_audit_chain SET line = 'edited' WHERE seq = 2", "TRUNCATE privacy_audit_chain", "DELETE FROM privacy_audit_head"} {
			if err := conn.Exec(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Fatalf("%s with the privileges back: %v, want the trigger's refusal", q, err)
			}
		}
		if h, err := db.VerifyAuditChain(ctx, nil); err != nil || h != head {
			t.Fatalf("after the refused rewrites: %+v %v, want %+v", h, err, head)
		}
	})
}

// chainOfThree writes a request and two more audit lines (seqs 1–3), and
// returns the verified head.
func chainOfThree(t *testing.T, db *store.DB) store.ChainHead {
	t.Helper()
	ctx := context.Background()
	if err := db.AppendAudit(ctx, auditedRequest(t, db), "File downloaded again."); err != nil {
		t.Fatal(err)
	}
	head, err := db.VerifyAuditChain(ctx, nil)
	if err != nil || head.Seq != 3 {
		t.Fatalf("verify: %+v %v", head, err)
	}
	return head
}
