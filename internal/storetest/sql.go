package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the SQLite driver the store's gorm dialect uses

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// Conn is a test's own database/sql connection to the database a store
// under test uses. Tests do through it what an operator with psql or
// another tool would do behind the service's back — put rows the SOAP API
// cannot create, change or tamper with rows, hold a lock — so the store's
// exported API carries no hooks for them.
type Conn struct {
	db      *sql.DB
	dialect string
}

// opened remembers the configuration of each database Open returned, so
// SQLOf can reach the same database.
var opened sync.Map // *store.DB → *openedDB

type openedDB struct {
	cfg  store.Config
	once sync.Once
	conn *Conn
	err  error
}

// SQL opens a connection to the database cfg names (a Config of this
// package, or the settings a command under test was given), closed when
// the test ends.
func SQL(t testing.TB, cfg store.Config) *Conn {
	t.Helper()
	c, err := openSQL(cfg)
	if err != nil {
		t.Fatalf("open a test connection: %v", err)
	}
	t.Cleanup(func() { c.db.Close() })
	return c
}

// SQLOf is SQL for a database Open returned; the connection lives as long
// as that database.
func SQLOf(t testing.TB, db *store.DB) *Conn {
	t.Helper()
	v, ok := opened.Load(db)
	if !ok {
		t.Fatal("storetest.SQLOf: the database was not opened by storetest.Open")
	}
	o := v.(*openedDB)
	o.once.Do(func() { o.conn, o.err = openSQL(o.cfg) })
	if o.err != nil {
		t.Fatalf("open a test connection: %v", o.err)
	}
	return o.conn
}

// ConfigOf returns the configuration a database Open returned was opened
// with: where its files are.
func ConfigOf(t testing.TB, db *store.DB) store.Config {
	t.Helper()
	v, ok := opened.Load(db)
	if !ok {
		t.Fatal("storetest.ConfigOf: the database was not opened by storetest.Open")
	}
	return v.(*openedDB).cfg
}

// remember records db's configuration for SQLOf until the test ends.
func remember(t testing.TB, db *store.DB, cfg store.Config) {
	o := &openedDB{cfg: cfg}
	opened.Store(db, o)
	t.Cleanup(func() {
		opened.Delete(db)
		if o.conn != nil {
			o.conn.db.Close()
		}
	})
}

func openSQL(cfg store.Config) (*Conn, error) {
	if cfg.DatabaseURL != "" {
		db, err := sql.Open("pgx", cfg.DatabaseURL)
		if err != nil {
			return nil, err
		}
		return &Conn{db: db, dialect: store.Postgres}, nil
	}
	// As the store opens it: a writer waits for the other's lock, and
	// what the test overwrites is zeroed as the store's own deletes are.
	dsn := "file:" + filepath.Join(cfg.DataDir, store.SQLiteFile) +
		"?_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=secure_delete(ON)&_txlock=immediate&" + store.SQLiteTimeOptions
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	return &Conn{db: db, dialect: store.SQLite}, nil
}

