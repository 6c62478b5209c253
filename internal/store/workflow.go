package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// The storage side of the technical workflows: claims on requests (FOR
// UPDATE SKIP LOCKED on PostgreSQL), the subject lookups and deletes over
// data-model tables, the encrypted export chunks and the cleanup.

// idBatch bounds the ids of one IN (…) list.
const idBatch = 500

// ClaimRequests claims up to limit requests whose status is one of from,
// that nobody holds (or whose holder's lease ran out: a crashed worker) and
// whose next attempt is due. Each claimed request moves to to[status] (or
// keeps its status when to has no entry), held by worker until now+lease.
// On PostgreSQL the candidate rows are locked with FOR UPDATE SKIP LOCKED,
// so replicas claiming at once never take the same request. The statuses
// are claimed one after the other, in from's order, each oldest first
// (claimCandidates).
func (d *DB) ClaimRequests(ctx context.Context, from []Status, to map[Status]Status, limit int, worker string, lease time.Duration) ([]Request, error) {
	now := d.now().UTC()
	var claimed []Request
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, status := range from {
			if len(claimed) == limit {
				break
			}
			next := status
			if moved, ok := to[status]; ok {
				next = moved
			}
			// One statement per status: the candidates (locked, skipping
			// those another claim holds) are moved and returned at once.
			var got []Request
			err := tx.Raw("UPDATE privacy_requests SET status = ?, claimed_by = ?, claimed_until = ?, last_modified = ? "+
				"WHERE id IN ("+d.claimCandidates()+") RETURNING *",
				next, worker, now.Add(lease), now, status, status, now, now, limit-len(claimed)).Scan(&got).Error
			if err != nil {
				return err
			}
			claimed = append(claimed, got...)
		}
		return nil
	})
	sort.Slice(claimed, func(i, j int) bool { return claimed[i].ID < claimed[j].ID })
	return claimed, translate(err, "Privacy request")
}

// claimCandidates selects the oldest claimable requests of one status
// (arguments: the status twice, now twice, the limit). It reads them from
// the index on (status, id) in its order and stops at the limit, whatever
// the planner's statistics say. With "status = ?" the planner may take the
// primary key instead, in id order, filtering on status: right when the
// statistics say every request is waiting (the ANALYZE at the start of a
// run), and a scan of every request already done once the run has moved
// on (8 ms a claim at 10,000 requests, bench/README.md). A range on status
// ordered by (status, id) is an order only that index gives.
func (d *DB) claimCandidates() string {
	lock := ""
	if d.dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	return "SELECT id FROM privacy_requests WHERE status >= ? AND status <= ? " +
		"AND (claimed_until IS NULL OR claimed_until < ?) AND (next_attempt_at IS NULL OR next_attempt_at <= ?) " +
		"ORDER BY status, id LIMIT ?" + lock
}

// HeldRequests returns those of ids that worker still holds (its claim
// not taken over), by id.
func (d *DB) HeldRequests(ctx context.Context, ids []int64, workers []string) ([]Request, error) {
	var held []Request
	err := d.db.WithContext(ctx).Where("id IN ? AND claimed_by IN ?", ids, workers).Order("id").Find(&held).Error
	return held, translate(err, "Privacy request")
}

// RequestUpdate is what a worker changes on a request it holds. Nil fields
// stay as they are.
type RequestUpdate struct {
	Status          *Status
	Audit           []string // lines appended to the audit
	Release         bool     // drop the claim
	ExtendLease     time.Duration
	RetryCount      *int
	NextAttemptAt   *time.Time
	ConfirmDeadline *time.Time
	ClearDedupe     bool // the request is no longer active
	// Counts, when not nil, replace the per-table counts of the request.
	Counts []RequestData
	// ExportChunks > 0 marks the request's export complete with that many
	// chunks and ExportSize bytes.
	ExportChunks int
	ExportSize   int64
	// DropExport deletes the request's export and its wrapped key (a
	// delete's review file, once the delete is done) and marks their
	// tables for the residue purge (ExportTables).
	DropExport bool
	// DropSubjectFiles deletes, with their wrapped keys, the files of the
	// subject's other requests (same namespace and subject hash) that no
	// worker holds: a delete leaves no copy of the person's data, not
	// even an earlier access file. Each such request gets an audit line
	// (ErasedFileLine) and its tables are marked for the residue purge.
	DropSubjectFiles bool
	// ErasedSince, on a step that completes a file (ExportChunks > 0),
	// destroys the file instead when a delete of the same subject was
	// done since the collect's lookup began: DropSubjectFiles found this
	// request held, and the file may hold the rows that delete erased.
	ErasedSince *ErasedSince
	// Reviewed, when not nil, replaces the request's reviewed set.
	Reviewed []ReviewedRow
	// Linked, when not nil, replaces the request's coverage report.
	Linked []LinkedCount
}

// LinkedCount is one line of a request's coverage report
// (privacy_request_linked): the rows of Schema that refer to the subject
// through the ordinary link Link, neither collected nor erased.
type LinkedCount struct {
	RequestID   int64
	Schema      string `gorm:"column:schema_name"` // "cus:ticket"
	Link        string `gorm:"column:link_name"`   // "recipient"
	Target      string // the subject's schema it points at
	RecordCount int64
}

// TableName pins the table name for gorm.
func (LinkedCount) TableName() string { return "privacy_request_linked" }

// FindLinkedCounts returns a request's coverage report.
func (d *DB) FindLinkedCounts(ctx context.Context, requestID int64) ([]LinkedCount, error) {
	var out []LinkedCount
	err := d.reader.WithContext(ctx).Where("request_id = ?", requestID).Order("schema_name, link_name").Find(&out).Error
	return out, translate(err, "Coverage")
}

