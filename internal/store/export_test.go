package store

import (
	"context"
	"time"
)

// ExistingColumnsForTest exposes existingColumns to the store's tests.
func (d *DB) ExistingColumnsForTest(ctx context.Context, table string) (map[string]bool, error) {
	return d.existingColumns(ctx, table)
}

// QueryForTest exposes query (the statement runner of Select) to the
// store's tests.
func (d *DB) QueryForTest(ctx context.Context, sql string, args []any, row func(values []any) error) error {
	return d.query(ctx, sql, args, row)
}

// PendingCreatesForTest is the number of CreateRequest calls waiting for
// a flusher, and the number of flushers running.
func (d *DB) PendingCreatesForTest() (pending, flushers int) {
	d.creates.mu.Lock()
	defer d.creates.mu.Unlock()
	return len(d.creates.pending), d.creates.flushers
}

// PipelinedCreatesForTest is the number of create batches written in the
// pipeline (insertRequestsPipelined).
func (d *DB) PipelinedCreatesForTest() int64 { return d.creates.pipelined.Load() }

// HoldCreateLockForTest holds what a create batch must take until release:
// SQLite's write lock, or PostgreSQL's audit chain head.
func (d *DB) HoldCreateLockForTest(ctx context.Context) (release func(), err error) {
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return nil, err
	}
	lock := "BEGIN IMMEDIATE"
	if d.dialect == Postgres {
		lock = "BEGIN; LOCK TABLE privacy_audit_head IN ACCESS EXCLUSIVE MODE"
	}
	if _, err := conn.ExecContext(ctx, lock); err != nil {
		conn.Close()
		return nil, err
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		conn.Close()
	}, nil
}

// SettingForTest reads a setting of one of the store's own PostgreSQL
// sessions.
func (d *DB) SettingForTest(ctx context.Context, name string) (string, error) {
	var v string
	err := d.sql.QueryRowContext(ctx, "SELECT current_setting($1)", name).Scan(&v)
	return v, err
}

// IdleInTransactionForTest opens a transaction on one of the store's
// sessions, leaves it idle for idle, and returns the error of its next
// statement.
func (d *DB) IdleInTransactionForTest(ctx context.Context, idle time.Duration) error {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT 1"); err != nil {
		return err
	}
	time.Sleep(idle)
	_, err = tx.ExecContext(ctx, "SELECT 1")
	return err
}

// ClaimPlanForTest returns PostgreSQL's plan (EXPLAIN ANALYZE, JSON) of a
// claim's candidate query for status.
func (d *DB) ClaimPlanForTest(ctx context.Context, status Status) (string, error) {
	now := d.now().UTC()
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	var plan string
	err = tx.QueryRowContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+d.rebind(d.claimCandidates()), status, status, now, now, 10).Scan(&plan)
	return plan, err
}

// SetWALRestartFramesForTest sets the WAL length from which the SQLite
// checkpointer restarts it (restartFrames).
func (d *DB) SetWALRestartFramesForTest(frames int64) { d.checkpoints.restartFrames.Store(frames) }
