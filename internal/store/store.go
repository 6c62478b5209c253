// Package store is the only package that talks to the database. It opens
// SQLite (pure Go, the embedded default) or PostgreSQL through gorm, applies
// the embedded versioned migrations, and maps database errors to apperr codes
// at its boundary. Every call takes a ctx and runs through WithContext.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/libtnb/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

//go:embed migrations
var migrations embed.FS

// Dialects.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// SQLiteTimeOptions are the SQLite driver's settings for times, in a
// DSN's query: a time is written as "2006-01-02 15:04:05.999999999-07:00",
// which SQLite's date functions read and which sorts as the time does, and
// read back as a time only from a column declared DATE, DATETIME or
// TIMESTAMP (a text that merely looks like a time stays text). Every
// connection that writes to the file uses them.
const SQLiteTimeOptions = "_time_format=sqlite&_texttotime=0&_inttotime=0"

// Config says which database to open.
type Config struct {
	// DatabaseURL selects PostgreSQL when set (a postgres:// URL or a
	// key=value DSN); empty means SQLite in DataDir.
	DatabaseURL string
	DataDir     string
	Logger      *slog.Logger
	// Now is the clock; nil means time.Now. Tests inject their own.
	Now func() time.Time
	// DatabaseNow is the database's clock (DB.DatabaseNow); nil means the
	// database's own. Tests inject their own.
	DatabaseNow func() time.Time
	// Failpoint is the fault tests' hook (CP_FAILPOINT): called at named
	// steps ("create-batch-before-commit"), it may kill the process. Nil
	// in production.
	Failpoint func(string) error
}

// DB is an open database.
type DB struct {
	db *gorm.DB
	// sql is gorm's own pool, used directly by the few statements on the
	// SOAP hot path (a create, the session check, a queryDef), where gorm's
	// callbacks cost more than the statement's own work in Go.
	sql *sql.DB
	// reader and readSQL serve the read-only statements (sessions,
	// operators, queryDef, request lists, namespaces, downloads). On
	// SQLite they are a second pool of query-only connections on the same
	// file: a WAL reader never waits for the write lock, and with its own
	// connections it does not wait for the writers' pool either (whose
	// connections may all be waiting for the lock behind a bulk write).
	// Each read starts a new snapshot, so it sees every transaction
	// committed before it began, on whichever connection. On PostgreSQL
	// they are db and sql.
	reader  *gorm.DB
	readSQL *sql.DB
	dialect string
	now     func() time.Time
	log     *slog.Logger
	// dbNow is Config.DatabaseNow: nil reads the database's clock.
	dbNow func() time.Time
	// creates is the group commit's queue of CreateRequest calls
	// (groupcommit.go).
	creates createQueue
	// pipelineCreates: a create batch may be pipelined (PostgreSQL, not
	// the simple protocol; insertRequestsPipelined).
	pipelineCreates bool
	gate            writeGate // writegate.go
	// stmts holds SQLite's hot reads prepared on readSQL, by their text
	// (DB.readQuery).
	stmts sync.Map
	// writeStmts holds SQLite's create batch statements prepared on the
	// writers' pool, by their text (DB.prepareWrites, DB.txStmt).
	writeStmts  sync.Map
	failpointFn func(string) error
	// file is, on SQLite, the database file at its path when it was
	// opened, which Ping compares with what the path names now.
	file     os.FileInfo
	filePath string
	// checkpoints is SQLite's checkpointer (checkpoint.go).
	checkpoints *checkpointer
}