// ReviewedRow is one row of a two-step delete's reviewed set
// (privacy_request_rows): what the operator saw in the export and
// confirmed for deletion; for a one-step delete, a row its attempt found.
type ReviewedRow struct {
	RequestID int64
	Schema    string `gorm:"column:schema_name"` // "nms:recipient"
	RowID     int64
	// Deleted marks a row an earlier round of a two-step delete deleted
	// before the request went back to review (migration 0018).
	Deleted bool
}

// TableName pins the table name for gorm.
func (ReviewedRow) TableName() string { return "privacy_request_rows" }

// FindReviewedRows returns a request's reviewed set, by schema and id.
func (d *DB) FindReviewedRows(ctx context.Context, requestID int64) ([]ReviewedRow, error) {
	var out []ReviewedRow
	err := d.reader.WithContext(ctx).Where("request_id = ?", requestID).Order("schema_name, row_id").Find(&out).Error
	return out, translate(err, "Reviewed row")
}

// UpdateClaimedRequest applies upd to a request only while worker still
// holds it (a fence against a worker whose lease was taken over), in one
// transaction with its audit lines in the chain (a batch of one). It
// reports whether the request was updated.
func (d *DB) UpdateClaimedRequest(ctx context.Context, id int64, worker string, upd RequestUpdate) (bool, error) {
	res, err := d.CommitBatch(ctx, worker, []BatchItem{{ID: id, Update: upd}})
	if err != nil {
		return false, err
	}
	return res[0].Held, nil
}

// ExpireConfirmations moves every request still waiting for its delete
// confirmation past its deadline to status to, with an audit line, and
// returns how many moved.
func (d *DB) ExpireConfirmations(ctx context.Context, waiting, to Status, auditLine string) (int64, error) {
	now := d.now().UTC()
	var n int64
	// The ids first (locked on PostgreSQL), so each moved request's line
	// joins the audit chain in the same transaction.
	err := d.chainTx(ctx, now, func(tx *gorm.DB, lines *[]chainLine) error {
		q := tx.Model(&Request{}).Where("status = ? AND confirm_deadline IS NOT NULL AND confirm_deadline <= ? AND NOT "+deletedRounds,
			waiting, now, true).Order("id")
		if d.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		var ids []int64
		if err := q.Pluck("id", &ids).Error; err != nil || len(ids) == 0 {
			return err
		}
		res := tx.Model(&Request{}).Where("id IN ?", ids).Updates(map[string]any{
			"status": to, "last_modified": now, "dedupe_key": nil,
			"audit": gorm.Expr("audit || ?", auditText(now, auditLine)),
		})
		if res.Error != nil {
			return res.Error
		}
		n = res.RowsAffected
		for _, id := range ids {
			*lines = append(*lines, chainLine{id, auditLine})
		}
		return nil
	})
	return n, translate(err, "Privacy request")
}

// deletedRounds is true of a request (privacy_requests) whose earlier
// rounds deleted rows (argument: true).
const deletedRounds = "EXISTS (SELECT 1 FROM privacy_request_rows rr WHERE rr.request_id = privacy_requests.id AND rr.deleted = ?)"

// ClaimExpiredRounds claims for worker the requests in status waiting
// whose confirmation deadline has passed and whose earlier rounds deleted
// rows (ExpireConfirmations leaves them): a delete that started, which
// ends with its receipt. Their status stays: a crash leaves them to the
// next claim, never to a delete of what was not confirmed.
func (d *DB) ClaimExpiredRounds(ctx context.Context, waiting Status, worker string, lease time.Duration) ([]Request, error) {
	now := d.now().UTC()
	lock := ""
	if d.dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	var got []Request
	err := d.db.WithContext(ctx).Raw("UPDATE privacy_requests SET claimed_by = ?, claimed_until = ?, last_modified = ? "+
		"WHERE id IN (SELECT id FROM privacy_requests WHERE status = ? AND confirm_deadline IS NOT NULL AND confirm_deadline <= ? "+
		"AND (claimed_until IS NULL OR claimed_until < ?) AND "+deletedRounds+" ORDER BY id LIMIT ?"+lock+") RETURNING *",
		worker, now.Add(lease), now, waiting, now, now, true, idBatch).Scan(&got).Error
	sort.Slice(got, func(i, j int) bool { return got[i].ID < got[j].ID })
	return got, translate(err, "Privacy request")
}

// FindIDs returns the ids of the rows of table whose column equals value
// exactly — the subject lookup. It is one indexed, parameterised query.
func (d *DB) FindIDs(ctx context.Context, table, column, value string) ([]int64, error) {
	found, err := d.FindIDsByValue(ctx, table, column, []string{value})
	return found[value], err
}

// FindIDsByValue is FindIDs for several values at once (the subjects of a
// claim): the ids of the rows whose text column equals each value exactly,
// in id order, per value — one indexed statement for up to idBatch values.
// The store compares text byte for byte (PostgreSQL's deterministic
// collation, SQLite's BINARY), so a row's value names the one value it
// matched; a row whose value is none of those asked for is an error, never
// a row given to no one or to the wrong subject.
func (d *DB) FindIDsByValue(ctx context.Context, table, column string, values []string) (map[string][]int64, error) {
	out := make(map[string][]int64, len(values))
	for start := 0; start < len(values); start += idBatch {
		end := min(start+idBatch, len(values))
		rows, err := d.db.WithContext(ctx).Raw("SELECT "+quote(column)+", id FROM "+quote(table)+" WHERE "+quote(column)+" IN ? ORDER BY id", values[start:end]).Rows()
		if err != nil {
			return nil, translate(err, "Record")
		}
		err = func() error {
			defer rows.Close()
			for rows.Next() {
				var v string
				var id int64
				if err := rows.Scan(&v, &id); err != nil {
					return err
				}
				if !slices.Contains(values[start:end], v) {
					return errors.New("a lookup matched a value it was not given")
				}
				out[v] = append(out[v], id)
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, translate(err, "Record")
		}
	}
	return out, nil
}

// StreamRows reads the given columns of the rows with those ids, in id
// order and in batches, handing each row to fn; values are as the driver
// returns them (nil, bool, int64, float64, string, []byte or time.Time),
// as ExecuteQuery reads them. A time keeps the zone the driver gave it:
// a DATE stored on SQLite with its zone ("1990-05-01 00:00:00+02:00") is
// midnight in that zone, and its calendar day is the stored one
// (schemas.Type.Format writes a date in its own location, a datetime in
// UTC). Converted to UTC here, it was a day early.
func (d *DB) StreamRows(ctx context.Context, table string, columns []string, ids []int64, fn func(values []any) error) error {
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = quote(c)
	}
	for start := 0; start < len(ids); start += idBatch {
		end := min(start+idBatch, len(ids))
		rows, err := d.db.WithContext(ctx).Raw("SELECT "+strings.Join(quoted, ", ")+" FROM "+quote(table)+" WHERE id IN ? ORDER BY id", ids[start:end]).Rows()
		if err != nil {
			return translate(err, "Record")
		}
		err = func() error {
			defer rows.Close()
			vals := make([]any, len(columns))
			ptrs := make([]any, len(columns))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for rows.Next() {
				if err := rows.Scan(ptrs...); err != nil {
					return err
				}
				if err := fn(vals); err != nil {
					return err
				}
			}
			return rows.Err()
		}()
		if err != nil {
			var e *apperr.Error
			if asAppErr(err, &e) {
				return e
			}
			return translate(err, "Record")
		}
	}
	return nil
}

