package store_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestReadsDoNotWaitForWrites holds SQLite's write lock, queues writers
// behind it until every connection of the writers' pool is taken (each
// waiting for the lock, more waiting for a connection), and then makes
// the reads of a logon and of an authenticated call: the session check,
// the operator, a namespace, a request, a list and a queryDef statement.
// Each must answer while the lock is still held: no writer may have
// finished when the last read returns. Before the readers' pool, the reads
// queued for a connection until the writers gave up (busy_timeout).
//
// SQLite only: on PostgreSQL the reads share the one pool (no global write
// lock to wait for; a reader waits for no row lock).
func TestReadsDoNotWaitForWrites(t *testing.T) {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, store.SQLite, clock.Now)

	op := &store.Operator{Login: "ana", PasswordHash: "h", Rights: "privacyRight"}
	if err := db.CreateOperator(ctx, op); err != nil {
		t.Fatal(err)
	}
	sess := &store.Session{ID: "s-held", OperatorID: op.ID, SecurityTokenHash: "x",
		Created: clock.Now(), Expires: clock.Now().Add(time.Hour)}
	if _, err := db.CreateSession(ctx, sess, op.PasswordHash, 0); err != nil {
		t.Fatal(err)
	}
	ns := testNamespace(t, db)
	reqID, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "a@example.com",
		Type: 1, Regulation: 1}, "u", "Request created by operator 'ana'.")
	if err != nil {
		t.Fatal(err)
	}

	release, err := db.HoldCreateLockForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool := db.Pool()
	waitsBefore := pool.Stats().WaitCount
	var (
		wg       sync.WaitGroup
		finished atomic.Int32
		errs     = make(chan error, 2*pool.Stats().MaxOpenConnections)
		released bool
	)
	defer func() {
		if !released {
			release()
		}
		wg.Wait()
	}()
	// The writers change the operator's rights (a write outside the
	// priority writers' queue, which lets one at a time at the lock).
	rights := make([]string, cap(errs))
	for i := range rights {
		rights[i] = fmt.Sprintf("privacyRight r%d", i)
	}
	for i := range cap(errs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- db.UpdateOperator(ctx, "ana", store.OperatorUpdate{Rights: &rights[i]})
			finished.Add(1)
		}()
	}
	// Every writer connection is taken and a writer waits for one.
	for st := pool.Stats(); st.InUse < st.MaxOpenConnections || st.WaitCount == waitsBefore; st = pool.Stats() {
		if finished.Load() > 0 {
			t.Fatalf("a writer finished while the lock was held: %v", <-errs)
		}
		time.Sleep(time.Millisecond)
	}

	reads := []struct {
		name string
		read func() error
	}{
		{"session check", func() error {
			s, o, err := db.FindSessionWithOperator(ctx, sess.ID)
			if err == nil && (s.OperatorID != op.ID || o.Login != "ana") {
				t.Errorf("session check: %+v %+v", s, o)
			}
			return err
		}},
		{"operator", func() error {
			o, err := db.FindOperatorByLogin(ctx, "ana")
			if err == nil && o.ID != op.ID {
				t.Errorf("operator: %+v", o)
			}
			return err
		}},
		{"namespace", func() error {
			n, err := db.FindNamespaceByName(ctx, "ns")
			if err == nil && n.ID != ns.ID {
				t.Errorf("namespace: %+v", n)
			}
			return err
		}},
		{"request", func() error {
			r, err := db.FindRequestByID(ctx, reqID)
			if err == nil && r.ReconciliationValue != "a@example.com" {
				t.Errorf("request: %+v", r)
			}
			return err
		}},
		{"list", func() error {
			rs, total, err := db.FindRequests(ctx, store.RequestFilter{Limit: 10})
			if err == nil && (total != 1 || len(rs) != 1 || rs[0].ID != reqID) {
				t.Errorf("list: %d %+v", total, rs)
			}
			return err
		}},
		{"queryDef statement", func() error {
			var ids []int64
			err := db.QueryForTest(ctx, "SELECT id FROM privacy_requests WHERE id = ?", []any{reqID}, func(v []any) error {
				ids = append(ids, v[0].(int64))
				return nil
			})
			if err == nil && (len(ids) != 1 || ids[0] != reqID) {
				t.Errorf("queryDef statement: %v", ids)
			}
			return err
		}},
	}
	for _, r := range reads {
		if err := r.read(); err != nil {
			t.Errorf("%s: %v", r.name, err)
		}
	}
	if n := finished.Load(); n != 0 {
		t.Fatalf("the reads answered only after %d writers had finished (the lock or the pool was given up): %v", n, <-errs)
	}

	release()
	released = true
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("writer after the lock was released: %v", err)
		}
	}
	// Read-your-writes across the pools: what a writer committed is what
	// the readers see next.
	if err := db.UpdateOperator(ctx, "ana", store.OperatorUpdate{Rights: &rights[0]}); err != nil {
		t.Fatal(err)
	}
	if _, o, err := db.FindSessionWithOperator(ctx, sess.ID); err != nil {
		t.Error(err)
	} else if o.Rights != rights[0] {
		t.Errorf("the session check after a commit: rights %q, want %q", o.Rights, rights[0])
	}
}
