package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// The audit is also one hash chain for the instance (DESIGN.md §4b
// "Proof"): every line written to a request's audit text is appended to
// privacy_audit_chain in the same transaction, and each row's hash covers
// the previous row's hash. Editing, inserting or deleting a row breaks the
// chain from that row on; deleting the last rows no longer matches the
// head row. Lines hold no personal data (the reconciliation value never
// appears in an audit line), so the cleanup leaves the chain alone.

// genesisHash is the prev_hash of the first row.
var genesisHash = strings.Repeat("0", 64)

// chainTimeFormat is the form at is stored and hashed in: fixed width,
// UTC, microseconds (what both databases could keep anyway).
const chainTimeFormat = "2006-01-02T15:04:05.000000Z"

// chainLine is one audit line to chain.
type chainLine struct {
	requestID int64
	line      string
}

// ChainHash is the hash of one chain row: SHA-256 over the previous hash
// (32 bytes) then seq and request id (8 bytes big-endian each), then at
// and line, each prefixed by its length (4 bytes big-endian). The length
// prefixes make the encoding unambiguous: no two rows share an input.
func ChainHash(prevHash string, seq, requestID int64, at, line string) (string, error) {
	prev, err := hex.DecodeString(prevHash)
	if err != nil || len(prev) != sha256.Size {
		return "", fmt.Errorf("previous hash %q is not 64 hex digits", prevHash)
	}
	h := sha256.New()
	h.Write(prev)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(seq))
	h.Write(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(requestID))
	h.Write(n[:])
	for _, s := range []string{at, line} {
		binary.BigEndian.PutUint32(n[:4], uint32(len(s)))
		h.Write(n[:4])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// appendChain appends lines to the chain inside the caller's transaction
// (pool is its connection). On PostgreSQL the head row is locked FOR
// UPDATE, so replicas appending at once queue behind each other instead of
// forking the chain; on SQLite the transaction already holds the one
// write lock (_txlock=immediate). Call it last in a transaction: the head
// stays locked until the commit.
func (d *DB) appendChain(ctx context.Context, pool gorm.ConnPool, at time.Time, lines []chainLine) error {
	_, err := d.appendChainHead(ctx, pool, at, lines)
	return err
}

// appendChainHead is appendChain, returning the head after the lines (the
// zero head when there were none).
func (d *DB) appendChainHead(ctx context.Context, pool gorm.ConnPool, at time.Time, lines []chainLine) (ChainHead, error) {
	if len(lines) == 0 {
		return ChainHead{}, nil
	}
	head, err := d.lockChainHead(ctx, pool)
	if err != nil {
		return ChainHead{}, err
	}
	rows, next, err := chainRows(head, at, [][]chainLine{lines}, nil)
	if err != nil {
		return ChainHead{}, err
	}
	if tx, ok := pool.(*sql.Tx); ok && d.dialect == SQLite {
		return next, d.appendChainPrepared(ctx, tx, rows, next)
	}
	for _, st := range d.combine(chainStatements(rows, next)) { // PostgreSQL: the lines and the head in one round trip
		if _, err := pool.ExecContext(ctx, d.rebind(st.sql), st.args...); err != nil {
			return ChainHead{}, fmt.Errorf("append to the audit chain: %w", err)
		}
	}
	return next, nil
}

// appendChainPrepared writes rows and the head after them on SQLite, one
// prepared statement run per line (DB.txStmt): SQLite's driver parses a
// statement run by its text at every run, and a multi-row INSERT's text
// is as long as its lines.
func (d *DB) appendChainPrepared(ctx context.Context, tx *sql.Tx, rows [][]any, head ChainHead) error {
	insert, err := d.txStmt(ctx, tx, chainInsertLine)
	if err != nil {
		return fmt.Errorf("append to the audit chain: %w", err)
	}
	defer insert.Close()
	for _, r := range rows {
		if _, err := insert.ExecContext(ctx, r...); err != nil {
			return fmt.Errorf("append to the audit chain: %w", err)
		}
	}
	update, err := d.txStmt(ctx, tx, chainHeadUpdate)
	if err != nil {
		return fmt.Errorf("append to the audit chain: %w", err)
	}
	defer update.Close()
	if _, err := update.ExecContext(ctx, head.Seq, head.Hash); err != nil {
		return fmt.Errorf("append to the audit chain: %w", err)
	}
	return nil
}

// lockChainHead reads the chain head, locked until the commit.
func (d *DB) lockChainHead(ctx context.Context, pool gorm.ConnPool) (ChainHead, error) {
	var row *sql.Row
	if tx, ok := pool.(*sql.Tx); ok && d.dialect == SQLite {
		s, err := d.txStmt(ctx, tx, chainHeadSelect)
		if err != nil {
			return ChainHead{}, fmt.Errorf("audit chain head: %w", err)
		}
		defer s.Close()
		row = s.QueryRowContext(ctx)
	} else {
		lock := ""
		if d.dialect == Postgres {
			lock = " FOR UPDATE"
		}
		row = pool.QueryRowContext(ctx, chainHeadSelect+lock)
	}
	var h ChainHead
	if err := row.Scan(&h.Seq, &h.Hash); err != nil {
		return ChainHead{}, fmt.Errorf("audit chain head: %w", err)
	}
	return h, nil
}

// stmt is one SQL statement with "?" placeholders and its arguments.
type stmt struct {
	sql  string
	args []any
}

// chainRows computes the rows that append groups of lines (one group per
// request of a batch) after head — seq, request id, at, line, previous
// hash, hash — and the new head. after, when not nil, gets each group's
// index and the head right after its lines (a batch signs each request's
// receipt with it). The hashes are computed here: the head stays locked
// for the round trips of the writes only.
func chainRows(head ChainHead, at time.Time, groups [][]chainLine, after func(i int, head ChainHead)) ([][]any, ChainHead, error) {
	ts := at.UTC().Format(chainTimeFormat)
	var rows [][]any
	for i, g := range groups {
		for _, l := range g {
			next, err := ChainHash(head.Hash, head.Seq+1, l.requestID, ts, l.line)
			if err != nil {
				return nil, head, err
			}
			rows = append(rows, []any{head.Seq + 1, l.requestID, ts, l.line, head.Hash, next})
			head = ChainHead{Seq: head.Seq + 1, Hash: next}
		}
		if after != nil {
			after(i, head)
		}
	}
	return rows, head, nil
}

// chainStatements returns the statements that write the chain's rows —
// multi-row INSERTs, then the head's UPDATE to head — or none for no rows.
func chainStatements(rows [][]any, head ChainHead) []stmt {
	if len(rows) == 0 {
		return nil
	}
	var out []stmt
	const perInsert = 500
	for start := 0; start < len(rows); start += perInsert {
		batch := rows[start:min(start+perInsert, len(rows))]
		marks := make([]string, len(batch))
		var args []any
		for i, r := range batch {
			marks[i] = "(?, ?, ?, ?, ?, ?)"
			args = append(args, r...)
		}
		out = append(out, stmt{chainInsert + strings.Join(marks, ", "), args})
	}
	return append(out, stmt{chainHeadUpdate, []any{head.Seq, head.Hash}})
}

// chainInsert and chainHeadUpdate append lines to the chain and move its
// head.
const (
	chainInsert     = "INSERT INTO privacy_audit_chain (seq, request_id, at, line, prev_hash, hash) VALUES "
	chainInsertLine = chainInsert + "(?, ?, ?, ?, ?, ?)"
	chainHeadUpdate = "UPDATE privacy_audit_head SET seq = ?, hash = ? WHERE id = 1"
	chainHeadSelect = "SELECT seq, hash FROM privacy_audit_head WHERE id = 1"
)

// chainTx runs fn in a gorm transaction, then appends lines to the chain
// in it; fn may add lines (it gets the slice to append to).
func (d *DB) chainTx(ctx context.Context, at time.Time, fn func(tx *gorm.DB, lines *[]chainLine) error) error {
	return d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var lines []chainLine
		if err := fn(tx, &lines); err != nil {
			return err
		}
		return d.appendChain(ctx, tx.Statement.ConnPool, at, lines)
	})
}

