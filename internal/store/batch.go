package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// A batch commit ends the steps of several requests one worker holds in
// one transaction: their deletes (when a subject fits one delete batch),
// the check that nothing of them remains, their new state, their audit
// lines in the chain and their signed receipts. The chain head is taken
// once per batch, as the transaction's last step, so the workers of all
// replicas queue behind it once per batch instead of three times per
// request. It is all or nothing: a crash or a failure leaves every
// request of the batch as it was (still claimed, taken back after the
// lease), never one finished without its receipt.

// BatchItem is one request's share of a batch commit.
type BatchItem struct {
	ID int64
	// Deletes are removed first, children before parents; each part adds
	// its AuditLine to the audit, as DeleteOwned.
	Deletes []DeletePart
	// Check, when set, counts after the deletes what must be gone.
	Check *RemainCheck
	// Update is applied when the check finds nothing (or there is none).
	Update RequestUpdate
	// Remaining makes the update when the check finds n rows left.
	Remaining func(n int64) RequestUpdate
	// Receipt, when set, is called with the update being applied, the
	// chain head right after this request's lines, and the rows the
	// request's deletes removed by table (this batch's and all before);
	// it returns the signed receipt to store with it, or "" for none.
	Receipt func(upd RequestUpdate, head ChainHead, deleted map[string]int64) (string, error)
}

// RemainCheck describes what must be gone after a subject's delete: the
// rows the hops find, plus the rows of Table whose Column equals Value.
type RemainCheck struct {
	Hops   []Hop
	Table  string
	Column string
	Value  any
	// Namespace, when set, is the namespace as the lookup read it: the
	// check fails with ErrNamespaceRewritten when the stored one changed
	// since (a namespace update rewrites the field the lookup matched).
	Namespace *Namespace
}

// BatchResult says what a batch commit did to one request.
type BatchResult struct {
	// Held is false when the worker no longer held the request: nothing
	// of it was applied (another worker took it over).
	Held bool
	// Update is what was applied.
	Update RequestUpdate
	// Remaining is what the check found left, if anything: Update is then
	// the one Remaining made.
	Remaining int64
}

