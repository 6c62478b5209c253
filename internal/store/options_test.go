package store_test

import (
	"context"
	"regexp"
	"sync"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestDatabaseIDStable: the id has ACC's form, is drawn once, and every
// connection to the database (a restart, another replica) reads the same
// one, also when several ask at once on a fresh database.
func TestDatabaseIDStable(t *testing.T) {
	form := regexp.MustCompile(`^u[0-9A-F]{40}$`)
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			cfg := storetest.Config(t, dialect)
			first, err := store.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			if _, err := first.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := first.FindOption(ctx, store.OptionDatabaseID); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("fresh database: %v, want NotFound", err)
			}
			ids := make([]string, 8)
			var wg sync.WaitGroup
			for i := range ids {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id, err := first.DatabaseID(ctx)
					if err != nil {
						t.Error(err)
					}
					ids[i] = id
				}()
			}
			wg.Wait()
			if !form.MatchString(ids[0]) {
				t.Fatalf("database id %q is not u + 40 hex digits", ids[0])
			}
			for _, id := range ids {
				if id != ids[0] {
					t.Fatalf("concurrent callers got %q and %q", ids[0], id)
				}
			}
			second, err := store.Open(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer second.Close()
			again, err := second.DatabaseID(ctx)
			if err != nil || again != ids[0] {
				t.Fatalf("another connection read %q, %v; want %q", again, err, ids[0])
			}
		})
	}
}
