package session_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestRevocationAcrossReplicas: a Logoff on one replica is honoured at once
// there, and by another replica that had the session cached within the
// cache's second.
func TestRevocationAcrossReplicas(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			cfg := session.Config{Key: []byte("replica-shared-signing-key-of-32-bytes"), Now: clock.Now}
			a, _ := session.New(db, cfg)
			b, _ := session.New(db, cfg)
			if err := a.CreateOperator(ctx, "ana", "correct horse", []string{session.RightPrivacy}); err != nil {
				t.Fatal(err)
			}
			tok, err := a.Logon(ctx, "ana", "correct horse", "")
			if err != nil {
				t.Fatal(err)
			}
			cred := session.Credentials{SessionToken: tok.SessionToken}
			if _, err := a.Authenticate(ctx, cred); err != nil {
				t.Fatal(err)
			}
			caller, err := b.Authenticate(ctx, cred)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Logoff(ctx, caller); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Authenticate(ctx, cred); apperr.CodeOf(err) != apperr.BadSession {
				t.Fatal("the replica that logged off still accepts the token")
			}
			clock.Advance(1100 * time.Millisecond)
			if _, err := a.Authenticate(ctx, cred); apperr.CodeOf(err) != apperr.BadSession {
				t.Fatal("another replica accepts a logged-off token after the cache's second")
			}
			// Disabling an operator ends its sessions on the replica at once.
			tok2, _ := a.Logon(ctx, "ana", "correct horse", "")
			cred2 := session.Credentials{SessionToken: tok2.SessionToken}
			if _, err := a.Authenticate(ctx, cred2); err != nil {
				t.Fatal(err)
			}
			if err := a.DisableOperator(ctx, "ana"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Authenticate(ctx, cred2); apperr.CodeOf(err) != apperr.BadSession {
				t.Fatal("a disabled operator's session is still accepted")
			}
		})
	}
}

// TestCachesForgetExpired: the in-memory caches keep only what is still
// fresh — a replica that has seen many sessions does not hold one entry
// per session for ever.
func TestCachesForgetExpired(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, "sqlite", clock.Now)
	s, err := session.New(db, session.Config{Key: []byte("replica-shared-signing-key-of-32-bytes"), Now: clock.Now, HashSlots: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperator(ctx, "ana", "correct horse", []string{session.RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	var creds []session.Credentials
	for i := 0; i < 5; i++ {
		tok, err := s.Logon(ctx, "ana", "correct horse", "")
		if err != nil {
			t.Fatal(err)
		}
		creds = append(creds, session.Credentials{SessionToken: tok.SessionToken})
	}
	for i := 0; i < 3; i++ {
		s.Logon(ctx, "nobody", "wrong", "192.0.2."+strconv.Itoa(i))
	}
	for _, c := range creds {
		if _, err := s.Authenticate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if n, m, a := s.CachedForTest(); n != 5 || m != 5 || a != 3 {
		t.Fatalf("cached %d sessions, %d tokens, %d addresses; want 5, 5, 3", n, m, a)
	}
	clock.Advance(2 * time.Minute)
	if _, err := s.Authenticate(ctx, creds[0]); err != nil {
		t.Fatal(err)
	}
	if n, m, a := s.CachedForTest(); n != 1 || m != 1 || a != 0 {
		t.Fatalf("after they expired: %d sessions, %d tokens, %d addresses cached; want 1, 1, 0", n, m, a)
	}
}
