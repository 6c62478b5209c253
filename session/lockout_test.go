package session

import (
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// TestLockoutPolicy: MaxFailures failures within the window lock the
// account; a failure outside the window starts a new count; each further
// lock-out doubles, up to MaxBan (ACC's XtkSecurity_* options).
func TestLockoutPolicy(t *testing.T) {
	l := Lockout{MaxFailures: 3, Window: 10 * time.Minute, InitialBan: 5 * time.Minute, MaxBan: 15 * time.Minute}
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	var f store.LogonFailures
	fail := func(at time.Time) *time.Time {
		t.Helper()
		var locked *time.Time
		f, locked = l.failed(f, at)
		return locked
	}
	for i := range 2 {
		if locked := fail(now.Add(time.Duration(i) * time.Minute)); locked != nil {
			t.Fatalf("failure %d locked until %v", i+1, locked)
		}
	}
	if f.FailedLogons != 2 || !f.FirstFailureAt.Equal(now) {
		t.Fatalf("after two failures: %+v", f)
	}
	third := now.Add(2 * time.Minute)
	if locked := fail(third); locked == nil || !locked.Equal(third.Add(5*time.Minute)) || f.Bans != 1 || f.FailedLogons != 0 || f.FirstFailureAt != nil {
		t.Fatalf("the third failure: locked %v, %+v", locked, f)
	}

	// Failures further apart than the window never lock.
	start := third.Add(time.Hour)
	fail(start)
	fail(start.Add(time.Minute))
	if locked := fail(start.Add(11 * time.Minute)); locked != nil || f.FailedLogons != 1 {
		t.Fatalf("a failure outside the window locked (%v) or kept the count (%+v)", locked, f)
	}

	// Each further ban doubles, never beyond MaxBan.
	for _, want := range []time.Duration{10 * time.Minute, 15 * time.Minute, 15 * time.Minute} {
		at := start.Add(time.Hour)
		f.FailedLogons, f.FirstFailureAt = 0, nil
		fail(at)
		fail(at)
		if locked := fail(at); locked == nil || locked.Sub(at) != want {
			t.Fatalf("ban %d: locked until %v, want %v", f.Bans, locked, want)
		}
		start = at
	}
	if got := (Lockout{InitialBan: 20 * time.Minute, MaxBan: 15 * time.Minute}).ban(3); got != 20*time.Minute {
		t.Fatalf("a MaxBan below InitialBan: %v", got)
	}
}
