package session

import (
	"context"
	"sync"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestLogoffBeatsAStaleCacheFill: a call that read a session row before a
// Logoff (or before its operator was disabled) and stores it in the cache
// after Logoff forgot the session must not put the stale, not revoked row
// back: Logoff takes effect at once on the replica that did it
// (SECURITY.md), not a second later.
func TestLogoffBeatsAStaleCacheFill(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			for _, end := range []struct {
				name string
				do   func(ctx context.Context, s *Service, c *Caller) error
			}{
				{"logoff", func(ctx context.Context, s *Service, c *Caller) error { return s.Logoff(ctx, c) }},
				{"operator disabled", func(ctx context.Context, s *Service, _ *Caller) error { return s.DisableOperator(ctx, "ana") }},
			} {
				t.Run(end.name, func(t *testing.T) {
					ctx := context.Background()
					clock := storetest.NewClock()
					db := storetest.Open(t, dialect, clock.Now)
					s, err := New(db, Config{Key: []byte("replica-shared-signing-key-of-32-bytes"), Now: clock.Now})
					if err != nil {
						t.Fatal(err)
					}
					if err := s.CreateOperator(ctx, "ana", "correct horse", []string{RightPrivacy}); err != nil {
						t.Fatal(err)
					}
					tok, err := s.Logon(ctx, "ana", "correct horse", "")
					if err != nil {
						t.Fatal(err)
					}
					cred := Credentials{SessionToken: tok.SessionToken}
					// The first check reads the row, then waits here until the
					// session has ended.
					read, ended := make(chan struct{}), make(chan struct{})
					var once sync.Once
					s.sessionRead = func() {
						once.Do(func() {
							close(read)
							<-ended
						})
					}
					done := make(chan error, 1)
					go func() {
						_, err := s.Authenticate(ctx, cred)
						done <- err
					}()
					<-read
					if err := end.do(ctx, s, tok.Caller); err != nil {
						t.Fatal(err)
					}
					close(ended)
					if err := <-done; err != nil {
						t.Logf("the check under way: %v", err) // either answer is right for a call that overlapped
					}
					if _, err := s.Authenticate(ctx, cred); apperr.CodeOf(err) != apperr.BadSession {
						t.Fatalf("after the session ended, the replica that ended it still accepts its token (err %v)", err)
					}
				})
			}
		})
	}
}
