package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestBatchChecksCountEachRequest: a batch commit counts its requests'
// remaining-rows checks together, and each request gets its own count —
// also when one check's hops take several statements (more bound values
// than one holds) — while a request without a check, or no longer held,
// is not touched by the others' counts.
func TestBatchChecksCountEachRequest(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, nil)
			read := exactNamespace(t, db)
			// ids[3] is not claimed: not held by w.
			ids := claimedRequests(t, db, read, 4, 3)
			// The rows the first check finds: the four requests among 1,500
			// ids (three statements' worth on SQLite), and the namespace.
			parents := append([]int64{}, ids...)
			for id := int64(1_000_000); len(parents) < 1_500; id++ {
				parents = append(parents, id)
			}
			found := &store.RemainCheck{Table: "privacy_namespaces", Column: "name", Value: "ns", Namespace: read,
				Hops: []store.Hop{{Table: "privacy_requests", Column: "id", Parents: parents}}}
			none := &store.RemainCheck{Table: "privacy_namespaces", Column: "name", Value: "none", Namespace: read,
				Hops: []store.Hop{{Table: "privacy_requests", Column: "id", Parents: []int64{999_999}}}}
			var counted []int64
			item := func(id int64, check *store.RemainCheck) store.BatchItem {
				return store.BatchItem{ID: id, Check: check, Update: store.RequestUpdate{Status: ptr(store.Status(2)), Release: true},
					Remaining: func(n int64) store.RequestUpdate {
						counted = append(counted, n)
						return store.RequestUpdate{Status: ptr(store.Status(4)), Release: true}
					}}
			}
			res, err := db.CommitBatch(ctx, "w", []store.BatchItem{item(ids[0], none), item(ids[1], found), item(ids[2], nil), item(ids[3], found)})
			if err != nil {
				t.Fatal(err)
			}
			if len(counted) != 1 || counted[0] != 5 {
				t.Errorf("counts handed to Remaining: %v, want [5] (four requests and the namespace)", counted)
			}
			for i, want := range []store.Status{2, 4, 2, 0} {
				r, err := db.FindRequestByID(ctx, ids[i])
				if err != nil {
					t.Fatal(err)
				}
				if r.Status != want || res[i].Held != (i < 3) {
					t.Errorf("request %d: status %d (held %t), want %d", i, r.Status, res[i].Held, want)
				}
			}
		})
	}
}

// TestFindRequestRecords: the records of several requests read together
// are, request by request, what reading each alone gives.
func TestFindRequestRecords(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, nil)
			ids := claimedRequests(t, db, exactNamespace(t, db), 3, 3)
			var items []store.BatchItem
			for i, id := range ids {
				// The first: two tables, a link and two rows; the second:
				// one table and a row; the third: nothing.
				upd := store.RequestUpdate{Status: ptr(store.Status(2)), Counts: []store.RequestData{}, Linked: []store.LinkedCount{}, Reviewed: []store.ReviewedRow{}}
				for j := range 2 - i {
					upd.Counts = append(upd.Counts, store.RequestData{Schema: []string{"nms:recipient", "nms:broadLogRcp"}[j], RecordCount: int64(10*i + j + 1)})
					upd.Reviewed = append(upd.Reviewed, store.ReviewedRow{Schema: "nms:recipient", RowID: int64(100*i + 2 - j)})
				}
				if i == 0 {
					upd.Linked = append(upd.Linked, store.LinkedCount{Schema: "cus:ticket", Link: "recipient", Target: "nms:recipient", RecordCount: 4})
				}
				items = append(items, store.BatchItem{ID: id, Update: upd})
			}
			if _, err := db.CommitBatch(ctx, "w", items); err != nil {
				t.Fatal(err)
			}
			together, err := db.FindRequestRecords(ctx, ids)
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				c, err := db.FindRequestData(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				l, err := db.FindLinkedCounts(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				r, err := db.FindReviewedRows(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if len(c) != 2-i || len(r) != 2-i || len(l) != map[int]int{0: 1}[i] {
					t.Fatalf("request %d alone: %v %v %v", i, c, l, r)
				}
				got := together[id]
				if got == nil || len(got.Counts) != len(c) || len(got.Linked) != len(l) || len(got.Rows) != len(r) ||
					len(c) > 0 && !reflect.DeepEqual(got.Counts, c) || len(l) > 0 && !reflect.DeepEqual(got.Linked, l) || len(r) > 0 && !reflect.DeepEqual(got.Rows, r) {
					t.Errorf("request %d together: %+v, alone %v %v %v", i, got, c, l, r)
				}
			}
		})
	}
}

// claimedRequests creates n requests in namespace ns, of which worker "w"
// claims the first claimed, and returns their ids.
func claimedRequests(t *testing.T, db *store.DB, ns *store.Namespace, n, claimed int) []int64 {
	t.Helper()
	ctx := context.Background()
	var ids []int64
	for i := range n {
		id, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: fmt.Sprint("v", i), Type: 1}, "u", "Request created.")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := db.ClaimRequests(ctx, []store.Status{0}, map[store.Status]store.Status{0: 1}, claimed, "w", time.Minute); err != nil {
		t.Fatal(err)
	}
	return ids
}

func ptr[T any](v T) *T { return &v }
