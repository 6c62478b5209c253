package metrics_test

import (
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
)

// BenchmarkRecordCall is what the SOAP router adds to every call: in
// flight up and down, one counter and one histogram observation.
func BenchmarkRecordCall(b *testing.B) {
	m := metrics.New(metrics.Options{})
	mm := m.Method("xtk:session#Logon")
	for _, kind := range []struct{ name, outcome, reason string }{{"ok", metrics.OutcomeOK, ""}, {"fault", "XSV-350012", "bad_logon"}} {
		b.Run(kind.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.CallStarted()
				mm.Done(kind.outcome, kind.reason, 3*time.Millisecond)
				m.CallEnded()
			}
		})
	}
}
