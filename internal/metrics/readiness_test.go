package metrics_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestReadyzProberThatLeftIsNotADatabaseDown: /readyz is open to every
// address, and net/http cancels a request's context as soon as its client
// closes the connection. Were the checks run under that context, the
// database ping would fail with "context canceled" and the service log
// the WARN "not ready reason=database", then "ready again" at the next
// probe: anyone who can reach the port could write false alarms about a
// database that never failed. The checks run on a context of their own
// (bounded by their timeout).
func TestReadyzProberThatLeftIsNotADatabaseDown(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			if status, body := get(t, env.URL+"/readyz"); status != http.StatusOK {
				t.Fatalf("/readyz: %d %q", status, body)
			}
			// What net/http hands the handler once the prober hung up.
			for range 5 {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				rec := httptest.NewRecorder()
				env.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil).WithContext(ctx))
				if status, body := get(t, env.URL+"/readyz"); status != http.StatusOK {
					t.Fatalf("/readyz: %d %q", status, body)
				}
			}
			logs := env.Logs.String()
			if n := strings.Count(logs, `msg="not ready"`); n != 0 {
				t.Errorf("5 probers that hung up logged %d \"not ready\" warnings (and %d \"ready again\") while the database was up:\n%s",
					n, strings.Count(logs, "ready again"), grepLines(logs, "ready"))
			}
		})
	}
}

// TestReadyzFloodHoldsOneConnection: /readyz answers every address
// without a bound on concurrent probes, and its checks run a ping and two
// queries on the service's own connection pool (PostgreSQL's 10
// connections, shared with every SOAP call; SQLite's 4 writer
// connections). The checks run one at a time, probes that come meanwhile
// sharing their answer: a flood of unauthenticated probes holds one
// connection at most, and never waits for one (as /metrics: two scrapes
// at most, one query at a time).
func TestReadyzFloodHoldsOneConnection(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			pool := env.DB.Pool()
			before := pool.Stats()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}
			var wg sync.WaitGroup
			var maxInUse int
			var mu sync.Mutex
			stop := make(chan struct{})
			go func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if n := pool.Stats().InUse; n > 0 {
						mu.Lock()
						maxInUse = max(maxInUse, n)
						mu.Unlock()
					}
				}
			}()
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 40 {
						resp, err := client.Get(env.URL + "/readyz")
						if err != nil {
							return
						}
						resp.Body.Close()
					}
				}()
			}
			wg.Wait()
			close(stop)
			after := pool.Stats()
			mu.Lock()
			defer mu.Unlock()
			if waits := after.WaitCount - before.WaitCount; waits > 0 || maxInUse > 1 {
				t.Errorf("2,560 unauthenticated /readyz probes held up to %d of the pool's %d connections at once and made %d waits for one (%v waited): "+
					"probes compete with SOAP calls for the database", maxInUse, after.MaxOpenConnections, waits, after.WaitDuration-before.WaitDuration)
			}
		})
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestPanickingCheckIsAFailedCheck (J137): the checks run on
// singleflight's goroutine (J123), where a panic is raised again out of
// reach of net/http's recovery: one probe meeting a check that panics (a
// driver bug) ended the whole process, every call in flight with it. A
// panicking check is now a failed check: 503 with its reason, and the
// process goes on (without the fix this test binary dies).
func TestPanickingCheckIsAFailedCheck(t *testing.T) {
	h := metrics.NewHealth(nil)
	h.Ready(metrics.Check{Reason: "database", Probe: func(context.Context) error { panic("a driver bug") }})
	mux := http.NewServeMux()
	h.Register(mux)
	for range 2 {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != http.StatusServiceUnavailable || strings.TrimSpace(rec.Body.String()) != "database" {
			t.Fatalf("readyz: %d %q; want 503 database", rec.Code, rec.Body.String())
		}
	}
}