// --- exports ----------------------------------------------------------------

// Export is the row describing a request's encrypted data-subject file.
type Export struct {
	RequestID  int64
	WrappedKey []byte
	Chunks     int
	Size       int64
	Complete   bool
	Created    time.Time
	// Codec names how each chunk's plaintext was packed before sealing
	// ("" for none).
	Codec string
}

// TableName pins the table name for gorm.
func (Export) TableName() string { return "privacy_exports" }

type exportChunk struct {
	RequestID int64
	Seq       int
	Data      []byte
}

func (exportChunk) TableName() string { return "privacy_export_chunks" }

// BeginExport replaces any export of the request (a retried collect) by an
// empty, incomplete one under a new wrapped key, its chunks packed with
// codec — if worker still holds the request (ErrLostClaim): a worker whose
// lease ran out must not replace the file of the one that took it over.
func (d *DB) BeginExport(ctx context.Context, requestID int64, worker string, wrappedKey []byte, codec string) error {
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := d.stillHeld(tx, requestID, worker); err != nil {
			return err
		}
		if err := deleteExport(tx, requestID); err != nil {
			return err
		}
		return tx.Create(&Export{RequestID: requestID, WrappedKey: wrappedKey, Codec: codec, Created: d.now().UTC()}).Error
	})
	if errors.Is(err, ErrLostClaim) {
		return err
	}
	return translate(err, "Export")
}

// DropExport deletes a request's export and its chunks, complete or not (a
// collect that failed half-way gives its space back at once), if worker
// still holds the request.
func (d *DB) DropExport(ctx context.Context, requestID int64, worker string) error {
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := d.stillHeld(tx, requestID, worker); err != nil {
			return err
		}
		return deleteExport(tx, requestID)
	})
	if errors.Is(err, ErrLostClaim) {
		return err
	}
	return translate(err, "Export")
}

// stillHeld fails with ErrLostClaim unless worker holds the request; on
// PostgreSQL it keeps the row locked until tx ends, so that no other
// worker takes it over meanwhile.
func (d *DB) stillHeld(tx *gorm.DB, requestID int64, worker string) error {
	lock := ""
	if d.dialect == Postgres {
		lock = " FOR UPDATE"
	}
	var held []int64
	if err := tx.Raw("SELECT id FROM privacy_requests WHERE id = ? AND claimed_by = ?"+lock, requestID, worker).Scan(&held).Error; err != nil {
		return err
	}
	if len(held) == 0 {
		return ErrLostClaim
	}
	return nil
}

// ErasedFileLine is the audit line of a request whose file a delete of the
// same subject destroyed (DropSubjectFiles); %d is the delete's id.
const ErasedFileLine = "The file and its key were destroyed with the subject's data, by the delete of request %d."

// ErasedSince says which deletes erase a file being written: those of
// type DeleteType, in one of the statuses Done, that changed at or after
// Since (when the collect's lookup began).
type ErasedSince struct {
	Since      time.Time
	DeleteType int
	Done       []Status
}

// subjectLock is the class of the transaction-level advisory locks, one
// a subject (namespace's hash of the value), that order a delete's
// destruction of the subject's files (DropSubjectFiles) and a collect's
// completion of one (ErasedSince) on PostgreSQL: whichever commits second
// sees the other. SQLite has one writer at a time.
const subjectLock = 6370730

// lockSubjects takes the subject locks of the requests ids, in one order.
func (d *DB) lockSubjects(tx *gorm.DB, ids []int64) error {
	if d.dialect != Postgres || len(ids) == 0 {
		return nil
	}
	return tx.Exec(`SELECT count(pg_advisory_xact_lock(?, k)) FROM (SELECT DISTINCT hashtext(subject_hash) AS k
		FROM privacy_requests WHERE id IN ? AND subject_hash IS NOT NULL ORDER BY k) s`, subjectLock, ids).Error
}

// sameSubject joins a request o to the requests r of its subject: the
// same namespace and subject hash (a NULL hash matches nothing).
const sameSubject = "privacy_requests o JOIN privacy_requests r ON r.namespace_id = o.namespace_id AND r.subject_hash = o.subject_hash"

// erasedBy returns the delete that erased the subject of request id since
// e.Since, or 0.
func erasedBy(tx *gorm.DB, id int64, e *ErasedSince) (int64, error) {
	var by []int64
	err := tx.Raw(`SELECT r.id FROM `+sameSubject+`
		WHERE o.id = ? AND r.id <> o.id AND r.type = ? AND r.status IN ? AND r.last_modified >= ?
		ORDER BY r.id LIMIT 1`, id, e.DeleteType, e.Done, e.Since.UTC()).Scan(&by).Error
	if err != nil || len(by) == 0 {
		return 0, err
	}
	return by[0], nil
}

