package privacy

import (
	"context"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
)

// waiting are the statuses whose oldest request's age the metrics report:
// a request that sits in new has not been collected (the workflows are
// not running, or failing); one in confirmDeletePending waits for an
// operator, who has ConfirmWindow to act.
var waiting = []Status{StatusNew, StatusConfirmDeletePending}

// RequestStats counts the requests by status and finds the age of the
// oldest one waiting in each status of waiting, and the tables marked for
// a residue purge and their oldest mark's age: what /metrics reports,
// read at scrape time (metrics.WatchRequests). It holds no personal data.
func (s *Service) RequestStats(ctx context.Context) (metrics.RequestStats, error) {
	counts, err := s.db.CountRequestsByStatus(ctx)
	if err != nil {
		return metrics.RequestStats{}, err
	}
	st := metrics.RequestStats{Count: make(map[string]int64, len(statusEnum)), OldestAge: make(map[string]time.Duration, len(waiting))}
	for _, status := range Statuses() {
		st.Count[status.String()] = counts[status.stored()]
	}
	now := s.cfg.Now()
	for _, status := range waiting {
		st.OldestAge[status.String()] = 0
		if counts[status.stored()] == 0 {
			continue
		}
		created, ok, err := s.db.OldestRequestCreated(ctx, status.stored())
		if err != nil {
			return metrics.RequestStats{}, err
		}
		if ok && now.After(created) {
			st.OldestAge[status.String()] = now.Sub(created)
		}
	}
	n, oldest, err := s.db.ResidueMarks(ctx)
	if err != nil {
		return metrics.RequestStats{}, err
	}
	st.ResidueTables = n
	if n > 0 && now.After(oldest) {
		st.ResidueOldestAge = now.Sub(oldest)
	}
	return st, nil
}
