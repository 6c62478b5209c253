package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// Namespace is a row of privacy_namespaces (schema nms:privacyNamespace).
type Namespace struct {
	ID                int64
	Name              string
	Label             string
	TargetSchema      string // "nms:recipient"
	ReconciliationKey string // "@email"
	AecID             int64
	MatchRule         string // canon.Exact, canon.Email or canon.Phone
	DefaultRegion     string // the phone rule's region, "US"; "" for +country only
	Canonical         int    // the canon.Version the stored field was rewritten to
	Created           time.Time
	LastModified      time.Time
}

// TableName pins the table name for gorm.
func (Namespace) TableName() string { return "privacy_namespaces" }

// Request is a row of privacy_requests (schemas nms:gdprRequest and
// nms:privacyRequest).
type Request struct {
	ID                   int64
	Name                 string
	Label                string
	NamespaceID          int64
	ReconciliationValue  string
	Type                 int
	Regulation           int
	Status               Status
	ConfirmDeletePending bool
	ConfirmDeadline      *time.Time
	URLFile              string `gorm:"column:url_file"`
	RetryCount           int
	Audit                string
	OperatorID           int64
	DedupeKey            *string // set while the request is active and deduplicated
	SubjectHash          *string // keyed hash of the canonical value (migrations 0009)
	ClaimedBy            *string // the worker holding the request
	ClaimedUntil         *time.Time
	NextAttemptAt        *time.Time
	PurgedAt             *time.Time
	Created              time.Time
	LastModified         time.Time
	// Namespace, when set on a new request, is the namespace as the
	// caller read it (from a cache): CreateRequest refuses the request
	// with ErrNamespaceChanged when the stored namespace differs in what
	// shapes the stored value (target, key, match rule, region, canon
	// version). Not a column.
	Namespace *Namespace `gorm:"-"`
}

// TableName pins the table name for gorm.
func (Request) TableName() string { return "privacy_requests" }

// ErrNamespaceChanged refuses a new request whose namespace, as its caller
// read it, is no longer what is stored: read it again and retry.
var ErrNamespaceChanged = apperr.Errorf(apperr.Conflict, "The namespace changed while the request was created; send it again.")

// ErrNamespaceRewritten stops a request's step whose lookup read a
// namespace that has changed since: a namespace update rewrites the
// stored field to the new match rule, so what the lookup found (or did not
// find) may no longer be the subject's rows. The step is retried.
var ErrNamespaceRewritten = apperr.Errorf(apperr.Conflict, "The namespace's match rule changed while the request was processed (its stored values are rewritten to the new rule); it is processed again.")

// CheckNamespace fails with ErrNamespaceRewritten unless the namespace is
// still as ns was read. A read (on SQLite's readers' pool): it takes no
// lock, which would last only its own statement. On PostgreSQL a FOR SHARE
// there wrote a row lock on the namespace at every lookup, shared by the
// concurrent workers' lookups through a MultiXact.
func (d *DB) CheckNamespace(ctx context.Context, ns *Namespace) error {
	return d.namespaceUnchanged(d.reader.WithContext(ctx), ns, false)
}

// namespaceUnchanged fails with ErrNamespaceRewritten unless the stored
// namespace is still as ns was read: the same rule, region, canon version
// and last change, and rewritten to the current canon version. With lock,
// inside a transaction on PostgreSQL, it holds the row FOR SHARE until the
// commit, so that a namespace update (which starts its rewrite only after
// its own commit) waits for the step that checked it; SQLite's writer
// lock serialises them anyway.
func (d *DB) namespaceUnchanged(tx *gorm.DB, ns *Namespace, lock bool) error {
	q := "SELECT match_rule, default_region, canonical, last_modified FROM privacy_namespaces WHERE id = ?"
	if lock && d.dialect == Postgres {
		q += " FOR SHARE"
	}
	var now Namespace
	res := tx.Raw(q, ns.ID).Scan(&now)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 || now.MatchRule != ns.MatchRule || now.DefaultRegion != ns.DefaultRegion ||
		now.Canonical != ns.Canonical || !now.LastModified.Equal(ns.LastModified) {
		return ErrNamespaceRewritten
	}
	return nil
}

