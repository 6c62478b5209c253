package privacy

import (
	"testing"
	"time"
)

// TestPurgeCutoffKeepsTheReceiptsDate: the cleanup destroys data on the
// UTC date its receipt names (file_purged_on), or before, never after,
// whatever the schedule. The daily schedule runs in local time: "daily
// 00:30" in Europe/London runs at 23:30 UTC all summer and 00:30 UTC in
// winter, so the UTC date of the autumn change (2025-10-26) has no run,
// and the run before it must destroy that date's data. Checked for every
// instant data can fall due, by the first run whose cutoff passes it.
func TestPurgeCutoffKeepsTheReceiptsDate(t *testing.T) {
	for _, c := range []struct {
		zone string
		sc   Schedule
	}{
		{"Europe/London", Schedule{Hour: 0, Minute: 30}},
		{"Europe/London", Schedule{Hour: 23, Minute: 30}},
		{"America/New_York", Schedule{Hour: 1}},
		{"America/Nuuk", Schedule{Hour: 23, Minute: 30}},
		{"UTC", Schedule{Interval: 7 * time.Hour}},
		{"UTC", Schedule{Interval: 50 * time.Hour}},
	} {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Skip(err)
		}
		s := &Service{cfg: Config{Retention: 90 * 24 * time.Hour, Schedule: &c.sc}}
		var runs []time.Time
		for run := c.sc.Next(time.Date(2025, 10, 15, 12, 0, 0, 0, loc)); run.Before(time.Date(2025, 11, 10, 0, 0, 0, 0, loc)); run = c.sc.Next(run) {
			runs = append(runs, run)
		}
		for due := time.Date(2025, 10, 20, 0, 0, 0, 0, time.UTC); due.Before(time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)); due = due.Add(30 * time.Minute) {
			for _, run := range runs {
				if !due.Before(s.purgeCutoff(run).Add(s.cfg.Retention)) {
					continue
				}
				if run.UTC().Format(time.DateOnly) > due.Format(time.DateOnly) {
					t.Errorf("%s, %v: data due at %v (its receipt's date) is destroyed only by the run at %v", c.zone, c.sc, due, run.UTC())
				}
				if early := due.Sub(run); c.sc.Interval == 0 && early > 48*time.Hour {
					t.Errorf("%s, %v: data due at %v is destroyed %v early, by the run at %v", c.zone, c.sc, due, early, run.UTC())
				}
				break
			}
		}
	}
}
