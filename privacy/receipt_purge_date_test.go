package privacy_test

import (
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestReceiptPurgeDateHolds: a receipt's file_purged_on is the date the
// file and counts are destroyed: the cleanup's run on that date (the
// default schedule's, daily at 01:00) destroys them, not the next day's;
// the run the evening before keeps them. A request completed at 12:00 is
// not "purged on" day 90 while its file stays downloadable until 01:00 on
// day 91.
func TestReceiptPurgeDateHolds(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Privacy: withReceipts})
		now := f.env.Clock.Now().UTC()
		noon := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC)
		if !noon.After(now) {
			noon = noon.AddDate(0, 0, 1)
		}
		f.env.Clock.Advance(noon.Sub(now))
		access := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeAccess, false)
		del := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		for _, id := range []int64{access, del} {
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Fatalf("request %d: %s", id, s)
			}
		}
		_, c := f.receiptOf(t, access)
		day, err := time.Parse("2006-01-02", c.FilePurgedOn)
		if err != nil || !day.Equal(noon.AddDate(0, 0, 90).Truncate(24*time.Hour)) {
			t.Fatalf("file_purged_on %q, want the date 90 days after %s (%v)", c.FilePurgedOn, noon, err)
		}
		if _, d := f.receiptOf(t, del); d.FilePurgedOn != c.FilePurgedOn {
			t.Fatalf("the delete's receipt says %s, the access's %s", d.FilePurgedOn, c.FilePurgedOn)
		}
		// The evening before: kept.
		f.env.Clock.Advance(day.Add(-time.Hour).Sub(f.env.Clock.Now()))
		if rep := f.run(t, privacy.Cleanup); rep.Processed != 0 {
			t.Fatalf("the cleanup before %s purged %d request(s)", c.FilePurgedOn, rep.Processed)
		}
		f.export(t, access)
		// The scheduled run on the date: gone.
		f.env.Clock.Advance(2 * time.Hour)
		rep := f.run(t, privacy.Cleanup)
		if _, _, err := f.env.Privacy.OpenExport(f.ctx, access); err != privacy.ErrPurged || rep.Processed != 2 {
			t.Fatalf("the receipt says file_purged_on %s; the cleanup run at %s purged %d request(s) and left the file (%v)",
				c.FilePurgedOn, f.env.Clock.Now().UTC().Format(time.DateTime), rep.Processed, err)
		}
		if data, _ := f.env.DB.FindRequestData(f.ctx, del); len(data) != 0 {
			t.Fatal("the delete's counts survived the run on its receipt's date")
		}
	})
}
