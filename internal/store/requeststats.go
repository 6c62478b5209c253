package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// What the metrics and the readiness probe read (internal/metrics). Each
// statement is cheap enough for a scrape every few seconds.

// CountRequestsByStatus counts the requests of each status value: one
// GROUP BY over the status index (an index-only scan), whatever the
// table's size.
func (d *DB) CountRequestsByStatus(ctx context.Context) (map[Status]int64, error) {
	var rows []struct {
		Status Status
		N      int64
	}
	err := d.reader.WithContext(ctx).Raw("SELECT status, COUNT(*) AS n FROM privacy_requests GROUP BY status").Scan(&rows).Error
	if err != nil {
		return nil, translate(err, "Request")
	}
	out := make(map[Status]int64, len(rows))
	for _, r := range rows {
		out[r.Status] = r.N
	}
	return out, nil
}

// OldestRequestCreated returns when the oldest request now in status was
// created (ok false when none is). Ids grow with time, so the oldest is
// the lowest id: the first entry of the status index.
func (d *DB) OldestRequestCreated(ctx context.Context, status Status) (created time.Time, ok bool, err error) {
	var times []time.Time
	err = d.reader.WithContext(ctx).Model(&Request{}).Where("status = ?", status).Order("id").Limit(1).Pluck("created", &times).Error
	if err != nil || len(times) == 0 {
		return time.Time{}, false, translate(err, "Request")
	}
	return times[0], true, nil
}

// CheckMigrated fails unless the database schema is at exactly this
// binary's newest migration (the readiness probe's "migrations").
func (d *DB) CheckMigrated(ctx context.Context) error {
	have, latest, err := d.versions(ctx)
	if err == nil && have != latest {
		err = fmt.Errorf("database schema at version %d, this binary's is %d", have, latest)
	}
	return err
}

// Pool is the database/sql connection pool of the writes, for its
// statistics (sql.DBStats); statements go through the store's methods. On
// PostgreSQL it serves the reads too; SQLite's readers have a pool of
// their own (Open), not in these statistics.
func (d *DB) Pool() *sql.DB { return d.sql }