// erasedFile is a request whose file a delete (by) destroyed.
type erasedFile struct{ id, by int64 }

// dropSubjectFiles deletes the files of the other requests of the subjects
// of the deletes ids (each one's namespace and subject hash) that no
// worker holds, and returns those requests.
func dropSubjectFiles(tx *gorm.DB, ids []int64) ([]erasedFile, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var found []struct{ ID, ByID int64 }
	err := tx.Raw(`SELECT o.id AS id, min(r.id) AS by_id FROM `+sameSubject+`
		WHERE r.id IN ? AND o.id NOT IN ? AND o.claimed_by IS NULL
		AND EXISTS (SELECT 1 FROM privacy_exports e WHERE e.request_id = o.id)
		GROUP BY o.id ORDER BY o.id`, ids, ids).Scan(&found).Error
	if err != nil || len(found) == 0 {
		return nil, err
	}
	out := make([]erasedFile, len(found))
	of := make([]int64, len(found))
	for i, f := range found {
		out[i], of[i] = erasedFile{f.ID, f.ByID}, f.ID
	}
	return out, deleteExport(tx, of...)
}

// deleteExport deletes the files of the requests ids, chunks and wrapped
// keys.
func deleteExport(tx *gorm.DB, ids ...int64) error {
	if err := tx.Where("request_id IN ?", ids).Delete(&exportChunk{}).Error; err != nil {
		return err
	}
	return tx.Where("request_id IN ?", ids).Delete(&Export{}).Error
}

// AppendExportChunk stores one sealed chunk, if worker still holds the
// request (ErrLostClaim).
func (d *DB) AppendExportChunk(ctx context.Context, requestID int64, worker string, seq int, data []byte) error {
	res := d.db.WithContext(ctx).Exec("INSERT INTO privacy_export_chunks (request_id, seq, data) SELECT ?, ?, ? "+
		"WHERE EXISTS (SELECT 1 FROM privacy_requests WHERE id = ? AND claimed_by = ?)", requestID, seq, data, requestID, worker)
	if res.Error == nil && res.RowsAffected == 0 {
		return ErrLostClaim
	}
	return translate(res.Error, "Export")
}

// FindExport returns the export of a request.
func (d *DB) FindExport(ctx context.Context, requestID int64) (*Export, error) {
	var e Export
	if err := d.reader.WithContext(ctx).Where("request_id = ?", requestID).Take(&e).Error; err != nil {
		return nil, translate(err, "Export")
	}
	return &e, nil
}

// FindRequestExport reads what opening a request's file needs, in one
// statement on the readers' pool: the request's type, status,
// confirmDeletePending and purge time (the only fields of the Request
// it fills, beside ID) and its export, nil if it has none. A download's
// fixed cost: gorm's two lookups took four times as long.
func (d *DB) FindRequestExport(ctx context.Context, requestID int64) (*Request, *Export, error) {
	r := Request{ID: requestID}
	var (
		chunks     sql.Null[int]
		size       sql.Null[int64]
		complete   sql.Null[bool]
		created    sql.Null[time.Time]
		codec      sql.Null[string]
		wrappedKey []byte
	)
	err := d.readRow(ctx, `SELECT r.type, r.status, r.confirm_delete_pending, r.purged_at,
		e.wrapped_key, e.chunks, e.size, e.complete, e.created, e.codec
		FROM privacy_requests r LEFT JOIN privacy_exports e ON e.request_id = r.id WHERE r.id = ?`, []any{requestID},
		&r.Type, &r.Status, &r.ConfirmDeletePending, &r.PurgedAt, &wrappedKey, &chunks, &size, &complete, &created, &codec)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, apperr.Errorf(apperr.NotFound, "Privacy request not found.")
	}
	if err != nil {
		return nil, nil, translate(err, "Privacy request")
	}
	if !created.Valid {
		return &r, nil, nil
	}
	return &r, &Export{RequestID: requestID, WrappedKey: wrappedKey, Chunks: chunks.V, Size: size.V,
		Complete: complete.V, Created: created.V, Codec: codec.V}, nil
}

// ExportChunks calls fn with the sealed chunks seq, seq+1, … of a request,
// up to n of them, in order, in one statement on the readers' pool. A gap
// in the sequence is an error at the chunk that is not there; fewer than n
// chunks at the end is not (the caller knows how many there are). sealed
// is the driver's own memory, valid only until fn returns: fn must not
// keep it (nor any slice of it). An error returned by fn stops the scan
// and is returned as is.
func (d *DB) ExportChunks(ctx context.Context, requestID int64, seq, n int, fn func(seq int, sealed []byte) error) error {
	if d.dialect == Postgres {
		return d.exportChunksPostgres(ctx, requestID, seq, n, fn)
	}
	return d.exportChunksSQLite(ctx, requestID, seq, n, fn)
}

// chunkOrder hands fn the chunks of one read, which must come as want,
// want+1, …: a gap is an error at the chunk that is not there. Both
// stores' reads go through it.
type chunkOrder struct {
	want int
	fn   func(seq int, sealed []byte) error
}

func (o *chunkOrder) hand(seq int, sealed []byte) error {
	if seq != o.want {
		return apperr.Errorf(apperr.Internal, "The export file has a gap.")
	}
	if err := o.fn(seq, sealed); err != nil {
		return err
	}
	o.want++
	return nil
}