// ChainHead is the state of the audit chain: its last seq (the count of
// lines since the chain began) and hash.
type ChainHead struct {
	Seq  int64
	Hash string
}

// FindChainHead returns the chain's head.
func (d *DB) FindChainHead(ctx context.Context) (ChainHead, error) {
	var h ChainHead
	err := d.readSQL.QueryRowContext(ctx, "SELECT seq, hash FROM privacy_audit_head WHERE id = 1").Scan(&h.Seq, &h.Hash)
	return h, translate(err, "Audit chain")
}

// ChainBreak names the first row where the chain does not hold.
type ChainBreak struct {
	Seq    int64
	Reason string
}

func (b *ChainBreak) Error() string {
	return fmt.Sprintf("audit chain broken at seq %d: %s", b.Seq, b.Reason)
}

// VerifyAuditChain walks the chain in seq order, recomputing every hash.
// It returns the head when the chain holds, or a *ChainBreak naming the
// first row that does not (a changed row, a missing one, a foreign one, or
// a tail that no longer ends at the head). anchors, seq → hash, are heads
// recorded outside the chain (the signed receipts): the hash is unkeyed,
// so one who may write the database can recompute the rows after a line
// they edit, but not a signed receipt's head.
func (d *DB) VerifyAuditChain(ctx context.Context, anchors map[int64]string) (ChainHead, error) {
	head, err := d.FindChainHead(ctx)
	if err != nil {
		return ChainHead{}, err
	}
	rows, err := d.readSQL.QueryContext(ctx, "SELECT seq, request_id, at, line, prev_hash, hash FROM privacy_audit_chain ORDER BY seq")
	if err != nil {
		return ChainHead{}, translate(err, "Audit chain")
	}
	defer rows.Close()
	last := ChainHead{Seq: 0, Hash: genesisHash}
	for rows.Next() {
		var seq, requestID int64
		var at, line, prev, hash string
		if err := rows.Scan(&seq, &requestID, &at, &line, &prev, &hash); err != nil {
			return ChainHead{}, translate(err, "Audit chain")
		}
		switch {
		case seq != last.Seq+1:
			return ChainHead{}, &ChainBreak{Seq: last.Seq + 1, Reason: "the line is missing"}
		case prev != last.Hash:
			return ChainHead{}, &ChainBreak{Seq: seq, Reason: "its previous hash does not match the line before it"}
		}
		want, err := ChainHash(prev, seq, requestID, at, line)
		if err != nil || want != hash {
			return ChainHead{}, &ChainBreak{Seq: seq, Reason: "the line was changed (its hash does not match its content)"}
		}
		if a, ok := anchors[seq]; ok && a != hash {
			return ChainHead{}, &ChainBreak{Seq: seq, Reason: "the chain up to this line was rewritten (a signed receipt recorded another hash here)"}
		}
		last = ChainHead{Seq: seq, Hash: hash}
	}
	if err := rows.Err(); err != nil {
		return ChainHead{}, translate(err, "Audit chain")
	}
	// A signed receipt anchored a line beyond the end: the chain was cut
	// (its head moved back with it), or emptied.
	for seq := range anchors {
		if seq > last.Seq {
			return ChainHead{}, &ChainBreak{Seq: last.Seq + 1, Reason: fmt.Sprintf("the chain was cut: a signed receipt records line %d", seq)}
		}
	}
	if last != head {
		if last.Seq < head.Seq {
			return ChainHead{}, &ChainBreak{Seq: last.Seq + 1, Reason: fmt.Sprintf("the line is missing (the head says %d lines)", head.Seq)}
		}
		return ChainHead{}, &ChainBreak{Seq: head.Seq, Reason: "the chain does not end at its recorded head"}
	}
	if err := d.verifyRequestAudits(ctx); err != nil {
		return ChainHead{}, err
	}
	return head, nil
}