// namespacesUnchanged fails with ErrNamespaceRewritten unless the
// namespaces whose target is one of schemas are exactly those read (read
// must hold all of them): none changed (namespaceUnchanged), none removed,
// and none created since they were read, whose rule the values were not
// given. On PostgreSQL it reads them FOR SHARE, which holds the rows until
// the commit and takes the table's ROW SHARE lock even when none match: a
// namespace creation (CreateNamespaceIfMissing, EXCLUSIVE) waits for this
// transaction, and its rewrite then sees these rows. SQLite's writer lock
// serialises them anyway.
func (d *DB) namespacesUnchanged(tx *gorm.DB, schemas []string, read []Namespace) error {
	if len(schemas) == 0 {
		return nil
	}
	q := "SELECT id, match_rule, default_region, canonical, last_modified FROM privacy_namespaces WHERE target_schema IN ?"
	if d.dialect == Postgres {
		q += " FOR SHARE"
	}
	var now []Namespace
	if err := tx.Raw(q, schemas).Scan(&now).Error; err != nil {
		return err
	}
	if len(now) != len(read) {
		return ErrNamespaceRewritten
	}
	for _, n := range now {
		i := slices.IndexFunc(read, func(r Namespace) bool { return r.ID == n.ID })
		if i < 0 {
			return ErrNamespaceRewritten
		}
		r := read[i]
		if n.MatchRule != r.MatchRule || n.DefaultRegion != r.DefaultRegion || n.Canonical != r.Canonical ||
			!n.LastModified.Equal(r.LastModified) {
			return ErrNamespaceRewritten
		}
	}
	return nil
}

// CreateNamespaceIfMissing inserts ns unless its name exists; it reports
// whether it inserted. On PostgreSQL the insert holds privacy_namespaces
// EXCLUSIVE until its commit: it waits for every Write in flight that
// checked the namespaces of its schemas (namespacesUnchanged), so the new
// namespace's rewrite sees their rows, and a Write that starts meanwhile
// waits for the commit and then sees the new namespace.
func (d *DB) CreateNamespaceIfMissing(ctx context.Context, ns *Namespace) (bool, error) {
	now := d.now().UTC()
	ns.Created, ns.LastModified = now, now
	var n int64
	if err := d.db.WithContext(ctx).Raw("SELECT COUNT(*) FROM privacy_namespaces WHERE name = ?", ns.Name).Scan(&n).Error; err != nil {
		return false, translate(err, "Namespace")
	} else if n > 0 {
		return false, nil // each start's seeding of the defaults: no lock
	}
	var created bool
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if d.dialect == Postgres {
			if err := tx.Exec("LOCK TABLE privacy_namespaces IN EXCLUSIVE MODE").Error; err != nil {
				return err
			}
		}
		res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}}, DoNothing: true}).Create(ns)
		created = res.RowsAffected == 1
		return res.Error
	})
	if err != nil {
		return false, translate(err, "Namespace")
	}
	return created, nil
}

// FindNamespaceByName returns the namespace with that exact internal name.
// Every CreateRequestByName reads it: one statement on the raw pool, not
// through gorm's callbacks (which cost more than the query).
func (d *DB) FindNamespaceByName(ctx context.Context, name string) (*Namespace, error) {
	var ns Namespace
	err := d.readRow(ctx, `SELECT id, name, label, target_schema, reconciliation_key, aec_id,
		match_rule, default_region, canonical, created, last_modified FROM privacy_namespaces WHERE name = ?`, []any{name},
		&ns.ID, &ns.Name, &ns.Label, &ns.TargetSchema, &ns.ReconciliationKey, &ns.AecID,
		&ns.MatchRule, &ns.DefaultRegion, &ns.Canonical, &ns.Created, &ns.LastModified)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.Errorf(apperr.NotFound, "Namespace not found.")
	}
	if err != nil {
		return nil, translate(err, "Namespace")
	}
	return &ns, nil
}

// FindNamespaceByID returns the namespace with that id.
func (d *DB) FindNamespaceByID(ctx context.Context, id int64) (*Namespace, error) {
	var ns Namespace
	if err := d.reader.WithContext(ctx).Where("id = ?", id).Take(&ns).Error; err != nil {
		return nil, translate(err, "Namespace")
	}
	return &ns, nil
}

// UpdateNamespace changes the label and match rule of the namespace named
// ns.Name.
func (d *DB) UpdateNamespace(ctx context.Context, ns *Namespace) error {
	res := d.db.WithContext(ctx).Model(&Namespace{}).Where("name = ?", ns.Name).Updates(map[string]any{
		"label": ns.Label, "match_rule": ns.MatchRule, "default_region": ns.DefaultRegion, "canonical": ns.Canonical,
		"last_modified": d.now().UTC()})
	if res.Error != nil {
		return translate(res.Error, "Namespace")
	}
	if res.RowsAffected == 0 {
		return apperr.Errorf(apperr.NotFound, "The namespace does not exist.")
	}
	return nil
}

