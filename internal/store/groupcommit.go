package store

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Group commit (issue 16 item 1). Concurrent CreateRequest calls queue
// here; a flusher takes every call waiting (up to maxCreateBatch) and
// writes them in one transaction: one multi-row INSERT on PostgreSQL, the
// audit chain's lines of every row in one append, one commit (one WAL
// flush) for the lot. Each caller is answered only after that commit. A
// flusher is a goroutine started when calls wait and none is free; it ends
// when the queue is empty, so an idle store runs none.
//
// One flusher at most, on both stores: on SQLite it is the single writer
// of the create path, the batch one BEGIN IMMEDIATE … COMMIT whatever the
// number of callers. PostgreSQL had two, so that one batch's INSERT would
// overlap the other's commit; but the chain head serialises the appends,
// so the second waited on the head's lock for the first's commit, and the
// batches were half as large. One flusher: 0.86–1.05× the pgx ceiling at 32
// connections against 0.78–0.88× with two, PostgreSQL's CPU per call 71–83
// µs against 120–135 (bench/README).
//
// Meaning inside a batch: two calls with the same dedupe key are one
// request (the second is answered existing=true with the first's id, as
// the unique index would answer it one after the other); a row that
// collides with an active request already stored inserts nothing and gets
// that request's id. When the batch's transaction fails, each of its calls
// is retried alone, so only the calls whose own row fails get an error.

// maxCreateBatch bounds the rows of one transaction: 256 rows of 14 bound
// values stay far below both databases' parameter limits.
const maxCreateBatch = 256

// createTimeout bounds one batch's transaction, whatever its callers'
// deadlines (a caller that gives up still has its row written or not,
// atomically with the rest).
const createTimeout = 10 * time.Second

// errCallerGone rolls a batch back when one of its callers gave up before
// the commit.
var errCallerGone = errors.New("a caller of the batch gave up")

type createCall struct {
	ctx       context.Context
	req       *Request
	urlFile   string
	auditLine string
	done      chan createResult // buffered: the flusher never waits on a caller
}

type createResult struct {
	id       int64
	existing bool
	err      error
	gone     bool // its caller gave up before the commit: nothing was written
}

type createQueue struct {
	mu       sync.Mutex
	pending  []*createCall
	flushers int // 0 or 1
	// batches and rows count the transactions written and their rows
	// (rows ÷ batches is the mean batch).
	batches, rows atomic.Int64
}

// CreateBatches returns how many group-commit transactions were written and
// how many rows they held.
func (d *DB) CreateBatches() (batches, rows int64) {
	return d.creates.batches.Load(), d.creates.rows.Load()
}

// CreateRequest inserts req and names it privacyRequest<id>. When
// req.DedupeKey matches an active request, nothing is written and the
// existing request's id is returned with existing=true: the unique index on
// dedupe_key decides, not a check-then-insert, so 50 concurrent identical
// calls still create one request. urlFile is the download URL prefix; the
// id is appended. auditLine is the audit's first line. The row and its
// audit line are committed (in a batch with the other calls waiting, see
// above) before it returns.
func (d *DB) CreateRequest(ctx context.Context, req *Request, urlFile, auditLine string) (id int64, existing bool, err error) {
	now := d.now().UTC()
	req.Created, req.LastModified = now, now
	req.Audit = auditText(now, auditLine)
	c := &createCall{ctx: ctx, req: req, urlFile: urlFile, auditLine: auditLine, done: make(chan createResult, 1)}
	q := &d.creates
	q.mu.Lock()
	q.pending = append(q.pending, c)
	start := q.flushers == 0
	if start {
		q.flushers++
	}
	q.mu.Unlock()
	if start {
		go d.flushCreates()
	}
	select {
	case r := <-c.done:
		if r.err != nil {
			return 0, false, r.err
		}
		if !r.existing {
			req.ID = r.id
			req.Name = "privacyRequest" + strconv.FormatInt(r.id, 10)
			req.URLFile = urlFile + strconv.FormatInt(r.id, 10)
		}
		return r.id, r.existing, nil
	case <-ctx.Done():
		// The row may still be written with its batch (or not, whole):
		// the caller is not told an id it cannot rely on.
		return 0, false, translate(ctx.Err(), "Privacy request")
	}
}

// flushCreates writes batches until the queue is empty.
func (d *DB) flushCreates() {
	q := &d.creates
	for {
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.flushers--
			q.mu.Unlock()
			return
		}
		n := min(len(q.pending), maxCreateBatch)
		batch := make([]*createCall, n)
		copy(batch, q.pending)
		rest := copy(q.pending, q.pending[n:])
		clear(q.pending[rest:])
		q.pending = q.pending[:rest]
		q.mu.Unlock()
		d.writeCreates(batch)
	}
}

