package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// Bulk writes and the writes a logon or a request creation makes share
// SQLite's one write lock (SECURITY-CATALOGUE.md, "bulk Write starves
// logons"). Three rules keep the short writes from waiting behind the bulk
// ones:
//
//   - a bulk write (xtk:persist WriteCollection / Write) finds existing
//     records only through indexed columns (IndexedColumns; persist refuses
//     any other _key), so 1,000 records are 1,000 index probes, not 1,000
//     table scans;
//   - it runs within WriteBudget (SQLite; PostgreSQL: WriteBudgetPostgres),
//     whatever the call's deadline, and is
//     rolled back when the budget runs out;
//   - on SQLite bulk writes go one at a time, and none starts while a
//     priority write (a session, a logon's bookkeeping, a create batch)
//     waits for the lock: SQLite's busy handler polls with growing sleeps,
//     so a stream of bulk transactions back to back would otherwise take
//     the lock each time it is freed.

// WriteBudget bounds one bulk write's transaction on SQLite, where it
// holds the one write lock: well under the calls' deadline (10 s).
// PostgreSQL locks only the rows written; its budget is
// WriteBudgetPostgres.
const (
	WriteBudget         = 2 * time.Second
	WriteBudgetPostgres = 5 * time.Second
)

// maxPriorityYield bounds how long a bulk write waits for priority writes
// to pass (a stream of logons must not starve Write either).
const maxPriorityYield = time.Second

type writeGate struct {
	priority atomic.Int32 // priority writes waiting or running
	bulk     sync.Mutex   // SQLite: one bulk write at a time
	// writer is SQLite's one priority writer at a time (a token, taken
	// with the caller's ctx): the priority writes queue here, in Go, and
	// each starts the moment the one before commits. Left to SQLite they
	// would poll for the lock with growing sleeps (1 ms … 100 ms), and a
	// logon's session insert could sleep through several create batches,
	// which the flusher writes back to back.
	writer chan struct{}
}

// priorityWrite runs fn, a short write on the logon or create path, ahead
// of the bulk writes that have not started yet; on SQLite, after the
// priority writes queued before it.
func (d *DB) priorityWrite(ctx context.Context, fn func() error) error {
	d.gate.priority.Add(1)
	defer d.gate.priority.Add(-1)
	if d.gate.writer != nil {
		select {
		case d.gate.writer <- struct{}{}:
			defer func() { <-d.gate.writer }()
		case <-ctx.Done():
			return translate(ctx.Err(), "Write")
		}
	}
	return fn()
}

// bulkWrite runs fn, a bulk write, under the rules above; fn gets the
// budget's context.
func (d *DB) bulkWrite(ctx context.Context, fn func(ctx context.Context) error) error {
	if d.dialect == SQLite {
		d.gate.bulk.Lock()
		defer d.gate.bulk.Unlock()
		for deadline := time.Now().Add(maxPriorityYield); d.gate.priority.Load() > 0 && time.Now().Before(deadline); {
			if err := ctx.Err(); err != nil {
				return translate(err, "Record")
			}
			time.Sleep(time.Millisecond)
		}
	}
	budget := WriteBudget
	if d.dialect == Postgres {
		budget = WriteBudgetPostgres
	}
	bctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	err := fn(bctx)
	if err != nil && ctx.Err() == nil && (bctx.Err() != nil || errors.Is(err, context.DeadlineExceeded)) {
		return &apperr.Error{Code: apperr.Busy, Err: err,
			Message: fmt.Sprintf("The write took longer than %s and was rolled back: send fewer records per call.", budget)}
	}
	return err
}

// IndexedColumns returns the columns of table that lead one of its indexes
// (id included): a lookup by one of them is an index probe.
func (d *DB) IndexedColumns(ctx context.Context, table string) (map[string]bool, error) {
	q := `SELECT ii.name FROM pragma_index_list(?) AS il, pragma_index_info(il.name) AS ii WHERE ii.seqno = 0`
	if d.dialect == Postgres {
		q = `SELECT a.attname FROM pg_index i
			JOIN pg_class c ON c.oid = i.indrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()
			JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
			WHERE c.relname = $1`
	}
	rows, err := d.sql.QueryContext(ctx, q, table)
	if err != nil {
		return nil, translate(err, "Index")
	}
	defer rows.Close()
	out := map[string]bool{"id": true}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, translate(err, "Index")
		}
		out[c] = true
	}
	return out, translate(rows.Err(), "Index")
}
