package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestSQLiteBatchIDs: a create batch on SQLite takes its ids after the
// requests' AUTOINCREMENT sequence, so an id is never given twice, even
// when the row that held the highest one is gone; each row carries the
// name and download URL of its own id, and a row turned away by a taken
// dedupe key answers the stored request's id.
func TestSQLiteBatchIDs(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, time.Now)
	plain := storetest.SQLOf(t, db)
	ns := testNamespace(t, db)
	create := func(value string, key *string) (int64, bool) {
		id, existing, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: value, Type: 1, Regulation: 1, DedupeKey: key}, "https://cp.example/nms/gdpr.jssp?id=", "Request created.")
		if err != nil {
			t.Fatal(err)
		}
		return id, existing
	}
	first, _ := create("a@example.com", nil)
	second, _ := create("b@example.com", nil)
	if err := plain.LiftAuditProtection(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM privacy_audit_chain WHERE request_id = ?", "DELETE FROM privacy_requests WHERE id = ?"} {
		if err := plain.Exec(ctx, q, second); err != nil {
			t.Fatal(err)
		}
	}
	if third, _ := create("c@example.com", nil); third <= second {
		t.Fatalf("ids %d, %d, then %d after the second's row was deleted: an id given twice", first, second, third)
	}

	// A batch: 40 callers at once, half of them on five dedupe keys.
	var wg sync.WaitGroup
	ids := make([]int64, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var key *string
			if i%2 == 0 {
				k := fmt.Sprintf("key-%d", i%10)
				key = &k
			}
			ids[i], _ = create(fmt.Sprintf("v%d@example.com", i), key)
		}()
	}
	wg.Wait()
	byKey := map[int]int64{}
	for i, id := range ids {
		if i%2 == 0 {
			if prior, ok := byKey[i%10]; ok && prior != id {
				t.Fatalf("dedupe key %d answered ids %d and %d", i%10, prior, id)
			}
			byKey[i%10] = id
			continue
		}
		name, err := plain.Bytes(ctx, "SELECT CAST(name || ' ' || url_file AS BLOB) FROM privacy_requests WHERE id = ? AND reconciliation_value = ?", id, fmt.Sprintf("v%d@example.com", i))
		if want := fmt.Sprintf("privacyRequest%d https://cp.example/nms/gdpr.jssp?id=%d", id, id); err != nil || string(name) != want {
			t.Fatalf("request %d stored as %q (%v), want %q", id, name, err, want)
		}
	}
	if n, err := plain.Int(ctx, "SELECT count(*) FROM privacy_requests"); err != nil || n != 2+20+5 {
		t.Fatalf("%d requests stored (%v), want 27", n, err)
	}
}
