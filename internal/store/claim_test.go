package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestClaimRequests: a claim takes the statuses in the order given, each
// oldest first, up to the limit; it moves what it takes, skips what
// another worker holds until that lease runs out, and what is not due yet.
func TestClaimRequests(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			conn := storetest.SQLOf(t, db)
			ns := newNamespace(t, db)
			// ids 1-4 status 0, 5-7 status 2, 8 status 0 again, 9 status 7.
			for i, st := range []int{0, 0, 0, 0, 2, 2, 2, 0, 7} {
				if err := conn.InsertRow(ctx, "privacy_requests", map[string]any{"id": int64(i + 1), "namespace_id": ns.ID,
					"reconciliation_value": fmt.Sprint("v", i), "type": 1, "regulation": 1, "status": st,
					"confirm_delete_pending": false, "operator_id": int64(1), "created": clock.Now(), "last_modified": clock.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			if err := conn.Exec(ctx, "UPDATE privacy_requests SET next_attempt_at = ? WHERE id = 5", clock.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			claim := func(worker string, limit int) []int64 {
				t.Helper()
				got, err := db.ClaimRequests(ctx, []store.Status{2, 0}, map[store.Status]store.Status{0: 1, 2: 3}, limit, worker, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				var ids []int64
				for _, r := range got {
					want := map[int64]store.Status{1: 1, 2: 1, 3: 1, 4: 1, 8: 1, 6: 3, 7: 3}[r.ID]
					if r.Status != want || r.ClaimedBy == nil || *r.ClaimedBy != worker {
						t.Errorf("request %d: status %d, held by %v; want %d, %s", r.ID, r.Status, r.ClaimedBy, want, worker)
					}
					ids = append(ids, r.ID)
				}
				return ids
			}
			// Status 2 first (5 is not due), then the oldest of status 0.
			if got := claim("a", 4); !slices.Equal(got, []int64{1, 2, 6, 7}) {
				t.Fatalf("first claim %v, want [1 2 6 7]", got)
			}
			if got := claim("b", 10); !slices.Equal(got, []int64{3, 4, 8}) {
				t.Fatalf("second claim %v, want [3 4 8]", got)
			}
			if got := claim("b", 10); len(got) != 0 {
				t.Fatalf("third claim %v, want none: the rest is held, not due or done", got)
			}
			// Worker a's lease runs out (a crash): its requests are claimed
			// again, in their moved statuses, once those are asked for.
			clock.Advance(2 * time.Minute)
			got, err := db.ClaimRequests(ctx, []store.Status{1, 3}, nil, 10, "c", time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, []int64{1, 2, 3, 4, 6, 7, 8}) {
				t.Fatalf("after the leases ran out: %v, want every held request", ids)
			}
		})
	}
}

// TestClaimReadsOnlyWhatItTakes: the statistics say every request is
// waiting (the ANALYZE at a run's start), then the run moves most of them
// on. A claim still reads the index on (status, id) and stops at its
// limit; with "status = ?" PostgreSQL took the primary key in id order and
// read every request already done (here its filter removed 1,900 rows).
func TestClaimReadsOnlyWhatItTakes(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.Postgres, clock.Now)
	conn := storetest.SQLOf(t, db)
	execAll(t, conn,
		`INSERT INTO privacy_requests (namespace_id, reconciliation_value, type, regulation, status, confirm_delete_pending, operator_id, created, last_modified)
			SELECT 1, 'v' || g, 2, 1, 5, false, 1, now(), now() FROM generate_series(1, 2000) g`,
		"ANALYZE privacy_requests",
		"UPDATE privacy_requests SET status = 7 WHERE id <= 1900",
		"VACUUM privacy_requests",
	)
	plan, err := db.ClaimPlanForTest(ctx, 5)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []struct {
		Plan json.RawMessage
	}
	if err := json.Unmarshal([]byte(plan), &nodes); err != nil || len(nodes) != 1 {
		t.Fatalf("plan %s: %v", plan, err)
	}
	// Every node of the plan, flattened.
	type node struct {
		NodeType    string `json:"Node Type"`
		IndexName   string `json:"Index Name"`
		RowsRemoved int    `json:"Rows Removed by Filter"`
		Plans       []json.RawMessage
	}
	var scans []string
	var walk func(raw json.RawMessage)
	walk = func(raw json.RawMessage) {
		var n node
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(n.NodeType, "Scan") {
			scans = append(scans, n.NodeType+" "+n.IndexName)
			if n.RowsRemoved > 20 {
				t.Errorf("%s %s read %d rows it did not take", n.NodeType, n.IndexName, n.RowsRemoved)
			}
		}
		if n.NodeType == "Sort" {
			t.Errorf("the claim sorts its candidates: %s", plan)
		}
		for _, p := range n.Plans {
			walk(p)
		}
	}
	walk(nodes[0].Plan)
	if !slices.Equal(scans, []string{"Index Scan privacy_requests_status_id"}) {
		t.Fatalf("scans %v, want the index on (status, id) alone:\n%s", scans, plan)
	}
}
