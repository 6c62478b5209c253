package store

import (
	"context"
	"database/sql"
	"errors"
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

// CreateSession inserts a session row.
func (d *DB) CreateSession(ctx context.Context, s *Session) error {
	s.Created = s.Created.UTC()
	s.Expires = s.Expires.UTC()
	return d.priorityWrite(ctx, func() error { return translate(d.db.WithContext(ctx).Create(s).Error, "Session") })
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
	err := d.readSQL.QueryRowContext(ctx, d.rebind(`SELECT s.id, s.operator_id, s.security_token_hash, s.created, s.expires, s.revoked_at,
		o.login, o.rights, o.disabled
		FROM sessions s JOIN operators o ON o.id = s.operator_id WHERE s.id = ?`), id).
		Scan(&s.ID, &s.OperatorID, &s.SecurityTokenHash, &s.Created, &s.Expires, &s.RevokedAt, &op.Login, &op.Rights, &op.Disabled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, apperr.Errorf(apperr.NotFound, "Session not found.")
	}
	if err != nil {
		return nil, nil, translate(err, "Session")
	}
	op.ID = s.OperatorID
	return &s, &op, nil
}

// RevokeSessionsBeyond revokes the live sessions of an operator (not
// revoked, not expired at now) other than its keep newest ones, and returns
// the ids it revoked: the open-sessions quota, applied after a Logon.
// kept, the session that Logon just issued, is always one of those kept,
// whatever the timestamps say (equal ones, or a clock set back).
func (d *DB) RevokeSessionsBeyond(ctx context.Context, operatorID int64, keep int, kept string, now time.Time) ([]string, error) {
	now = now.UTC()
	// The count is a read (on SQLite's readers' pool): a logon does not
	// queue behind writers for it. It sees the caller's own session, which
	// was committed before.
	var live int64
	if err := d.reader.WithContext(ctx).Model(&Session{}).
		Where("operator_id = ? AND revoked_at IS NULL AND expires > ?", operatorID, now).Count(&live).Error; err != nil {
		return nil, translate(err, "Session")
	}
	if live <= int64(keep) {
		return nil, nil // the usual case: a read, no write
	}
	var ids []string
	err := d.db.WithContext(ctx).Raw(`UPDATE sessions SET revoked_at = ?
		WHERE operator_id = ? AND revoked_at IS NULL AND expires > ? AND id <> ? AND id NOT IN (
			SELECT id FROM sessions WHERE operator_id = ? AND revoked_at IS NULL AND expires > ? AND id <> ?
			ORDER BY created DESC, id DESC LIMIT ?)
		RETURNING id`, now, operatorID, now, kept, operatorID, now, kept, keep-1).Scan(&ids).Error
	if err != nil {
		return nil, translate(err, "Session")
	}
	return ids, nil
}