// Open connects to the configured database. It does not migrate: call
// Migrate (the migrate command) or MigrateIfNeeded (serve).
func Open(ctx context.Context, cfg Config) (*DB, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	gcfg := &gorm.Config{
		// Errors are returned, translated once (translate) and logged at the
		// edge; gorm's own log would report expected conflicts as errors.
		Logger:         logger.Discard,
		NowFunc:        func() time.Time { return cfg.Now().UTC() },
		TranslateError: true,
	}
	var (
		gdb, rdb *gorm.DB
		err      error
		dialect  string
		dsn      string
		path     string
	)
	if cfg.DatabaseURL != "" {
		dialect = Postgres
		gdb, err = gorm.Open(postgres.New(postgres.Config{DSN: cfg.DatabaseURL,
			OptionOpenDB: []stdlib.OptionOpenDB{stdlib.OptionBeforeConnect(postgresSession)}}), gcfg)
	} else {
		dialect = SQLite
		var perr error
		if path, perr = prepareDataDir(cfg.DataDir); perr != nil {
			return nil, perr
		}
		// secure_delete zeroes deleted content on every connection (see
		// residue.go); no connection checkpoints in its commits, the
		// store's checkpointer does (checkpoint.go).
		// A file: URI: a path's "?", "#" and "%" escaped, or the database
		// would be made elsewhere (data?1 → a file "data" beside the
		// data directory).
		dsn = "file:" + strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23").Replace(path) +
			"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
			"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_pragma=secure_delete(ON)&_pragma=wal_autocheckpoint(0)&_txlock=immediate&" + SQLiteTimeOptions
		gdb, err = gorm.Open(sqlite.Open(dsn), gcfg)
	}
	var parse *pgconn.ParseConfigError
	if errors.As(err, &parse) {
		// pgx's text quotes the URL, and hides its password only in some
		// of the forms a URL may give it in.
		return nil, fmt.Errorf("open %s database: CP_DATABASE_URL does not parse (its value is not shown: it may hold a password); "+
			"check it against PostgreSQL's connection string syntax", dialect)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialect, err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, err
	}
	if dialect == Postgres {
		sqlDB.SetMaxOpenConns(10)
		sqlDB.SetMaxIdleConns(10)
	} else {
		// One writer at a time is SQLite's model; the few connections
		// beyond it wait for the lock, so that a write's caller is not
		// also queued for a connection.
		sqlDB.SetMaxOpenConns(4)
	}
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	// The first connection sets WAL mode in the file, before any reader
	// opens it.
	if err := sqlDB.PingContext(ctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to %s database: %w", dialect, err)
	}
	rdb, readSQL := gdb, sqlDB
	if dialect == SQLite {
		if rdb, readSQL, err = openSQLiteReader(ctx, dsn, gcfg); err != nil {
			_ = sqlDB.Close()
			return nil, err
		}
	}
	d := &DB{db: gdb, sql: sqlDB, reader: rdb, readSQL: readSQL, dialect: dialect, now: cfg.Now, dbNow: cfg.DatabaseNow,
		log: cfg.Logger, failpointFn: cfg.Failpoint}
	if dialect == Postgres {
		// A pooler's URL asks for the simple protocol: no pipeline of
		// prepared statements for the create batches.
		pc, err := pgx.ParseConfig(cfg.DatabaseURL)
		d.pipelineCreates = err == nil && pc.DefaultQueryExecMode != pgx.QueryExecModeSimpleProtocol
	}
	if dialect == SQLite {
		d.gate.writer = make(chan struct{}, 1)
		// After the pings: the file the connections have open.
		if d.file, err = os.Stat(path); err != nil {
			_ = d.Close()
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
		d.filePath = path
		if err := d.startCheckpointer(ctx, dsn); err != nil {
			_ = d.Close()
			return nil, fmt.Errorf("open sqlite database: %w", err)
		}
	}
	return d, nil
}

// postgresSessionDefaults is what every PostgreSQL session of the service
// sets, unless the database URL (or PGOPTIONS) sets it: a name operators
// see in pg_stat_activity (the residue purge's warnings name the server
// process of a blocking transaction), and the security bar's 60 s bound on
// a transaction left idle, which would hold its locks and keep every
// vacuum — the residue purge's included — from removing deleted rows. And
// no parallel query: the service's statements are index lookups of a few
// rows each, but a claim's lookups and checks join many of them in one
// UNION ALL, whose estimate can pass parallel_setup_cost; starting the
// workers then took 195 of the statement's 240 ms (auto_explain, 2026-12-05),
// where the same statement alone runs in a few.
var postgresSessionDefaults = map[string]string{
	"application_name":                    "campaign-privacy",
	"idle_in_transaction_session_timeout": "60s",
	"max_parallel_workers_per_gather":     "0",
}

// postgresSession adds to a connection's settings the defaults it does not
// set itself. cc is a shallow copy: its map is replaced, not changed.
func postgresSession(_ context.Context, cc *pgx.ConnConfig) error {
	params := maps.Clone(cc.RuntimeParams)
	if params == nil {
		params = map[string]string{}
	}
	for name, value := range postgresSessionDefaults {
		if _, set := params[name]; !set && !strings.Contains(params["options"], name) {
			params[name] = value
		}
	}
	cc.RuntimeParams = params
	return nil
}

// openSQLiteReader opens the readers' pool on the SQLite file that dsn
// (the writers') names: query_only connections, whose transactions begin
// DEFERRED (a read never asks for the write lock), as many as there are
// callers to serve at once.
func openSQLiteReader(ctx context.Context, dsn string, gcfg *gorm.Config) (*gorm.DB, *sql.DB, error) {
	dsn = strings.Replace(dsn, "&_txlock=immediate", "&_txlock=deferred", 1) + "&_pragma=query_only(1)"
	rdb, err := gorm.Open(sqlite.Open(dsn), gcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("open sqlite readers: %w", err)
	}
	readSQL, err := rdb.DB()
	if err != nil {
		return nil, nil, err
	}
	readSQL.SetMaxOpenConns(readers)
	readSQL.SetMaxIdleConns(readers)
	readSQL.SetConnMaxIdleTime(5 * time.Minute)
	if err := readSQL.PingContext(ctx); err != nil {
		_ = readSQL.Close()
		return nil, nil, fmt.Errorf("connect to sqlite readers: %w", err)
	}
	return rdb, readSQL, nil
}

// readers is the size of SQLite's readers' pool: the reads are CPU work in
// Go (the driver is pure Go), so a few per core; more would only queue on
// the cores instead of on the pool.
const readers = 8

// Close closes the connection pools.
func (d *DB) Close() error {
	d.stopCheckpointer()
	var err error
	for _, m := range []*sync.Map{&d.stmts, &d.writeStmts} {
		m.Range(func(_, s any) bool {
			err = errors.Join(err, s.(*sql.Stmt).Close())
			return true
		})
	}
	if d.readSQL != d.sql {
		err = errors.Join(err, d.readSQL.Close())
	}
	return errors.Join(err, d.sql.Close())
}

// readQuery runs a read on the readers' pool. On SQLite the statement is
// prepared once per DB and kept: SQLite's driver keeps a prepared
// statement parsed, where it parses a statement run by its text at every
// run (for the reads of every create batch and every download; query is
// one of a few fixed texts). On PostgreSQL it is run by its text: a
// pooler's connections may not keep a prepared statement, and pgx keeps
// its own cache.
func (d *DB) readQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if d.dialect == Postgres {
		return d.readSQL.QueryContext(ctx, d.rebind(query), args...)
	}
	s, ok := d.stmts.Load(query)
	if !ok {
		// The caller holds no connection: preparing waits for one of
		// the pool's, as the query would.
		p, err := d.readSQL.PrepareContext(ctx, query)
		if err != nil {
			return nil, err
		}
		if s, ok = d.stmts.LoadOrStore(query, p); ok {
			p.Close() // another caller stored it first
		}
	}
	return s.(*sql.Stmt).QueryContext(ctx, args...)
}

