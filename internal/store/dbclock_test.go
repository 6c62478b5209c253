package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestDatabaseNow: a store opened without a clock of its own reads the
// database's (PostgreSQL's clock_timestamp(), SQLite's 'now'); one opened
// with a test's clock takes that clock for the database's too.
func TestDatabaseNow(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			before := time.Now().Add(-time.Second)
			at, err := storetest.Open(t, dialect, nil).DatabaseNow(ctx)
			if after := time.Now().Add(time.Second); err != nil || at.Before(before) || at.After(after) || at.Location() != time.UTC {
				t.Fatalf("the database's clock read %v (%v), between %v and %v", at, err, before, after)
			}
			clock := storetest.NewClock()
			clock.Advance(400 * 24 * time.Hour)
			if at, err := storetest.Open(t, dialect, clock.Now).DatabaseNow(ctx); err != nil || !at.Equal(clock.Now()) {
				t.Fatalf("with a test's clock: %v %v, want %v", at, err, clock.Now())
			}
		})
	}
}