// CommitBatch applies items, requests worker holds, in one transaction
// (see above). The results are in the order of items.
//
// Its order keeps the chain head locked as briefly as possible: the
// request rows are locked first (the fence), the deletes, checks and
// per-table records follow, and only then is the head taken, the receipts
// signed, and the requests' new state, the chain lines, the head and the
// receipts written — in one statement on PostgreSQL — before the commit.
func (d *DB) CommitBatch(ctx context.Context, worker string, items []BatchItem) ([]BatchResult, error) {
	now := d.now().UTC()
	out := make([]BatchResult, len(items))
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for i := range out {
			out[i] = BatchResult{}
		}
		// The fence: the rows of the requests still held, locked until the
		// commit, so no other worker can take one over meanwhile (a row
		// lock, not a new row version).
		ids := make([]int64, len(items))
		for i, it := range items {
			ids[i] = it.ID
		}
		lock := ""
		if d.dialect == Postgres {
			lock = " FOR UPDATE"
		}
		var held []int64
		if err := tx.Raw("SELECT id FROM privacy_requests WHERE id IN ? AND claimed_by = ? ORDER BY id"+lock, ids, worker).Scan(&held).Error; err != nil {
			return err
		}
		isHeld := make(map[int64]bool, len(held))
		for _, id := range held {
			isHeld[id] = true
		}
		// A file completed and the subject's files destroyed, in one order
		// (subjectLock): a file being written when a delete of its subject
		// was done is destroyed instead of completed.
		var subjects []int64
		for _, it := range items {
			if isHeld[it.ID] && (it.Update.DropSubjectFiles || it.Update.ErasedSince != nil && it.Update.ExportChunks > 0) {
				subjects = append(subjects, it.ID)
			}
		}
		if err := d.lockSubjects(tx, subjects); err != nil {
			return err
		}
		for i, it := range items {
			if e := it.Update.ErasedSince; !isHeld[it.ID] || e == nil || it.Update.ExportChunks == 0 {
				continue
			}
			by, err := erasedBy(tx, it.ID, it.Update.ErasedSince)
			if err != nil {
				return err
			}
			if by != 0 {
				items[i].Update.ExportChunks, items[i].Update.DropExport = 0, true
				items[i].Update.Audit = append(slices.Clone(it.Update.Audit), fmt.Sprintf(ErasedFileLine, by))
			}
		}
		deleted, err := d.batchDeletes(tx, items, isHeld)
		if err != nil {
			return err
		}
		var touched []string
		for _, it := range items {
			if isHeld[it.ID] {
				touched = append(touched, PartTables(it.Deletes)...)
			}
		}
		if err := markResidue(tx, now, touched); err != nil {
			return err
		}
		removed := map[int64]map[string]int64{}
		for i, it := range items {
			for j, p := range it.Deletes {
				if isHeld[it.ID] && deleted[i][j] > 0 {
					if removed[it.ID] == nil {
						removed[it.ID] = map[string]int64{}
					}
					removed[it.ID][p.Schema] += deleted[i][j]
				}
			}
		}
		if err := countDeleted(tx, removed); err != nil {
			return err
		}
		var checks []*RemainCheck
		checkOf := make([]int, len(items))
		for i, it := range items {
			checkOf[i] = -1
			if isHeld[it.ID] && it.Check != nil {
				checkOf[i] = len(checks)
				checks = append(checks, it.Check)
			}
		}
		remaining, err := d.countRemaining(tx, checks)
		if err != nil {
			return err
		}
		groups := make([][]chainLine, len(items))
		var heldIDs []int64
		var upds []RequestUpdate
		for i, it := range items {
			if !isHeld[it.ID] {
				continue
			}
			upd, left := it.Update, int64(0)
			if c := checkOf[i]; c >= 0 && remaining[c] > 0 && it.Remaining != nil {
				upd, left = it.Remaining(remaining[c]), remaining[c]
			}
			var lines []string
			for j, p := range it.Deletes {
				lines = append(lines, p.AuditLine(deleted[i][j]))
			}
			upd.Audit = append(lines, upd.Audit...)
			out[i] = BatchResult{Held: true, Update: upd, Remaining: left}
			heldIDs, upds = append(heldIDs, it.ID), append(upds, upd)
			for _, l := range upd.Audit {
				groups[i] = append(groups[i], chainLine{it.ID, l})
			}
		}
		if len(held) == 0 {
			return nil
		}
		if err := d.writeRecords(tx, now, heldIDs, upds); err != nil {
			return err
		}
		// The subject's other files, after the deletes: their requests'
		// lines go to the chain after the batch's own.
		var dropping []int64
		for i, it := range items {
			if out[i].Held && out[i].Update.DropSubjectFiles {
				dropping = append(dropping, it.ID)
			}
		}
		erased, err := dropSubjectFiles(tx, dropping)
		if err != nil {
			return err
		}
		// What was applied: DropSubjectFiles stays on the deletes that did
		// destroy a file (their runs purge the files' tables).
		erasing := map[int64]bool{}
		for _, e := range erased {
			erasing[e.by] = true
		}
		for i, it := range items {
			if out[i].Held && out[i].Update.DropSubjectFiles && !erasing[it.ID] {
				out[i].Update.DropSubjectFiles = false
			}
		}
		for _, e := range erased {
			line := fmt.Sprintf(ErasedFileLine, e.by)
			if err := tx.Exec("UPDATE privacy_requests SET audit = audit || ? WHERE id = ?", auditText(now, line), e.id).Error; err != nil {
				return err
			}
			groups = append(groups, []chainLine{{e.id, line}})
		}
		if len(erased) > 0 {
			if err := markResidue(tx, now, ExportTables); err != nil {
				return err
			}
		}
		// The rows each request's deletes removed so far, this batch's
		// included: what its receipt says was deleted.
		var signing []int64
		for i, it := range items {
			if out[i].Held && it.Receipt != nil {
				signing = append(signing, it.ID)
			}
		}
		removedBy := map[int64]map[string]int64{}
		if len(signing) > 0 {
			if removedBy, err = deletedCounts(tx, signing); err != nil {
				return err
			}
		}
		// Last, under the chain head: each receipt is signed with the head
		// right after its request's lines.
		head, err := d.lockChainHead(ctx, tx.Statement.ConnPool)
		if err != nil {
			return err
		}
		receipts := make([]string, len(items))
		var signErr error
		rows, next, err := chainRows(head, now, groups, func(i int, head ChainHead) {
			if signErr != nil || i >= len(items) || !out[i].Held || items[i].Receipt == nil {
				return
			}
			if receipts[i], signErr = items[i].Receipt(out[i].Update, head, removedBy[items[i].ID]); signErr != nil {
				signErr = fmt.Errorf("sign the receipt of request %d: %w", items[i].ID, signErr)
			}
		})
		if err != nil {
			return err
		}
		if signErr != nil {
			return signErr
		}
		stmts := append([]stmt{d.requestsUpdate(worker, now, items, out, receipts)}, chainStatements(rows, next)...)
		if st, ok := d.receiptsInsert(now, items, receipts); ok {
			stmts = append(stmts, st)
		}
		return d.execAll(tx, stmts)
	})
	if err != nil {
		return nil, translate(err, "Privacy request")
	}
	return out, nil
}