// rebind turns the ? placeholders of query into PostgreSQL's $n.
func (c *Conn) rebind(query string) string {
	if c.dialect != store.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Exec runs one statement with ? placeholders.
func (c *Conn) Exec(ctx context.Context, query string, args ...any) error {
	_, err := c.db.ExecContext(ctx, c.rebind(query), args...)
	return err
}

// LiftAuditProtection does what the owner of the database would do to
// rewrite the audit behind the service's back: it disables the triggers
// that keep the chain append-only and grants back the privileges the
// migration gave up (PostgreSQL), or drops the triggers (SQLite). Tests
// that tamper with the chain call it first: the verifier must catch what
// gets past the protection.
func (c *Conn) LiftAuditProtection(ctx context.Context) error {
	stmts := []string{
		"ALTER TABLE privacy_audit_chain DISABLE TRIGGER USER",
		"ALTER TABLE privacy_audit_head DISABLE TRIGGER USER",
		"GRANT UPDATE, DELETE, TRUNCATE ON privacy_audit_chain, privacy_audit_head TO CURRENT_USER",
	}
	if c.dialect == store.SQLite {
		stmts = []string{
			"DROP TRIGGER IF EXISTS privacy_audit_chain_no_update",
			"DROP TRIGGER IF EXISTS privacy_audit_chain_no_delete",
			"DROP TRIGGER IF EXISTS privacy_audit_chain_no_replace",
			"DROP TRIGGER IF EXISTS privacy_audit_head_kept",
		}
	}
	for _, q := range stmts {
		if err := c.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// InsertRow inserts one row into a table; table and the keys of values
// are identifiers the test chose, values are bound.
func (c *Conn) InsertRow(ctx context.Context, table string, values map[string]any) error {
	cols := slices.Sorted(maps.Keys(values))
	quoted := make([]string, len(cols))
	marks := make([]string, len(cols))
	args := make([]any, len(cols))
	for i, col := range cols {
		quoted[i], marks[i], args[i] = `"`+col+`"`, "?", values[col]
	}
	return c.Exec(ctx, fmt.Sprintf(`INSERT INTO "%s" (%s) VALUES (%s)`, table, strings.Join(quoted, ", "), strings.Join(marks, ", ")), args...)
}

// LockTable takes, in a transaction of its own, the lock a slow or stuck
// session would hold on table (PostgreSQL's ACCESS EXCLUSIVE; on SQLite,
// which has no table locks, the database's write lock, by a write to
// table) until release is called: fault tests use it to make calls wait
// on the database.
func (c *Conn) LockTable(ctx context.Context, table string) (release func(), err error) {
	if c.dialect == store.SQLite {
		tx, err := c.db.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM "`+table+`" WHERE 0`); err != nil {
			tx.Rollback()
			return nil, err
		}
		return func() { tx.Rollback() }, nil
	}
	return c.LockTableIn(ctx, table, "ACCESS EXCLUSIVE")
}

// LockTableIn is LockTable in another mode: ACCESS SHARE is what any
// reader of the table holds until its transaction ends.
func (c *Conn) LockTableIn(ctx context.Context, table, mode string) (release func(), err error) {
	if c.dialect != store.Postgres {
		return nil, fmt.Errorf("LOCK TABLE is PostgreSQL's")
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, `LOCK TABLE "`+table+`" IN `+mode+` MODE`); err != nil {
		tx.Rollback()
		return nil, err
	}
	return func() { tx.Rollback() }, nil
}

// Uncommitted runs a statement with ? placeholders in a transaction of its
// own and leaves it open, holding its row locks, until commit is called:
// tests use it to race a write in flight.
func (c *Conn) Uncommitted(ctx context.Context, query string, args ...any) (commit func() error, err error) {
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, c.rebind(query), args...); err != nil {
		tx.Rollback()
		return nil, err
	}
	return tx.Commit, nil
}

// AwaitLockWait returns once some PostgreSQL session waits for a lock
// (a call blocked behind an Uncommitted write), or an error if the call
// under test ends first, its result on ended.
func (c *Conn) AwaitLockWait(ctx context.Context, ended <-chan error) error {
	for {
		waiting, err := c.Int(ctx, "SELECT COUNT(*) FROM pg_locks WHERE NOT granted")
		if err != nil || waiting > 0 {
			return err
		}
		select {
		case err := <-ended:
			return fmt.Errorf("it did not wait for the write in flight: it ended with %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Bytes runs a query with ? placeholders that returns one value, as bytes.
func (c *Conn) Bytes(ctx context.Context, query string, args ...any) ([]byte, error) {
	var b []byte
	err := c.db.QueryRowContext(ctx, c.rebind(query), args...).Scan(&b)
	return b, err
}

// Int runs a query with ? placeholders that returns one integer.
func (c *Conn) Int(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := c.db.QueryRowContext(ctx, c.rebind(query), args...).Scan(&n)
	return n, err
}

// HoldSnapshot opens a REPEATABLE READ transaction that reads table, as a
// long report or pg_dump would: until release is called its snapshot sees
// the rows deleted after it, so no VACUUM may remove them.
func (c *Conn) HoldSnapshot(ctx context.Context, table string) (release func(), err error) {
	if c.dialect != store.Postgres {
		return nil, fmt.Errorf("a held snapshot is PostgreSQL's concern")
	}
	tx, err := c.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM "`+table+`"`).Scan(&n); err != nil {
		tx.Rollback()
		return nil, err
	}
	return func() { tx.Rollback() }, nil
}

// PostgresFileCount counts how often each of tokens appears in the files
// PostgreSQL keeps table in: its heap, its indexes, its TOAST table, and
// pg_statistic (which samples its values), read from the disk after a
// CHECKPOINT. It is the ground truth of an erasure, below what SQL can see:
// a row a VACUUM freed but did not overwrite is still there. It needs the
// cluster's data directory, which scripts/with-test-postgres names in
// CP_TEST_PG_DATA; without it the test is skipped (failed under CI).
func (c *Conn) PostgresFileCount(t testing.TB, ctx context.Context, table string, tokens ...string) int {
	t.Helper()
	dataDir := os.Getenv("CP_TEST_PG_DATA")
	if dataDir == "" {
		msg := "reading PostgreSQL's files needs the throwaway cluster of scripts/with-test-postgres (CP_TEST_PG_DATA)"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	// Another test's purge (they share the database, and pg_statistic
	// with it) may rewrite a relation between the query of its file's
	// path and the read, and a CHECKPOINT then unlinks the old file:
	// counted again from the query, a few times.
	for attempt := 1; ; attempt++ {
		n, err := c.postgresFileCount(ctx, dataDir, table, tokens)
		if err == nil {
			return n
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 5 {
			t.Fatalf("%v", err)
		}
	}
}

// postgresFileCount is one count of PostgresFileCount's.
func (c *Conn) postgresFileCount(ctx context.Context, dataDir, table string, tokens []string) (int, error) {
	if _, err := c.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	paths, err := scanStrings(c.db.QueryContext(ctx, `
		WITH rel AS (
			SELECT oid, reltoastrelid FROM pg_class WHERE oid IN ($1::text::regclass, 'pg_catalog.pg_statistic'::regclass)
		), toast AS (
			SELECT oid FROM rel UNION SELECT reltoastrelid FROM rel WHERE reltoastrelid <> 0
		)
		SELECT pg_relation_filepath(oid) FROM toast
		UNION SELECT pg_relation_filepath(indexrelid) FROM pg_index WHERE indrelid IN (SELECT oid FROM toast)`, table))
	if err != nil {
		return 0, fmt.Errorf("relation files of %s: %w", table, err)
	}
	n := 0
	for _, p := range paths {
		segments, _ := filepath.Glob(filepath.Join(dataDir, p) + ".[0-9]*")
		for _, f := range append(segments, filepath.Join(dataDir, p)) {
			b, err := os.ReadFile(f)
			if err != nil {
				return 0, fmt.Errorf("read %s: %w", f, err)
			}
			for _, tok := range tokens {
				n += bytes.Count(b, []byte(tok))
			}
		}
	}
	return n, nil
}

func scanStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// SQLiteFileCount counts how often each of tokens appears in the SQLite
// database file of cfg, its WAL and its shared-memory file: the ground
// truth of an erasure there, free pages included.
func SQLiteFileCount(t testing.TB, cfg store.Config, tokens ...string) int {
	t.Helper()
	path := filepath.Join(cfg.DataDir, store.SQLiteFile)
	n := 0
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range tokens {
			n += bytes.Count(b, []byte(tok))
		}
	}
	return n
}
