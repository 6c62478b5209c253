package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestSlowDatabaseUnderLoad (security-bar.md #112): ten clients create
// without pause (L-Create-10) while the requests' table is locked for 2 s
// from a side session (on SQLite the database's write lock). Every call
// blocked ends with the Server fault at its deadline (1 s here, 10 s by
// default), none with another fault; calls do not pile up behind the
// lock (no more in flight than clients); after the release the calls
// succeed again; every id answered is stored with its value, and no call
// that ended with a fault before the release was written. The p99 after
// the release is logged, and measured by the benchmark below.
func TestSlowDatabaseUnderLoad(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) { slowDatabaseUnderLoad(t, dialect) })
}

// BenchmarkSlowDatabaseRecovery measures the bound the test above logs:
// the p99 of the creates started from 0.5 s after the release (the bar:
// ≤ 30 ms within 10 s). By hand: CP_BENCH_SLOW=1 go test -run '^$' -bench
// SlowDatabase -benchtime 3x ./server (bench/README "The slow database under load").
func BenchmarkSlowDatabaseRecovery(b *testing.B) {
	storetest.WorstOnEachStore(b, "worst-p99-ms", func(b *testing.B, dialect string) time.Duration { return slowDatabaseUnderLoad(b, dialect) })
}

// slowDatabaseUnderLoad runs the case and returns the p99 after the
// release.
func slowDatabaseUnderLoad(t testing.TB, dialect string) time.Duration {
	const deadline = time.Second
	env := servertest.New(t, dialect, servertest.Options{
		Server:  func(c *server.Config) { c.CallTimeout = deadline },
		Privacy: func(c *privacy.Config) { c.CreateRate = -1 }, // the load, not the quota
	})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	ctx := context.Background()
	tokens, err := env.Sessions.Logon(ctx, "ana", "correct horse", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	plain := storetest.SQLOf(t, env.DB)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 10}}
	defer client.CloseIdleConnections()

	type call struct {
		value      string
		start, end time.Time
		id         string
		fault      string // the fault's detail, or the transport error
	}
	var (
		mu    sync.Mutex
		calls []call
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for c := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				cl := call{value: fmt.Sprintf("load-%d-%d@example.com", c, i), start: time.Now()}
				_, body, err := servertest.Send(client, env.URL, "nms:privacyRequest#CreateRequestByName",
					createCall("nms:privacyRequest", tokens.SessionToken, "defaultNamespace1", cl.value, "1", "false", ""))
				if err != nil {
					cl.fault = err.Error()
				} else if cl.id = servertest.Between(body, "<id xsi:type='xsd:int'>", "<"); cl.id == "" {
					cl.fault = body
				}
				cl.end = time.Now()
				mu.Lock()
				calls = append(calls, cl)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	release, err := plain.LockTable(ctx, "privacy_requests")
	if err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	peak := 0.0 // SOAP calls in flight, from /metrics
	for time.Since(locked) < 2*time.Second {
		peak = max(peak, inFlight(t, env.URL))
		time.Sleep(50 * time.Millisecond)
	}
	release()
	released := time.Now()
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()

	var during, faultsBefore, after, faultsAfter, faultsAfterLock int
	var afterLatency []time.Duration
	for _, c := range calls {
		if took := c.end.Sub(c.start); took > deadline+2*time.Second {
			t.Errorf("%s took %v against a %v deadline", c.value, took, deadline)
		}
		if c.fault != "" && !(strings.Contains(c.fault, "<faultcode>SOAP-ENV:Server</faultcode>") && strings.Contains(c.fault, "SOP-330011")) {
			t.Fatalf("%s ended with another fault than the Server fault:\n%s", c.value, c.fault)
		}
		switch {
		case c.start.After(released.Add(500 * time.Millisecond)):
			after++
			if c.fault != "" {
				faultsAfter++
			}
			afterLatency = append(afterLatency, c.end.Sub(c.start))
		case c.end.Before(released) && c.start.After(locked):
			during++
			if c.fault != "" {
				faultsBefore++
				if n, err := plain.Int(ctx, "SELECT count(*) FROM privacy_requests WHERE reconciliation_value = ?", c.value); err != nil || n != 0 {
					t.Fatalf("%s ended with a fault while the table was locked, yet %d rows hold it (%v)", c.value, n, err)
				}
			}
		}
		if c.fault != "" && c.end.After(locked) {
			faultsAfterLock++
		}
		if c.id != "" {
			if n, err := plain.Int(ctx, "SELECT count(*) FROM privacy_requests WHERE id = ? AND reconciliation_value = ?", c.id, c.value); err != nil || n != 1 {
				t.Fatalf("%s answered id %s, stored %d times (%v)", c.value, c.id, n, err)
			}
		}
	}
	if faultsBefore != during || faultsAfterLock == 0 {
		t.Fatalf("%d calls made and ended while the table was locked, %d of them faults, %d faults after the lock was taken: each blocked call should end with the Server fault", during, faultsBefore, faultsAfterLock)
	}
	if after < 10 || faultsAfter > 0 {
		t.Fatalf("%d calls after the release, %d faults", after, faultsAfter)
	}
	// The ten clients' calls end at their deadline and are sent
	// again: no more in flight than the clients (the cap is 256).
	if peak > 10 {
		t.Fatalf("%v SOAP calls in flight while the table was locked, from 10 clients", peak)
	}
	if n := inFlight(t, env.URL); n > 10 {
		t.Fatalf("%v SOAP calls in flight after the load", n)
	}
	slices.Sort(afterLatency)
	p99 := afterLatency[len(afterLatency)*99/100]
	t.Logf("%d calls in all; %d ended with the Server fault while locked, at most %v in flight; after the release %d calls, p99 %v",
		len(calls), faultsBefore, peak, after, p99)
	return p99
}

// inFlight reads campaign_privacy_soap_calls_in_flight from /metrics.
func inFlight(t testing.TB, base string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f := fams["campaign_privacy_soap_calls_in_flight"]
	if f == nil || len(f.GetMetric()) != 1 {
		t.Fatalf("no campaign_privacy_soap_calls_in_flight in /metrics (%d families)", len(fams))
	}
	return f.GetMetric()[0].GetGauge().GetValue()
}
