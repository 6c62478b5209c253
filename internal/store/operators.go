package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// Operator is a row of the operators table: someone who may log on.
type Operator struct {
	ID             int64
	Login          string
	PasswordHash   string
	Rights         string // named rights, space-separated ("admin", "privacyRight")
	Disabled       bool
	FailedLogons   int
	FirstFailureAt *time.Time
	LockedUntil    *time.Time
	Bans           int // lock-outs since the last successful logon or unlock
	Created        time.Time
	LastModified   time.Time
}

// TableName pins the table name for gorm.
func (Operator) TableName() string { return "operators" }

// CreateOperator inserts op; a duplicate login is a Conflict.
func (d *DB) CreateOperator(ctx context.Context, op *Operator) error {
	now := d.now().UTC()
	op.Created, op.LastModified = now, now
	return translate(d.db.WithContext(ctx).Create(op).Error, "Operator")
}

// CreateOperatorIfMissing inserts op unless an operator with its login
// exists; it reports whether it inserted. Safe for replicas starting at once.
func (d *DB) CreateOperatorIfMissing(ctx context.Context, op *Operator) (bool, error) {
	now := d.now().UTC()
	op.Created, op.LastModified = now, now
	res := d.db.WithContext(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "login"}}, DoNothing: true}).Create(op)
	if res.Error != nil {
		return false, translate(res.Error, "Operator")
	}
	return res.RowsAffected == 1, nil
}

// FindOperatorByLogin returns the operator with that exact login.
func (d *DB) FindOperatorByLogin(ctx context.Context, login string) (*Operator, error) {
	return d.findOperator(ctx, "login", login)
}

// FindOperatorByID returns the operator with that id.
func (d *DB) FindOperatorByID(ctx context.Context, id int64) (*Operator, error) {
	return d.findOperator(ctx, "id", id)
}

// findOperator reads the operator whose column (login or id) is value, on
// the readers' pool without gorm: a Logon reads its operator twice, and
// gorm's statement building was half of each read.
func (d *DB) findOperator(ctx context.Context, column string, value any) (*Operator, error) {
	var op Operator
	err := d.readRow(ctx, `SELECT id, login, password_hash, rights, disabled, failed_logons, first_failure_at, locked_until, bans, created, last_modified
		FROM operators WHERE `+column+` = ?`, []any{value},
		&op.ID, &op.Login, &op.PasswordHash, &op.Rights, &op.Disabled, &op.FailedLogons, &op.FirstFailureAt, &op.LockedUntil, &op.Bans, &op.Created, &op.LastModified)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apperr.Errorf(apperr.NotFound, "Operator not found.")
	}
	if err != nil {
		return nil, translate(err, "Operator")
	}
	return &op, nil
}

// FindOperators lists every operator by login.
func (d *DB) FindOperators(ctx context.Context) ([]Operator, error) {
	var ops []Operator
	err := d.reader.WithContext(ctx).Order("login").Find(&ops).Error
	return ops, translate(err, "Operator")
}

// OperatorUpdate lists the fields UpdateOperator may change; nil means keep.
type OperatorUpdate struct {
	PasswordHash *string
	Rights       *string
	Disabled     *bool
	// IfPasswordHash, when set, updates only while the stored hash is this
	// one (a rehash at logon must not undo a password change).
	IfPasswordHash *string
}

// UpdateOperator changes the given fields of the operator with that login.
func (d *DB) UpdateOperator(ctx context.Context, login string, upd OperatorUpdate) error {
	fields := map[string]any{"last_modified": d.now().UTC()}
	if upd.PasswordHash != nil {
		fields["password_hash"] = *upd.PasswordHash
	}
	if upd.Rights != nil {
		fields["rights"] = *upd.Rights
	}
	if upd.Disabled != nil {
		fields["disabled"] = *upd.Disabled
	}
	q := d.db.WithContext(ctx).Model(&Operator{}).Where("login = ?", login)
	if upd.IfPasswordHash != nil {
		q = q.Where("password_hash = ?", *upd.IfPasswordHash)
	}
	res := q.Updates(fields)
	if res.Error != nil {
		return translate(res.Error, "Operator")
	}
	if res.RowsAffected == 0 {
		return apperr.Errorf(apperr.NotFound, "Operator not found.")
	}
	return nil
}

// LogonFailures are an operator's failed-logon counts: what the lock-out
// policy (session.Lockout) reads and decides on.
type LogonFailures struct {
	FailedLogons   int        // in the current window
	FirstFailureAt *time.Time // the window's start; nil: no count running
	LockedUntil    *time.Time
	Bans           int // lock-outs since the last successful logon or unlock
}

// UpdateLogonFailures reads the operator's failure counts, lets policy
// decide the next ones at the store's now, and writes them. It runs in one
// transaction with the row locked (on PostgreSQL), so replicas count
// together.
// A logon's write: it goes ahead of bulk writes (writegate.go).
func (d *DB) UpdateLogonFailures(ctx context.Context, id int64, policy func(f LogonFailures, now time.Time) LogonFailures) error {
	return d.priorityWrite(ctx, func() error { return d.updateLogonFailures(ctx, id, policy) })
}

func (d *DB) updateLogonFailures(ctx context.Context, id int64, policy func(f LogonFailures, now time.Time) LogonFailures) error {
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var op Operator
		q := tx.Where("id = ?", id)
		if d.dialect == Postgres {
			q = q.Clauses(clause.Locking{Strength: "UPDATE"})
		}
		if err := q.Take(&op).Error; err != nil {
			return err
		}
		f := policy(LogonFailures{FailedLogons: op.FailedLogons, FirstFailureAt: op.FirstFailureAt,
			LockedUntil: op.LockedUntil, Bans: op.Bans}, d.now().UTC())
		return tx.Model(&Operator{}).Where("id = ?", id).Updates(map[string]any{
			"failed_logons": f.FailedLogons, "first_failure_at": f.FirstFailureAt, "locked_until": f.LockedUntil,
			"bans": f.Bans,
		}).Error
	})
	return translate(err, "Operator")
}

// ResetLogonFailures clears the failure count and any lock (after a
// successful logon, or an administrator's unlock).
func (d *DB) ResetLogonFailures(ctx context.Context, id int64) error {
	return d.priorityWrite(ctx, func() error {
		err := d.db.WithContext(ctx).Model(&Operator{}).Where("id = ?", id).Updates(map[string]any{
			"failed_logons": 0, "first_failure_at": nil, "locked_until": nil, "bans": 0,
		}).Error
		return translate(err, "Operator")
	})
}
