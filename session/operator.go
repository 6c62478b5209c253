package session

import (
	"context"
	"strings"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// Operator is someone who may log on (xtk:operator), as the command line
// lists it. The password hash stays with the session service and its store.
type Operator struct {
	ID          int64
	Login       string
	Rights      []string   // named rights: RightAdmin, RightPrivacy
	Disabled    bool       // may not log on
	LockedUntil *time.Time // a logon lock-out, when one was ever set
	Created     time.Time
	// LastModified is when the login, rights or state last changed.
	LastModified time.Time
}

// operatorOf maps a stored operator to the domain type.
func operatorOf(op *store.Operator) Operator {
	return Operator{ID: op.ID, Login: op.Login, Rights: strings.Fields(op.Rights), Disabled: op.Disabled,
		LockedUntil: op.LockedUntil, Created: op.Created, LastModified: op.LastModified}
}

// Operators lists every operator, by login.
func (s *Service) Operators(ctx context.Context) ([]Operator, error) {
	rows, err := s.db.FindOperators(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Operator, len(rows))
	for i := range rows {
		out[i] = operatorOf(&rows[i])
	}
	return out, nil
}

// Lockout is the lock-out policy: MaxFailures failed logons within Window
// lock the account for InitialBan, each further lock-out before a
// successful logon (or an unlock) for twice the previous one, at most
// MaxBan. The store keeps the counts; this decides what they mean.
type Lockout struct {
	MaxFailures        int
	Window             time.Duration
	InitialBan, MaxBan time.Duration
}

// ban is the length of the account's next lock-out after bans earlier ones.
func (l Lockout) ban(bans int) time.Duration {
	d := l.InitialBan
	for range bans {
		if d >= l.MaxBan {
			break
		}
		d *= 2
	}
	return min(d, max(l.MaxBan, l.InitialBan))
}

// failed applies one failed logon at now to an account's counts: a failure
// outside the window that started at the first one starts a new count; the
// MaxFailures-th locks the account. locked is the lock's end when this
// failure locked it.
func (l Lockout) failed(f store.LogonFailures, now time.Time) (next store.LogonFailures, locked *time.Time) {
	if f.FirstFailureAt == nil || now.Sub(*f.FirstFailureAt) > l.Window {
		f.FailedLogons, f.FirstFailureAt = 0, &now
	}
	f.FailedLogons++
	if f.FailedLogons >= l.MaxFailures {
		until := now.Add(l.ban(f.Bans))
		locked = &until
		f.LockedUntil = &until
		f.FailedLogons, f.FirstFailureAt = 0, nil
		f.Bans++
	}
	return f, locked
}

// recordFailure counts a failed logon of the operator under the policy, in
// one store transaction with the row locked, so replicas count together.
// It returns the lock's end when the account is now locked.
func (s *Service) recordFailure(ctx context.Context, id int64) (*time.Time, error) {
	var locked *time.Time
	err := s.db.UpdateLogonFailures(ctx, id, func(f store.LogonFailures, now time.Time) store.LogonFailures {
		f, locked = s.cfg.Lockout.failed(f, now)
		return f
	})
	if err != nil {
		return nil, err
	}
	return locked, nil
}