// writeCreates writes one batch and answers its callers.
func (d *DB) writeCreates(batch []*createCall) {
	// Calls whose caller already gave up are not written.
	live := batch[:0:0]
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.done <- createResult{err: translate(err, "Privacy request")}
			continue
		}
		live = append(live, c)
	}
	if len(live) == 0 {
		return
	}
	// The namespaces the callers read from their cache, checked once for
	// the batch (instead of one read per call).
	if stale := d.staleNamespaces(live); len(stale) > 0 {
		kept := live[:0:0]
		for _, c := range live {
			if stale[c] {
				c.done <- createResult{err: ErrNamespaceChanged}
				continue
			}
			kept = append(kept, c)
		}
		if live = kept; len(live) == 0 {
			return
		}
	}
	// Same dedupe key twice in the batch: one row, the later calls follow
	// the first.
	var rows []*createCall
	follows := map[*createCall]*createCall{}
	first := map[string]*createCall{}
	for _, c := range live {
		if c.req.DedupeKey != nil {
			if f, ok := first[*c.req.DedupeKey]; ok {
				follows[c] = f
				continue
			}
			first[*c.req.DedupeKey] = c
		}
		rows = append(rows, c)
	}
	// The batch's context ends when every caller of the batch has gone
	// (a blocked statement is cancelled), or at createTimeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(live[0].ctx), createTimeout)
	defer cancel()
	var remaining atomic.Int32
	remaining.Store(int32(len(live)))
	for _, c := range live {
		stop := context.AfterFunc(c.ctx, func() {
			if remaining.Add(-1) == 0 {
				cancel()
			}
		})
		defer stop()
	}
	var results []createResult
	err := d.priorityWrite(ctx, func() (err error) {
		results, err = d.insertRequests(ctx, rows)
		return err
	})
	if errors.Is(err, errCallerGone) {
		// A caller gave up before the commit: nothing was written; the
		// batch again without the calls that are gone (a client that
		// disconnects has its call cancelled and nothing written).
		var again []*createCall
		for _, c := range live {
			if c.ctx.Err() == nil {
				again = append(again, c)
			} else {
				c.done <- createResult{err: translate(c.ctx.Err(), "Privacy request")}
			}
		}
		if len(again) > 0 {
			d.writeCreates(again)
		}
		return
	}
	if err != nil {
		results = make([]createResult, len(rows))
		if len(rows) == 1 {
			results[0] = createResult{err: translate(err, "Privacy request")}
		} else {
			// The batch failed as a whole: each row alone, so that only
			// the calls whose own row fails are failed.
			for i, c := range rows {
				var r []createResult
				err := d.priorityWrite(ctx, func() (err error) {
					r, err = d.insertRequests(ctx, []*createCall{c})
					return err
				})
				switch {
				case errors.Is(err, errCallerGone):
					results[i] = createResult{err: translate(c.ctx.Err(), "Privacy request"), gone: true}
				case err != nil:
					results[i] = createResult{err: translate(err, "Privacy request")}
				default:
					results[i] = r[0]
				}
			}
		}
	}
	byCall := make(map[*createCall]createResult, len(rows))
	for i, c := range rows {
		byCall[c] = results[i]
		c.done <- results[i]
	}
	var again []*createCall
	for c, f := range follows {
		r := byCall[f]
		if r.gone && c.ctx.Err() == nil {
			// The row it followed was not written, its caller gone: it is
			// written for this call.
			again = append(again, c)
			continue
		}
		if r.err == nil {
			r.existing = true
		}
		c.done <- r
	}
	if len(again) > 0 {
		d.writeCreates(again)
	}
}

