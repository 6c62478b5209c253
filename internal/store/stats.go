package store

import (
	"context"
	"strings"
)

// Planner statistics. The subject lookups and deletes are index probes
// only when PostgreSQL knows how many rows a value matches; on tables it
// has no statistics for (a bulk load on a server with autovacuum off) it
// guesses hundreds of rows per value and plans parallel scans whose start
// alone costs more than the probe (243 deletes a minute at 200,000
// recipients against 5,760 after an ANALYZE). The workflows therefore
// bring the statistics of the tables they read up to date when they are
// missing or stale by autovacuum's own rule, before they run: where
// autovacuum runs, this finds nothing to do.

// Autovacuum's defaults: analyze when the rows changed since the last
// ANALYZE exceed 50 + 10 % of the table.
const (
	analyzeThreshold   = 50
	analyzeScaleFactor = 0.1
)

// AnalyzeStale runs ANALYZE on those of tables (in the current schema)
// that were never analyzed or changed by more than autovacuum's threshold
// since, and returns them. SQLite: nothing to do (its planner prefers an
// index without statistics).
func (d *DB) AnalyzeStale(ctx context.Context, tables []string) ([]string, error) {
	if d.dialect != Postgres || len(tables) == 0 {
		return nil, nil
	}
	rows, err := d.sql.QueryContext(ctx, `SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
		LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
		WHERE c.relkind IN ('r', 'p') AND c.relname = ANY($1)
		AND (s.relid IS NULL OR (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL)
		     OR s.n_mod_since_analyze > $2 + $3 * GREATEST(c.reltuples, 0))
		ORDER BY c.relname`, tables, analyzeThreshold, analyzeScaleFactor)
	if err != nil {
		return nil, translate(err, "Statistics")
	}
	var stale []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return nil, translate(err, "Statistics")
		}
		stale = append(stale, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, translate(err, "Statistics")
	}
	return stale, d.Analyze(ctx, stale)
}

// Analyze runs ANALYZE on tables (PostgreSQL; SQLite: nothing to do).
func (d *DB) Analyze(ctx context.Context, tables []string) error {
	if d.dialect != Postgres || len(tables) == 0 {
		return nil
	}
	quoted := make([]string, len(tables))
	for i, t := range tables {
		quoted[i] = quoteIdent(t)
	}
	_, err := d.sql.ExecContext(ctx, "ANALYZE "+strings.Join(quoted, ", "))
	return translate(err, "Statistics")
}
