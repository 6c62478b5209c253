package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestCreateSessionQuota: a session written with a quota of 3 leaves the
// operator its 3 newest live sessions, the new one always among them (also
// when its timestamp is older than the others': a clock set back), revokes
// the rest oldest first and returns their ids; revoked and expired
// sessions do not count, other operators' are untouched, and a quota of 0
// revokes nothing. Checked with plain SQL on both stores.
func TestCreateSessionQuota(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			conn := storetest.SQLOf(t, db)
			ana := &store.Operator{Login: "ana", PasswordHash: "h"}
			bob := &store.Operator{Login: "bob", PasswordHash: "h"}
			for _, op := range []*store.Operator{ana, bob} {
				if err := db.CreateOperator(ctx, op); err != nil {
					t.Fatal(err)
				}
			}
			now := clock.Now()
			open := func(id string, op *store.Operator, created time.Time, keep int) []string {
				t.Helper()
				revoked, err := db.CreateSession(ctx, &store.Session{ID: id, OperatorID: op.ID, SecurityTokenHash: "x",
					Created: created, Expires: created.Add(24 * time.Hour)}, keep)
				if err != nil {
					t.Fatal(err)
				}
				return revoked
			}
			live := func(op *store.Operator) int64 {
				t.Helper()
				n, err := conn.Int(ctx, "SELECT COUNT(*) FROM sessions WHERE operator_id = ? AND revoked_at IS NULL", op.ID)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			// An expired session and another operator's: never counted.
			open("ana-expired", ana, now.Add(-25*time.Hour), 0)
			open("bob-1", bob, now, 0)
			for i, id := range []string{"ana-1", "ana-2", "ana-3"} {
				if got := open(id, ana, now.Add(time.Duration(i)*time.Minute), 3); len(got) != 0 {
					t.Fatalf("%s revoked %v within the quota", id, got)
				}
			}
			// Two beyond the quota at once (quota lowered to 2): the
			// oldest two, oldest first.
			if got := open("ana-4", ana, now.Add(3*time.Minute), 2); !slices.Equal(sorted(got), []string{"ana-1", "ana-2"}) {
				t.Fatalf("revoked %v, want ana-1 and ana-2", got)
			}
			// A clock set back: the new session is the oldest by its
			// timestamp, and still kept.
			if got := open("ana-back", ana, now.Add(-time.Hour), 2); !slices.Equal(got, []string{"ana-3"}) {
				t.Fatalf("revoked %v, want ana-3", got)
			}
			for id, want := range map[string]bool{"ana-back": true, "ana-4": true, "ana-3": false, "ana-expired": true, "bob-1": true} {
				n, err := conn.Int(ctx, "SELECT COUNT(*) FROM sessions WHERE id = ? AND revoked_at IS NULL", id)
				if err != nil || (n == 1) != want {
					t.Fatalf("%s live: %d (%v), want %v", id, n, err, want)
				}
			}
			// No quota: nothing revoked.
			if got := open("ana-5", ana, now.Add(4*time.Minute), 0); len(got) != 0 || live(ana) != 4 {
				t.Fatalf("without a quota: revoked %v, %d live (3 and the expired one)", got, live(ana))
			}
			if live(bob) != 1 {
				t.Fatal("bob's session revoked")
			}
		})
	}
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
