package store_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestPostgresSessionSettings: every session of the service names itself,
// ends a transaction left idle for 60 s (security bar: idle in
// transaction 60 s) and plans no parallel query — unless the database URL
// says otherwise, which wins.
func TestPostgresSessionSettings(t *testing.T) {
	ctx := context.Background()
	setting := func(t *testing.T, db *store.DB, name, want string) {
		t.Helper()
		if got, err := db.SettingForTest(ctx, name); err != nil || got != want {
			t.Fatalf("%s = %q (%v), want %q", name, got, err, want)
		}
	}

	t.Run("defaults", func(t *testing.T) {
		db := storetest.Open(t, store.Postgres, nil)
		setting(t, db, "application_name", "campaign-privacy")
		setting(t, db, "idle_in_transaction_session_timeout", "1min")
		setting(t, db, "max_parallel_workers_per_gather", "0")
	})

	t.Run("the URL's own settings win", func(t *testing.T) {
		cfg := storetest.Config(t, store.Postgres)
		u, err := url.Parse(cfg.DatabaseURL)
		if err != nil || u.Scheme == "" {
			t.Skip("CP_TEST_POSTGRES_URL is not a URL")
		}
		q := u.Query()
		q.Set("application_name", "crm-privacy")
		q.Set("options", "-c idle_in_transaction_session_timeout=300ms")
		u.RawQuery = q.Encode()
		cfg.DatabaseURL = u.String()
		db := storetest.OpenConfig(t, cfg, nil)
		setting(t, db, "application_name", "crm-privacy")
		setting(t, db, "idle_in_transaction_session_timeout", "300ms")
		// The server ends the transaction left idle past the bound.
		if err := db.IdleInTransactionForTest(ctx, time.Second); err == nil {
			t.Fatal("a transaction idle past idle_in_transaction_session_timeout went on")
		}
	})
}
