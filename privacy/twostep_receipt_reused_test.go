package privacy_test

import (
	"errors"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestOneStepReceiptCountsFirstRun: a one-step delete deletes the
// subject's recipient and its rows; the run's residue purge does not
// finish, so the request stays deleteInProgress and the next run takes it
// back. Meanwhile another person's recipient is written under the freed
// id. The next run rightly spares it (stillGone), and completes. The
// receipt's per-table deleted counts are "the rows the delete removed, as
// it recorded them" (README "The receipt"): the recipient the first run
// removed (plain SQL: gone) must be counted.
func TestOneStepReceiptCountsFirstRun(t *testing.T) {
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
		id, rcp := interruptedDelete(t, f, f.ctx, false)
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("after the second run: %s", s)
		}
		if n := reusedLeft(t, f, rcp); n != 1 {
			t.Fatalf("the other person's recipient was deleted (%d left)", n)
		}
		_, c := f.receiptOf(t, id)
		if got := deletedOf(c, "nms:recipient"); got != 1 {
			t.Errorf("receipt says %d nms:recipient row(s) deleted; plain SQL: the subject's recipient (id %d) was deleted by the first run (tables %+v)", got, rcp, c.Tables)
		}
	})
}