// exportChunksPostgres is ExportChunks on pgx's own rows: the chunk is
// the bytes pgx read off the wire, where database/sql's driver copies
// each bytea into memory of its own (garbage at the download's rate).
// A connection whose URL asks for the simple protocol gets text results:
// the chunk is then decoded from hex, a copy as before.
func (d *DB) exportChunksPostgres(ctx context.Context, requestID int64, seq, n int, fn func(seq int, sealed []byte) error) error {
	conn, err := d.readSQL.Conn(ctx)
	if err != nil {
		return translate(err, "Export chunk")
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		rows, err := dc.(*stdlib.Conn).Conn().Query(ctx,
			"SELECT seq, data FROM privacy_export_chunks WHERE request_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
			pgx.QueryResultFormats{pgx.BinaryFormatCode, pgx.BinaryFormatCode}, requestID, seq, seq+n)
		if err != nil {
			return translate(err, "Export chunk")
		}
		defer rows.Close()
		raw := len(rows.FieldDescriptions()) == 2 && rows.FieldDescriptions()[1].Format == pgx.BinaryFormatCode
		order := chunkOrder{want: seq, fn: fn}
		var (
			got    int
			sealed []byte
		)
		for rows.Next() {
			if raw {
				err = rows.Scan(&got, nil)
				sealed = rows.RawValues()[1]
			} else {
				err = rows.Scan(&got, &sealed)
			}
			if err != nil {
				return translate(err, "Export chunk")
			}
			if err := order.hand(got, sealed); err != nil {
				return err
			}
		}
		return translate(rows.Err(), "Export chunk")
	})
}

// RequestData is a row of privacy_request_data (nms:gdprRequestData): what
// the collect found in one table.
type RequestData struct {
	ID            int64
	GdprRequestID int64
	Schema        string `gorm:"column:table_name"` // "nms:broadLogRcp"
	RecordCount   int64
	Created       time.Time
}

// TableName pins the table name for gorm.
func (RequestData) TableName() string { return "privacy_request_data" }

// FindRequestData lists the per-table counts of a request.
func (d *DB) FindRequestData(ctx context.Context, requestID int64) ([]RequestData, error) {
	var out []RequestData
	err := d.reader.WithContext(ctx).Where("gdpr_request_id = ?", requestID).Order("id").Find(&out).Error
	return out, translate(err, "Request data")
}

// RequestRecords is what the workflows recorded beside a request row:
// per-table counts, coverage report, and the rows of its subject (a
// two-step delete's reviewed set; the rows a one-step delete's attempt
// found).
type RequestRecords struct {
	Counts []RequestData
	Linked []LinkedCount
	Rows   []ReviewedRow
}

// FindRequestRecords reads the records of several requests at once (a
// claim, a batch of completions), each in the order FindRequestData,
// FindLinkedCounts and FindReviewedRows give — three statements for up to
// idBatch requests.
func (d *DB) FindRequestRecords(ctx context.Context, ids []int64) (map[int64]*RequestRecords, error) {
	out := make(map[int64]*RequestRecords, len(ids))
	for _, id := range ids {
		out[id] = &RequestRecords{}
	}
	for start := 0; start < len(ids); start += idBatch {
		part := ids[start:min(start+idBatch, len(ids))]
		var c []RequestData
		if err := d.reader.WithContext(ctx).Where("gdpr_request_id IN ?", part).Order("gdpr_request_id, id").Find(&c).Error; err != nil {
			return nil, translate(err, "Request data")
		}
		for _, r := range c {
			out[r.GdprRequestID].Counts = append(out[r.GdprRequestID].Counts, r)
		}
		var l []LinkedCount
		if err := d.reader.WithContext(ctx).Where("request_id IN ?", part).Order("request_id, schema_name, link_name").Find(&l).Error; err != nil {
			return nil, translate(err, "Coverage")
		}
		for _, r := range l {
			out[r.RequestID].Linked = append(out[r.RequestID].Linked, r)
		}
		var rows []ReviewedRow
		if err := d.reader.WithContext(ctx).Where("request_id IN ?", part).Order("request_id, schema_name, row_id").Find(&rows).Error; err != nil {
			return nil, translate(err, "Reviewed row")
		}
		for _, r := range rows {
			out[r.RequestID].Rows = append(out[r.RequestID].Rows, r)
		}
	}
	return out, nil
}

// FindPurgeable returns finished requests (terminal lists the finished
// statuses) holding personal data older than before: whose export was
// created, or that were last changed, before it. A request still on its
// way is never purged: one waiting for its confirmation (its file is what
// the reviewer confirms, and past the deadline its expiry ends it first,
// reading the deleted marks of its earlier rounds that a purge would
// take), a confirmed delete waiting for its run, or one retrying (its
// value is what the delete still has to find).
func (d *DB) FindPurgeable(ctx context.Context, before time.Time, terminal []Status, limit int) ([]int64, error) {
	var ids []int64
	err := d.db.WithContext(ctx).Raw(`SELECT r.id FROM privacy_requests r
		LEFT JOIN privacy_exports e ON e.request_id = r.id
		WHERE r.purged_at IS NULL AND r.status IN ? AND (e.created < ? OR r.last_modified < ?)
		ORDER BY r.id LIMIT ?`, terminal, before.UTC(), before.UTC(), limit).Scan(&ids).Error
	return ids, translate(err, "Privacy request")
}

// ExportTables are the tables of a request's export: its wrapped key and
// its sealed chunks.
var ExportTables = []string{Export{}.TableName(), exportChunk{}.TableName()}

// PurgedRequestTables are the tables PurgeRequest deletes from or blanks a
// value in: their residue is purged after a cleanup run, as a delete's is.
var PurgedRequestTables = []string{Request{}.TableName(), Export{}.TableName(), exportChunk{}.TableName(),
	RequestData{}.TableName(), ReviewedRow{}.TableName(), LinkedCount{}.TableName()}

