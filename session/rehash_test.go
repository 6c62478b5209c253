package session_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestRehashOnLogon (security-bar.md #42): a password stored with weaker
// argon2id parameters (an older release's) still logs on, and the logon
// stores it again under the current ones, with a new salt.
func TestRehashOnLogon(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", nil)
	s, err := session.New(db, session.Config{Key: []byte("replica-shared-signing-key-of-32-bytes")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperator(ctx, "ana", "placeholder", []string{session.RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	salt := []byte("sixteen byte slt")
	b64 := base64.RawStdEncoding.EncodeToString
	weak := fmt.Sprintf("$argon2id$v=19$m=8192,t=1,p=1$%s$%s", b64(salt), b64(argon2.IDKey([]byte("correct horse"), salt, 1, 8192, 1, 32)))
	if err := db.UpdateOperator(ctx, "ana", store.OperatorUpdate{PasswordHash: &weak}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Logon(ctx, "ana", "correct horse", ""); err != nil {
		t.Fatalf("a password under older parameters does not log on: %v", err)
	}
	op, err := db.FindOperatorByLogin(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(op.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(op.PasswordHash, b64(salt)) {
		t.Fatalf("not rehashed under the current parameters: %s", op.PasswordHash[:40])
	}
	if _, err := s.Logon(ctx, "ana", "correct horse", ""); err != nil {
		t.Fatalf("logon after the rehash: %v", err)
	}
}
