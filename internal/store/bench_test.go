package store_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
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

// BenchmarkLogonSession is a Logon's writes: a session row and the
// open-sessions quota (100) applied after it, for an operator whose client
// logs on without logging off: 100 live sessions and prior revoked ones
// (a day of one logon every few seconds), on each store.
func BenchmarkLogonSession(b *testing.B) {
	for _, dialect := range storetest.Dialects {
		for _, prior := range []int{0, 20_000} {
			b.Run(dialect+"/prior="+strconv.Itoa(prior), func(b *testing.B) {
				db := storetest.Open(b, dialect, time.Now)
				ctx := context.Background()
				op := &store.Operator{Login: "script", PasswordHash: "x", Rights: "privacyRight"}
				if err := db.CreateOperator(ctx, op); err != nil {
					b.Fatal(err)
				}
				// The history, written with plain SQL: prior revoked
				// sessions, then 100 live ones.
				conn := storetest.SQLOf(b, db)
				at := time.Now().UTC().Add(-time.Hour)
				for _, part := range []struct {
					prefix  string
					revoked any
					n       int
				}{{"old-", at, prior}, {"live-", nil, 100}} {
					if part.n == 0 {
						continue
					}
					err := conn.Exec(ctx, `INSERT INTO sessions (id, operator_id, security_token_hash, created, expires, revoked_at)
						WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
						SELECT ? || i, ?, 'x', ?, ?, ? FROM n`,
						part.n, part.prefix, op.ID, at, at.Add(24*time.Hour), part.revoked)
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				for i := range b.N {
					at := time.Now().UTC()
					s := &store.Session{ID: "new-" + strconv.Itoa(i), OperatorID: op.ID, SecurityTokenHash: "x", Created: at, Expires: at.Add(24 * time.Hour)}
					if _, err := db.CreateSession(ctx, s, op.PasswordHash, 100); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
