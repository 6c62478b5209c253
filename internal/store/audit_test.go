package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestAuditChain writes audit lines through each writer, verifies the
// chain, then edits a line and deletes one with plain SQL: verify names
// the first broken seq each time.
func TestAuditChain(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			id := auditedRequest(t, db)
			if _, err := db.ClaimRequests(ctx, []store.Status{0}, nil, 1, "w", time.Minute); err != nil {
				t.Fatal(err)
			}
			if ok, err := db.UpdateClaimedRequest(ctx, id, "w", store.RequestUpdate{Audit: []string{"one", "two"}, Release: true}); err != nil || !ok {
				t.Fatalf("update: %v %v", ok, err)
			}
			if ok, err := db.PurgeRequest(ctx, id, []store.Status{0}, "Collected data deleted."); err != nil || !ok {
				t.Fatalf("purge: %v %v", ok, err)
			}
			head, err := db.VerifyAuditChain(ctx, nil)
			if err != nil || head.Seq != 5 || len(head.Hash) != 64 {
				t.Fatalf("verify: %+v %v", head, err)
			}

			brokenAt := func() int64 {
				t.Helper()
				_, err := db.VerifyAuditChain(ctx, nil)
				var b *store.ChainBreak
				if !errors.As(err, &b) {
					t.Fatalf("verify of a tampered chain: %v", err)
				}
				return b.Seq
			}
			// What gets past the append-only protection (TestAuditAppendOnly):
			// the owner lifts it first.
			if err := storetest.SQLOf(t, db).LiftAuditProtection(ctx); err != nil {
				t.Fatal(err)
			}
			if err := storetest.SQLOf(t, db).Exec(ctx, "UPDATE privacy_audit_chain SET line = 'nothing' WHERE seq = 3"); err != nil {
				t.Fatal(err)
			}
			if s := brokenAt(); s != 3 {
				t.Fatalf("edited line: broken at %d, want 3", s)
			}
			if err := storetest.SQLOf(t, db).Exec(ctx, "UPDATE privacy_audit_chain SET line = 'one' WHERE seq = 3"); err != nil {
				t.Fatal(err)
			}
			if _, err := db.VerifyAuditChain(ctx, nil); err != nil {
				t.Fatalf("restored line: %v", err)
			}
			if err := storetest.SQLOf(t, db).Exec(ctx, "DELETE FROM privacy_audit_chain WHERE seq = 2"); err != nil {
				t.Fatal(err)
			}
			if s := brokenAt(); s != 2 {
				t.Fatalf("deleted line: broken at %d, want 2", s)
			}
			if err := storetest.SQLOf(t, db).Exec(ctx, "DELETE FROM privacy_audit_chain WHERE seq >= 5"); err != nil {
				t.Fatal(err)
			}
			if err := storetest.SQLOf(t, db).Exec(ctx, "DELETE FROM privacy_audit_chain WHERE seq < 5"); err != nil {
				t.Fatal(err)
			}
			if s := brokenAt(); s != 1 {
				t.Fatalf("emptied chain: broken at %d, want 1", s)
			}
		})
	}
}

// TestAuditChainConcurrentReplicas: two handles on one database (two
// replicas) append at once; the head row serialises them into one chain.
func TestAuditChainConcurrentReplicas(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			cfg := storetest.Config(t, dialect)
			open := func() *store.DB {
				db, err := store.Open(ctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			}
			a, b := open(), open()
			if _, err := a.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			ns := testNamespace(t, a)
			id, _, err := a.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "v", Type: 1, Regulation: 1}, "u", "Request created.")
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			errs := make(chan error, 40)
			for i := range 40 {
				db := a
				if i%2 == 1 {
					db = b
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- db.AppendAudit(ctx, id, fmt.Sprintf("line %d", i))
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			head, err := b.VerifyAuditChain(ctx, nil)
			// The creation's line and the 40 appended.
			if err != nil || head.Seq != 41 {
				t.Fatalf("verify after concurrent appends: %+v %v", head, err)
			}
		})
	}
}

// testNamespace creates the namespace "ns" (nms:recipient by @email).
func testNamespace(t testing.TB, db *store.DB) *store.Namespace {
	t.Helper()
	ns := &store.Namespace{Name: "ns", Label: "NS", TargetSchema: "nms:recipient", ReconciliationKey: "@email"}
	if _, err := db.CreateNamespaceIfMissing(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

// auditedRequest creates a namespace and a request in it, then appends a
// second audit line: seqs 1 and 2 of the chain. It returns the request's id.
func auditedRequest(t *testing.T, db *store.DB) int64 {
	t.Helper()
	ctx := context.Background()
	ns := testNamespace(t, db)
	req := &store.Request{NamespaceID: ns.ID, ReconciliationValue: "a@example.com", Type: 1, Regulation: 1}
	id, _, err := db.CreateRequest(ctx, req, "https://h/nms/gdpr.jssp?id=", "Request created by operator 'ana'.")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, id, "File downloaded by operator 'ana'."); err != nil {
		t.Fatal(err)
	}
	return id
}
