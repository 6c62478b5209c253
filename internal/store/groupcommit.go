package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
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
// On PostgreSQL a batch is pipelined once the flusher knows the chain's
// head (its last batch wrote it): three round trips where the namespaces'
// read and the transaction take seven, a batch's time shortened by as
// much (insertRequestsPipelined; bench/README "Creates pipelined").
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
	// head is the chain's head as the last batch left it, nil when not
	// known (insertRequestsPipelined; only when DB.pipelineCreates). The
	// other writers do not set it: a batch after theirs is written by
	// the transaction.
	head atomic.Pointer[ChainHead]
	// pipelined counts the batches insertRequestsPipelined wrote.
	pipelined atomic.Int64
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
	d.writeBatch(batch, d.dialect == Postgres)
}

// writeBatch is writeCreates. The namespaces the callers read from their
// cache are checked once for the batch (instead of one read per call):
// with inBatch by insertRequests, in the batch's first round trip, and a
// batch that finds one changed is written again with the check here.
func (d *DB) writeBatch(batch []*createCall, inBatch bool) {
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
	if stale := map[*createCall]bool(nil); !inBatch {
		if stale = d.staleNamespaces(live); len(stale) > 0 {
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
	var check []*createCall // the calls whose namespaces insertRequests checks
	if inBatch {
		check = live
	}
	var results []createResult
	err := d.priorityWrite(ctx, func() (err error) {
		results, err = d.insertRequests(ctx, rows, check)
		return err
	})
	if errors.Is(err, errNamespaceStale) {
		// Nothing was written: which calls' namespaces changed is found
		// here, and the others written.
		d.writeBatch(live, false)
		return
	}
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
	if err != nil && inBatch && len(rows) > 1 {
		// Nothing was written, and the batch may have failed before its
		// namespaces were read: the batch again with the check here, so
		// that each call whose namespace changed gets ErrNamespaceChanged
		// and the rows are then written one by one if it fails again.
		d.writeBatch(live, false)
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
					r, err = d.insertRequests(ctx, []*createCall{c}, nil) // namespaces checked above
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
// written. It first checks the namespaces of check (calls of the batch,
// rows and the calls following them) and returns errNamespaceStale if one
// changed.
func (d *DB) insertRequests(ctx context.Context, rows, check []*createCall) ([]createResult, error) {
	if head := d.creates.head.Swap(nil); head != nil {
		results, next, err := d.insertRequestsPipelined(ctx, rows, check, *head)
		switch {
		case err == nil:
			d.creates.head.Store(&next)
			return results, nil
		case errors.Is(err, errNamespaceStale):
			d.creates.head.CompareAndSwap(nil, head) // nothing was written
			return nil, err
		case !errors.Is(err, errPipelineMissed):
			return nil, err
		}
	}
	if len(check) > 0 && len(d.staleNamespaces(check)) > 0 {
		return nil, errNamespaceStale
	}
	if d.dialect == SQLite {
		d.prepareWrites(ctx, sqliteBatchStatements...)
	}
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
	head, err := d.appendChainHead(ctx, tx, now, lines)
	if err != nil {
		return nil, err
	}
	if err := d.beforeCommit(rows); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	d.committed(rows)
	if d.pipelineCreates && len(lines) > 0 {
		d.creates.head.Store(&head) // the next batch may be pipelined
	}
	return results, nil
}

// beforeCommit is the last step of a batch before its commit: the fault
// tests' hook, and errCallerGone when a caller has given up.
func (d *DB) beforeCommit(rows []*createCall) error {
	if len(rows) > 1 {
		if err := d.failpoint("create-batch-before-commit"); err != nil {
			return err
		}
	}
	for _, c := range rows {
		if c.ctx.Err() != nil {
			return errCallerGone
		}
	}
	return nil
}

// committed counts a batch written.
func (d *DB) committed(rows []*createCall) {
	if len(rows) > 1 {
		// The fault tests kill the process here: the rows are stored and
		// no caller has its answer (a cut after COMMIT).
		_ = d.failpoint("create-batch-after-commit")
	}
	d.creates.batches.Add(1)
	d.creates.rows.Add(int64(len(rows)))
}

// errNamespaceStale says a namespace of a batch's calls changed since
// their callers read it: nothing was written.
var errNamespaceStale = errors.New("a namespace of the batch changed")

// errPipelineMissed says a pipelined batch was rolled back because what
// it assumed did not hold: the transaction above writes it.
var errPipelineMissed = errors.New("the pipelined batch did not apply")

// insertRequestsPipelined writes a batch on PostgreSQL in three round
// trips where the namespaces' read and the transaction above take seven:
// BEGIN, the ids and the namespaces of check (errNamespaceStale if one
// changed); the rows, with their chain lines and the new head; COMMIT.
// It needs head,
// the chain's head as this store's last batch left it: the head is not
// locked and read first, its UPDATE names the head it expects (seq and
// hash) and the lines are inserted only if it matched. Anything else — a
// line appended meanwhile by another writer (a workflow, a download, a
// replica), a dedupe key already taken — rolls the batch back and returns
// errPipelineMissed. Another error means nothing was written, as for the
// transaction above.
func (d *DB) insertRequestsPipelined(ctx context.Context, rows, check []*createCall, head ChainHead) (results []createResult, next ChainHead, err error) {
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return nil, head, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c := dc.(*stdlib.Conn).Conn()
		defer func() {
			if c.PgConn().TxStatus() == 'I' {
				return
			}
			// Rolled back here, or the connection closed: the pool would
			// drop a connection inside a transaction at its next use, but
			// its locks (the chain head's) would be held until then.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), createTimeout)
			defer cancel()
			if _, err := c.Exec(rctx, "ROLLBACK"); err != nil || c.PgConn().TxStatus() != 'I' {
				_ = c.Close(rctx)
			}
		}()
		var b pgx.Batch
		b.Queue("BEGIN")
		b.Queue("SELECT nextval('privacy_requests_id_seq') FROM generate_series(1, $1)", len(rows))
		nsIDs := namespaceIDs(check)
		if len(nsIDs) > 0 {
			b.Queue(d.rebind(namespacesSelect(len(nsIDs))), nsIDs...)
		}
		ids, stored, err := pipelineIDs(ctx, c, &b, len(rows), len(nsIDs) > 0)
		if err != nil {
			return err
		}
		if len(staleAgainst(check, stored, nil)) > 0 {
			return errNamespaceStale
		}
		now := d.now().UTC()
		insert, lines := requestsInsert(rows, ids)
		chained, after, err := chainRows(head, now, [][]chainLine{lines}, nil)
		if err != nil {
			return err
		}
		next = after
		b = pgx.Batch{}
		b.Queue(d.rebind(insert.sql), insert.args...)
		guarded := guardedChain(head, chained, next)
		b.Queue(guarded.sql, guarded.args...)
		br := c.SendBatch(ctx, &b)
		inserted, err := br.Exec()
		if err != nil {
			br.Close()
			return err
		}
		appended, err := br.Exec()
		if err != nil {
			br.Close()
			return err
		}
		if err := br.Close(); err != nil {
			return err
		}
		if inserted.RowsAffected() != int64(len(rows)) || appended.RowsAffected() != int64(len(lines)) {
			return errPipelineMissed // a dedupe key taken, or the head moved: rolled back above
		}
		if err := d.beforeCommit(rows); err != nil {
			return err
		}
		tag, err := c.Exec(ctx, "COMMIT")
		if err != nil {
			return err
		}
		if tag.String() != "COMMIT" {
			return errors.New("the batch's transaction was rolled back at its commit")
		}
		results = make([]createResult, len(rows))
		for i, id := range ids {
			results[i] = createResult{id: id}
		}
		return nil
	})
	if err != nil {
		return nil, head, err
	}
	d.committed(rows)
	d.creates.pipelined.Add(1)
	return results, next, nil
}

// pipelineIDs sends b — BEGIN, the ids' SELECT and, with namespaces, their
// SELECT — and returns n ids, ascending, and the namespaces read.
func pipelineIDs(ctx context.Context, c *pgx.Conn, b *pgx.Batch, n int, namespaces bool) ([]int64, map[int64]Namespace, error) {
	br := c.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, nil, err
	}
	res, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	ids, err := pgx.CollectRows(res, pgx.RowTo[int64])
	if err != nil {
		return nil, nil, err
	}
	if len(ids) != n {
		return nil, nil, errors.New("the requests' sequence returned too few ids")
	}
	slices.Sort(ids)
	var stored map[int64]Namespace
	if namespaces {
		res, err := br.Query()
		if err != nil {
			return nil, nil, err
		}
		stored, err = scanNamespaces(res)
		res.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	return ids, stored, br.Close()
}

// guardedChain is the statement that appends rows to the chain and moves
// the head to next only if the head is still from: otherwise it writes
// nothing (0 rows, where the lines are expected).
func guardedChain(from ChainHead, rows [][]any, next ChainHead) stmt {
	args := []any{next.Seq, next.Hash, from.Seq, from.Hash}
	marks := make([]string, len(rows))
	for i, r := range rows {
		n := len(args)
		marks[i] = fmt.Sprintf("($%d::bigint, $%d::bigint, $%d::text, $%d::text, $%d::text, $%d::text)", n+1, n+2, n+3, n+4, n+5, n+6)
		args = append(args, r...)
	}
	return stmt{`WITH h AS (UPDATE privacy_audit_head SET seq = $1, hash = $2 WHERE id = 1 AND seq = $3 AND hash = $4 RETURNING id)
		INSERT INTO privacy_audit_chain (seq, request_id, at, line, prev_hash, hash)
		SELECT v.seq, v.request_id, v.at, v.line, v.prev_hash, v.hash FROM h, (VALUES ` + strings.Join(marks, ", ") +
		`) AS v (seq, request_id, at, line, prev_hash, hash)`, args}
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
		insert, _ := requestsInsert(rows, ids)
		res, err := tx.QueryContext(ctx, d.rebind(insert.sql), insert.args...)
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

// requestsInsert is the multi-row INSERT of rows with their ids (a row
// whose dedupe key is taken inserts nothing; the ids of those inserted
// are returned), and each row's first chain line.
func requestsInsert(rows []*createCall, ids []int64) (stmt, []chainLine) {
	marks := make([]string, len(rows))
	args := make([]any, 0, 16*len(rows))
	lines := make([]chainLine, len(rows))
	for i, c := range rows {
		marks[i] = requestMarks
		args = c.appendArgs(args, ids[i])
		lines[i] = chainLine{ids[i], c.auditLine}
	}
	return stmt{"INSERT INTO privacy_requests (" + requestColumns + ") VALUES " + strings.Join(marks, ", ") +
		" ON CONFLICT (dedupe_key) DO NOTHING RETURNING id", args}, lines
}

// requestMarks are the placeholders of one row of requestColumns.
const requestMarks = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, ?)"

// appendArgs appends the values of c's row, with its id, for requestMarks.
func (c *createCall) appendArgs(args []any, id int64) []any {
	r := c.req
	return append(args, id, "privacyRequest"+strconv.FormatInt(id, 10), r.Label, r.NamespaceID, r.ReconciliationValue,
		r.Type, r.Regulation, r.Status, r.ConfirmDeletePending, c.urlFile+strconv.FormatInt(id, 10), r.Audit, r.OperatorID,
		r.DedupeKey, r.Created, r.LastModified, r.SubjectHash)
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
	slices.Sort(ids)
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

// The statements of a SQLite create batch, prepared before its
// transaction (DB.prepareWrites): the requests' AUTOINCREMENT sequence,
// a row's insert, and the audit chain's.
const (
	requestsSequence    = "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'privacy_requests'), 0)"
	requestInsertSQLite = "INSERT INTO privacy_requests (" + requestColumns + ") VALUES " + requestMarks + " ON CONFLICT (dedupe_key) DO NOTHING"
)

var sqliteBatchStatements = []string{requestsSequence, requestInsertSQLite, chainHeadSelect, chainInsertLine, chainHeadUpdate}

// insertRequestsSQLite inserts rows with ids it takes itself: the batch
// holds the database's write lock from its BEGIN (IMMEDIATE), so the ids
// after the requests' AUTOINCREMENT sequence are its own, and each row
// carries its name and download URL as it is inserted. One prepared
// statement runs per row.
func (d *DB) insertRequestsSQLite(ctx context.Context, tx *sql.Tx, rows []*createCall) ([]createResult, error) {
	seq, err := d.txStmt(ctx, tx, requestsSequence)
	if err != nil {
		return nil, err
	}
	defer seq.Close()
	var last int64
	if err := seq.QueryRowContext(ctx).Scan(&last); err != nil {
		return nil, err
	}
	ins, err := d.txStmt(ctx, tx, requestInsertSQLite)
	if err != nil {
		return nil, err
	}
	defer ins.Close()
	results := make([]createResult, len(rows))
	args := make([]any, 0, 16)
	for i, c := range rows {
		id := last + 1 + int64(i)
		res, err := ins.ExecContext(ctx, c.appendArgs(args[:0], id)...)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		results[i] = createResult{id: id, existing: n == 0} // its dedupe key taken: findDuplicates finds the row
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
	ids := namespaceIDs(calls)
	if len(ids) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(calls[0].ctx), createTimeout)
	defer cancel()
	stored, err := func() (map[int64]Namespace, error) {
		res, err := d.readQuery(ctx, namespacesSelect(len(ids)), ids...)
		if err != nil {
			return nil, err
		}
		defer res.Close()
		return scanNamespaces(res)
	}()
	return staleAgainst(calls, stored, err)
}

// namespaceIDs lists the namespaces calls name, once each.
func namespaceIDs(calls []*createCall) []any {
	var ids []any
	seen := map[int64]bool{}
	for _, c := range calls {
		if ns := c.req.Namespace; ns != nil && !seen[ns.ID] {
			seen[ns.ID] = true
			ids = append(ids, ns.ID)
		}
	}
	return ids
}

// namespacesSelect reads n namespaces by id, what shapes a stored value.
func namespacesSelect(n int) string {
	return `SELECT id, target_schema, reconciliation_key, match_rule, default_region, canonical
		FROM privacy_namespaces WHERE id IN (?` + strings.Repeat(", ?", n-1) + ")"
}

func scanNamespaces(res interface {
	Next() bool
	Scan(...any) error
	Err() error
}) (map[int64]Namespace, error) {
	stored := map[int64]Namespace{}
	for res.Next() {
		var ns Namespace
		if err := res.Scan(&ns.ID, &ns.TargetSchema, &ns.ReconciliationKey, &ns.MatchRule, &ns.DefaultRegion, &ns.Canonical); err != nil {
			return nil, err
		}
		stored[ns.ID] = ns
	}
	return stored, res.Err()
}

// staleAgainst returns the calls whose namespace differs from stored (all
// of those naming one when err, the read's, is not nil).
func staleAgainst(calls []*createCall, stored map[int64]Namespace, err error) map[*createCall]bool {
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