// execAll runs statements in tx (see combine).
func (d *DB) execAll(tx *gorm.DB, stmts []stmt) error {
	for _, st := range d.combine(stmts) {
		if err := tx.Exec(st.sql, st.args...).Error; err != nil {
			return err
		}
	}
	return nil
}

// combine returns statements to run one after another in a transaction:
// on PostgreSQL one statement (all but the last as data-modifying WITH
// clauses: one round trip), on SQLite stmts as they are.
func (d *DB) combine(stmts []stmt) []stmt {
	if d.dialect != Postgres || len(stmts) <= 1 {
		return stmts
	}
	var b strings.Builder
	var args []any
	for i, st := range stmts[:len(stmts)-1] {
		sql := st.sql
		if i == 0 {
			b.WriteString("WITH ")
		} else {
			b.WriteString(", ")
		}
		if rest, ok := strings.CutPrefix(sql, "WITH "); ok {
			// Its own WITH clauses join the outer list.
			cte, body, _ := strings.Cut(rest, " /*body*/ ")
			b.WriteString(cte)
			b.WriteString(", ")
			sql = body
		}
		fmt.Fprintf(&b, "s%d AS (%s)", i, sql)
		args = append(args, st.args...)
	}
	last := stmts[len(stmts)-1]
	b.WriteString(" ")
	b.WriteString(last.sql)
	args = append(args, last.args...)
	return []stmt{{b.String(), args}}
}

// cast types a placeholder where PostgreSQL cannot infer it (a VALUES
// list); SQLite takes the value as it comes.
func (d *DB) cast(typ string) string {
	if d.dialect == Postgres {
		return "CAST(? AS " + typ + ")"
	}
	return "?"
}

