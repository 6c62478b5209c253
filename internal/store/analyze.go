package store

import "context"

// Analyze refreshes PostgreSQL's planner statistics of the whole database
// after a bulk load (demo-data): without them the first queries on the new
// rows are planned as for empty tables until autovacuum comes by. SQLite
// is left alone: its plans do not depend on statistics.
func (d *DB) Analyze(ctx context.Context) error {
	if d.dialect != Postgres {
		return nil
	}
	_, err := d.sql.ExecContext(ctx, "ANALYZE")
	return err
}
