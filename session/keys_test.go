package session_test

import (
	"context"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestSigningKeyRotation (security-bar.md #60): after a rotation, tokens
// signed with the previous key still verify until they expire; once that
// key is retired they are refused; a token naming an unknown key is
// refused even if its signature matches the current key.
func TestSigningKeyRotation(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			oldKey := []byte("the-old-signing-key-of-32-bytes!!")
			newKey := []byte("the-new-signing-key-of-32-bytes!!")
			cfg := session.Config{Key: oldKey, Now: clock.Now, CacheTTL: -1}
			before, err := session.New(db, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := before.CreateOperator(ctx, "ana", "correct horse", []string{session.RightPrivacy}); err != nil {
				t.Fatal(err)
			}
			old, err := before.Logon(ctx, "ana", "correct horse", "")
			if err != nil {
				t.Fatal(err)
			}
			header, _, _ := strings.Cut(old.SessionToken, ".")
			parsed, _, err := jwt.NewParser().ParseUnverified(old.SessionToken, &jwt.RegisteredClaims{})
			if err != nil || parsed.Header["kid"] == nil || parsed.Header["kid"] == "" {
				t.Fatalf("token header %s has no kid (%v)", header, err)
			}

			cfg.Key, cfg.PreviousKeys = newKey, [][]byte{oldKey}
			rotated, err := session.New(db, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := rotated.Authenticate(ctx, session.Credentials{SessionToken: old.SessionToken}); err != nil {
				t.Fatalf("a token of the previous key is refused after the rotation: %v", err)
			}
			fresh, err := rotated.Logon(ctx, "ana", "correct horse", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := before.Authenticate(ctx, session.Credentials{SessionToken: fresh.SessionToken}); apperr.CodeOf(err) != apperr.BadSession {
				t.Fatalf("a replica without the new key accepts its tokens: %v", err)
			}

			cfg.PreviousKeys = nil
			retired, err := session.New(db, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := retired.Authenticate(ctx, session.Credentials{SessionToken: old.SessionToken}); apperr.CodeOf(err) != apperr.BadSession {
				t.Fatalf("a token of a retired key is accepted: %v", err)
			}
			if _, err := retired.Authenticate(ctx, session.Credentials{SessionToken: fresh.SessionToken}); err != nil {
				t.Fatalf("a token of the current key is refused: %v", err)
			}

			// The current key's signature under a kid the service does not know.
			var claims jwt.RegisteredClaims
			if _, _, err := jwt.NewParser().ParseUnverified(fresh.SessionToken, &claims); err != nil {
				t.Fatal(err)
			}
			forged := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
			forged.Header["kid"] = "not-a-key"
			tok, err := forged.SignedString(newKey)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := retired.Authenticate(ctx, session.Credentials{SessionToken: tok}); apperr.CodeOf(err) != apperr.BadSession {
				t.Fatalf("a token naming an unknown key is accepted: %v", err)
			}
		})
	}
}