// verifyRequestAudits checks that each request's audit text, what the
// console and ExecuteQuery show, ends with its lines in the chain, in
// order: the chain holds the true lines, and an edited text would go
// unnoticed otherwise. (Text written before the chain existed comes
// first and is not checked; the times are not compared, as a created
// request's text has its call's time and its chain line its batch's.) The chain's lines, by request, and the
// requests, by id, are read side by side: nothing grows with the chain.
func (d *DB) verifyRequestAudits(ctx context.Context) error {
	lines, err := d.readSQL.QueryContext(ctx, "SELECT request_id, seq, at, line FROM privacy_audit_chain WHERE request_id > 0 ORDER BY request_id, seq")
	if err != nil {
		return translate(err, "Audit chain")
	}
	defer lines.Close()
	reqs, err := d.readSQL.QueryContext(ctx, "SELECT id, audit FROM privacy_requests ORDER BY id")
	if err != nil {
		return translate(err, "Audit chain")
	}
	defer reqs.Close()
	var (
		reqID, first int64 = 0, 0
		want         []string
	)
	check := func() error {
		if reqID == 0 {
			return nil
		}
		for {
			var id int64
			var audit string
			if !reqs.Next() {
				if err := reqs.Err(); err != nil {
					return translate(err, "Audit chain")
				}
				return &ChainBreak{Seq: first, Reason: fmt.Sprintf("request %d of this line does not exist", reqID)}
			}
			if err := reqs.Scan(&id, &audit); err != nil {
				return translate(err, "Audit chain")
			}
			if id < reqID {
				continue
			}
			if id > reqID || !slices.Equal(lastLines(audit, len(want)), want) {
				return &ChainBreak{Seq: first, Reason: fmt.Sprintf("request %d's audit text is not its lines in the chain (changed, or lines removed)", reqID)}
			}
			return nil
		}
	}
	for lines.Next() {
		var id, seq int64
		var at, line string
		if err := lines.Scan(&id, &seq, &at, &line); err != nil {
			return translate(err, "Audit chain")
		}
		if id != reqID {
			if err := check(); err != nil {
				return err
			}
			reqID, first = id, seq
			want = want[:0]
		}
		want = append(want, line)
	}
	if err := lines.Err(); err != nil {
		return translate(err, "Audit chain")
	}
	return check()
}

