package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestMayVacuumStatistics: the tests' role (the throwaway cluster's
// superuser) may vacuum pg_statistic; a role that neither owns the
// database nor is a superuser may not, and the service warns about it at
// start. SQLite has no such catalog.
func TestMayVacuumStatistics(t *testing.T) {
	ctx := context.Background()
	if may, err := storetest.Open(t, store.SQLite, nil).MayVacuumStatistics(ctx); err != nil || !may {
		t.Fatalf("SQLite: %v %v, want true", may, err)
	}
	cfg := storetest.Config(t, store.Postgres)
	conn := storetest.SQL(t, cfg)
	super, err := conn.Int(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = current_user AND rolsuper")
	if err != nil {
		t.Fatal(err)
	}
	if super == 0 {
		t.Skip("CP_TEST_POSTGRES_URL's role is not a superuser: it cannot create the test role")
	}
	if may, err := storetest.OpenConfig(t, cfg, nil).MayVacuumStatistics(ctx); err != nil || !may {
		t.Fatalf("superuser: %v %v, want true", may, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role := "cp_test_role_" + hex.EncodeToString(b)
	if err := conn.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP ROLE "+role) })
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	db, err := store.Open(ctx, store.Config{DatabaseURL: u.String()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if may, err := db.MayVacuumStatistics(ctx); err != nil || may {
		t.Fatalf("a plain role: %v %v, want false", may, err)
	}
}