// SetNamespaceCanonical records that the namespace's field was rewritten
// to canon version v.
func (d *DB) SetNamespaceCanonical(ctx context.Context, id int64, v int) error {
	err := d.db.WithContext(ctx).Model(&Namespace{}).Where("id = ?", id).Update("canonical", v).Error
	return translate(err, "Namespace")
}

// FillSubjectHashes gives each request without a subject hash (made before
// migration 0009, which added the column empty) whose value is still held
// (not purged) the hash fn computes from its namespace and value; fn's ok
// false leaves the request as it is. It goes by id in batches, each
// written in one transaction; the hash is set only where it is still
// missing (replicas starting together). It returns how many it filled.
// Values pass through fn only, never through a log.
func (d *DB) FillSubjectHashes(ctx context.Context, fn func(namespaceID int64, value string) (hash string, ok bool)) (int64, error) {
	return d.setSubjectHashes(ctx, "subject_hash IS NULL", nil, fn)
}

// RehashSubjects gives every request of a namespace whose value is still
// held the hash fn computes: the namespace's rule (or the canonical form's
// version) changed, and the hash of a value in the old form would not
// find its requests (the DPO's search, a delete destroying the subject's
// other files). A request purged before keeps its hash.
func (d *DB) RehashSubjects(ctx context.Context, namespaceID int64, fn func(namespaceID int64, value string) (hash string, ok bool)) (int64, error) {
	return d.setSubjectHashes(ctx, "namespace_id = ?", []any{namespaceID}, fn)
}

// setSubjectHashes is FillSubjectHashes and RehashSubjects over the
// requests where scope holds.
func (d *DB) setSubjectHashes(ctx context.Context, scope string, args []any, fn func(namespaceID int64, value string) (hash string, ok bool)) (int64, error) {
	var filled, last int64
	for {
		var rows []Request
		err := d.db.WithContext(ctx).Select("id", "namespace_id", "reconciliation_value", "subject_hash").
			Where("id > ? AND purged_at IS NULL AND reconciliation_value <> ''", last).Where(scope, args...).
			Order("id").Limit(idBatch).Find(&rows).Error
		if err != nil || len(rows) == 0 {
			return filled, translate(err, "Privacy request")
		}
		err = d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, r := range rows {
				h, ok := fn(r.NamespaceID, r.ReconciliationValue)
				if !ok || r.SubjectHash != nil && *r.SubjectHash == h {
					continue
				}
				// Only over the hash read: a replica starting together, or
				// a request's own create, may have set it meanwhile.
				q, qa := "UPDATE privacy_requests SET subject_hash = ? WHERE id = ? AND subject_hash IS NULL", []any{h, r.ID}
				if r.SubjectHash != nil {
					q, qa = "UPDATE privacy_requests SET subject_hash = ? WHERE id = ? AND subject_hash = ?", []any{h, r.ID, *r.SubjectHash}
				}
				res := tx.Exec(q, qa...)
				if res.Error != nil {
					return res.Error
				}
				filled += res.RowsAffected
			}
			return nil
		})
		if err != nil {
			return filled, translate(err, "Privacy request")
		}
		last = rows[len(rows)-1].ID
	}
}

// FindNamespaces lists every namespace by id.
func (d *DB) FindNamespaces(ctx context.Context) ([]Namespace, error) {
	var out []Namespace
	err := d.reader.WithContext(ctx).Order("id").Find(&out).Error
	return out, translate(err, "Namespace")
}

// FindRequestByID returns the request with that id.
func (d *DB) FindRequestByID(ctx context.Context, id int64) (*Request, error) {
	var r Request
	if err := d.reader.WithContext(ctx).Where("id = ?", id).Take(&r).Error; err != nil {
		return nil, translate(err, "Privacy request")
	}
	return &r, nil
}

// ConfirmDeleteRequest moves a request from confirmPending to deletePending
// if its confirm deadline has not passed. With a round (the confirm
// deadline as read from this store), only that review round is confirmed:
// a request sent back for review since has a new deadline.
func (d *DB) ConfirmDeleteRequest(ctx context.Context, id int64, round *time.Time, confirmPending, deletePending Status, auditLine string) (bool, error) {
	now := d.now().UTC()
	var moved bool
	err := d.chainTx(ctx, now, func(tx *gorm.DB, lines *[]chainLine) error {
		q := tx.Model(&Request{}).
			// Not claimed: a request the expiry has claimed (ClaimExpiredRounds)
			// is being ended, whatever the confirmation's clock says.
			Where("id = ? AND status = ? AND confirm_deadline IS NOT NULL AND confirm_deadline > ? AND claimed_by IS NULL", id, confirmPending, now)
		if round != nil {
			// Exact equality: the round was read from this column, and
			// is written back as it was stored (SQLite's time text with
			// its nanoseconds, PostgreSQL's microseconds), in UTC as
			// every time here is.
			q = q.Where("confirm_deadline = ?", round.UTC())
		}
		res := q.Updates(map[string]any{
			"status":        deletePending,
			"retry_count":   0, // the confirmed delete's attempts are its own
			"last_modified": now,
			"audit":         gorm.Expr("audit || ?", auditText(now, auditLine)),
		})
		if res.Error != nil {
			return res.Error
		}
		if moved = res.RowsAffected == 1; moved {
			*lines = append(*lines, chainLine{id, auditLine})
		}
		return nil
	})
	if err != nil {
		return false, translate(err, "Privacy request")
	}
	return moved, nil
}