// PurgeRequest destroys a request's personal data: the export (and with it
// the wrapped key), the per-table counts, the reviewed set and the
// reconciliation value. The request row stays, with its status and audit.
// Only a request still in one of statuses and not purged yet is purged,
// checked in the purge's transaction (FindPurgeable's answer may be old);
// it reports whether it was.
func (d *DB) PurgeRequest(ctx context.Context, id int64, statuses []Status, auditLine string) (bool, error) {
	now := d.now().UTC()
	var purged bool
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The request's row first: on PostgreSQL its lock holds off a
		// change of status until the purge commits.
		res := tx.Model(&Request{}).Where("id = ? AND status IN ? AND purged_at IS NULL", id, statuses).Updates(map[string]any{
			"reconciliation_value": "", "purged_at": now, "dedupe_key": nil, "last_modified": now,
			"audit": gorm.Expr("audit || ?", auditText(now, auditLine)),
		})
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		purged = true
		if err := deleteExport(tx, id); err != nil {
			return err
		}
		if err := tx.Where("gdpr_request_id = ?", id).Delete(&RequestData{}).Error; err != nil {
			return err
		}
		if err := tx.Where("request_id = ?", id).Delete(&ReviewedRow{}).Error; err != nil {
			return err
		}
		if err := tx.Where("request_id = ?", id).Delete(&LinkedCount{}).Error; err != nil {
			return err
		}
		if err := markResidue(tx, now, PurgedRequestTables); err != nil {
			return err
		}
		// The chain keeps every earlier line: they hold no personal data.
		return d.appendChain(ctx, tx.Statement.ConnPool, now, []chainLine{{id, auditLine}})
	})
	if err != nil {
		return false, translate(err, "Privacy request")
	}
	return purged, nil
}

// Exclusive runs fn while holding a session-level advisory lock on
// PostgreSQL (one replica at a time); if another session holds it, fn does
// not run and ran is false. On SQLite, one process owns the file: fn runs.
func (d *DB) Exclusive(ctx context.Context, fn func() error) (ran bool, err error) {
	if d.dialect != Postgres {
		return true, fn()
	}
	err = d.db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		var got bool
		if err := conn.Raw("SELECT pg_try_advisory_lock(6370730003)").Scan(&got).Error; err != nil {
			return err
		}
		if !got {
			return nil
		}
		defer conn.Exec("SELECT pg_advisory_unlock(6370730003)")
		ran = true
		return fn()
	})
	return ran, err
}

// DeletePart is one table's share of a delete transaction.
type DeletePart struct {
	Table string
	// Schema names the rows in privacy_request_rows ("nms:recipient").
	Schema string
	IDs    []int64
	// AuditLine is the audit's line for the rows deleted (privacy's
	// words: "3 record(s) deleted in nms:broadLogRcp").
	AuditLine func(deleted int64) string
}

// DeleteOwned deletes the rows of parts and appends one audit line per
// table, in one transaction that also renews the worker's lease: the
// recorded progress can never disagree with the data. found, when not
// nil, replaces the request's recorded rows in the same transaction (a
// one-step delete's subject, recorded with its first deletes, so that an
// attempt that does not finish leaves its retry the way to rows added
// meanwhile). markDeleted marks the parts' rows deleted among the
// request's recorded rows in the same transaction (a two-step delete's
// reviewed rows: after a crash an id written again names another row,
// which the next run must not delete as reviewed). It fails with
// errLostClaim (no change) if worker no longer holds the request.
func (d *DB) DeleteOwned(ctx context.Context, requestID int64, worker string, parts []DeletePart, lease time.Duration, found []ReviewedRow, markDeleted bool) error {
	now := d.now().UTC()
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if found != nil {
			if err := d.writeRecords(tx, now, []int64{requestID}, []RequestUpdate{{Reviewed: found}}); err != nil {
				return err
			}
		}
		for _, p := range parts {
			for start := 0; markDeleted && start < len(p.IDs); start += idBatch {
				end := min(start+idBatch, len(p.IDs))
				if err := tx.Model(&ReviewedRow{}).Where("request_id = ? AND schema_name = ? AND row_id IN ?", requestID, p.Schema, p.IDs[start:end]).
					Update("deleted", true).Error; err != nil {
					return err
				}
			}
		}
		var audit strings.Builder
		var lines []chainLine
		removed := map[string]int64{}
		for _, p := range parts {
			var n int64
			for start := 0; start < len(p.IDs); start += idBatch {
				end := min(start+idBatch, len(p.IDs))
				res := tx.Exec("DELETE FROM "+quote(p.Table)+" WHERE id IN ?", p.IDs[start:end])
				if res.Error != nil {
					return refusedByForeignKey(res.Error, p.Table)
				}
				n += res.RowsAffected
			}
			removed[p.Schema] += n
			line := p.AuditLine(n)
			audit.WriteString(auditText(now, line))
			lines = append(lines, chainLine{requestID, line})
		}
		if err := markResidue(tx, now, PartTables(parts)); err != nil {
			return err
		}
		if err := countDeleted(tx, map[int64]map[string]int64{requestID: removed}); err != nil {
			return err
		}
		res := tx.Model(&Request{}).Where("id = ? AND claimed_by = ?", requestID, worker).Updates(map[string]any{
			"audit": gorm.Expr("audit || ?", audit.String()), "claimed_until": now.Add(lease), "last_modified": now,
		})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected != 1 {
			return ErrLostClaim
		}
		return d.appendChain(ctx, tx.Statement.ConnPool, now, lines)
	})
	if errors.Is(err, ErrLostClaim) {
		return err
	}
	return translate(err, "Record")
}

// HasForeignKeysInto reports whether a foreign key constraint of the
// database points into one of tables. The service declares none on the
// data model's tables; one a DBA added (from a table outside the data
// model, or naming the subject's rows through an ordinary link) may refuse
// a subject's delete, which privacy then runs as one transaction.
func (d *DB) HasForeignKeysInto(ctx context.Context, tables []string) (bool, error) {
	if len(tables) == 0 {
		return false, nil
	}
	q := `SELECT EXISTS (SELECT 1 FROM pg_constraint c JOIN pg_class t ON t.oid = c.confrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE c.contype = 'f' AND n.nspname = current_schema() AND t.relname IN ?)`
	if d.dialect == SQLite {
		// SQLite keeps the referenced table's name as the constraint
		// spells it.
		q = `SELECT EXISTS (SELECT 1 FROM sqlite_master m, pragma_foreign_key_list(m.name) f
			WHERE m.type = 'table' AND lower(f."table") IN ?)`
	}
	var held bool
	err := d.db.WithContext(ctx).Raw(q, tables).Scan(&held).Error
	return held, translate(err, "Foreign key")
}

