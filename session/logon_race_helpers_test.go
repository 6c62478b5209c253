package session

import (
	"github.com/campaign-privacy/campaign-privacy/internal/argon2"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

func argon2IDKeyForTest(password string, salt []byte) []byte {
	return argon2.IDKey([]byte(password), salt, 1, 8192, 1, 32)
}

func storeUpdateHash(h string) store.OperatorUpdate { return store.OperatorUpdate{PasswordHash: &h} }
