package session_test

import (
	"context"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestClockJumps (security-bar.md #105): token expiry follows the server's
// clock plus the 30 s leeway. A jump forward past the 24 h lifetime ends
// the session; a jump back makes a token look issued in the future, which
// is refused until the clock catches up (less the leeway) — the session is
// not lost, and nothing is accepted that the right clock would refuse.
func TestClockJumps(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, "sqlite", clock.Now)
	s, err := session.New(db, session.Config{Key: []byte("replica-shared-signing-key-of-32-bytes"), Now: clock.Now, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperator(ctx, "ana", "correct horse", []string{session.RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	logon := func() session.Credentials {
		tok, err := s.Logon(ctx, "ana", "correct horse", "")
		if err != nil {
			t.Fatal(err)
		}
		return session.Credentials{SessionToken: tok.SessionToken}
	}
	valid := func(c session.Credentials) bool {
		_, err := s.Authenticate(ctx, c)
		if err != nil && apperr.CodeOf(err) != apperr.BadSession {
			t.Fatal(err)
		}
		return err == nil
	}

	before := logon()
	clock.Advance(25 * time.Hour)
	if valid(before) {
		t.Fatal("a session survives a jump of 25 h past its 24 h lifetime")
	}

	now := logon()
	clock.Advance(-time.Hour)
	if valid(now) {
		t.Fatal("a token issued an hour ahead of the clock is accepted")
	}
	clock.Advance(time.Hour - 20*time.Second) // within the leeway of its issue time
	if !valid(now) {
		t.Fatal("the session is lost once the clock is back within the leeway")
	}
}
