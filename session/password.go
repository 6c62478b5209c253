package session

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// Argon2id parameters: OWASP's first recommended set (m=19 MiB, t=2, p=1).
// Each hash in flight holds 19 MiB, hence the bounded hasher below.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16

	// MaxPasswordBytes bounds the input before any hashing work.
	MaxPasswordBytes = 1024
)

// hasher runs argon2id with a bounded number of hashes in flight, so a burst
// of logons queues (for at most wait) instead of exhausting memory. Logons
// from addresses with recent failures hash in a smaller pool of their own
// (suspect), so a crowd of failing addresses cannot starve a clean
// client's correct password
// (SECURITY-CATALOGUE "Distributed logon denial").
type hasher struct {
	slots   chan struct{}
	suspect chan struct{}
	wait    time.Duration
	dummy   string // hash of a random password, verified for unknown logins
}

func newHasher(slots, suspect int, wait time.Duration) *hasher {
	if slots < 1 {
		slots = 1
	}
	if suspect < 1 {
		suspect = 1
	}
	h := &hasher{slots: make(chan struct{}, slots), suspect: make(chan struct{}, suspect), wait: wait}
	h.dummy = encodeHash(randomBytes(argonSaltLen), argon2.IDKey(randomBytes(16), randomBytes(argonSaltLen), argonTime, argonMemory, argonThreads, argonKeyLen), argonMemory, argonTime, argonThreads)
	return h
}

// pool is which hashing budget a call takes.
type pool int

const (
	poolClean   pool = iota // a client with no recent failures; also Hash
	poolSuspect             // an address with recent failures
)

func (h *hasher) acquire(ctx context.Context, p pool) (release func(), err error) {
	slots := h.slots
	if p == poolSuspect {
		slots = h.suspect
	}
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-t.C:
		return nil, apperr.Errorf(apperr.Busy, "The server is busy, try again.")
	case <-ctx.Done():
		return nil, apperr.Wrap(apperr.Busy, ctx.Err(), "The request was cancelled.")
	}
}

// Hash returns the PHC string of a new argon2id hash of password.
func (h *hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := checkPassword(password); err != nil {
		return "", err
	}
	release, err := h.acquire(ctx, poolClean)
	if err != nil {
		return "", err
	}
	defer release()
	salt := randomBytes(argonSaltLen)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return encodeHash(salt, key, argonMemory, argonTime, argonThreads), nil
}

// Verify reports whether password matches the PHC string encoded, and
// whether the hash uses weaker parameters than today's (so the caller can
// rehash). An unparsable hash never matches.
func (h *hasher) Verify(ctx context.Context, which pool, encoded, password string) (ok, stale bool, err error) {
	release, err := h.acquire(ctx, which)
	if err != nil {
		return false, false, err
	}
	defer release()
	m, t, p, salt, key, perr := decodeHash(encoded)
	if perr != nil {
		// Burn the same time as a real check, then fail.
		m, t, p, salt, key, _ = decodeHash(h.dummy)
		argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(key)))
		return false, false, nil
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(key)))
	ok = subtle.ConstantTimeCompare(got, key) == 1
	stale = m < argonMemory || t < argonTime
	return ok, stale, nil
}

// VerifyDummy spends the time of one verification; used for unknown logins
// so their answer takes as long as a wrong password's.
func (h *hasher) VerifyDummy(ctx context.Context, p pool, password string) error {
	_, _, err := h.Verify(ctx, p, h.dummy, password)
	return err
}

func checkPassword(password string) error {
	if password == "" {
		return apperr.Errorf(apperr.Invalid, "The password must not be empty.")
	}
	if len(password) > MaxPasswordBytes {
		return apperr.Errorf(apperr.Invalid, "The password is longer than %d bytes.", MaxPasswordBytes)
	}
	return nil
}

var b64 = base64.RawStdEncoding

func encodeHash(salt, key []byte, m uint32, t uint32, p uint8) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, m, t, p, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func decodeHash(s string) (m, t uint32, p uint8, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return 0, 0, 0, nil, nil, fmt.Errorf("not an argon2id hash")
	}
	var v int
	if _, err = fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return 0, 0, 0, nil, nil, fmt.Errorf("unsupported argon2 version")
	}
	if _, err = fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return 0, 0, 0, nil, nil, err
	}
	if m == 0 || t == 0 || p == 0 || m > 1<<20 || t > 16 {
		return 0, 0, 0, nil, nil, fmt.Errorf("argon2 parameters out of range")
	}
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return 0, 0, 0, nil, nil, err
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return 0, 0, 0, nil, nil, fmt.Errorf("bad argon2 key")
	}
	return m, t, p, salt, key, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error()) // never happens on Linux
	}
	return b
}