// insertRequests writes rows in one transaction, with their audit chain
// lines, and returns each row's result in order; an error means nothing was
// written.
func (d *DB) insertRequests(ctx context.Context, rows []*createCall) ([]createResult, error) {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := d.now().UTC()
	var results []createResult
	if d.dialect == Postgres {
		results, err = d.insertRequestsPostgres(ctx, tx, rows)
	} else {
		results, err = d.insertRequestsSQLite(ctx, tx, rows)
	}
	if err != nil {
		return nil, err
	}
	var lines []chainLine
	for i, r := range results {
		if !r.existing {
			lines = append(lines, chainLine{r.id, rows[i].auditLine})
		}
	}
	if err := d.appendChain(ctx, tx, now, lines); err != nil {
		return nil, err
	}
	if len(rows) > 1 {
		if err := d.failpoint("create-batch-before-commit"); err != nil {
			return nil, err
		}
	}
	for _, c := range rows {
		if c.ctx.Err() != nil {
			return nil, errCallerGone
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	if len(rows) > 1 {
		// The fault tests kill the process here: the rows are stored and
		// no caller has its answer (a cut after COMMIT).
		_ = d.failpoint("create-batch-after-commit")
	}
	d.creates.batches.Add(1)
	d.creates.rows.Add(int64(len(rows)))
	return results, nil
}

// createRequestPostgres is one row's statement on PostgreSQL (the sequence
// is the one BIGSERIAL created, migrations/postgres/0002): the id from the
// sequence names the row as it is inserted, one round trip.
const createRequestPostgres = `WITH n AS (SELECT nextval('privacy_requests_id_seq') AS id)
	INSERT INTO privacy_requests (id, name, label, namespace_id, reconciliation_value, type, regulation, status,
		confirm_delete_pending, url_file, retry_count, audit, operator_id, dedupe_key, created, last_modified, subject_hash)
	SELECT n.id, 'privacyRequest' || n.id, $1, $2, $3, $4, $5, $6, $7, $8 || n.id, 0, $9, $10, $11, $12, $13, $14 FROM n
	ON CONFLICT (dedupe_key) DO NOTHING RETURNING id`

const requestColumns = `id, name, label, namespace_id, reconciliation_value, type, regulation, status,
	confirm_delete_pending, url_file, retry_count, audit, operator_id, dedupe_key, created, last_modified, subject_hash`

func (d *DB) insertRequestsPostgres(ctx context.Context, tx *sql.Tx, rows []*createCall) ([]createResult, error) {
	results := make([]createResult, len(rows))
	if len(rows) == 1 {
		r := rows[0].req
		err := tx.QueryRowContext(ctx, createRequestPostgres,
			r.Label, r.NamespaceID, r.ReconciliationValue, r.Type, r.Regulation, r.Status,
			r.ConfirmDeletePending, rows[0].urlFile, r.Audit, r.OperatorID, r.DedupeKey, r.Created, r.LastModified, r.SubjectHash).Scan(&results[0].id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			results[0].existing = true
		case err != nil:
			return nil, err
		}
	} else {
		// The ids first (one round trip), so that each row carries its
		// name and download URL as it is inserted, and the rows the
		// unique index turns away are known by id.
		ids, err := d.nextRequestIDs(ctx, tx, len(rows))
		if err != nil {
			return nil, err
		}
		marks := make([]string, len(rows))
		args := make([]any, 0, 17*len(rows))
		for i, c := range rows {
			r, id := c.req, ids[i]
			marks[i] = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"
			args = append(args, id, "privacyRequest"+strconv.FormatInt(id, 10), r.Label, r.NamespaceID, r.ReconciliationValue,
				r.Type, r.Regulation, r.Status, r.ConfirmDeletePending, c.urlFile+strconv.FormatInt(id, 10), r.Audit, r.OperatorID,
				r.DedupeKey, r.Created, r.LastModified, r.SubjectHash)
		}
		insert := d.rebind("INSERT INTO privacy_requests (" + requestColumns + ") VALUES " + strings.Join(marks, ", ") +
			" ON CONFLICT (dedupe_key) DO NOTHING RETURNING id")
		res, err := tx.QueryContext(ctx, insert, args...)
		if err != nil {
			return nil, err
		}
		inserted := map[int64]bool{}
		for res.Next() {
			var id int64
			if err := res.Scan(&id); err != nil {
				res.Close()
				return nil, err
			}
			inserted[id] = true
		}
		if err := res.Close(); err != nil {
			return nil, err
		}
		for i := range rows {
			results[i] = createResult{id: ids[i], existing: !inserted[ids[i]]}
		}
	}
	return results, d.findDuplicates(ctx, tx, rows, results)
}

// nextRequestIDs takes n ids from the requests' sequence, ascending.
func (d *DB) nextRequestIDs(ctx context.Context, tx *sql.Tx, n int) ([]int64, error) {
	ids, err := scanColumn[int64](tx.QueryContext(ctx, "SELECT nextval('privacy_requests_id_seq') FROM generate_series(1, $1)", n))
	if err != nil {
		return nil, err
	}
	if len(ids) != n {
		return nil, errors.New("the requests' sequence returned too few ids")
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}

// findDuplicates sets the id of each result the unique index turned away:
// the active request with the same dedupe key (committed, or the insert
// would have waited for it).
func (d *DB) findDuplicates(ctx context.Context, tx *sql.Tx, rows []*createCall, results []createResult) error {
	var keys []any
	for i, r := range results {
		if r.existing {
			if rows[i].req.DedupeKey == nil {
				return errors.New("a request without a dedupe key was not inserted")
			}
			keys = append(keys, *rows[i].req.DedupeKey)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	q := d.rebind("SELECT id, dedupe_key FROM privacy_requests WHERE dedupe_key IN (?" + strings.Repeat(", ?", len(keys)-1) + ")")
	res, err := tx.QueryContext(ctx, q, keys...)
	if err != nil {
		return err
	}
	defer res.Close()
	byKey := map[string]int64{}
	for res.Next() {
		var id int64
		var key string
		if err := res.Scan(&id, &key); err != nil {
			return err
		}
		byKey[key] = id
	}
	if err := res.Err(); err != nil {
		return err
	}
	for i, r := range results {
		if r.existing {
			id, ok := byKey[*rows[i].req.DedupeKey]
			if !ok {
				return errors.New("the active request with the same dedupe key was not found")
			}
			results[i].id = id
		}
	}
	return nil
}

// insertRequestsSQLite writes the rows one statement each, inside the one
// write transaction (in-process statements: the commit is the cost).
func (d *DB) insertRequestsSQLite(ctx context.Context, tx *sql.Tx, rows []*createCall) ([]createResult, error) {
	const insert = `INSERT INTO privacy_requests (label, namespace_id, reconciliation_value, type, regulation, status,
		confirm_delete_pending, audit, operator_id, dedupe_key, created, last_modified, subject_hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id`
	results := make([]createResult, len(rows))
	// The rows inserted, by download URL prefix (one in practice): each
	// group is named by one UPDATE, not one per row.
	named := map[string][]any{}
	for i, c := range rows {
		r := c.req
		err := tx.QueryRowContext(ctx, insert, r.Label, r.NamespaceID, r.ReconciliationValue, r.Type, r.Regulation, r.Status,
			r.ConfirmDeletePending, r.Audit, r.OperatorID, r.DedupeKey, r.Created, r.LastModified, r.SubjectHash).Scan(&results[i].id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			results[i].existing = true
			continue
		case err != nil:
			return nil, err
		}
		named[c.urlFile] = append(named[c.urlFile], results[i].id)
	}
	for urlFile, ids := range named {
		for start := 0; start < len(ids); start += idBatch {
			part := ids[start:min(start+idBatch, len(ids))]
			if _, err := tx.ExecContext(ctx, "UPDATE privacy_requests SET name = 'privacyRequest' || id, url_file = ? || id WHERE id IN (?"+
				strings.Repeat(", ?", len(part)-1)+")", append([]any{urlFile}, part...)...); err != nil {
				return nil, err
			}
		}
	}
	return results, d.findDuplicates(ctx, tx, rows, results)
}

// failpoint calls the fault tests' hook (Config.Failpoint), if any.
func (d *DB) failpoint(name string) error {
	if d.failpointFn != nil {
		return d.failpointFn(name)
	}
	return nil
}

// staleNamespaces reads, in one statement, the namespaces the calls name
// with Request.Namespace, and returns the calls whose copy differs from
// the stored row in what shapes the stored value. A failed read marks
// every such call stale: it is retried with a fresh read.
func (d *DB) staleNamespaces(calls []*createCall) map[*createCall]bool {
	var ids []any
	seen := map[int64]bool{}
	for _, c := range calls {
		if ns := c.req.Namespace; ns != nil && !seen[ns.ID] {
			seen[ns.ID] = true
			ids = append(ids, ns.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(calls[0].ctx), createTimeout)
	defer cancel()
	stored := map[int64]Namespace{}
	err := func() error {
		res, err := d.readSQL.QueryContext(ctx, d.rebind(`SELECT id, target_schema, reconciliation_key, match_rule, default_region, canonical
			FROM privacy_namespaces WHERE id IN (?`+strings.Repeat(", ?", len(ids)-1)+")"), ids...)
		if err != nil {
			return err
		}
		defer res.Close()
		for res.Next() {
			var ns Namespace
			if err := res.Scan(&ns.ID, &ns.TargetSchema, &ns.ReconciliationKey, &ns.MatchRule, &ns.DefaultRegion, &ns.Canonical); err != nil {
				return err
			}
			stored[ns.ID] = ns
		}
		return res.Err()
	}()
	out := map[*createCall]bool{}
	for _, c := range calls {
		ns := c.req.Namespace
		if ns == nil {
			continue
		}
		now, ok := stored[ns.ID]
		if err != nil || !ok || now.TargetSchema != ns.TargetSchema || now.ReconciliationKey != ns.ReconciliationKey ||
			now.MatchRule != ns.MatchRule || now.DefaultRegion != ns.DefaultRegion || now.Canonical != ns.Canonical {
			out[c] = true
		}
	}
	return out
}