// requestsUpdate is one UPDATE of every held request of a batch: its new
// status, its audit lines, its claim, and its receipt. Fields an update
// leaves nil stay as they are.
func (d *DB) requestsUpdate(worker string, now time.Time, items []BatchItem, res []BatchResult, receipts []string) stmt {
	row := "(" + strings.Join([]string{d.cast("BIGINT"), d.cast("INTEGER"), d.cast("TEXT"), d.cast("INTEGER"),
		d.cast("TIMESTAMPTZ"), d.cast("TIMESTAMPTZ"), d.cast("INTEGER"), d.cast("INTEGER"), d.cast("TIMESTAMPTZ"), d.cast("TEXT")}, ", ") + ")"
	var rows []string
	var args []any
	for i, r := range res {
		if !r.Held {
			continue
		}
		u := r.Update
		var b strings.Builder
		for _, l := range u.Audit {
			b.WriteString(auditText(now, l))
		}
		var status, retry, next, deadline, lease, receipt any
		if u.Status != nil {
			status = *u.Status
		}
		if u.RetryCount != nil {
			retry = *u.RetryCount
		}
		if u.NextAttemptAt != nil {
			next = u.NextAttemptAt.UTC()
		}
		if u.ConfirmDeadline != nil {
			deadline = u.ConfirmDeadline.UTC()
		}
		if !u.Release && u.ExtendLease > 0 {
			lease = now.Add(u.ExtendLease)
		}
		if receipts[i] != "" {
			receipt = receipts[i]
		}
		rows = append(rows, row)
		args = append(args, items[i].ID, status, b.String(), retry, next, deadline, flag(u.ClearDedupe), flag(u.Release), lease, receipt)
	}
	args = append(args, now, worker)
	return stmt{"WITH v(id, st, au, rc, na, cd, cl, rel, le, rt) AS (VALUES " + strings.Join(rows, ", ") + ") /*body*/ " +
		"UPDATE privacy_requests SET status = COALESCE(v.st, status), audit = audit || v.au, last_modified = ?, " +
		"retry_count = COALESCE(v.rc, retry_count), next_attempt_at = COALESCE(v.na, next_attempt_at), " +
		"confirm_deadline = COALESCE(v.cd, confirm_deadline), " +
		"dedupe_key = CASE WHEN v.cl = 1 THEN NULL ELSE dedupe_key END, " +
		"claimed_by = CASE WHEN v.rel = 1 THEN NULL ELSE claimed_by END, " +
		"claimed_until = CASE WHEN v.rel = 1 THEN NULL ELSE COALESCE(v.le, claimed_until) END, " +
		"receipt = COALESCE(v.rt, receipt) " +
		"FROM v WHERE privacy_requests.id = v.id AND privacy_requests.claimed_by = ?", args}
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// receiptsInsert stores a batch's receipts, replacing earlier ones.
func (d *DB) receiptsInsert(now time.Time, items []BatchItem, receipts []string) (stmt, bool) {
	var rows []string
	var args []any
	for i, r := range receipts {
		if r != "" {
			rows = append(rows, "(?, ?, ?)")
			args = append(args, items[i].ID, r, now)
		}
	}
	if len(rows) == 0 {
		return stmt{}, false
	}
	return stmt{"INSERT INTO privacy_receipts (request_id, jws, created) VALUES " + strings.Join(rows, ", ") +
		" ON CONFLICT (request_id) DO UPDATE SET jws = excluded.jws, created = excluded.created", args}, true
}

// batchDeletes deletes the parts of the held items, table by table (one
// statement per table and idBatch ids, whatever the number of requests),
// in the order the items list them (children before parents). It returns
// the rows deleted per item and part.
func (d *DB) batchDeletes(tx *gorm.DB, items []BatchItem, held map[int64]bool) ([][]int64, error) {
	type ref struct{ item, part int }
	counts := make([][]int64, len(items))
	var order []string
	byTable := map[string][]int64{}
	owner := map[string]map[int64]ref{}
	for i, it := range items {
		counts[i] = make([]int64, len(it.Deletes))
		if !held[it.ID] {
			continue
		}
		for j, p := range it.Deletes {
			if owner[p.Table] == nil {
				owner[p.Table] = map[int64]ref{}
				order = append(order, p.Table)
			}
			for _, id := range p.IDs {
				if _, dup := owner[p.Table][id]; !dup {
					owner[p.Table][id] = ref{i, j}
					byTable[p.Table] = append(byTable[p.Table], id)
				}
			}
		}
	}
	for _, table := range order {
		all := byTable[table]
		for start := 0; start < len(all); start += idBatch {
			var gone []int64
			err := tx.Raw("DELETE FROM "+quote(table)+" WHERE id IN ? RETURNING id", all[start:min(start+idBatch, len(all))]).Scan(&gone).Error
			if err != nil {
				return nil, err
			}
			for _, id := range gone {
				r := owner[table][id]
				counts[r.item][r.part]++
			}
		}
	}
	return counts, nil
}

// countRemaining counts what each check finds, those of a batch together:
// a check of each namespace once, then the rows themselves, in one
// statement while the bound values fit one: an arm per table and column
// for the hops of every check, and one per value; each row found counts
// for every check that asked for it. Almost always nothing is found.
func (d *DB) countRemaining(tx *gorm.DB, checks []*RemainCheck) ([]int64, error) {
	counts := make([]int64, len(checks))
	if len(checks) == 0 {
		return counts, nil
	}
	type hopKey struct{ table, column string }
	// A namespace as one lookup read it is checked once (another
	// reading of it, with times that differ only in form, is checked
	// again: a statement more, never one fewer).
	checked := map[Namespace]bool{}
	merged := map[hopKey]int{}
	var (
		hops    []Hop
		askedBy []map[int64][]int // per merged hop: parent → the checks asking (once per hop of theirs)
	)
	for i, c := range checks {
		if ns := c.Namespace; ns != nil && !checked[*ns] {
			if err := d.namespaceUnchanged(tx, ns, true); err != nil {
				return nil, err
			}
			checked[*ns] = true
		}
		for _, h := range c.Hops {
			j, ok := merged[hopKey{h.Table, h.Column}]
			if !ok {
				j = len(hops)
				merged[hopKey{h.Table, h.Column}] = j
				hops = append(hops, Hop{Tag: j, Table: h.Table, Column: h.Column})
				askedBy = append(askedBy, map[int64][]int{})
			}
			for _, p := range h.Parents {
				if len(askedBy[j][p]) == 0 {
					hops[j].Parents = append(hops[j].Parents, p)
				}
				askedBy[j][p] = append(askedBy[j][p], i)
			}
		}
	}
	stmts, args := hopArms(hops, d.statementParams(), hopArm)
	if len(stmts) == 0 {
		stmts, args = [][]string{nil}, [][]any{nil}
	}
	// The root rows that still match each value join the first statement,
	// tagged after the hops.
	for i, c := range checks {
		stmts[0] = append(stmts[0], fmt.Sprintf("SELECT %d AS tag, 0 AS parent, id FROM %s WHERE %s = ?", len(hops)+i, quote(c.Table), quote(c.Column)))
		args[0] = append(args[0], c.Value)
	}
	found, err := hopRows(tx, stmts, args)
	if err != nil {
		return nil, err
	}
	for tag, rows := range found {
		for _, r := range rows {
			if tag >= len(hops) {
				counts[tag-len(hops)]++
				continue
			}
			for _, c := range askedBy[tag][r.Parent] {
				counts[c]++
			}
		}
	}
	return counts, nil
}

// writeRecords writes what the updates upds of requests ids record beside
// their rows, inside tx, for a batch at once: the per-table counts, the
// reviewed sets and the coverage reports each replaced with one delete and
// one insert for all, then each export's completion (or destruction).
func (d *DB) writeRecords(tx *gorm.DB, now time.Time, ids []int64, upds []RequestUpdate) error {
	var (
		countsOf, reviewedOf, linkedOf []int64
		counts                         []RequestData
		reviewed                       []ReviewedRow
		linked                         []LinkedCount
	)
	for i, upd := range upds {
		id := ids[i]
		if upd.Counts != nil {
			countsOf = append(countsOf, id)
			for _, c := range upd.Counts {
				counts = append(counts, RequestData{GdprRequestID: id, Schema: c.Schema, RecordCount: c.RecordCount, Created: now})
			}
		}
		if upd.Reviewed != nil {
			reviewedOf = append(reviewedOf, id)
			for _, r := range upd.Reviewed {
				reviewed = append(reviewed, ReviewedRow{RequestID: id, Schema: r.Schema, RowID: r.RowID, Deleted: r.Deleted})
			}
		}
		if upd.Linked != nil {
			linkedOf = append(linkedOf, id)
			for _, l := range upd.Linked {
				l.RequestID = id
				linked = append(linked, l)
			}
		}
	}
	// A row of four values at most: statements of statementParams values.
	rows := d.statementParams() / 4
	for _, r := range []struct {
		of     []int64
		column string
		model  any
		rows   any
		n      int
	}{
		{countsOf, "gdpr_request_id", &RequestData{}, &counts, len(counts)},
		{reviewedOf, "request_id", &ReviewedRow{}, &reviewed, len(reviewed)},
		{linkedOf, "request_id", &LinkedCount{}, &linked, len(linked)},
	} {
		for start := 0; start < len(r.of); start += idBatch {
			if err := tx.Where(r.column+" IN ?", r.of[start:min(start+idBatch, len(r.of))]).Delete(r.model).Error; err != nil {
				return err
			}
		}
		if r.n > 0 {
			if err := tx.CreateInBatches(r.rows, rows).Error; err != nil {
				return err
			}
		}
	}
	dropped := false
	for i, upd := range upds {
		switch {
		case upd.ExportChunks > 0:
			err := tx.Model(&Export{}).Where("request_id = ?", ids[i]).
				Updates(map[string]any{"chunks": upd.ExportChunks, "size": upd.ExportSize, "complete": true}).Error
			if err != nil {
				return err
			}
		case upd.DropExport:
			if err := deleteExport(tx, ids[i]); err != nil {
				return err
			}
			dropped = true
		}
	}
	if dropped {
		return markResidue(tx, now, ExportTables)
	}
	return nil
}

// CountRemaining counts what a check finds, outside a batch.
func (d *DB) CountRemaining(ctx context.Context, c *RemainCheck) (int64, error) {
	n, err := d.countRemaining(d.db.WithContext(ctx), []*RemainCheck{c})
	if err != nil {
		return 0, translate(err, "Record")
	}
	return n[0], nil
}
