package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestConcurrentRehashDoesNotRefuseTheRightPassword: J52 made the session
// insert require the exact hash the logon verified. A logon whose stored
// hash is stale rehashes it (a new salt) with IfPasswordHash = the hash it
// verified. When two logons of one operator (a replica, or the 32
// connections of one integration, right after an upgrade raised the argon2
// parameters) both verify the old hash, the one whose conditional rehash
// loses (the other's rehash committed while it was hashing) keeps
// `verified` = the old hash, and CreateSession then refuses it as "the
// operator changed during the logon": the correct password gets BadLogon,
// is counted as a failure against the client's address, and the client's
// logon fails. Before J52 the same logon opened its session.
func TestConcurrentRehashDoesNotRefuseTheRightPassword(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", nil)
	key := []byte("replica-shared-signing-key-of-32-bytes")
	a, err := New(db, Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(db, Config{Key: key, HashSlots: 1, HashWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateOperator(ctx, "ana", "placeholder", []string{RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	salt := []byte("sixteen byte slt")
	weak := encodeHash(salt, argon2IDKeyForTest("correct horse", salt), 8192, 1, 1)
	if err := db.UpdateOperator(ctx, "ana", storeUpdateHash(weak)); err != nil {
		t.Fatal(err)
	}
	waitIn := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for b.hash.clean.in.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d calls queued, want %d", b.hash.clean.in.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.hash.clean.slots <- struct{}{} // b's only hashing slot is busy
	var (
		wg   sync.WaitGroup
		berr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, berr = b.Logon(ctx, "ana", "correct horse", "192.0.2.7")
	}()
	waitIn(1) // b's Logon read the (weak) row and waits to verify it
	// Queue behind b's verification: the slot b gives back after
	// verifying comes here, so b's rehash (Hash) waits.
	held := make(chan struct{})
	go func() { b.hash.clean.slots <- struct{}{}; close(held) }()
	time.Sleep(200 * time.Millisecond)
	<-b.hash.clean.slots // b verifies the weak hash, re-reads it unchanged
	<-held
	waitIn(2) // b's Logon now waits in Hash, to store its rehash
	// Meanwhile another logon of the same operator (replica a) rehashes.
	if _, err := a.Logon(ctx, "ana", "correct horse", "192.0.2.8"); err != nil {
		t.Fatalf("first logon: %v", err)
	}
	<-b.hash.clean.slots
	wg.Wait()
	if berr != nil {
		t.Fatalf("a logon with the correct password was refused because a concurrent logon's rehash won the race to store the new hash: %v", berr)
	}
}
