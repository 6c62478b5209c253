package session

import (
	"context"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

func TestPasswordHash(t *testing.T) {
	h := newHasher(2, 1, time.Second)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "pässwörd")
	if err != nil {
		t.Fatal(err)
	}
	// A PHC argon2id string with OWASP's parameters and a 16-byte salt.
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(enc) {
		t.Fatalf("hash %q", enc)
	}
	other, _ := h.Hash(ctx, "pässwörd")
	if other == enc {
		t.Fatal("two hashes of one password share their salt")
	}
	for pw, want := range map[string]bool{
		"pässwörd":             true,
		"pa\u0308sswo\u0308rd": false, // NFD: different bytes, no match
		"passwörd":             false,
		"":                     false,
	} {
		ok, stale, err := verifyIn(t, h, poolClean, enc, pw)
		if err != nil || ok != want || stale {
			t.Errorf("Verify(%q) = %v %v %v, want %v", pw, ok, stale, err, want)
		}
	}
	long := strings.Repeat("x", 1000)
	enc, _ = h.Hash(ctx, long)
	if ok, _, _ := verifyIn(t, h, poolClean, enc, long[:999]); ok {
		t.Fatal("a 1,000-byte password is truncated")
	}
	if _, err := h.Hash(ctx, strings.Repeat("x", MaxPasswordBytes+1)); apperr.CodeOf(err) != apperr.Invalid {
		t.Fatalf("an over-long password is hashed: %v", err)
	}
	// Weaker parameters verify and are reported stale, for a rehash.
	weak := "$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$" + strings.Repeat("A", 43)
	if _, stale, _ := verifyIn(t, h, poolClean, weak, "x"); !stale {
		t.Fatal("weak parameters not reported stale")
	}
	for _, bad := range []string{"", "plain", "$2a$10$bcrypt", "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdA$" + strings.Repeat("A", 43)} {
		if ok, _, err := verifyIn(t, h, poolClean, bad, "x"); ok || err != nil {
			t.Errorf("Verify on %q = %v %v", bad, ok, err)
		}
	}
}

// TestHashingIsBounded: with every slot taken, a hash waits at most the
// configured time, then gets Busy instead of piling up memory.
func TestHashingIsBounded(t *testing.T) {
	h := newHasher(1, 1, 50*time.Millisecond)
	h.clean.slots <- struct{}{} // the only slot is busy
	start := time.Now()
	_, err := h.Hash(context.Background(), "x")
	if apperr.CodeOf(err) != apperr.Busy || time.Since(start) > time.Second {
		t.Fatalf("err %v after %s", err, time.Since(start))
	}
	<-h.clean.slots
	if _, err := h.Hash(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
}

// TestHashQueueIsBounded: a call that finds its pool's queue full gets no
// place in it: it is answered Busy at the end of the wait (holding only a
// timer, so a storm client asks at most once per wait), even with a slot
// free for the calls queued before it; the other pool is not affected. A
// call leaves the server's count of calls in flight when it comes to wait.
func TestHashQueueIsBounded(t *testing.T) {
	const wait = 200 * time.Millisecond
	h := newHasher(1, 1, wait)
	var released atomic.Int32
	ctx := WithInFlightRelease(context.Background(), func() { released.Add(1) })
	h.clean.in.Store(h.clean.queue) // the queue is full
	start := time.Now()
	if _, err := h.Hash(ctx, "x"); apperr.CodeOf(err) != apperr.Busy || time.Since(start) < wait/2 {
		t.Fatalf("a call past the full queue: %v after %s, want Busy after %s", err, time.Since(start), wait/2)
	}
	if n := h.clean.in.Load(); n != h.clean.queue {
		t.Fatalf("the refused call changed the queue: %d, want %d", n, h.clean.queue)
	}
	if released.Load() != 1 {
		t.Fatalf("the call left the server's count %d time(s), want 1", released.Load())
	}
	if _, _, err := verifyIn(t, h, poolSuspect, h.dummy, "x"); err != nil {
		t.Fatalf("the suspect pool is refused while the clean one is full: %v", err)
	}
	h.clean.in.Store(0)
	if _, err := h.Hash(ctx, "x"); err != nil {
		t.Fatalf("with room in the queue: %v", err)
	}
	if n := h.clean.in.Load(); n != 0 {
		t.Fatalf("%d calls still counted in the pool", n)
	}
}

// TestLogonTakesItsQueuePlaceBeforeTheLookup: a Logon takes its place in
// the hash queue, and leaves the server's count of calls in flight, before
// it looks its operator up, so that logons waiting for a database
// connection are bounded by the queue and leave room for other calls (in a
// logon storm on PostgreSQL they held the calls in flight while they waited
// for a connection, and queries were refused as busy). A full queue answers
// Busy without reading the database; the place is given back whatever
// the outcome.
func TestLogonTakesItsQueuePlaceBeforeTheLookup(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", storetest.NewClock().Now)
	s, err := New(db, Config{Key: []byte("a-signing-key-of-at-least-32-bytes!"), HashSlots: 1, HashWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperator(ctx, "ana", "correct horse", []string{RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	var released atomic.Int32
	gone, cancel := context.WithCancel(WithInFlightRelease(ctx, func() { released.Add(1) }))
	cancel() // the lookup fails at once
	if _, err := s.Logon(gone, "ana", "correct horse", ""); err == nil {
		t.Fatal("a Logon whose lookup failed succeeded")
	}
	if released.Load() != 1 {
		t.Fatalf("the Logon left the server's count %d time(s) before its failed lookup, want 1", released.Load())
	}
	if n := s.hash.clean.in.Load(); n != 0 {
		t.Fatalf("the Logon kept its place in the queue: %d", n)
	}
	s.hash.clean.in.Store(s.hash.clean.queue) // the queue is full
	if _, err := s.Logon(gone, "ana", "correct horse", ""); apperr.CodeOf(err) != apperr.Busy {
		t.Fatalf("a Logon past the full queue: %v, want Busy before the lookup", err)
	}
	s.hash.clean.in.Store(0)
	if _, err := s.Logon(ctx, "ana", "correct horse", ""); err != nil {
		t.Fatal(err)
	}
	if n := s.hash.clean.in.Load(); n != 0 {
		t.Fatalf("%d calls still counted in the pool after a Logon", n)
	}
}

// verifyIn is one verification in pool p, admitted and left as a Logon
// does.
func verifyIn(t *testing.T, h *hasher, p pool, encoded, password string) (ok, stale bool, err error) {
	t.Helper()
	ctx := context.Background()
	tk, err := h.admit(ctx, p)
	if err != nil {
		return false, false, err
	}
	defer tk.leave()
	return h.verify(ctx, tk, encoded, password)
}