// fkAdvice is what a foreign key's refusal of a subject's delete asks of
// the operator.
const fkAdvice = "Remove or relink the referencing rows (or give the constraint ON DELETE SET NULL), or describe their table in a custom schema, its link with revIntegrity=\"own\" if the rows are the subject's."

// refusedByForeignKey is err, met deleting rows of table, as the delete's
// fault when it is a foreign key's refusal (PostgreSQL 23503, SQLite's
// SQLITE_CONSTRAINT_FOREIGNKEY; gorm translates both): the constraint and
// the table holding it named where PostgreSQL names them (SQLite does
// not), never the key's value PostgreSQL's detail quotes. Any other error
// is returned as it is.
func refusedByForeignKey(err error, table string) error {
	var pg *pgconn.PgError
	switch {
	case errors.As(err, &pg) && pg.Code == "23503":
		return apperr.Wrap(apperr.Conflict, pgSafe(err), fmt.Sprintf("A foreign key outside the data model (constraint %s of table %s) refers to the subject's rows in %s: the delete's transaction was rolled back. %s",
			apperr.Quote(pg.ConstraintName, 64), apperr.Quote(pg.TableName, 64), table, fkAdvice))
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return apperr.Wrap(apperr.Conflict, err, fmt.Sprintf("A foreign key outside the data model refers to the subject's rows in %s: the delete's transaction was rolled back. %s", table, fkAdvice))
	}
	return err
}

// countDeleted adds, in tx, the rows the DELETEs of each request removed
// (deleted[request][schema]) to the request's per-table counts
// (privacy_request_deleted): what its receipt says was deleted. Keys in
// order, so two transactions wait for each other in one order.
func countDeleted(tx *gorm.DB, deleted map[int64]map[string]int64) error {
	var (
		vals []string
		args []any
	)
	for _, id := range slices.Sorted(maps.Keys(deleted)) {
		for _, schema := range slices.Sorted(maps.Keys(deleted[id])) {
			if n := deleted[id][schema]; n > 0 {
				vals = append(vals, "(?, ?, ?)")
				args = append(args, id, schema, n)
			}
		}
	}
	if len(vals) == 0 {
		return nil
	}
	return tx.Exec("INSERT INTO privacy_request_deleted (request_id, schema_name, deleted) VALUES "+strings.Join(vals, ", ")+
		" ON CONFLICT (request_id, schema_name) DO UPDATE SET deleted = privacy_request_deleted.deleted + excluded.deleted", args...).Error
}

// deletedCounts reads, in tx, the per-table counts of rows the requests'
// deletes removed (countDeleted).
func deletedCounts(tx *gorm.DB, ids []int64) (map[int64]map[string]int64, error) {
	var rows []struct {
		RequestID  int64
		SchemaName string
		Deleted    int64
	}
	if err := tx.Raw("SELECT request_id, schema_name, deleted FROM privacy_request_deleted WHERE request_id IN ?", ids).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := map[int64]map[string]int64{}
	for _, r := range rows {
		if out[r.RequestID] == nil {
			out[r.RequestID] = map[string]int64{}
		}
		out[r.RequestID][r.SchemaName] = r.Deleted
	}
	return out, nil
}

// PartTables returns the tables of parts, in their order.
func PartTables(parts []DeletePart) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.Table
	}
	return out
}

// ReleaseClaims gives back the requests of ids that worker still holds,
// their status unchanged: a stopped run's requests it claimed and never
// worked on, claimable at once by the next run instead of after the lease.
func (d *DB) ReleaseClaims(ctx context.Context, worker string, ids []int64) error {
	for start := 0; start < len(ids); start += idBatch {
		end := min(start+idBatch, len(ids))
		if err := d.db.WithContext(ctx).Model(&Request{}).Where("id IN ? AND claimed_by = ?", ids[start:end], worker).
			Updates(map[string]any{"claimed_by": nil, "claimed_until": nil}).Error; err != nil {
			return translate(err, "Request")
		}
	}
	return nil
}

// RenewClaims extends, to now+lease, the claims on those of ids that one of
// workers still holds: a run keeps the requests whose step is done and
// which wait for its end (the residue purge) from being taken back as a
// crashed worker's while it runs.
func (d *DB) RenewClaims(ctx context.Context, ids []int64, workers []string, lease time.Duration) error {
	until := d.now().UTC().Add(lease)
	for start := 0; start < len(ids); start += idBatch {
		end := min(start+idBatch, len(ids))
		if err := d.db.WithContext(ctx).Model(&Request{}).Where("id IN ? AND claimed_by IN ?", ids[start:end], workers).
			Update("claimed_until", until).Error; err != nil {
			return translate(err, "Request")
		}
	}
	return nil
}

// ErrLostClaim: another worker took the request over (the lease ran out).
var ErrLostClaim = errors.New("another worker took the request over")

// Hop asks for the ids of Table's rows whose Column is one of Parents.
type Hop struct {
	Tag     int // the caller's label for the answer
	Table   string
	Column  string
	Parents []int64
}

// statementParams bounds the bound values of one statement. PostgreSQL
// takes up to 65,535, and each statement more is a round trip. SQLite runs
// in process, where a statement more costs little (its earlier driver,
// glebarez/go-sqlite, also bound n values in n²/2 comparisons: 4,000
// values took longer to bind than to insert, BenchmarkInsertRows).
func (d *DB) statementParams() int {
	if d.dialect == SQLite {
		return idBatch
	}
	return 10_000
}

