package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestSQLiteLockWaitEndsWithContext: a write waiting for SQLite's write
// lock, held by another connection, ends when its context does, not at
// the busy timeout (10 s); so does a create's call (security-bar #112).
// The group commit's batch runs with a context that ends when its last
// caller gives up: it stops waiting then. The earlier driver waited out
// the busy timeout whatever the context.
func TestSQLiteLockWaitEndsWithContext(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, time.Now)
	ns := testNamespace(t, db)
	id, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "v", Type: 1, Regulation: 1}, "u", "Request created.")
	if err != nil {
		t.Fatal(err)
	}
	release, err := storetest.SQLOf(t, db).LockTable(ctx, "privacy_requests")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for _, write := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"an audit line", func(ctx context.Context) error { return db.AppendAudit(ctx, id, "line") }},
		{"a create", func(ctx context.Context) error {
			_, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "w", Type: 1, Regulation: 1}, "u", "Request created.")
			return err
		}},
	} {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		began := time.Now()
		err := write.run(short)
		took := time.Since(began)
		cancel()
		if err == nil || took > 3*time.Second {
			t.Fatalf("%s waiting for the lock: %v after %v, want an error at its 300 ms deadline", write.name, err, took)
		}
	}
}
