package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestSQLiteTimeFormat: on SQLite a time is stored as the text
// "2006-01-02 15:04:05.999999999-07:00", the format of the files written
// before the driver changed (glebarez/go-sqlite to modernc.org/sqlite),
// which SQLite's date functions read; a time stored so by the earlier
// driver is read back as the time it names, whatever offset the text has
// (kept: a DATE's day is the day written, TestExportDateKeepsItsDay), by
// gorm and by the raw reads alike. (TestDatabaseNow reads an expression's
// text that looks like a time: it stays text.)
func TestSQLiteTimeFormat(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
	db := storetest.Open(t, store.SQLite, func() time.Time { return at })
	ns := testNamespace(t, db)
	id, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "v", Type: 1, Regulation: 1}, "u", "Request created.")
	if err != nil {
		t.Fatal(err)
	}
	plain := storetest.SQLOf(t, db)
	raw, err := plain.Bytes(ctx, "SELECT CAST(created AS BLOB) FROM privacy_requests WHERE id = ?", id)
	if want := "2026-01-02 03:04:05.123456789+00:00"; err != nil || string(raw) != want {
		t.Fatalf("created stored as %q (%v), want %q", raw, err, want)
	}
	if y, err := plain.Int(ctx, "SELECT CAST(strftime('%Y', created) AS INTEGER) FROM privacy_requests WHERE id = ?", id); err != nil || y != 2026 {
		t.Fatalf("SQLite's strftime read the year %d (%v)", y, err)
	}

	// As the earlier driver wrote them: trailing zeros of the fraction dropped.
	if err := plain.Exec(ctx, "UPDATE privacy_requests SET created = '2025-06-07 08:09:10.5+00:00' WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	if err := plain.Exec(ctx, "UPDATE privacy_namespaces SET created = '2024-02-03 06:05:06+02:00' WHERE id = ?", ns.ID); err != nil {
		t.Fatal(err)
	}
	r, err := db.FindRequestByID(ctx, id) // gorm
	if want := time.Date(2025, 6, 7, 8, 9, 10, 5e8, time.UTC); err != nil || !r.Created.Equal(want) {
		t.Fatalf("gorm read created %v (%v), want %v", r.Created, err, want)
	}
	got, err := db.FindNamespaceByName(ctx, "ns") // a raw read, prepared once
	if want := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC); err != nil || !got.Created.Equal(want) {
		t.Fatalf("the raw read gave created %v (%v), want %v", got.Created, err, want)
	}
}
