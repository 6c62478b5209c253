package privacy_test

import (
	"errors"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestTwoStepRerunSparesReusedID: a confirmed two-step delete
// deletes its reviewed set (the recipient among them); the run's residue
// purge does not finish (a pg_statistic lock not granted, since c1a6564;
// here the residue-purge failpoint), so the request stays deleteInProgress
// and the next run takes it back. Meanwhile a client writes another
// person's recipient under the deleted recipient's id (ids chosen by the
// client, the case stillGone guards against for the one-step path and for
// the rows earlier rounds deleted). The next run must not delete that
// person's row: it is not the subject's, and it was never reviewed.
func TestTwoStepRerunSparesReusedID(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		failed := false
		f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.Failpoint = func(name string) error {
				if name == "residue-purge" && !failed {
					failed = true
					return errors.New("purge not finished")
				}
				return nil
			}
		}})
		id, rcp := interruptedDelete(t, f, f.ctx, true)
		if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err != nil {
			t.Logf("second run: %v", err)
		}
		if n := reusedLeft(t, f, rcp); n != 1 {
			r, _ := f.env.DB.FindRequestByID(f.ctx, id)
			t.Errorf("another person's recipient (id %d, someone.else@example.com), written after the delete, was deleted by the request's next run (plain SQL: %d left); status %s\naudit tail:\n%s",
				rcp, n, f.status(t, id), tail(r.Audit, 600))
		}
	})
}