// auditText is one audit line as stored: the ACC datetime (UTC), text,
// newline. The words are the caller's (privacy's); the store only keeps
// them, timestamped, in the request's audit and its chain.
func auditText(t time.Time, line string) string {
	return schemas.FormatDateTime(t) + " " + line + "\n"
}

// Status is a request's status as stored. Its names, labels and meaning
// are privacy's (privacy.Status, read from nms:gdprRequest); the store only
// stores and compares the code.
type Status int

// RequestFilter selects requests for a list.
type RequestFilter struct {
	Status     *Status
	Type       *int
	Regulation *int
	// CreatedFrom and CreatedBefore bound the creation time (zero: open).
	CreatedFrom, CreatedBefore time.Time
	// SubjectHashes, when not nil, keeps the requests about one person:
	// the keyed hashes of the value under each namespace's rule. An empty
	// non-nil list matches nothing.
	SubjectHashes []string
	Limit         int
	Offset        int
}

// FindRequests lists requests, newest first, with the total that match.
func (d *DB) FindRequests(ctx context.Context, f RequestFilter) ([]Request, int64, error) {
	q := d.reader.WithContext(ctx).Model(&Request{})
	if f.Status != nil {
		q = q.Where("status = ?", *f.Status)
	}
	if f.Type != nil {
		q = q.Where("type = ?", *f.Type)
	}
	if f.Regulation != nil {
		q = q.Where("regulation = ?", *f.Regulation)
	}
	if !f.CreatedFrom.IsZero() {
		q = q.Where("created >= ?", f.CreatedFrom.UTC())
	}
	if !f.CreatedBefore.IsZero() {
		q = q.Where("created < ?", f.CreatedBefore.UTC())
	}
	if f.SubjectHashes != nil {
		if len(f.SubjectHashes) == 0 {
			return nil, 0, nil
		}
		q = q.Where("subject_hash IN ?", f.SubjectHashes)
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, translate(err, "Privacy request")
	}
	var out []Request
	err := q.Order("id DESC").Limit(f.Limit).Offset(f.Offset).Find(&out).Error
	return out, total, translate(err, "Privacy request")
}

// AppendAuditAll adds the same line to the audit of each of ids (the
// requests a workflow run worked on), idBatch requests a transaction. An
// id with no request is skipped.
func (d *DB) AppendAuditAll(ctx context.Context, ids []int64, line string) error {
	for chunk := range slices.Chunk(ids, idBatch) {
		now := d.now().UTC()
		err := d.chainTx(ctx, now, func(tx *gorm.DB, lines *[]chainLine) error {
			var found []int64
			err := tx.Raw("UPDATE privacy_requests SET audit = audit || ? WHERE id IN ? RETURNING id", auditText(now, line), chunk).Scan(&found).Error
			slices.Sort(found)
			for _, id := range found {
				*lines = append(*lines, chainLine{id, line})
			}
			return err
		})
		if err != nil {
			return translate(err, "Privacy request")
		}
	}
	return nil
}

// AppendAudit adds a line to a request's audit.
func (d *DB) AppendAudit(ctx context.Context, id int64, line string) error {
	now := d.now().UTC()
	found := false
	err := d.chainTx(ctx, now, func(tx *gorm.DB, lines *[]chainLine) error {
		res := tx.Model(&Request{}).Where("id = ?", id).
			Update("audit", gorm.Expr("audit || ?", auditText(now, line)))
		if res.Error != nil {
			return res.Error
		}
		if found = res.RowsAffected > 0; found {
			*lines = append(*lines, chainLine{id, line})
		}
		return nil
	})
	if err != nil {
		return translate(err, "Privacy request")
	}
	if !found {
		return apperr.Errorf(apperr.NotFound, "Privacy request not found.")
	}
	return nil
}
