package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
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
					Created: created, Expires: created.Add(24 * time.Hour)}, op.PasswordHash, keep)
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

// TestCreateSessionOnlyForTheVerifiedPassword: a session is written only
// while its operator is enabled and still has the password hash the logon
// verified. A password change or a disable between Logon's last read and
// its session insert used to leave that session open, since the change's
// revocation had run before the insert. Now the insert is refused
// (Conflict, no row), with and without the quota; on PostgreSQL a change
// still in flight makes the insert wait for it and then refuse.
func TestCreateSessionOnlyForTheVerifiedPassword(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			conn := storetest.SQLOf(t, db)
			op := &store.Operator{Login: "ana", PasswordHash: "h1", Rights: "privacyRight"}
			if err := db.CreateOperator(ctx, op); err != nil {
				t.Fatal(err)
			}
			open := func(id, hash string, keep int) error {
				now := clock.Now()
				_, err := db.CreateSession(ctx, &store.Session{ID: id, OperatorID: op.ID, SecurityTokenHash: "x",
					Created: now, Expires: now.Add(time.Hour)}, hash, keep)
				return err
			}
			rows := func(id string) int64 {
				t.Helper()
				n, err := conn.Int(ctx, "SELECT COUNT(*) FROM sessions WHERE id = ?", id)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			for _, keep := range []int{0, 3} {
				id := fmt.Sprintf("stale-%d", keep)
				if err := open(id, "h0", keep); apperr.CodeOf(err) != apperr.Conflict || rows(id) != 0 {
					t.Fatalf("quota %d: a session for a password hash no longer stored: %v, %d rows", keep, err, rows(id))
				}
				id = fmt.Sprintf("current-%d", keep)
				if err := open(id, "h1", keep); err != nil || rows(id) != 1 {
					t.Fatalf("quota %d: a session for the current hash: %v, %d rows", keep, err, rows(id))
				}
			}
			if dialect == store.Postgres {
				commit, err := conn.Uncommitted(ctx, "UPDATE operators SET password_hash = 'h2' WHERE id = ?", op.ID)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { commit() }) // a failed test's lock must not outlive it
				done := make(chan error, 1)
				go func() { done <- open("in-flight", "h1", 3) }()
				if err := conn.AwaitLockWait(ctx, done); err != nil {
					t.Fatalf("the session insert and a password change in flight: %v", err)
				}
				if err := commit(); err != nil {
					t.Fatal(err)
				}
				if err := <-done; apperr.CodeOf(err) != apperr.Conflict || rows("in-flight") != 0 {
					t.Fatalf("a session opened over a password changed meanwhile: %v, %d rows", err, rows("in-flight"))
				}
				op.PasswordHash = "h2"
			}
			yes := true
			if err := db.UpdateOperator(ctx, op.Login, store.OperatorUpdate{Disabled: &yes}); err != nil {
				t.Fatal(err)
			}
			if err := open("disabled", op.PasswordHash, 3); apperr.CodeOf(err) != apperr.Conflict || rows("disabled") != 0 {
				t.Fatalf("a session for a disabled operator: %v, %d rows", err, rows("disabled"))
			}
		})
	}
}