// lastLines returns the texts of the last n lines of an audit, each
// without its time ("2006-01-02 15:04:05.000Z "), or nil if it has fewer.
func lastLines(audit string, n int) []string {
	lines := strings.Split(strings.TrimSuffix(audit, "\n"), "\n")
	if len(lines) < n || audit == "" {
		return nil
	}
	out := make([]string, n)
	for i, l := range lines[len(lines)-n:] {
		if parts := strings.SplitN(l, " ", 3); len(parts) == 3 {
			out[i] = parts[2]
		}
	}
	return out
}

// CreateRequest's PostgreSQL path hands appendChain its *sql.Tx directly.
var _ gorm.ConnPool = (*sql.Tx)(nil)

// receipt is a row of privacy_receipts.
type receipt struct {
	RequestID int64  `gorm:"primaryKey;autoIncrement:false"`
	JWS       string `gorm:"column:jws"`
	Created   time.Time
}

func (receipt) TableName() string { return "privacy_receipts" }

// SaveReceipt stores the receipt of a request, replacing an earlier one.
func (d *DB) SaveReceipt(ctx context.Context, requestID int64, jws string) error {
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "request_id"}},
			DoUpdates: clause.AssignmentColumns([]string{"jws", "created"})}).
			Create(&receipt{RequestID: requestID, JWS: jws, Created: d.now().UTC()}).Error
		if err != nil {
			return err
		}
		// Also on the request row: queryDef reads it as @receipt.
		return tx.Table("privacy_requests").Where("id = ?", requestID).Update("receipt", jws).Error
	})
	return translate(err, "Receipt")
}

// StoredReceipt is one request's receipt as stored, with what says
// whether the request needs one: audit verify checks them.
type StoredReceipt struct {
	RequestID int64
	Request   bool // the request row exists
	Status    Status
	// JWS is privacy_receipts' copy (the console, the download, the
	// chain's anchors); Served the request row's (queryDef's @receipt).
	JWS, Served string
	// Deleted: the request's deletes removed rows (privacy_request_deleted).
	Deleted bool
	// Chained: every line of the request's audit text is in the chain,
	// so it was created after the chain (and the receipts) began.
	Chained bool
}

// EachStoredReceipt calls fn, in request order, for each request that
// holds a receipt (in either copy) or is in one of the statuses finished,
// and for each receipt stored for a request that does not exist.
func (d *DB) EachStoredReceipt(ctx context.Context, finished []Status, fn func(StoredReceipt) error) error {
	in := "NULL"
	args := make([]any, len(finished))
	if len(finished) > 0 {
		in = strings.TrimSuffix(strings.Repeat("?, ", len(finished)), ", ")
		for i, st := range finished {
			args[i] = int(st)
		}
	}
	rows, err := d.readSQL.QueryContext(ctx, d.rebind(`SELECT r.id, TRUE, r.status, COALESCE(k.jws, ''), COALESCE(r.receipt, ''), COALESCE(r.audit, ''),
			EXISTS (SELECT 1 FROM privacy_request_deleted x WHERE x.request_id = r.id AND x.deleted > 0),
			(SELECT count(*) FROM privacy_audit_chain c WHERE c.request_id = r.id)
		FROM privacy_requests r LEFT JOIN privacy_receipts k ON k.request_id = r.id
		WHERE k.request_id IS NOT NULL OR r.receipt IS NOT NULL OR r.status IN (`+in+`)
		UNION ALL
		SELECT k.request_id, FALSE, 0, k.jws, '', '', FALSE, 0 FROM privacy_receipts k
		WHERE NOT EXISTS (SELECT 1 FROM privacy_requests r WHERE r.id = k.request_id)
		ORDER BY 1`), args...)
	if err != nil {
		return translate(err, "Receipt")
	}
	defer rows.Close()
	for rows.Next() {
		var (
			r      StoredReceipt
			audit  string
			status int
			lines  int64
		)
		if err := rows.Scan(&r.RequestID, &r.Request, &status, &r.JWS, &r.Served, &audit, &r.Deleted, &lines); err != nil {
			return translate(err, "Receipt")
		}
		r.Status = Status(status)
		r.Chained = lines > 0 && int64(strings.Count(audit, "\n")) == lines
		if err := fn(r); err != nil {
			return err
		}
	}
	return translate(rows.Err(), "Receipt")
}

// FindReceipt returns the receipt of a request.
func (d *DB) FindReceipt(ctx context.Context, requestID int64) (string, error) {
	var r receipt
	if err := d.reader.WithContext(ctx).Where("request_id = ?", requestID).Take(&r).Error; err != nil {
		return "", translate(err, "Receipt")
	}
	return r.JWS, nil
}
