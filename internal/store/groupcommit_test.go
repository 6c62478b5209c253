package store_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestGroupCommit queues concurrent creates behind the lock a batch needs,
// so that they are written as one batch, and checks what the batch must
// keep: each id answered exists, named after itself; calls with the same
// dedupe key (inside the batch, or matching an active request stored
// before) get one request; a row that cannot be written fails its own call
// only; the audit chain holds every row's line.
func TestGroupCommit(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			ns := testNamespace(t, db)
			const created = "Request created by operator 'ana'."
			newReq := func(value string) *store.Request {
				key := "key-" + value
				return &store.Request{NamespaceID: ns.ID, ReconciliationValue: value, Type: 1, Regulation: 1, DedupeKey: &key}
			}
			// An active request stored before the batch.
			priorID, existing, err := db.CreateRequest(ctx, newReq("v0"), "u", created)
			if err != nil || existing {
				t.Fatalf("prior: %v %v", existing, err)
			}
			b0, r0 := db.CreateBatches()

			release, err := db.HoldCreateLockForTest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			type answer struct {
				value    string
				id       int64
				existing bool
				err      error
			}
			var (
				mu      sync.Mutex
				answers []answer
				wg      sync.WaitGroup
			)
			call := func(value string, req *store.Request) {
				defer wg.Done()
				id, existing, err := db.CreateRequest(ctx, req, "u", created)
				mu.Lock()
				answers = append(answers, answer{value, id, existing, err})
				mu.Unlock()
			}
			// waitQueue waits until done(calls queued, flushers running).
			waitQueue := func(done func(pending, flushers int) bool, want string) {
				t.Helper()
				for deadline := time.Now().Add(10 * time.Second); !done(db.PendingCreatesForTest()); time.Sleep(5 * time.Millisecond) {
					if time.Now().After(deadline) {
						p, f := db.PendingCreatesForTest()
						t.Fatalf("%d calls queued and %d flushers, want %s", p, f, want)
					}
				}
			}
			waitPending := func(n int) {
				t.Helper()
				waitQueue(func(p, _ int) bool { return p >= n }, fmt.Sprintf("%d calls queued", n))
			}
			// startFlusher makes the store's flusher busy with one call of
			// its own: the calls after it queue.
			startFlusher := func(v string) {
				t.Helper()
				// The flusher of earlier calls has ended.
				waitQueue(func(p, f int) bool { return p == 0 && f == 0 }, "an idle store")
				wg.Add(1)
				go call(v, newReq(v))
				// Queued (it started the flusher) and taken by it.
				waitQueue(func(p, f int) bool { return p == 0 && f == 1 }, "0 calls queued and the flusher running")
			}
			startFlusher("first0")
			values := []string{}
			for i := 0; i < 20; i++ {
				values = append(values, fmt.Sprintf("v%d", i)) // v0 matches the prior request
			}
			for i := 0; i < 5; i++ {
				values = append(values, fmt.Sprintf("v%d", i+1)) // the same key twice in the batch
			}
			for _, v := range values {
				wg.Add(1)
				go call(v, newReq(v))
			}
			waitPending(len(values))
			// A row the database refuses (a namespace that does not
			// exist on SQLite, a NUL byte in text on PostgreSQL).
			bad := newReq("bad")
			bad.NamespaceID = 987654
			bad.Label = "bad\x00label"
			wg.Add(1)
			go call("bad", bad)
			waitPending(len(values) + 1)
			release()
			wg.Wait()

			// The batch with the bad row failed whole: its rows were
			// written again one by one.
			b1, r1 := db.CreateBatches()
			t.Logf("%d calls, %d transactions, %d rows", len(answers), b1-b0, r1-r0)
			byValue := map[string][]answer{}
			for _, a := range answers {
				byValue[a.value] = append(byValue[a.value], a)
			}
			if a := byValue["bad"][0]; a.err == nil {
				t.Fatalf("the bad row was written: %+v", a)
			}
			for value, as := range byValue {
				if value == "bad" {
					continue
				}
				created := 0
				for _, a := range as {
					if a.err != nil {
						t.Fatalf("%s: %v (one bad row must fail only its own call)", value, a.err)
					}
					if a.id != as[0].id {
						t.Fatalf("%s: ids %d and %d for one dedupe key", value, a.id, as[0].id)
					}
					if !a.existing {
						created++
					}
				}
				switch {
				case value == "v0" && (created != 0 || as[0].id != priorID):
					t.Fatalf("v0 matches the active request %d: %+v", priorID, as)
				case value != "v0" && created != 1:
					t.Fatalf("%s: %d calls created a request, want 1: %+v", value, created, as)
				}
				r, err := db.FindRequestByID(ctx, as[0].id)
				if err != nil || r.ReconciliationValue != value || r.Name != "privacyRequest"+strconv.FormatInt(r.ID, 10) ||
					r.URLFile != "u"+strconv.FormatInt(r.ID, 10) {
					t.Fatalf("%s: row %+v, %v", value, r, err)
				}
			}
			head, err := db.VerifyAuditChain(ctx, nil)
			// One line per request: the prior, the first, v1..v19.
			if want := int64(1 + 1 + 19); err != nil || head.Seq != want {
				t.Fatalf("chain: %+v %v, want %d lines", head, err, want)
			}
			// After the batch the index keeps its meaning.
			id, existing, err := db.CreateRequest(ctx, newReq("v7"), "u", created)
			if err != nil || !existing || id != byValue["v7"][0].id {
				t.Fatalf("v7 again: %d %v %v", id, existing, err)
			}

			// Without a bad row, the queued calls are one transaction.
			b1, r1 = db.CreateBatches()
			if release, err = db.HoldCreateLockForTest(ctx); err != nil {
				t.Fatal(err)
			}
			answers = nil
			startFlusher("second0")
			for i := 0; i < 30; i++ {
				wg.Add(1)
				go call(fmt.Sprintf("w%d", i), newReq(fmt.Sprintf("w%d", i)))
			}
			waitPending(30)
			release()
			wg.Wait()
			b2, r2 := db.CreateBatches()
			if b2-b1 > 2 || r2-r1 != 31 {
				t.Fatalf("%d calls took %d transactions of %d rows in all", len(answers), b2-b1, r2-r1)
			}
			for _, a := range answers {
				if a.err != nil || a.existing {
					t.Fatalf("%+v", a)
				}
				if _, err := db.FindRequestByID(ctx, a.id); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.VerifyAuditChain(ctx, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestGroupCommitCallerGivesUp: a caller whose context ends while its batch
// waits is answered with a fault at once; its row is written whole or not
// at all, and the others' rows are written.
func TestGroupCommitCallerGivesUp(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, nil)
			ns := testNamespace(t, db)
			release, err := db.HoldCreateLockForTest(ctx)
			if err != nil {
				t.Fatal(err)
			}
			short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			started := time.Now()
			if _, _, err := db.CreateRequest(short, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "gone", Type: 1, Regulation: 1}, "u", "line"); err == nil || time.Since(started) > 5*time.Second {
				t.Fatalf("a caller that gave up: %v after %v", err, time.Since(started))
			}
			release()
			id, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "kept", Type: 1, Regulation: 1}, "u", "line")
			if err != nil {
				t.Fatal(err)
			}
			reqs, _, err := db.FindRequests(ctx, store.RequestFilter{Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range reqs {
				if r.Name != "privacyRequest"+strconv.FormatInt(r.ID, 10) {
					t.Fatalf("a half-written row: %+v", r)
				}
			}
			if _, err := db.FindRequestByID(ctx, id); err != nil {
				t.Fatal(err)
			}
			if head, err := db.VerifyAuditChain(ctx, nil); err != nil || head.Seq != int64(len(reqs)) {
				t.Fatalf("chain %+v %v for %d rows", head, err, len(reqs))
			}
		})
	}
}
