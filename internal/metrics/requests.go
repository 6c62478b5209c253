package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RequestStats is what the privacy requests look like at one moment, as
// the store counts them at scrape time.
type RequestStats struct {
	// Count has every status of nms:gdprRequest by its name, zeros
	// included, so a series does not vanish when its queue empties.
	Count map[string]int64
	// OldestAge is, for the statuses a request waits in (new,
	// confirmDeletePending), the age of the oldest such request; a status
	// with none is 0.
	OldestAge map[string]time.Duration
	// ResidueTables is how many tables are marked for a residue purge
	// (changed by a delete or a cleanup, not purged yet), and
	// ResidueOldestAge how long the oldest mark has waited: a run purges
	// its own at its end, so a mark that lasts means purges that fail.
	ResidueTables    int64
	ResidueOldestAge time.Duration
}

// WatchRequests adds campaign_privacy_requests{status} and
// campaign_privacy_request_oldest_age_seconds{status},
// campaign_privacy_residue_tables_pending and
// campaign_privacy_residue_oldest_age_seconds, read by read at each
// scrape (bounded to 5 s; concurrent scrapes wait for one another rather
// than query side by side). A failing read leaves these metrics out of the
// scrape and is logged.
func (m *Metrics) WatchRequests(read func(context.Context) (RequestStats, error)) {
	if m == nil || read == nil {
		return
	}
	m.reg.MustRegister(&requestCollector{
		read: read,
		count: prometheus.NewDesc(namespace+"_requests", "Privacy requests by status, counted in the database at scrape time.",
			[]string{"status"}, nil),
		oldest: prometheus.NewDesc(namespace+"_request_oldest_age_seconds",
			"Age of the oldest request still in the status (new, confirmDeletePending); 0 when none is.", []string{"status"}, nil),
		residue: prometheus.NewDesc(namespace+"_residue_tables_pending",
			"Tables a delete or a cleanup changed whose residue purge (VACUUM FULL, WAL checkpoint) has not run yet, counted in the database at scrape time.", nil, nil),
		residueAge: prometheus.NewDesc(namespace+"_residue_oldest_age_seconds",
			"How long the oldest table marked for a residue purge has waited; 0 when none is.", nil, nil),
	})
}

type requestCollector struct {
	mu                  sync.Mutex
	read                func(context.Context) (RequestStats, error)
	count, oldest       *prometheus.Desc
	residue, residueAge *prometheus.Desc
}

func (c *requestCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.oldest
	ch <- c.residue
	ch <- c.residueAge
}

func (c *requestCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.read(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.count, err)
		return
	}
	for status, n := range st.Count {
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(n), status)
	}
	for status, age := range st.OldestAge {
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age.Seconds(), status)
	}
	ch <- prometheus.MustNewConstMetric(c.residue, prometheus.GaugeValue, float64(st.ResidueTables))
	ch <- prometheus.MustNewConstMetric(c.residueAge, prometheus.GaugeValue, st.ResidueOldestAge.Seconds())
}
