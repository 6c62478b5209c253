package privacy

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Schedule says when the workflows run: every day at a time of day (ACC's
// technical workflows run daily; 01:00 by default), or at a fixed interval.
type Schedule struct {
	Interval     time.Duration // > 0: every Interval
	Hour, Minute int           // otherwise: daily at Hour:Minute, local time
}

// ParseSchedule reads CP_WORKFLOW_SCHEDULE: "" or "daily" (01:00),
// "daily 03:30" or "03:30", or a duration such as "30s" or "1h".
func ParseSchedule(spec string) (Schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "daily" {
		return Schedule{Hour: 1}, nil
	}
	if d, err := time.ParseDuration(spec); err == nil {
		if d < time.Second {
			return Schedule{}, fmt.Errorf("the workflow interval must be at least 1s")
		}
		return Schedule{Interval: d}, nil
	}
	at := strings.TrimSpace(strings.TrimPrefix(spec, "daily"))
	t, err := time.Parse("15:04", at)
	if err != nil {
		return Schedule{}, fmt.Errorf("CP_WORKFLOW_SCHEDULE must be daily, daily HH:MM, HH:MM or a duration such as 30s")
	}
	return Schedule{Hour: t.Hour(), Minute: t.Minute()}, nil
}

// Next returns the first run time after now: a daily schedule runs once
// on every date of now's location, each date's time computed from the
// date itself (never from the day before's run, which a change of the
// clocks has shifted).
func (sc Schedule) Next(now time.Time) time.Time {
	if sc.Interval > 0 {
		return now.Add(sc.Interval)
	}
	// From the day before: its run may come after now's date began, where
	// the clocks skipped the end of that day (America/Nuuk: 23:30 on
	// March 30 runs at 00:30 on the 31st).
	y, m, d := now.Date()
	for d--; ; d++ { // three dates at most (four where a jump takes a date's start)
		if next := sc.on(y, m, d, now.Location()); next.After(now) {
			return next
		}
	}
}

// on is the run time of a date: Hour:Minute there, or where the clocks
// skip that time (spring forward: 02:00 becomes 03:00), as long after
// the jump as the time is after the hour it skips (02:30 is 03:30), so
// the date still has its one run. time.Date reads a skipped time with
// either offset: the earlier reading, before the jump (01:30), is moved
// to the later one.
func (sc Schedule) on(y int, m time.Month, d int, loc *time.Location) time.Time {
	t := time.Date(y, m, d, sc.Hour, sc.Minute, 0, 0, loc)
	want := time.Date(y, m, d, sc.Hour, sc.Minute, 0, 0, time.UTC)
	shown := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
	if early := want.Sub(shown); early > 0 {
		t = t.Add(early)
	}
	return t
}

func (sc Schedule) String() string {
	if sc.Interval > 0 {
		return "every " + sc.Interval.String()
	}
	return fmt.Sprintf("daily at %02d:%02d", sc.Hour, sc.Minute)
}

// RunSchedule runs all workflows at each scheduled time until ctx ends.
// exclusive wraps a run so that one replica at a time runs the schedule
// (an advisory lock on PostgreSQL); it reports whether the run happened.
// Claims keep requests safe either way; the lock only saves work.
func (s *Service) RunSchedule(ctx context.Context, sc Schedule, exclusive func(context.Context, func() error) (bool, error)) {
	for {
		wait := time.Until(sc.Next(time.Now()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		ran, err := exclusive(ctx, func() error {
			reports, err := s.RunTaken(ctx, "all")
			for _, r := range reports {
				if r.Processed > 0 || r.Failed > 0 {
					s.log.InfoContext(ctx, "workflow run", "workflow", r.Workflow, "processed", r.Processed, "failed", r.Failed)
				}
			}
			return err
		})
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "scheduled workflows failed", "err", err)
		} else if !ran {
			s.log.DebugContext(ctx, "scheduled workflows skipped: another replica runs them")
		}
	}
}
