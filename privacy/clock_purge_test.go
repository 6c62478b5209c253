package privacy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestPurgeByTheEarlierClock (security-bar #105): the service's clock
// jumps 25 h ahead on day 89 of an access file's retention while the
// database's does not. The cleanup purges by the earlier of the two
// clocks: the file stays (the jump logged), and goes once the database's
// clock too has passed the date its retention ends. Before, the service's
// clock alone decided and the file went a day early. Also run the other
// way round: the database's clock ahead, the service's right.
func TestPurgeByTheEarlierClock(t *testing.T) {
	for _, ahead := range []string{"service", "database"} {
		t.Run(ahead, func(t *testing.T) {
			eachStore(t, func(t *testing.T, dialect string) {
				service, database := storetest.NewClock(), storetest.NewClock()
				cfg := storetest.Config(t, dialect)
				cfg.DatabaseNow = database.Now
				db := storetest.OpenConfig(t, cfg, service.Now)
				f := newFixture(t, dialect, servertest.Options{DB: db, Clock: service})
				access := f.create(t, "defaultNamespace1", demodata.Email(5), privacy.TypeAccess, false)
				f.run(t, privacy.Collect)
				day89 := 89*24*time.Hour - 2*time.Minute
				service.Advance(day89)
				database.Advance(day89)
				jumped := service
				if ahead == "database" {
					jumped = database
				}
				jumped.Advance(25 * time.Hour) // past the date the retention ends
				if rep := f.run(t, privacy.Cleanup); rep.Processed != 0 {
					t.Fatalf("the %s's clock 25 h ahead: the cleanup purged %d on day 89", ahead, rep.Processed)
				}
				f.export(t, access)
				if !strings.Contains(f.env.Logs.String(), "the service's clock and the database's differ") {
					t.Fatalf("the clocks' difference was not logged:\n%s", f.env.Logs.String())
				}
				// Both past it: purged.
				service.Advance(2 * 24 * time.Hour)
				database.Advance(2 * 24 * time.Hour)
				if rep := f.run(t, privacy.Cleanup); rep.Processed != 1 {
					t.Fatalf("both clocks past the retention: %+v", rep)
				}
				if _, _, err := f.env.Privacy.OpenExport(f.ctx, access); err != privacy.ErrPurged {
					t.Fatalf("after the cleanup: %v", err)
				}
			})
		})
	}
}
