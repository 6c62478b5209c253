package privacy_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestEachPhaseHasItsOwnAttempts: a delete's collect fails 4 times (of 5
// attempts), then succeeds; for a two-step delete the operator confirms.
// The delete's first transient failure is its first attempt, not the
// fifth: the request waits for a retry, it does not end in error with
// nothing deleted (and, for a two-step delete, its reviewed file
// destroyed). The delete's retry then completes.
func TestEachPhaseHasItsOwnAttempts(t *testing.T) {
	for _, twoStep := range []bool{true, false} {
		name := "one-step"
		if twoStep {
			name = "two-step"
		}
		t.Run(name, func(t *testing.T) {
			eachStore(t, func(t *testing.T, dialect string) {
				var collectFails, deleteFails atomic.Int32
				collectFails.Store(4)
				deleteFails.Store(1)
				f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
					c.MaxAttempts = 5
					c.Failpoint = func(name string) error {
						if n := map[string]*atomic.Int32{"collect-lookup": &collectFails, "delete-lookup": &deleteFails}[name]; n != nil && n.Add(-1) >= 0 {
							return errors.New("connection lost")
						}
						return nil
					}
				}})
				id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, twoStep)
				for attempt := 1; attempt <= 4; attempt++ {
					if rep := f.run(t, privacy.Collect); rep.Failed != 1 {
						t.Fatalf("collect attempt %d: %v", attempt, rep)
					}
					f.env.Clock.Advance(time.Hour)
				}
				f.run(t, privacy.Collect)
				if twoStep {
					if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
						t.Fatalf("after the collect: %s", s)
					}
					if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
						t.Fatal(err)
					}
				}
				f.run(t, privacy.Delete) // its first attempt fails
				r, err := f.env.DB.FindRequestByID(f.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if privacy.Status(r.Status) != privacy.StatusDeletePending || r.RetryCount != 1 {
					t.Fatalf("status %s (retry_count %d), want deletePending for a retry after the delete's first attempt; "+
						"the collect's attempts were counted against the delete:\n%s", privacy.Status(r.Status), r.RetryCount, tail(r.Audit, 400))
				}
				if !strings.Contains(r.Audit, "Attempt 1 failed") {
					t.Errorf("the delete's first failure is not its attempt 1:\n%s", tail(r.Audit, 400))
				}
				f.env.Clock.Advance(time.Hour)
				f.run(t, privacy.Delete)
				if s := f.status(t, id); s != privacy.StatusComplete {
					t.Fatalf("after the delete's retry: %s", s)
				}
				if n := f.count(t, "nms_recipient"); n != 4 {
					t.Errorf("%d recipients left, want 4", n)
				}
			})
		})
	}
}
