package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestFailedBatchWritesTheFollowerOfAGoneCaller: a batch holds A and A2 (the
// same dedupe key: A2 follows A's row) and B. The batch fails as a whole
// while A's caller gives up (its client disconnected). Each row is then
// written alone: A's row is refused because A's caller is gone, and A2 —
// a caller that is still there, whose own request is perfectly writable —
// is answered with that refusal ("Database error.") and nothing is stored
// for it. A failed batch must fail only the calls whose own row fails: A2
// must get an id whose row exists (as it does when A gives up without a
// batch failure: the errCallerGone path writes the batch again with A2).
func TestFailedBatchWritesTheFollowerOfAGoneCaller(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			cfg := storetest.Config(t, dialect)
			aCtx, aGone := context.WithCancel(ctx)
			defer aGone()
			var fired atomic.Bool
			cfg.Failpoint = func(name string) error {
				if name == "create-batch-before-commit" && fired.CompareAndSwap(false, true) {
					// A's client disconnects while the batch runs, and the
					// batch's transaction fails (any error: a deadlock, a
					// connection reset, another call's bad row).
					aGone()
					return errors.New("injected batch failure")
				}
				return nil
			}
			db := storetest.OpenConfig(t, cfg, clock.Now)
			ns := testNamespace(t, db)
			newReq := func(value string) *store.Request {
				key := "key-" + value
				return &store.Request{NamespaceID: ns.ID, ReconciliationValue: value, Type: 1, Regulation: 1, DedupeKey: &key}
			}
			waitQueue := func(done func(pending, flushers int) bool, want string) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); !done(db.PendingCreatesForTest()); time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						p, f := db.PendingCreatesForTest()
						t.Fatalf("%d calls queued and %d flushers, want %s", p, f, want)
					}
				}
			}
			type answer struct {
				id       int64
				existing bool
				err      error
			}
			var (
				mu      sync.Mutex
				answers = map[string]answer{}
				wg      sync.WaitGroup
			)
			call := func(c context.Context, who, value string) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id, existing, err := db.CreateRequest(c, newReq(value), "u", "Request created by operator 'ana'.")
					mu.Lock()
					answers[who] = answer{id, existing, err}
					mu.Unlock()
				}()
			}
			release, err := db.HoldCreateLockForTest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The flusher is busy with a call of its own: the next calls
			// queue, and are written as one batch.
			call(ctx, "first", "first")
			waitQueue(func(p, f int) bool { return p == 0 && f == 1 }, "the flusher busy")
			call(aCtx, "A", "same@example.com")
			waitQueue(func(p, _ int) bool { return p == 1 }, "A queued")
			call(ctx, "A2", "same@example.com")
			waitQueue(func(p, _ int) bool { return p == 2 }, "A2 queued")
			call(ctx, "B", "other@example.com")
			waitQueue(func(p, _ int) bool { return p == 3 }, "B queued")
			release()
			wg.Wait()
			if !fired.Load() {
				t.Fatal("the three calls were not one batch")
			}
			t.Logf("answers: %+v", answers)
			if a := answers["B"]; a.err != nil {
				t.Fatalf("B: %v", a.err)
			}
			a2 := answers["A2"]
			if a2.err != nil {
				n, _ := storetest.SQLOf(t, db).Int(ctx, "SELECT count(*) FROM privacy_requests WHERE reconciliation_value = 'same@example.com'")
				t.Fatalf("A2, a caller still there whose row is writable, failed with %q (%d row(s) stored for its value): "+
					"it followed A's row, and A's caller had gone", a2.err, n)
			}
			if _, err := db.FindRequestByID(ctx, a2.id); err != nil {
				t.Fatal(fmt.Errorf("A2's id %d: %w", a2.id, err))
			}
		})
	}
}