// prepareWrites prepares queries on SQLite's writers' pool, once per DB,
// for txStmt. The caller must not be in a transaction: preparing takes a
// connection of the pool, and a transaction holding the write lock would
// wait for a second one (TestAuditChainConcurrentReplicas ended in
// SQLITE_BUSY so). A query that fails to prepare is left to txStmt to
// prepare in its transaction, where its error is returned.
func (d *DB) prepareWrites(ctx context.Context, queries ...string) {
	for _, q := range queries {
		if _, ok := d.writeStmts.Load(q); ok {
			continue
		}
		p, err := d.sql.PrepareContext(ctx, q)
		if err != nil {
			return
		}
		if _, ok := d.writeStmts.LoadOrStore(q, p); ok {
			p.Close() // another caller stored it first
		}
	}
}

// txStmt returns query's statement in tx; close it after. On SQLite, when
// prepareWrites prepared it, tx's connection prepares it the first time and
// keeps it parsed after (SQLite's driver parses a statement run by its text
// at every run, and one prepared in a transaction at every transaction).
func (d *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	if p, ok := d.writeStmts.Load(query); ok {
		return tx.StmtContext(ctx, p.(*sql.Stmt)), nil // an error is returned by its first run
	}
	return tx.PrepareContext(ctx, query)
}

