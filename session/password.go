package session

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	mrand "math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/argon2"
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
//
// A logon storm (security-bar #45, bench/soap -scenarios storm) used to
// fill the server's calls in flight (server.Limits.MaxInFlight) with
// logons waiting here, and every other call was refused. Now a call leaves
// the server's count when it comes here (WithInFlightRelease), and each
// pool bounds its own queue: beyond queuePerSlot calls per slot, a call
// gets no place in the queue — a call that far back would not get a slot
// within wait anyway — and is answered Busy after half the wait to the
// wait, as a call whose wait ran out. It holds only a timer meanwhile, and
// a client that asks again at once asks at most about once per wait.
type hasher struct {
	clean, suspect *hashPool
	wait           time.Duration
	dummy          string // hash of a random password, verified for unknown logins
}

// hashPool is one hashing budget: its slots, and the calls in it (waiting
// or hashing), at most queue.
type hashPool struct {
	slots chan struct{}
	queue int64
	in    atomic.Int64
}

// queuePerSlot is how many calls may wait per slot of a pool: 128 at two
// cores, about the hashes two cores finish in the 2 s wait.
const queuePerSlot = 64

type inFlightKey struct{}

// WithInFlightRelease returns ctx carrying release, which a call that
// comes to wait for a hash slot calls first: the server's bound on calls
// in flight then stops counting it (the hasher bounds its own queue).
// release must be safe to call more than once.
func WithInFlightRelease(ctx context.Context, release func()) context.Context {
	return context.WithValue(ctx, inFlightKey{}, release)
}

func newHashPool(slots int) *hashPool {
	slots = max(slots, 1)
	return &hashPool{slots: make(chan struct{}, slots), queue: int64(slots * (1 + queuePerSlot))}
}

func newHasher(slots, suspect int, wait time.Duration) *hasher {
	h := &hasher{clean: newHashPool(slots), suspect: newHashPool(suspect), wait: wait}
	h.dummy = encodeHash(randomBytes(argonSaltLen), argon2.IDKey(randomBytes(16), randomBytes(argonSaltLen), argonTime, argonMemory, argonThreads, argonKeyLen), argonMemory, argonTime, argonThreads)
	return h
}

// pool is which hashing budget a call takes.
type pool int

const (
	poolClean   pool = iota // a client with no recent failures; also Hash
	poolSuspect             // an address with recent failures
)

// A ticket is a call's place in a hash pool's queue, from admit to leave.
// A Logon takes it before it looks its operator up, so that logons waiting
// for the database are bounded by the queue, not by the server's calls in
// flight (a logon storm on PostgreSQL filled those with lookups waiting for
// a connection, and queries were refused as busy).
type ticket struct {
	hp   *hashPool
	left atomic.Bool
}

// leave gives the place back; more than once is harmless.
func (t *ticket) leave() {
	if t.left.CompareAndSwap(false, true) {
		t.hp.in.Add(-1)
	}
}

// admit takes a place in pool p's queue. The server stops counting the
// call in flight (WithInFlightRelease) first. A full queue answers Busy.
func (h *hasher) admit(ctx context.Context, p pool) (*ticket, error) {
	hp := h.clean
	if p == poolSuspect {
		hp = h.suspect
	}
	if release, ok := ctx.Value(inFlightKey{}).(func()); ok {
		release()
	}
	if hp.in.Add(1) > hp.queue {
		hp.in.Add(-1)
		// Between half the wait and the wait: a storm's clients, answered
		// at once, would otherwise come back together.
		t := time.NewTimer(h.wait/2 + mrand.N(h.wait/2+1))
		defer t.Stop()
		select {
		case <-t.C:
			return nil, apperr.Errorf(apperr.Busy, "The server is busy, try again.")
		case <-ctx.Done():
			return nil, apperr.Wrap(apperr.Busy, ctx.Err(), "The request was cancelled.")
		}
	}
	return &ticket{hp: hp}, nil
}

// slot waits, at most h.wait, for one of the ticket's pool's hashing slots.
func (h *hasher) slot(ctx context.Context, tk *ticket) (release func(), err error) {
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case tk.hp.slots <- struct{}{}:
		return func() { <-tk.hp.slots }, nil
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
	tk, err := h.admit(ctx, poolClean)
	if err != nil {
		return "", err
	}
	defer tk.leave()
	release, err := h.slot(ctx, tk)
	if err != nil {
		return "", err
	}
	defer release()
	salt := randomBytes(argonSaltLen)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return encodeHash(salt, key, argonMemory, argonTime, argonThreads), nil
}

// verify reports whether password matches the PHC string encoded, and
// whether the hash uses weaker parameters than today's (so the caller can
// rehash), for a call admitted to a pool (tk): it waits for a slot. An
// unparsable hash never matches.
func (h *hasher) verify(ctx context.Context, tk *ticket, encoded, password string) (ok, stale bool, err error) {
	release, err := h.slot(ctx, tk)
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

// verifyDummy spends the time of one verification; used for unknown logins
// so their answer takes as long as a wrong password's.
func (h *hasher) verifyDummy(ctx context.Context, tk *ticket, password string) error {
	_, _, err := h.verify(ctx, tk, h.dummy, password)
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
