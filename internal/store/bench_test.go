package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// BenchmarkInsertRows writes 20,000 delivery-log rows (six columns) with
// InsertRows, the bulk path of demo-data and of the data model's writes,
// on each store (PostgreSQL when the suite has one).
func BenchmarkInsertRows(b *testing.B) {
	reg, err := schemas.Default()
	if err != nil {
		b.Fatal(err)
	}
	for _, dialect := range storetest.Dialects {
		b.Run(dialect, func(b *testing.B) {
			db := storetest.Open(b, dialect, time.Now)
			ctx := context.Background()
			if err := db.SyncDataModel(ctx, reg); err != nil {
				b.Fatal(err)
			}
			now := time.Now().UTC()
			const n = 20_000
			rows := make([][]any, n)
			cols := []string{"id", "recipient_id", "address", "status", "event_date", "delivery_label"}
			b.ResetTimer()
			for i := range b.N {
				for j := range rows {
					id := int64(i*n + j + 1)
					rows[j] = []any{id, id, "r" + strconv.FormatInt(id, 10) + "@example.com", int64(1), now, "Newsletter"}
				}
				if err := db.InsertRows(ctx, "nms_broad_log_rcp", cols, rows); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
		})
	}
}
