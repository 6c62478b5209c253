package metrics_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/server"
)

// TestPanicKeepsTheMethodLabel: a SOAP call that names a registry method
// and panics in its handler is counted under that method, with
// reason="internal", so README's alert on reason="internal" says which
// method crashes. Counted under method="unknown" (a recover that had lost
// the method), it would look like a call to a method nobody defines, and
// its latency would land in the "unknown" histogram.
func TestPanicKeepsTheMethodLabel(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{Server: func(c *server.Config) {
				c.Failpoint = func(step string) error {
					if step == "soap:xtk:session#Logon" {
						panic("a bug in Logon")
					}
					return nil
				}
			}})
			env.Operator(t, "zorro", "zorro-secret")
			before := scrape(t, env.URL)
			status, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("zorro", "zorro-secret")))
			if status != http.StatusInternalServerError || !strings.Contains(body, "Internal error") && !strings.Contains(body, "Fault") {
				t.Fatalf("the panicking call: %d %.200s", status, body)
			}
			after := scrape(t, env.URL)
			logon := delta(before, after, "campaign_privacy_soap_calls_total", "method", "xtk:session#Logon", "reason", "internal")
			unknown := delta(before, after, "campaign_privacy_soap_calls_total", "method", "unknown", "reason", "internal")
			if logon != 1 {
				t.Errorf("soap_calls_total{method=\"xtk:session#Logon\",reason=\"internal\"} moved by %v, want 1 (method=\"unknown\" moved by %v)", logon, unknown)
			}
		})
	}
}
