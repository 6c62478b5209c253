package privacy_test

import (
	"context"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// BenchmarkExportWriter: collect one access request whose subject has
// 2,000 delivery logs, file written and encrypted (SQLite).
func BenchmarkExportWriter(b *testing.B) {
	env := servertest.New(b, "sqlite", servertest.Options{})
	ctx := context.Background()
	now := time.Now().UTC()
	if err := env.DB.InsertRows(ctx, "nms_recipient", []string{"id", "email"}, [][]any{{int64(1), "big@example.com"}}); err != nil {
		b.Fatal(err)
	}
	var rows [][]any
	for i := 1; i <= 2000; i++ {
		rows = append(rows, []any{int64(i), int64(1), "big@example.com", int64(1), now, "Newsletter"})
	}
	if err := env.DB.InsertRows(ctx, "nms_broad_log_rcp", []string{"id", "recipient_id", "address", "status", "event_date", "delivery_label"}, rows); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		id, err := env.Privacy.CreateRequestByName(ctx, operator, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
			ReconciliationValue: "big@example.com", Type: privacy.TypeAccess, DownloadURL: "http://x/nms/gdpr.jssp?id="})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := env.Privacy.Run(ctx, privacy.Collect); err != nil {
			b.Fatal(err)
		}
		if _, _, err := env.Privacy.OpenExport(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
