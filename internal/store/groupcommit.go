package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
// On SQLite one flusher at most: it is the single writer of the create
// path, and the batch is one BEGIN IMMEDIATE … COMMIT, whatever the number
// of callers. On PostgreSQL two, so that one batch's INSERT overlaps the
// other's commit (the chain head serialises the appends anyway).
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
}

type createQueue struct {
	mu       sync.Mutex
	pending  []*createCall
	flushers int
	max      int
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
	start := q.flushers < q.max
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
	// the batch (instead of one read per call); on PostgreSQL, by the
	// batch's INSERT itself (createRequestsPostgres).
	if d.dialect == SQLite {
		if live = d.dropStale(live); len(live) == 0 {
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
				if err != nil {
					results[i] = createResult{err: translate(err, "Privacy request")}
				} else {
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
	for c, f := range follows {
		r := byCall[f]
		if r.err == nil {
			r.existing = true
		}
		c.done <- r
	}
}

// insertRequests writes rows in one transaction, with their audit chain
// lines, and returns each row's result in order; an error means nothing was
// written.
func (d *DB) insertRequests(ctx context.Context, rows []*createCall) (results []createResult, err error) {
	if d.dialect == Postgres {
		results, err = d.insertRequestsPostgres(ctx, rows)
	} else {
		results, err = d.insertRequestsSQLite(ctx, rows)
	}
	if err != nil {
		return nil, err
	}
	d.creates.batches.Add(1)
	d.creates.rows.Add(int64(len(rows)))
	return results, nil
}

// beforeCommit is the last check of a batch before its COMMIT: the fault
// tests' hook, and whether every caller is still waiting.
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

// createRequestsPostgres inserts a batch given as one array per column, in
// the arrays' order: each row takes its id from the requests' sequence (the
// one BIGSERIAL created, migrations/postgres/0002), ascending in that
// order, and carries its name and download URL as it is inserted. A row
// whose caller read its namespace from a cache ($15…$19, NULL otherwise)
// is inserted only if the stored namespace still has those values in what
// shapes the stored value (as staleNamespaces checks on SQLite). It
// answers each row that passed that check, in order: its position (from
// 1), its id, and whether it was inserted (false: the unique index turned
// it away).
const createRequestsPostgres = `WITH n AS MATERIALIZED (
		SELECT nextval('privacy_requests_id_seq') AS id, v.* FROM unnest($1::text[], $2::bigint[], $3::text[],
			$4::smallint[], $5::smallint[], $6::smallint[], $7::boolean[], $8::text[], $9::text[], $10::bigint[],
			$11::text[], $12::timestamptz[], $13::timestamptz[], $14::text[],
			$15::text[], $16::text[], $17::text[], $18::text[], $19::integer[])
		WITH ORDINALITY AS v(label, namespace_id, reconciliation_value, type, regulation, status, confirm_delete_pending,
			url_file, audit, operator_id, dedupe_key, created, last_modified, subject_hash,
			ns_target, ns_key, ns_rule, ns_region, ns_canonical, ord)
		WHERE v.ns_canonical IS NULL OR EXISTS (SELECT 1 FROM privacy_namespaces ns WHERE ns.id = v.namespace_id
			AND ns.target_schema = v.ns_target AND ns.reconciliation_key = v.ns_key AND ns.match_rule = v.ns_rule
			AND ns.default_region = v.ns_region AND ns.canonical = v.ns_canonical)
		ORDER BY ord),
	ins AS (INSERT INTO privacy_requests (id, name, label, namespace_id, reconciliation_value, type, regulation, status,
			confirm_delete_pending, url_file, retry_count, audit, operator_id, dedupe_key, created, last_modified, subject_hash)
		SELECT id, 'privacyRequest' || id, label, namespace_id, reconciliation_value, type, regulation, status,
			confirm_delete_pending, url_file || id, 0, audit, operator_id, dedupe_key, created, last_modified, subject_hash
		FROM n ORDER BY ord
		ON CONFLICT (dedupe_key) DO NOTHING RETURNING id)
	SELECT n.ord, n.id, ins.id IS NOT NULL FROM n LEFT JOIN ins ON ins.id = n.id ORDER BY n.ord`

// insertRequestsPostgres writes a batch in two round trips on one
// connection, its statements pipelined (pgx's batch): BEGIN, the rows'
// INSERT and the chain head's lock in the first; the chain's lines and
// head, and COMMIT, in the second (the lines' hashes need the head, read
// in the first). Through database/sql the same took seven round trips.
func (d *DB) insertRequestsPostgres(ctx context.Context, rows []*createCall) (results []createResult, err error) {
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		defer func() {
			// Whatever failed, the connection goes back to the pool
			// outside a transaction, or is closed (and then dropped).
			if pc.PgConn().TxStatus() != 'I' {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if _, err := pc.Exec(rctx, "ROLLBACK"); err != nil {
					_ = pc.Close(rctx)
				}
			}
		}()
		results, err = d.pipelineCreates(ctx, pc, rows)
		return err
	})
	return results, err
}

func (d *DB) pipelineCreates(ctx context.Context, pc *pgx.Conn, rows []*createCall) ([]createResult, error) {
	n := len(rows)
	var (
		labels, values, urls, audits = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		namespaces, operators        = make([]int64, n), make([]int64, n)
		types, regulations, statuses = make([]int16, n), make([]int16, n), make([]int16, n)
		confirms                     = make([]bool, n)
		keys, hashes                 = make([]*string, n), make([]*string, n)
		created, modified            = make([]time.Time, n), make([]time.Time, n)
		// the namespace as each caller read it, nil when not from a cache
		nsTargets, nsKeys, nsRules, nsRegions = make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		nsCanonicals                          = make([]*int32, n)
	)
	for i, c := range rows {
		r := c.req
		labels[i], namespaces[i], values[i] = r.Label, r.NamespaceID, r.ReconciliationValue
		types[i], regulations[i], statuses[i] = int16(r.Type), int16(r.Regulation), int16(r.Status)
		confirms[i], urls[i], audits[i], operators[i] = r.ConfirmDeletePending, c.urlFile, r.Audit, r.OperatorID
		keys[i], created[i], modified[i], hashes[i] = r.DedupeKey, r.Created, r.LastModified, r.SubjectHash
		if ns := r.Namespace; ns != nil {
			canonical := int32(ns.Canonical)
			nsTargets[i], nsKeys[i], nsRules[i], nsRegions[i] = &ns.TargetSchema, &ns.ReconciliationKey, &ns.MatchRule, &ns.DefaultRegion
			nsCanonicals[i] = &canonical
		}
	}
	first := &pgx.Batch{}
	first.Queue("BEGIN")
	first.Queue(createRequestsPostgres, labels, namespaces, values, types, regulations, statuses,
		confirms, urls, audits, operators, keys, created, modified, hashes, nsTargets, nsKeys, nsRules, nsRegions, nsCanonicals)
	first.Queue("SELECT seq, hash FROM privacy_audit_head WHERE id = 1 FOR UPDATE")
	var head ChainHead
	results := make([]createResult, n)
	checked := make([]bool, n) // the row's namespace check passed
	conflicts := false
	err := func() error {
		br := pc.SendBatch(ctx, first)
		defer br.Close()
		if _, err := br.Exec(); err != nil {
			return err
		}
		res, err := br.Query()
		if err != nil {
			return err
		}
		for res.Next() {
			var ord, id int64
			var inserted bool
			if err := res.Scan(&ord, &id, &inserted); err != nil {
				res.Close()
				return err
			}
			if ord < 1 || ord > int64(n) {
				res.Close()
				return fmt.Errorf("the batch's INSERT answered row %d of %d", ord, n)
			}
			i := ord - 1
			checked[i] = true
			if inserted {
				results[i].id = id
			} else {
				results[i].existing, conflicts = true, true
			}
		}
		if err := res.Err(); err != nil {
			return err
		}
		if err := br.QueryRow().Scan(&head.Seq, &head.Hash); err != nil {
			return fmt.Errorf("audit chain head: %w", err)
		}
		return br.Close()
	}()
	if err != nil {
		return nil, err
	}
	for i, c := range rows {
		if !checked[i] {
			if c.req.Namespace == nil {
				return nil, errors.New("a request without a namespace check was not inserted")
			}
			results[i].err = ErrNamespaceChanged
		}
	}
	if conflicts {
		if err := d.findDuplicatesPostgres(ctx, pc, rows, results); err != nil {
			return nil, err
		}
	}
	var lines []chainLine
	for i, r := range results {
		if !r.existing && r.err == nil {
			lines = append(lines, chainLine{r.id, rows[i].auditLine})
		}
	}
	second := &pgx.Batch{}
	if len(lines) > 0 {
		stmts, _, err := chainStatements(head, d.now().UTC(), [][]chainLine{lines}, nil)
		if err != nil {
			return nil, err
		}
		for _, st := range d.combine(stmts) {
			second.Queue(d.rebind(st.sql), st.args...)
		}
	}
	if err := d.beforeCommit(rows); err != nil {
		return nil, err
	}
	second.Queue("COMMIT")
	br := pc.SendBatch(ctx, second)
	for range second.Len() {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, err
		}
	}
	return results, br.Close()
}