// readRow is readQuery for one row, scanned into dest: sql.ErrNoRows when
// there is none.
func (d *DB) readRow(ctx context.Context, query string, args []any, dest ...any) error {
	rows, err := d.readQuery(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// Dialect returns SQLite or Postgres.
func (d *DB) Dialect() string { return d.dialect }

// Now is the store's clock: the time it writes into rows.
func (d *DB) Now() time.Time { return d.now().UTC() }

// DatabaseNow reads the database's clock: PostgreSQL's, which may run on
// another machine than the service, or (SQLite) the host's as the
// database reads it. The cleanup purges by the earlier of it and the
// service's (security-bar #105).
func (d *DB) DatabaseNow(ctx context.Context) (time.Time, error) {
	if d.dbNow != nil {
		return d.dbNow().UTC(), nil
	}
	if d.dialect == Postgres {
		var at time.Time
		err := d.readSQL.QueryRowContext(ctx, "SELECT clock_timestamp()").Scan(&at)
		return at.UTC(), translate(err, "Database clock")
	}
	var at string
	if err := d.readSQL.QueryRowContext(ctx, "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").Scan(&at); err != nil {
		return time.Time{}, translate(err, "Database clock")
	}
	t, err := time.Parse("2006-01-02T15:04:05.000Z", at)
	if err != nil {
		return time.Time{}, fmt.Errorf("the database's clock read %q: %w", at, err)
	}
	return t, nil
}

// Ping checks that the database answers. On SQLite it also checks that
// the file at the database's path is still the one opened at the start:
// the open connections go on answering from a file removed or replaced
// under them (a volume swapped, a careless clean-up), while the next start
// would open what the path names now, a new empty database, and everything
// written meanwhile would be lost.
func (d *DB) Ping(ctx context.Context) error {
	if d.file != nil {
		if fi, err := os.Stat(d.filePath); err != nil || !os.SameFile(d.file, fi) {
			return fmt.Errorf("the database file %s is no longer the one opened at the start (removed or replaced): "+
				"what is written now would not be there after a restart", d.filePath)
		}
	}
	sqlDB, err := d.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.PingContext(ctx)
}

type migration struct {
	version int
	name    string
	sql     string
}

func (d *DB) migrations() ([]migration, error) {
	dir := "migrations/" + d.dialect
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", name)
		}
		body, err := fs.ReadFile(migrations, dir+"/"+name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// LatestVersion is the newest migration this binary knows. It reads the
// files' names only: the running checks (CheckVersion) call it often.
func (d *DB) LatestVersion() (int, error) {
	entries, err := fs.ReadDir(migrations, "migrations/"+d.dialect)
	if err != nil {
		return 0, err
	}
	latest := 0
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".sql") {
			v, err := strconv.Atoi(strings.SplitN(name, "_", 2)[0])
			if err != nil {
				return 0, fmt.Errorf("migration %s: name must start with a number", name)
			}
			latest = max(latest, v)
		}
	}
	return latest, nil
}

// Version returns the applied schema version (0 for an empty database).
func (d *DB) Version(ctx context.Context) (int, error) {
	if !d.db.WithContext(ctx).Migrator().HasTable("schema_migrations") {
		return 0, nil
	}
	var v sql.NullInt64
	if err := d.db.WithContext(ctx).Raw("SELECT MAX(version) FROM schema_migrations").Scan(&v).Error; err != nil {
		return 0, err
	}
	return int(v.Int64), nil
}

// migrationLock is the advisory lock migrations take on PostgreSQL; any
// constant works, this one spells "cp-migr".
const migrationLock = 6370730001

// Migrate applies every pending migration, each in its own transaction
// (with its Go step, migrationSteps, if it has one). On
// PostgreSQL an advisory lock serialises replicas that start together. It
// returns the versions it applied.
func (d *DB) Migrate(ctx context.Context) ([]int, error) {
	ms, err := d.migrations()
	if err != nil {
		return nil, err
	}
	// Under the migrations' lock too: two replicas starting on a fresh
	// PostgreSQL database both ran CREATE TABLE IF NOT EXISTS, which is
	// not safe at once (one failed on pg_type's unique index, and exited).
	create := "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL)"
	if err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if d.dialect == Postgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrationLock).Error; err != nil {
				return err
			}
		}
		return tx.Exec(create).Error
	}); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var applied []int
	for _, m := range ms {
		done := false
		err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			if d.dialect == Postgres {
				if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", migrationLock).Error; err != nil {
					return err
				}
			}
			var n int64
			if err := tx.Raw("SELECT COUNT(*) FROM schema_migrations WHERE version = ?", m.version).Scan(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				done = true
				return nil
			}
			for _, stmt := range splitSQL(m.sql) {
				if err := tx.Exec(stmt).Error; err != nil {
					return fmt.Errorf("migration %s: %w", m.name, err)
				}
			}
			if step := migrationSteps[m.version]; step != nil {
				if err := step(tx); err != nil {
					return fmt.Errorf("migration %s: %w", m.name, err)
				}
			}
			return tx.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, d.now().UTC()).Error
		})
		if err != nil {
			return applied, err
		}
		if !done {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// CheckVersion fails when the database was migrated by a newer binary, whose
// schema this one does not know. It is checked at start, and again by a
// running process before each workflow run and each claim of requests: in
// a rolling upgrade a replica still running the previous binary would
// otherwise go on writing a schema it does not know (an INSERT on a
// changed key fails, a table it never heard of is left unwritten).
func (d *DB) CheckVersion(ctx context.Context) error {
	have, latest, err := d.versions(ctx)
	if err == nil && have > latest {
		err = errSchemaNewer(have, latest)
	}
	return err
}

// errSchemaNewer is CheckVersion's refusal: the database's schema version
// have is newer than latest, this binary's newest migration.
func errSchemaNewer(have, latest int) error {
	return apperr.Errorf(apperr.Conflict, "The database schema is at version %d, newer than this binary's %d: another replica was upgraded; upgrade campaign-privacy here too.", have, latest)
}

// versions returns the database's schema version and this binary's newest.
func (d *DB) versions(ctx context.Context) (have, latest int, err error) {
	if have, err = d.Version(ctx); err != nil {
		return 0, 0, err
	}
	latest, err = d.LatestVersion()
	return have, latest, err
}

// splitSQL splits a migration file into statements at ";", except inside
// a PostgreSQL dollar-quoted body ($$ … $$) and a SQLite trigger's
// BEGIN … END, whose ";" are the body's. "--" comment lines are dropped
// (a comment must hold no ";"), as are empty statements.
func splitSQL(s string) []string {
	var out, open []string
	for _, piece := range strings.Split(s, ";") {
		var lines []string
		for _, line := range strings.Split(piece, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "--") {
				lines = append(lines, line)
			}
		}
		open = append(open, strings.Join(lines, "\n"))
		stmt := strings.Join(open, ";")
		if strings.Count(stmt, "$$")%2 == 1 || inTriggerBody(stmt) {
			continue
		}
		if strings.TrimSpace(stmt) != "" {
			out = append(out, stmt)
		}
		open = nil
	}
	if stmt := strings.Join(open, ";"); strings.TrimSpace(stmt) != "" {
		out = append(out, stmt) // unfinished: the database says so, nothing is skipped
	}
	return out
}

