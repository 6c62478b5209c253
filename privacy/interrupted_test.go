package privacy_test

import (
	"context"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// reusedEmail is the other person written under an erased recipient's id.
const reusedEmail = "someone.else@example.com"

// interruptedDelete sets up the case the reused-id tests share: a delete
// request for demo subject 1 (two-step: collected and confirmed first), a
// delete run on runCtx that does not end (stopped, or a failpoint of the
// fixture) after deleting the recipient, the request left
// deleteInProgress; then another person written under the freed id (ids
// chosen by the client) and the clock past the lease. It returns the
// request and the recipient's id.
func interruptedDelete(t *testing.T, f *fixture, runCtx context.Context, twoStep bool) (id, rcp int64) {
	t.Helper()
	sql := storetest.SQLOf(t, f.env.DB)
	rcp = recipientID(t, f, 1)
	id = f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, twoStep)
	f.run(t, privacy.Collect)
	if twoStep {
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.env.Privacy.Run(runCtx, privacy.Delete); err == nil {
		t.Fatal("the delete run ended: it was to be stopped or fail")
	}
	if s := f.status(t, id); s != privacy.StatusDeleteInProgress {
		t.Fatalf("after the interrupted run: %s", s)
	}
	if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp); n != 0 {
		t.Fatal("the interrupted run did not delete the recipient")
	}
	if err := sql.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": rcp, "email": reusedEmail}); err != nil {
		t.Fatal(err)
	}
	f.env.Clock.Advance(20 * time.Minute) // past the lease
	return id, rcp
}

// reusedLeft counts the other person's recipient under the reused id.
func reusedLeft(t *testing.T, f *fixture, rcp int64) int64 {
	t.Helper()
	n, err := storetest.SQLOf(t, f.env.DB).Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ? AND email = ?", rcp, reusedEmail)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
