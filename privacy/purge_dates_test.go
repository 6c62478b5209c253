package privacy_test

import (
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestExpiredRoundReceiptPurgeDate: a two-step delete whose first
// round deleted the recipient goes back to review (a new reviewed file)
// and is never confirmed again. Its expiry ends it in error with a
// receipt. Its file_purged_on must not be after the date the data is
// destroyed: it was the expiry + 90 days, two weeks after the cleanup,
// which reads the reviewed file's date (created 15 days before the
// expiry), purged it. (The expiry now destroys the reviewed file itself,
// J141: the date is the expiry's.)
func TestExpiredRoundReceiptPurgeDate(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 1)
		id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if err := sql.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990001), "recipient_id": rcp, "address": demodata.Email(1)}); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if f.status(t, id) != privacy.StatusConfirmDeletePending {
			t.Fatalf("round 1 did not go back to review: %s", f.status(t, id))
		}
		f.env.Clock.Advance(15*24*time.Hour + time.Hour) // round 2's deadline passes
		f.run(t, privacy.Cleanup)                        // the expiry: error, with a receipt
		if s := f.status(t, id); s != privacy.StatusError {
			t.Fatalf("status %s after the deadline", s)
		}
		_, c := f.receiptOf(t, id)
		day, err := time.Parse("2006-01-02", c.FilePurgedOn)
		if err != nil {
			t.Fatal(err)
		}
		// Daily runs until the day before the receipt's date: nothing purged.
		for f.env.Clock.Now().UTC().Before(day.Add(-2 * time.Hour)) {
			f.env.Clock.Advance(24 * time.Hour)
			if now := f.env.Clock.Now().UTC(); !now.Before(day) {
				break
			}
			f.run(t, privacy.Cleanup)
			r, err := f.env.DB.FindRequestByID(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if r.PurgedAt != nil {
				t.Fatalf("the receipt says file_purged_on %s; the cleanup of %s purged the request (%.0f days early)",
					c.FilePurgedOn, f.env.Clock.Now().UTC().Format(time.DateOnly), day.Sub(f.env.Clock.Now().UTC()).Hours()/24)
			}
		}
	})
}

// TestScheduleSkippedLateEvening: where the clocks skip the last
// hour of a date (America/Nuuk, 2024-03-30: 23:00 -02 becomes 00:00 -01
// on the 31st), "daily 23:30" runs March 30's run after the jump, at
// 00:30 on the 31st (Schedule.on). A process started (or a schedule
// computed) between the jump and that run must still run it: Next only
// looks at now's date and later, so March 30 gets no run at all, and the
// next one comes 47 hours after March 29's.
func TestScheduleSkippedLateEvening(t *testing.T) {
	loc, err := time.LoadLocation("America/Nuuk")
	if err != nil {
		t.Skip(err)
	}
	sc := privacy.Schedule{Hour: 23, Minute: 30}
	// March 29's run, then the schedule as a process running through sees it.
	march29 := time.Date(2024, 3, 29, 23, 30, 0, 0, loc)
	run30 := sc.Next(march29)
	if want := time.Date(2024, 3, 31, 0, 30, 0, 0, loc); !run30.Equal(want) {
		t.Fatalf("after March 29's run: %v, want %v (March 30's, after the jump)", run30, want)
	}
	// A process started at 00:10 on the 31st (after the jump, before
	// March 30's run).
	now := time.Date(2024, 3, 31, 0, 10, 0, 0, loc)
	if got := sc.Next(now); !got.Equal(run30) {
		t.Errorf("Next(%v) = %v: March 30's run (%v) is skipped; %v after March 29's", now, got, run30, got.Sub(march29))
	}
}
