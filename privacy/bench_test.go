package privacy_test

import (
	"context"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// bigSubject stores one recipient, big@example.com, with logs delivery
// logs, inserted 10,000 at a time (SQLite).
func bigSubject(b *testing.B, logs int) *servertest.Env {
	env := servertest.New(b, "sqlite", servertest.Options{})
	ctx := context.Background()
	now := time.Now().UTC()
	if err := env.DB.InsertRows(ctx, "nms_recipient", []string{"id", "email"}, [][]any{{int64(1), "big@example.com"}}); err != nil {
		b.Fatal(err)
	}
	for from := 1; from <= logs; from += 10_000 {
		var rows [][]any
		for i := from; i < min(from+10_000, logs+1); i++ {
			rows = append(rows, []any{int64(i), int64(1), "big@example.com", int64(1), now, "Newsletter of the week, edition " + strconv.Itoa(i)})
		}
		if err := env.DB.InsertRows(ctx, "nms_broad_log_rcp", []string{"id", "recipient_id", "address", "status", "event_date", "delivery_label"}, rows); err != nil {
			b.Fatal(err)
		}
	}
	return env
}

// collectBigSubject creates an access request for big@example.com, runs
// collectPrivacyRequests and returns the request's id.
func collectBigSubject(b *testing.B, env *servertest.Env) int64 {
	ctx := context.Background()
	id, err := env.Privacy.CreateRequestByName(ctx, operator, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
		ReconciliationValue: "big@example.com", Type: privacy.TypeAccess, DownloadURL: "http://x/nms/gdpr.jssp?id="})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := env.Privacy.Run(ctx, privacy.Collect); err != nil {
		b.Fatal(err)
	}
	return id
}

// BenchmarkExportWriter: collect one access request whose subject has
// 2,000 delivery logs, file written and encrypted (SQLite).
func BenchmarkExportWriter(b *testing.B) {
	env := bigSubject(b, 2000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		id := collectBigSubject(b, env)
		_, r, err := env.Privacy.OpenExport(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

// BenchmarkExportReader: read back one collected file of about 20 MB
// (100,000 delivery logs, SQLite) through OpenExport, as the download does:
// fetch the sealed chunks, decrypt, copy out.
func BenchmarkExportReader(b *testing.B) {
	env := bigSubject(b, 100_000)
	ctx := context.Background()
	id := collectBigSubject(b, env)
	export, first, err := env.Privacy.OpenExport(ctx, id)
	if err != nil {
		b.Fatal(err)
	}
	first.Close()
	b.SetBytes(export.Size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, r, err := env.Privacy.OpenExport(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != export.Size {
			b.Fatalf("read %d of %d bytes: %v", n, export.Size, err)
		}
		r.Close()
	}
}