// hopArms turns hops into UNION ALL arms of at most idBatch values each,
// grouped into statements of at most maxParams values (statementParams).
func hopArms(hops []Hop, maxParams int, arm func(h Hop) string) (stmts [][]string, args [][]any) {
	var cur []string
	var curArgs []any
	n := 0
	for _, h := range hops {
		for start := 0; start < len(h.Parents); start += idBatch {
			end := min(start+idBatch, len(h.Parents))
			if n+end-start > maxParams && len(cur) > 0 {
				stmts, args = append(stmts, cur), append(args, curArgs)
				cur, curArgs, n = nil, nil, 0
			}
			cur = append(cur, arm(h))
			curArgs = append(curArgs, h.Parents[start:end])
			n += end - start
		}
	}
	if len(cur) > 0 {
		stmts, args = append(stmts, cur), append(args, curArgs)
	}
	return stmts, args
}

// HopRow is a row a hop found: its id, and the parent it was found by.
type HopRow struct{ Parent, ID int64 }

// FindHops answers several hops with UNION ALL statements — usually one —
// so a level of the traversal costs one round trip whatever the number of
// tables or subjects. Each arm is an indexed lookup over a link column.
func (d *DB) FindHops(ctx context.Context, hops []Hop) (map[int][]HopRow, error) {
	stmts, args := hopArms(hops, d.statementParams(), hopArm)
	out, err := hopRows(d.db.WithContext(ctx), stmts, args)
	return out, translate(err, "Record")
}

// hopArm is the arm of hop h in a FindHops statement.
func hopArm(h Hop) string {
	return fmt.Sprintf("SELECT %d AS tag, %s AS parent, id FROM %s WHERE %s IN ?", h.Tag, quote(h.Column), quote(h.Table), quote(h.Column))
}

// hopRows runs statements of arms returning (tag, parent, id) rows.
func hopRows(q *gorm.DB, stmts [][]string, args [][]any) (map[int][]HopRow, error) {
	out := map[int][]HopRow{}
	for i, arms := range stmts {
		rows, err := q.Raw(strings.Join(arms, " UNION ALL "), args[i]...).Rows()
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var tag int
			var r HopRow
			if err := rows.Scan(&tag, &r.Parent, &r.ID); err != nil {
				rows.Close()
				return nil, err
			}
			out[tag] = append(out[tag], r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CountHops counts the rows the hops would find.
func (d *DB) CountHops(ctx context.Context, hops []Hop) (int64, error) {
	stmts, args := hopArms(hops, d.statementParams(), func(h Hop) string {
		return fmt.Sprintf("SELECT COUNT(*) AS n FROM %s WHERE %s IN ?", quote(h.Table), quote(h.Column))
	})
	var total int64
	for i, arms := range stmts {
		var n int64
		err := d.db.WithContext(ctx).Raw("SELECT COALESCE(SUM(n), 0) FROM ("+strings.Join(arms, " UNION ALL ")+") counts", args[i]...).Scan(&n).Error
		if err != nil {
			return 0, translate(err, "Record")
		}
		total += n
	}
	return total, nil
}

// RewriteColumn replaces each non-NULL text value v of column by fn(v)
// where they differ, in id order and batches of idBatch rows, each batch in
// its own transaction; it returns how many rows changed. It brings data
// written before values were canonicalised into the canonical form, so
// that the subject lookup stays one indexed equality. Values pass through
// fn only, never through a log. Every row is read, from the smallest id:
// ids of zero and below are rows too (ACC's 32-bit sequence wraps to
// negative ids, and other tools insert their own).
func (d *DB) RewriteColumn(ctx context.Context, table, column string, fn func(string) string) (int64, error) {
	var changed int64
	var last *int64 // nil: the first batch, from the smallest id
	for {
		rows, err := columnBatch(d.db.WithContext(ctx), table, column, last)
		if err != nil {
			return changed, translate(err, "Record")
		}
		if len(rows) == 0 {
			return changed, nil
		}
		err = d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, r := range rows {
				nv := fn(r.Value)
				if nv == r.Value {
					continue
				}
				var v any = nv
				if nv == "" {
					v = nil // nothing left: NULL, as Write stores empty text
				}
				// The value is checked again so a concurrent Write wins.
				res := tx.Exec("UPDATE "+quote(table)+" SET "+quote(column)+" = ? WHERE id = ? AND "+quote(column)+" = ?", v, r.ID, r.Value)
				if res.Error != nil {
					return res.Error
				}
				changed += res.RowsAffected
			}
			return nil
		})
		if err != nil {
			return changed, translate(err, "Record")
		}
		last = &rows[len(rows)-1].ID
	}
}

// columnValue is a row's id and the text of one of its columns.
type columnValue struct {
	ID    int64
	Value string
}

// columnBatch reads the next idBatch non-NULL values of column after the
// id last, or from the smallest id when last is nil.
func columnBatch(db *gorm.DB, table, column string, last *int64) ([]columnValue, error) {
	var rows []columnValue
	after, args := "", []any{idBatch}
	if last != nil {
		after, args = "id > ? AND ", []any{*last, idBatch}
	}
	err := db.Raw("SELECT id, "+quote(column)+" AS value FROM "+quote(table)+
		" WHERE "+after+quote(column)+" IS NOT NULL ORDER BY id LIMIT ?", args...).Scan(&rows).Error
	return rows, err
}

// CountColumnValues counts the non-NULL text values of column for which
// fn is true, reading every row in id order and batches of idBatch on
// the readers' pool. Values pass through fn only, never through a log.
func (d *DB) CountColumnValues(ctx context.Context, table, column string, fn func(string) bool) (int64, error) {
	var n int64
	var last *int64
	for {
		rows, err := columnBatch(d.reader.WithContext(ctx), table, column, last)
		if err != nil {
			return n, translate(err, "Record")
		}
		if len(rows) == 0 {
			return n, nil
		}
		for _, r := range rows {
			if fn(r.Value) {
				n++
			}
		}
		last = &rows[len(rows)-1].ID
	}
}
