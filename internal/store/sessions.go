package store

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// Session is the server-side row behind a session token. Its ID is the
// token's jti; the row is what makes Logoff and a disabled operator take
// effect at once on every replica.
type Session struct {
	ID                string
	OperatorID        int64
	SecurityTokenHash string // SHA-256 of the security token, hex
	Created           time.Time
	Expires           time.Time
	RevokedAt         *time.Time
}

// TableName pins the table name for gorm.
func (Session) TableName() string { return "sessions" }

// sessionInsert writes a Logon's session over the operator's row as the
// logon verified it (PostgreSQL adds FOR SHARE).
const sessionInsert = `INSERT INTO sessions (id, operator_id, security_token_hash, created, expires)
		SELECT ?, id, ?, ?, ? FROM operators WHERE id = ? AND password_hash = ? AND NOT disabled`

// sessionsBeyond revokes the live sessions other than the new one, minus
// its keep-1 newest: those the newest-first list of them has after its
// first keep-1 (the partial index sessions_live holds just the live ones).
// One pass over the list, where the operator's live sessions were read
// twice (NOT IN the keep-1 newest): a session's write 10–20 % faster
// (BenchmarkLogonSession). SQLite takes an OFFSET only after a LIMIT: the
// LIMIT is math.MaxInt64.
const sessionsBeyond = `UPDATE sessions SET revoked_at = ?
		WHERE revoked_at IS NULL AND id IN (
			SELECT id FROM sessions WHERE operator_id = ? AND revoked_at IS NULL AND expires > ? AND id <> ?
			ORDER BY created DESC, id DESC LIMIT ? OFFSET ?)`

const sessionsBeyondReturning = sessionsBeyond + " RETURNING id"

// sqliteSessionStatements are a Logon's writes on SQLite, prepared once
// on the writer (the driver parses a statement run by its text at every
// run: a third of the write's CPU).
var sqliteSessionStatements = []string{sessionInsert, sessionsBeyondReturning}

// CreateSession inserts a session row and applies the open-sessions
// quota in the same write: when keep > 0, the operator's live sessions (not
// revoked, not expired) beyond its keep newest — the new one always among
// them, whatever the timestamps say (equal ones, or a clock set back) — are
// revoked and their ids returned. One statement on
// PostgreSQL, one transaction on SQLite: one commit per Logon, quota or not.
//
// The row is written only while the operator is enabled and its password
// hash is still passwordHash, the one the logon verified; otherwise the
// answer is a Conflict and nothing is written. A password change or a
// disable committed first refuses the session; one committed after it
// revokes it, as the insert holds the operator's row (FOR SHARE on
// PostgreSQL, the one writer on SQLite) until it commits.
func (d *DB) CreateSession(ctx context.Context, s *Session, passwordHash string, keep int) (revoked []string, err error) {
	s.Created = s.Created.UTC()
	s.Expires = s.Expires.UTC()
	insert := sessionInsert
	if d.dialect == Postgres {
		insert += " FOR SHARE"
	}
	args := []any{s.ID, s.SecurityTokenHash, s.Created, s.Expires, s.OperatorID, passwordHash}
	quota := []any{s.Created, s.OperatorID, s.Created, s.ID, int64(math.MaxInt64), keep - 1}
	inserted := false
	err = d.priorityWrite(ctx, func() error {
		if keep <= 0 {
			res, err := d.sql.ExecContext(ctx, d.rebind(insert), args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			inserted = n == 1
			return err
		}
		if d.dialect == Postgres {
			// The UPDATE does not see the row its WITH inserts (one
			// snapshot): it is kept without being named. The new row's
			// id comes back first, marked, when it was written.
			rows, err := d.sql.QueryContext(ctx, d.rebind("WITH new AS ("+insert+" RETURNING id), old AS ("+sessionsBeyond+
				" AND EXISTS (SELECT 1 FROM new) RETURNING id) SELECT id, true FROM new UNION ALL SELECT id, false FROM old"),
				append(args, quota...)...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				var isNew bool
				if err := rows.Scan(&id, &isNew); err != nil {
					return err
				}
				if isNew {
					inserted = true
				} else {
					revoked = append(revoked, id)
				}
			}
			return rows.Err()
		}
		d.prepareWrites(ctx, sqliteSessionStatements...)
		tx, err := d.sql.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		ins, err := d.txStmt(ctx, tx, sessionInsert)
		if err != nil {
			return err
		}
		defer ins.Close()
		res, err := ins.ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err
		}
		inserted = true
		old, err := d.txStmt(ctx, tx, sessionsBeyondReturning)
		if err != nil {
			return err
		}
		defer old.Close()
		if revoked, err = scanColumn[string](old.QueryContext(ctx, quota...)); err != nil {
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		return nil, translate(err, "Session")
	}
	if !inserted {
		return nil, apperr.Errorf(apperr.Conflict, "The operator changed during the logon.")
	}
	return revoked, nil
}

// RevokeSession marks the session revoked; revoking twice is not an error.
func (d *DB) RevokeSession(ctx context.Context, id string) error {
	res := d.db.WithContext(ctx).Model(&Session{}).Where("id = ? AND revoked_at IS NULL", id).
		Update("revoked_at", d.now().UTC())
	if res.Error != nil {
		return translate(res.Error, "Session")
	}
	return nil
}

// RevokeOperatorSessions revokes every live session of an operator (when it
// is disabled or its password changes).
func (d *DB) RevokeOperatorSessions(ctx context.Context, operatorID int64) error {
	err := d.db.WithContext(ctx).Model(&Session{}).Where("operator_id = ? AND revoked_at IS NULL", operatorID).
		Update("revoked_at", d.now().UTC()).Error
	return translate(err, "Session")
}

// DeleteExpiredSessions removes rows whose token expired before cutoff.
func (d *DB) DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	res := d.db.WithContext(ctx).Where("expires < ?", cutoff.UTC()).Delete(&Session{})
	if res.Error != nil {
		return 0, translate(res.Error, "Session")
	}
	return res.RowsAffected, nil
}

// FindSessionWithOperator returns a session row and its operator in one
// query: the check every authenticated call makes.
func (d *DB) FindSessionWithOperator(ctx context.Context, id string) (*Session, *Operator, error) {
	var (
		s  Session
		op Operator
	)
	err := d.readRow(ctx, `SELECT s.id, s.operator_id, s.security_token_hash, s.created, s.expires, s.revoked_at,
		o.login, o.rights, o.disabled
		FROM sessions s JOIN operators o ON o.id = s.operator_id WHERE s.id = ?`, []any{id},
		&s.ID, &s.OperatorID, &s.SecurityTokenHash, &s.Created, &s.Expires, &s.RevokedAt, &op.Login, &op.Rights, &op.Disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, apperr.Errorf(apperr.NotFound, "Session not found.")
	}
	if err != nil {
		return nil, nil, translate(err, "Session")
	}
	op.ID = s.OperatorID
	return &s, &op, nil
}
