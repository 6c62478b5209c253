// Package storetest opens real databases for tests: SQLite in a temporary
// directory, and PostgreSQL in a schema of its own per test, so that
// packages can run their tests in parallel against one server.
//
// PostgreSQL comes from CP_TEST_POSTGRES_URL, which `make test` points at a
// throwaway cluster of its own (scripts/with-test-postgres); the machine's
// own server is never used unless named there. When it is not set or
// cannot be reached the test is skipped with instructions, or fails when
// CI is set.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver for schema set-up

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// Dialects lists the stores every store-backed test runs on.
var Dialects = []string{store.SQLite, store.Postgres}

// PostgresURL returns a URL of a fresh, empty schema on the test PostgreSQL
// (dropped when the test ends), or skips/fails the test when there is none.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("CP_TEST_POSTGRES_URL")
	if base == "" {
		msg := "CP_TEST_POSTGRES_URL is not set: run the tests through scripts/with-test-postgres " +
			"(a throwaway cluster, as make test does), e.g. scripts/with-test-postgres go test ./privacy"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := sql.Open("pgx", base)
	if err == nil {
		err = admin.PingContext(ctx)
	}
	if err != nil {
		if admin != nil {
			admin.Close()
		}
		msg := "PostgreSQL is not reachable at CP_TEST_POSTGRES_URL (" + redact(base) + "): " + err.Error() +
			". Run the tests through scripts/with-test-postgres or set CP_TEST_POSTGRES_URL."
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "cp_test_" + hex.EncodeToString(b)
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil || u.Scheme == "" {
		return base + " search_path=" + schema
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// ServiceRole creates a PostgreSQL role as a service's own is: LOGIN, not
// a superuser, USAGE and CREATE on the schema of cfg (a Config of this
// package), owner of nothing yet. It returns cfg's URL as that role, the
// role's name, and a connection to the schema as the test's own role (a
// superuser: the DBA). The role and what it owns are dropped when the test
// ends. A test whose role cannot create roles is skipped.
func ServiceRole(t testing.TB, cfg store.Config) (roleURL, role string, dba *Conn) {
	t.Helper()
	ctx := context.Background()
	dba = SQL(t, cfg)
	if super, err := dba.Int(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = current_user AND rolsuper"); err != nil || super == 0 {
		t.Skip("CP_TEST_POSTGRES_URL's role is not a superuser: it cannot create the service's role")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role = "cp_role_" + hex.EncodeToString(b)
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil || u.Scheme == "" {
		t.Skip("CP_TEST_POSTGRES_URL is not a URL: a role cannot be set in it")
	}
	for _, q := range []string{"CREATE ROLE " + role + " LOGIN", "GRANT USAGE, CREATE ON SCHEMA " + u.Query().Get("search_path") + " TO " + role} {
		if err := dba.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		_ = dba.Exec(context.Background(), "DROP OWNED BY "+role+" CASCADE")
		_ = dba.Exec(context.Background(), "DROP ROLE "+role)
	})
	u.User = url.User(role)
	return u.String(), role, dba
}

func redact(u string) string {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		if _, has := p.User.Password(); has {
			p.User = url.UserPassword(p.User.Username(), "xxx")
		}
		return p.String()
	}
	return strings.SplitN(u, " password=", 2)[0]
}

// SimpleProtocol returns a PostgreSQL URL (or keyword string) asking pgx
// for the simple query protocol, as a URL for a pooler would.
func SimpleProtocol(t testing.TB, databaseURL string) string {
	t.Helper()
	if u, err := url.Parse(databaseURL); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set("default_query_exec_mode", "simple_protocol")
		u.RawQuery = q.Encode()
		return u.String()
	}
	return databaseURL + " default_query_exec_mode=simple_protocol"
}

// Config returns a store configuration for dialect: a temporary SQLite data
// directory, or a fresh PostgreSQL schema.
func Config(t testing.TB, dialect string) store.Config {
	t.Helper()
	cfg := store.Config{DataDir: t.TempDir()}
	if dialect == store.Postgres {
		cfg.DatabaseURL = PostgresURL(t)
	}
	return cfg
}

// Open returns a migrated database of the given dialect, closed at cleanup.
func Open(t testing.TB, dialect string, now func() time.Time) *store.DB {
	t.Helper()
	return OpenConfig(t, Config(t, dialect), now)
}

// OpenConfig is Open for a configuration the test made with Config, when
// it needs to know where the database lives. A clock given is the
// database's too unless the configuration has one of its own.
func OpenConfig(t testing.TB, cfg store.Config, now func() time.Time) *store.DB {
	t.Helper()
	dialect := store.SQLite
	if cfg.DatabaseURL != "" {
		dialect = store.Postgres
	}
	cfg.Now = now
	if cfg.DatabaseNow == nil {
		cfg.DatabaseNow = now
	}
	ctx := context.Background()
	db, err := store.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() { db.Close() })
	remember(t, db, cfg)
	if _, err := db.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s: %v", dialect, err)
	}
	return db
}

// Clock is a settable clock for tests, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts a clock at the current time, truncated to the second.
func NewClock() *Clock { return &Clock{t: time.Now().UTC().Truncate(time.Second)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Worst runs a seconds-long benchmark case b.N times and reports the
// largest duration a run returned under the given unit (milliseconds, or
// seconds when the unit ends in "-s"). It is skipped unless CP_BENCH_SLOW
// is set: make test's smoke run of the benchmarks leaves such cases out.
func Worst(b *testing.B, unit string, run func() time.Duration) {
	if os.Getenv("CP_BENCH_SLOW") == "" {
		b.Skip("a run takes seconds: set CP_BENCH_SLOW=1")
	}
	var worst time.Duration
	for range b.N {
		worst = max(worst, run())
	}
	if strings.HasSuffix(unit, "-s") {
		b.ReportMetric(worst.Seconds(), unit)
		return
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, unit)
}

// WorstOnEachStore is Worst as a sub-benchmark per store.
func WorstOnEachStore(b *testing.B, unit string, run func(b *testing.B, dialect string) time.Duration) {
	for _, dialect := range Dialects {
		b.Run(dialect, func(b *testing.B) {
			Worst(b, unit, func() time.Duration { return run(b, dialect) })
		})
	}
}