// inTriggerBody reports whether stmt is a SQLite CREATE [TEMP] TRIGGER
// whose BEGIN … END has not ended yet: its END words (outside quoted
// strings) are not yet one more than its CASE words, whose END closes a
// CASE expression inside the body.
func inTriggerBody(stmt string) bool {
	f := strings.FieldsFunc(strings.ToUpper(unquoted(stmt)), func(r rune) bool {
		return !('A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_')
	})
	if len(f) > 1 && (f[1] == "TEMP" || f[1] == "TEMPORARY") {
		f = slices.Delete(slices.Clone(f), 1, 2)
	}
	if len(f) < 3 || f[0] != "CREATE" || f[1] != "TRIGGER" || !slices.Contains(f, "BEGIN") {
		return false
	}
	cases, ends := 0, 0
	for _, w := range f {
		switch w {
		case "CASE":
			cases++
		case "END":
			ends++
		}
	}
	return ends <= cases
}

// unquoted is s without its quoted strings and identifiers ('…', "…",
// `…`, […]) and its comments (-- to the line's end, /* … */), so that a
// word inside one is not taken for a keyword.
func unquoted(s string) string {
	var b strings.Builder
	var end string // what ends the quote or comment we are in
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case end != "":
			if strings.HasPrefix(s[i:], end) {
				i += len(end) - 1
				end = "" // a doubled quote reopens at once: the same
			}
		case c == '\'' || c == '"' || c == '`':
			end = string(c)
		case c == '[':
			end = "]"
		case strings.HasPrefix(s[i:], "--"):
			end = "\n"
		case strings.HasPrefix(s[i:], "/*"):
			end, i = "*/", i+1
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// asAppErr reports whether err carries an *apperr.Error, and sets e.
func asAppErr(err error, e **apperr.Error) bool { return errors.As(err, e) }

// rebind rewrites the "?" placeholders of a statement for the dialect:
// "$1", "$2"… on PostgreSQL (what gorm does for the statements it runs). A
// "?" inside a quoted identifier or literal is left alone.
func (d *DB) rebind(stmt string) string {
	if d.dialect != Postgres || !strings.Contains(stmt, "?") {
		return stmt
	}
	var b strings.Builder
	b.Grow(len(stmt) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(stmt); i++ {
		c := stmt[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// translate maps a database error to an apperr code, once, here.
func translate(err error, what string) error {
	var ae *apperr.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ae):
		return err // the store's own faults (ErrNamespaceRewritten, …) as they are
	case errors.Is(err, gorm.ErrRecordNotFound):
		return apperr.Wrap(apperr.NotFound, err, what+" not found.")
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return apperr.Wrap(apperr.Conflict, err, what+" already exists.")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apperr.Wrap(apperr.Busy, err, "The request was cancelled or took too long.")
	case strings.Contains(err.Error(), "integer overflow"):
		// SQLite's sum() of 64-bit integers beyond their range (PostgreSQL
		// sums them as numeric): the caller's query, not the service.
		return apperr.Wrap(apperr.Invalid, err, "A sum is beyond the range of 64-bit integers.")
	case pgCode(err) == "22025" || pgCode(err) == "22019": // invalid escape sequence, character
		// PostgreSQL's LIKE takes a backslash as its escape: a pattern the
		// caller wrote that ends with one is theirs to fix.
		return apperr.Wrap(apperr.Invalid, err, "A LIKE pattern ends with its escape character: write \\\\ for a backslash.")
	case strings.HasPrefix(pgCode(err), "22"):
		// A data exception: a value the database's type refuses (a date
		// out of its range, bytes that are not UTF-8). The caller's value,
		// and PostgreSQL's text quotes it: not kept for the log.
		return apperr.Wrap(apperr.Invalid, pgSafe(err), "A value does not fit its field's type in the database.")
	default:
		return apperr.Wrap(apperr.Internal, pgSafe(err), "Database error.")
	}
}

// pgSafe is a PostgreSQL error as the log may hold it: its code, table,
// column and constraint, never its message or detail, which quote values
// (`Key (email)=(…)`, `invalid input syntax for type date: "…"`). Other
// errors are returned as they are (SQLite's and pgx's carry no values).
func pgSafe(err error) error {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) {
		return err
	}
	return fmt.Errorf("PostgreSQL error %s (%s; table %q, column %q, constraint %q)", pg.Code, pg.Severity, pg.TableName, pg.ColumnName, pg.ConstraintName)
}

// scanColumn reads a one-column result (a query's rows and error, as
// QueryContext returns them).
func scanColumn[T any](rows *sql.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
