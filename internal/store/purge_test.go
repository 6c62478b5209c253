package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestPurgeRechecksStatus: PurgeRequest purges a request only while it is
// in one of the statuses it is given and not purged yet, checked in its
// own transaction: the cleanup's FindPurgeable answer may be old.
func TestPurgeRechecksStatus(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			ns := testNamespace(t, db)
			id, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "a@example.com", Type: 1, Regulation: 1},
				"https://h/nms/gdpr.jssp?id=", "Request created by operator 'ana'.")
			if err != nil {
				t.Fatal(err)
			}
			// The request is new (0), not finished.
			if ok, err := db.PurgeRequest(ctx, id, []store.Status{7, 8, 9}, "Purged."); err != nil || ok {
				t.Fatalf("a request in another status: purged %v, %v", ok, err)
			}
			r, err := db.FindRequestByID(ctx, id)
			if err != nil || r.PurgedAt != nil || r.ReconciliationValue != "a@example.com" || strings.Contains(r.Audit, "Purged.") {
				t.Fatalf("a request in another status was changed: %+v %v", r, err)
			}
			if ok, err := db.PurgeRequest(ctx, id, []store.Status{0}, "Purged."); err != nil || !ok {
				t.Fatalf("purge: %v %v", ok, err)
			}
			if ok, err := db.PurgeRequest(ctx, id, []store.Status{0}, "Purged."); err != nil || ok {
				t.Fatalf("a second purge: purged %v, %v", ok, err)
			}
			if r, err = db.FindRequestByID(ctx, id); err != nil || r.PurgedAt == nil || r.ReconciliationValue != "" || strings.Count(r.Audit, "Purged.") != 1 {
				t.Fatalf("after the purges: %+v %v", r, err)
			}
		})
	}
}