// findDuplicatesPostgres sets the id of each row the unique index turned
// away: the active request with the same dedupe key (committed, or the
// INSERT would have waited for it; a statement after it sees it).
func (d *DB) findDuplicatesPostgres(ctx context.Context, pc *pgx.Conn, rows []*createCall, results []createResult) error {
	var keys []string
	for i, r := range results {
		if r.existing {
			keys = append(keys, *rows[i].req.DedupeKey)
		}
	}
	res, err := pc.Query(ctx, "SELECT id, dedupe_key FROM privacy_requests WHERE dedupe_key = ANY($1)", keys)
	if err != nil {
		return err
	}
	byKey := map[string]int64{}
	for res.Next() {
		var id int64
		var key string
		if err := res.Scan(&id, &key); err != nil {
			res.Close()
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
// write transaction (in-process statements: the commit is the cost), and
// their lines in the audit chain.
func (d *DB) insertRequestsSQLite(ctx context.Context, rows []*createCall) ([]createResult, error) {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := d.now().UTC()
	results, err := d.insertRowsSQLite(ctx, tx, rows)
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
	if err := d.beforeCommit(rows); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return results, nil
}

func (d *DB) insertRowsSQLite(ctx context.Context, tx *sql.Tx, rows []*createCall) ([]createResult, error) {
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

// dropStale answers the calls whose namespace is stale (staleNamespaces)
// with ErrNamespaceChanged and returns the others.
func (d *DB) dropStale(calls []*createCall) []*createCall {
	stale := d.staleNamespaces(calls)
	if len(stale) == 0 {
		return calls
	}
	kept := calls[:0:0]
	for _, c := range calls {
		if stale[c] {
			c.done <- createResult{err: ErrNamespaceChanged}
			continue
		}
		kept = append(kept, c)
	}
	return kept
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
