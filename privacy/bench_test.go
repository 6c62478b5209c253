package privacy_test

import (
	"context"
	"io"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
)

// bigSubject is a SQLite service whose BigSubjectEmail has logs delivery
// logs, varied as a real subject's are (the file compresses as a real one).
func bigSubject(b *testing.B, logs int) *servertest.Env {
	env := servertest.New(b, "sqlite", servertest.Options{})
	env.VariedSubject(b, logs)
	return env
}

// BenchmarkExportWriter: collect one access request whose subject has
// 2,000 delivery logs, file written and encrypted (SQLite).
func BenchmarkExportWriter(b *testing.B) {
	env := bigSubject(b, 2000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		id := env.CollectedAccess(b, operator, servertest.BigSubjectEmail)
		_, r, err := env.Privacy.OpenExport(context.Background(), id)
		if err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}

// BenchmarkExportReader: read back one collected file of about 20 MB
// (60,000 delivery logs, SQLite) through OpenExport, as the download does:
// fetch the sealed chunks, decrypt, decompress, copy out.
func BenchmarkExportReader(b *testing.B) {
	env := bigSubject(b, 60_000)
	ctx := context.Background()
	id := env.CollectedAccess(b, operator, servertest.BigSubjectEmail)
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
