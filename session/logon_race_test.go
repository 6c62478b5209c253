package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestLockoutHoldsForQueuedGuesses: the lock-out allows 3 failed
// guesses, then bans the account (SECURITY-CATALOGUE #39: "The right
// password during a ban gets the same fault"; "≤ 3 failures per ban").
// Guesses sent together all read the operator row before any of them is
// hashed; each is then judged against that stale row. Here 3 wrong guesses
// lock the account, and a 4th guess, hashed after the lock was recorded,
// still logs on: an attacker who sends a burst of guesses has every one of
// them checked, whatever the lock-out says.
func TestLockoutHoldsForQueuedGuesses(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", nil)
	s, err := New(db, Config{Key: []byte("replica-shared-signing-key-of-32-bytes"), HashSlots: 1, HashWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperator(ctx, "ana", "correct horse", []string{RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	// Hold the only hashing slot, so the guesses queue in arrival order.
	s.hash.clean.slots <- struct{}{}
	waitQueued := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for s.hash.clean.in.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("only %d logons queued, want %d", s.hash.clean.in.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // each has read its operator row and waits for the slot
	}
	var wg sync.WaitGroup
	wrongErrs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, wrongErrs[i] = s.Logon(ctx, "ana", "wrong guess", "")
		}()
		waitQueued(int64(i + 1))
	}
	var rightErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, rightErr = s.Logon(ctx, "ana", "correct horse", "")
	}()
	waitQueued(4)
	<-s.hash.clean.slots // let them hash, one at a time, in order
	wg.Wait()
	for i, err := range wrongErrs {
		if apperr.CodeOf(err) != apperr.BadLogon {
			t.Fatalf("wrong guess %d: %v", i+1, err)
		}
	}
	op, err := db.FindOperatorByLogin(ctx, "ana")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after the burst: locked until %v, bans %d", op.LockedUntil, op.Bans)
	if rightErr == nil {
		t.Fatalf("the 4th guess (the right password) logged on although the 3 guesses before it had locked the account (bans recorded: %d): the lock-out is judged on the operator row read before the wait", op.Bans)
	}
}

// TestOldPasswordAfterChange: SECURITY-CATALOGUE #57 — "a new
// password (operator password) ends the operator's sessions and the old
// password". The command line changes a password from another process (a
// second Service on the same database). A Logon with the old password that
// read the operator row before the change, and is hashed after it, opens a
// session that the change never revoked: the old password keeps working.
func TestOldPasswordAfterChange(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", nil)
	key := []byte("replica-shared-signing-key-of-32-bytes")
	a, err := New(db, Config{Key: key, HashSlots: 1, HashWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := New(db, Config{Key: key}) // `campaign-privacy operator password`
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateOperator(ctx, "ana", "old password", []string{RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	a.hash.clean.slots <- struct{}{} // the server is busy hashing
	var (
		wg     sync.WaitGroup
		tokens *Tokens
		lerr   error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		tokens, lerr = a.Logon(ctx, "ana", "old password", "")
	}()
	for a.hash.clean.in.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the Logon has read the operator row
	if err := cli.SetPassword(ctx, "ana", "new password"); err != nil {
		t.Fatal(err)
	}
	<-a.hash.clean.slots
	wg.Wait()
	if lerr != nil {
		return // refused: the old password no longer works
	}
	if _, err := a.Authenticate(ctx, Credentials{SessionToken: tokens.SessionToken}); err == nil {
		t.Fatal("a Logon with the old password, finished after the password change, opened a session that still works")
	}
}

// TestRehashKeepsPasswordChange: a Logon whose stored hash uses
// older argon2 parameters stores the password again (rehash). When the
// operator's password is changed (by the command line, another process)
// while that Logon waits for a hashing slot, the rehash writes the hash of
// the OLD password over the new one: the change is silently undone — the
// new password is refused and the old one works.
func TestRehashKeepsPasswordChange(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "sqlite", nil)
	key := []byte("replica-shared-signing-key-of-32-bytes")
	a, err := New(db, Config{Key: key, HashSlots: 1, HashWait: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := New(db, Config{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateOperator(ctx, "ana", "placeholder", []string{RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	salt := []byte("sixteen byte slt")
	weak := encodeHash(salt, argon2IDKeyForTest("old password", salt), 8192, 1, 1)
	if err := db.UpdateOperator(ctx, "ana", storeUpdateHash(weak)); err != nil {
		t.Fatal(err)
	}
	a.hash.clean.slots <- struct{}{}
	var (
		wg   sync.WaitGroup
		lerr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, lerr = a.Logon(ctx, "ana", "old password", "")
	}()
	for a.hash.clean.in.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if err := cli.SetPassword(ctx, "ana", "new password"); err != nil {
		t.Fatal(err)
	}
	<-a.hash.clean.slots
	wg.Wait()
	t.Logf("logon with the old password during the change: %v", lerr)
	if _, err := cli.Logon(ctx, "ana", "new password", ""); err != nil {
		_, oldErr := cli.Logon(ctx, "ana", "old password", "")
		t.Fatalf("after the password change the new password is refused (%v); the old one: %v", err, oldErr)
	}
}

// TestLogonRefusedByPasswordChangeInFlight: a password change that commits
// between Logon's last read of the operator and its session insert. The
// change's revocation of the operator's sessions runs before the session
// exists, so that session used to stay open on the old password. The insert
// now holds the operator's row and checks the verified hash: here the
// change is in flight (uncommitted, row locked) when the Logon reads, and
// the Logon must wait for it and be refused, with no session written.
// PostgreSQL only: on SQLite the one writer orders the two.
func TestLogonRefusedByPasswordChangeInFlight(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, "postgres", nil)
	conn := storetest.SQLOf(t, db)
	s, err := New(db, Config{Key: []byte("replica-shared-signing-key-of-32-bytes")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateOperator(ctx, "ana", "old password", []string{RightPrivacy}); err != nil {
		t.Fatal(err)
	}
	newHash, err := s.hash.Hash(ctx, "new password")
	if err != nil {
		t.Fatal(err)
	}
	commit, err := conn.Uncommitted(ctx, "UPDATE operators SET password_hash = ? WHERE login = 'ana'", newHash)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { commit() })
	done := make(chan error, 1)
	go func() {
		_, err := s.Logon(ctx, "ana", "old password", "")
		done <- err
	}()
	if err := conn.AwaitLockWait(ctx, done); err != nil {
		t.Fatalf("the Logon and a password change in flight: %v", err)
	}
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; apperr.CodeOf(err) != apperr.BadLogon {
		t.Fatalf("a Logon with the old password, finished after the change committed: %v", err)
	}
	if n, err := conn.Int(ctx, "SELECT COUNT(*) FROM sessions"); err != nil || n != 0 {
		t.Fatalf("sessions written: %d (%v)", n, err)
	}
}
