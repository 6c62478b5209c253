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
}

// WatchRequests adds campaign_privacy_requests{status} and
// campaign_privacy_request_oldest_age_seconds{status}, read by read at each
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
	})
}

type requestCollector struct {
	mu            sync.Mutex
	read          func(context.Context) (RequestStats, error)
	count, oldest *prometheus.Desc
}

func (c *requestCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.oldest
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
}
