package privacy

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, time.Local)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		spec, now, next string
	}{
		{"", "2026-11-22 00:30", "2026-11-22 01:00"},
		{"daily", "2026-11-22 01:00", "2026-11-23 01:00"},
		{"daily 03:30", "2026-11-22 04:00", "2026-11-23 03:30"},
		{"23:59", "2026-11-22 12:00", "2026-11-22 23:59"},
	}
	for _, tt := range tests {
		sc, err := ParseSchedule(tt.spec)
		if err != nil {
			t.Fatalf("%q: %v", tt.spec, err)
		}
		if got := sc.Next(at(tt.now)); !got.Equal(at(tt.next)) {
			t.Errorf("%q at %s: next %s, want %s", tt.spec, tt.now, got, tt.next)
		}
	}
	sc, err := ParseSchedule("30s")
	if err != nil || sc.Next(at("2026-11-22 00:00")) != at("2026-11-22 00:00").Add(30*time.Second) || sc.String() != "every 30s" {
		t.Fatalf("interval: %+v %v", sc, err)
	}
	for _, bad := range []string{"weekly", "25:00", "daily 1am", "100ms", "-5s"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestScheduleAcrossClockChanges: a daily schedule runs once a day, every
// day, where the clocks change. When they skip its time (spring forward)
// it runs once that day, after the jump, and the next day at its time
// again — not twice the next day, once an hour early (the day's time was
// computed from the previous run's, shifted by the jump). When they go
// back it runs once, not twice.
func TestScheduleAcrossClockChanges(t *testing.T) {
	tests := []struct {
		zone, spec, from string
		want             []string
	}{
		// 02:00 becomes 03:00 on 2026-03-08.
		{"America/New_York", "daily 02:30", "2026-03-07 12:00", []string{
			"2026-03-08T03:30:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"}},
		{"America/New_York", "daily 01:00", "2026-03-07 12:00", []string{
			"2026-03-08T01:00:00-05:00", "2026-03-09T01:00:00-04:00", "2026-03-10T01:00:00-04:00"}},
		// 02:00 becomes 01:00 on 2026-11-01: 01:30 comes twice.
		{"America/New_York", "daily 01:30", "2026-10-31 12:00", []string{
			"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00", "2026-11-03T01:30:00-05:00"}},
		// Midnight becomes 01:00 on 2026-09-06: the day starts at 01:00.
		{"America/Santiago", "daily 00:30", "2026-09-04 12:00", []string{
			"2026-09-05T00:30:00-04:00", "2026-09-06T01:30:00-03:00", "2026-09-07T00:30:00-03:00"}},
		// Midnight becomes 23:00 the day before on 2026-04-05.
		{"America/Santiago", "daily 23:30", "2026-04-03 12:00", []string{
			"2026-04-03T23:30:00-03:00", "2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"}},
	}
	for _, tt := range tests {
		loc, err := time.LoadLocation(tt.zone)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ParseSchedule(tt.spec)
		if err != nil {
			t.Fatal(err)
		}
		now, err := time.ParseInLocation("2006-01-02 15:04", tt.from, loc)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for range tt.want {
			next := sc.Next(now)
			if !next.After(now) {
				t.Fatalf("%s %s: the run after %s is at %s, not after it", tt.zone, tt.spec, now, next)
			}
			got = append(got, next.Format(time.RFC3339))
			now = next.Add(time.Minute) // the run takes a minute
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s %s from %s: runs\n%s\nwant\n%s", tt.zone, tt.spec, tt.from, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}
