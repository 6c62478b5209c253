package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestConcurrentLogonAfterRehash: two logons of one operator whose
// stored hash uses older argon2 parameters (e.g. after an upgrade, or the
// load benchmark's 32 connections logging on the same operator). Both read
// the row; the first finishes and rehashes (new salt). The second, with the
// CORRECT password, verifies against the hash it read, then re-reads the row,
// sees a different hash and is refused with BadLogon.
func TestConcurrentLogonAfterRehash(t *testing.T) {
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
	b.hash.clean.slots <- struct{}{} // replica b is busy hashing
	var (
		wg   sync.WaitGroup
		berr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, berr = b.Logon(ctx, "ana", "correct horse", "")
	}()
	for b.hash.clean.in.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // b's Logon has read the operator row
	if _, err := a.Logon(ctx, "ana", "correct horse", ""); err != nil {
		t.Fatalf("first logon: %v", err)
	}
	<-b.hash.clean.slots
	wg.Wait()
	if berr != nil {
		t.Fatalf("a logon with the correct password is refused because a concurrent logon rehashed the stored hash: %v", berr)
	}
}
