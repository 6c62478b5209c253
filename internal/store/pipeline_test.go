package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestPipelinedCreates (PostgreSQL): once a batch has written the chain's
// head, the next batches are written in three round trips, expecting that
// head. Each case where the expectation fails — another writer appended
// to the chain, a dedupe key is taken, a namespace changed — writes what
// the transaction of seven round trips writes, and the batch after it is
// pipelined again. Every answer is checked against the rows (plain SQL)
// and the chain.
func TestPipelinedCreates(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.Postgres, nil)
	plain := storetest.SQLOf(t, db)
	ns := exactNamespace(t, db)
	const line = "Request created by operator 'ana'."
	create := func(value string, namespace *store.Namespace) (int64, bool, error) {
		t.Helper()
		key := "key-" + value
		req := &store.Request{NamespaceID: ns.ID, Namespace: namespace, ReconciliationValue: value, Type: 1, Regulation: 1, DedupeKey: &key}
		return db.CreateRequest(ctx, req, "u", line)
	}
	mustCreate := func(value string) int64 {
		t.Helper()
		id, existing, err := create(value, ns)
		if err != nil || existing {
			t.Fatalf("%s: %d %v %v", value, id, existing, err)
		}
		return id
	}
	// pipelined tells how many of fn's batches were pipelined.
	pipelined := func(fn func()) int64 {
		t.Helper()
		before := db.PipelinedCreatesForTest()
		fn()
		return db.PipelinedCreatesForTest() - before
	}

	// The first batch does not know the head.
	var first int64
	if n := pipelined(func() { first = mustCreate("first") }); n != 0 {
		t.Fatalf("the first batch was pipelined (%d)", n)
	}
	ids := map[string]int64{"first": first}
	if n := pipelined(func() {
		for i := range 10 {
			v := fmt.Sprintf("v%d", i)
			ids[v] = mustCreate(v)
		}
	}); n != 10 {
		t.Fatalf("%d of 10 batches pipelined after the first", n)
	}

	// Another writer appends to the chain: the next batch finds the head
	// moved and is written by the transaction; the one after is
	// pipelined again.
	if err := db.AppendAudit(ctx, first, "File downloaded by operator 'ana' from 127.0.0.1."); err != nil {
		t.Fatal(err)
	}
	if n := pipelined(func() { ids["moved"] = mustCreate("moved") }); n != 0 {
		t.Fatal("a batch was pipelined after another writer moved the head")
	}
	if n := pipelined(func() { ids["again"] = mustCreate("again") }); n != 1 {
		t.Fatal("the batch after a moved head was not pipelined")
	}

	// A dedupe key taken: the request already stored is answered, nothing
	// written.
	if n := pipelined(func() {
		id, existing, err := create("v3", ns)
		if err != nil || !existing || id != ids["v3"] {
			t.Fatalf("v3 again: %d %v %v, want %d existing", id, existing, err, ids["v3"])
		}
	}); n != 0 {
		t.Fatal("a batch whose dedupe key was taken was pipelined")
	}
	ids["after-dedupe"] = mustCreate("after-dedupe")

	// A namespace changed since the caller read it: refused, nothing
	// written; the head is still known.
	stale := *ns
	stale.MatchRule = "email"
	if _, _, err := create("stale", &stale); !errors.Is(err, store.ErrNamespaceChanged) {
		t.Fatalf("a stale namespace: %v, want ErrNamespaceChanged", err)
	}
	if n := pipelined(func() { ids["after-stale"] = mustCreate("after-stale") }); n != 1 {
		t.Fatal("the batch after a refused namespace was not pipelined")
	}

	// Ground truth: one row per answered id, named after itself, and
	// nothing else; the chain holds one line per row plus the download's.
	if n, err := plain.Int(ctx, "SELECT count(*) FROM privacy_requests"); err != nil || n != int64(len(ids)) {
		t.Fatalf("%d rows, %v; want %d", n, err, len(ids))
	}
	for v, id := range ids {
		r, err := db.FindRequestByID(ctx, id)
		if err != nil || r.ReconciliationValue != v || r.Name != "privacyRequest"+strconv.FormatInt(id, 10) || r.URLFile != "u"+strconv.FormatInt(id, 10) {
			t.Fatalf("%s: %+v %v", v, r, err)
		}
	}
	head, err := db.VerifyAuditChain(ctx, nil)
	if err != nil || head.Seq != int64(len(ids))+1 {
		t.Fatalf("chain %+v %v, want %d lines", head, err, len(ids)+1)
	}
	assertNoTransactionLeft(t, plain)
}

// TestNoPipelineOverTheSimpleProtocol: a URL for a pooler asks for the
// simple protocol; its batches are all written by the transaction.
func TestNoPipelineOverTheSimpleProtocol(t *testing.T) {
	ctx := context.Background()
	cfg := storetest.Config(t, store.Postgres)
	cfg.DatabaseURL = storetest.SimpleProtocol(t, cfg.DatabaseURL)
	db := storetest.OpenConfig(t, cfg, nil)
	ns := exactNamespace(t, db)
	for i := range 5 {
		if _, _, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, Namespace: ns, ReconciliationValue: strconv.Itoa(i),
			Type: 1, Regulation: 1}, "u", "line"); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.PipelinedCreatesForTest(); n != 0 {
		t.Fatalf("%d batches pipelined over the simple protocol", n)
	}
	if n, err := storetest.SQLOf(t, db).Int(ctx, "SELECT count(*) FROM privacy_requests"); err != nil || n != 5 {
		t.Fatalf("%d rows, %v", n, err)
	}
	if head, err := db.VerifyAuditChain(ctx, nil); err != nil || head.Seq != 5 {
		t.Fatalf("chain %+v %v", head, err)
	}
}

// TestPipelinedCreatesBesideReplicas: two stores on one database (two
// replicas) create at once while a third writer appends to the chain: each
// store's expected head is often wrong. Every call is answered with a
// distinct id whose row exists, no row is written twice or without its
// line, and the chain verifies.
func TestPipelinedCreatesBesideReplicas(t *testing.T) {
	ctx := context.Background()
	a := storetest.Open(t, store.Postgres, nil)
	b := storetest.OpenConfig(t, storetest.ConfigOf(t, a), nil)
	plain := storetest.SQLOf(t, a)
	ns := exactNamespace(t, a)
	seed, _, err := a.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, ReconciliationValue: "seed", Type: 1, Regulation: 1}, "u", "seed")
	if err != nil {
		t.Fatal(err)
	}
	const perCaller, callers = 25, 8
	var (
		mu      sync.Mutex
		answers = map[int64]string{}
		wg      sync.WaitGroup
		stop    atomic.Bool
		audits  atomic.Int64
	)
	for s, db := range []*store.DB{a, b} {
		for c := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perCaller {
					v := fmt.Sprintf("s%d-c%d-%d", s, c, i)
					id, existing, err := db.CreateRequest(ctx, &store.Request{NamespaceID: ns.ID, Namespace: ns, ReconciliationValue: v,
						Type: 1, Regulation: 1}, "u", "Request created by operator 'ana'.")
					mu.Lock()
					if prev, dup := answers[id]; err != nil || existing || dup {
						t.Errorf("%s: %d %v %v (id also answered to %q)", v, id, existing, err, prev)
					}
					answers[id] = v
					mu.Unlock()
				}
			}()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			if err := a.AppendAudit(ctx, seed, "Receipt downloaded by operator 'ana' from 127.0.0.1."); err != nil {
				t.Error(err)
				return
			}
			audits.Add(1)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	wg.Wait()
	stop.Store(true)
	<-done
	if t.Failed() {
		return
	}
	total := int64(2 * callers * perCaller)
	for id, v := range answers {
		r, err := a.FindRequestByID(ctx, id)
		if err != nil || r.ReconciliationValue != v {
			t.Fatalf("%d (%s): %+v %v", id, v, r, err)
		}
	}
	if n, err := plain.Int(ctx, "SELECT count(*) FROM privacy_requests"); err != nil || n != total+1 {
		t.Fatalf("%d rows, %v; want %d", n, err, total+1)
	}
	if n, err := plain.Int(ctx, "SELECT count(*) FROM privacy_audit_chain WHERE request_id <> $1", seed); err != nil || n != total {
		t.Fatalf("%d chain lines of the created requests, %v; want %d", n, err, total)
	}
	head, err := a.VerifyAuditChain(ctx, nil)
	if want := total + 1 + audits.Load(); err != nil || head.Seq != want {
		t.Fatalf("chain %+v %v, want %d lines", head, err, want)
	}
	t.Logf("%d creates, %d lines appended beside them; pipelined batches: %d and %d", total, audits.Load(),
		a.PipelinedCreatesForTest(), b.PipelinedCreatesForTest())
	if a.PipelinedCreatesForTest() == 0 || b.PipelinedCreatesForTest() == 0 {
		t.Fatal("a store pipelined no batch: the case is not tested")
	}
	assertNoTransactionLeft(t, plain)
}

// TestPipelinedBatchFailure: a pipelined batch that fails before its
// commit (here the fault tests' hook; in life a lost connection, a row the
// database refuses) writes nothing and leaves no session inside its
// transaction; its calls are written again (their namespaces checked
// before, then one by one if the batch fails again), each answered once.
func TestPipelinedBatchFailure(t *testing.T) {
	ctx := context.Background()
	cfg := storetest.Config(t, store.Postgres)
	var armed, fired atomic.Bool
	cfg.Failpoint = func(name string) error {
		if name == "create-batch-before-commit" && armed.Load() && fired.CompareAndSwap(false, true) {
			return errors.New("injected batch failure")
		}
		return nil
	}
	db := storetest.OpenConfig(t, cfg, nil)
	plain := storetest.SQLOf(t, db)
	ns := exactNamespace(t, db)
	req := func(v string) *store.Request {
		return &store.Request{NamespaceID: ns.ID, Namespace: ns, ReconciliationValue: v, Type: 1, Regulation: 1}
	}
	if _, _, err := db.CreateRequest(ctx, req("first"), "u", "line"); err != nil {
		t.Fatal(err)
	}
	// The calls queue behind a batch held at the chain head, and are
	// written as one batch after it.
	release, err := db.HoldCreateLockForTest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	ids := make([]int64, 11)
	errs := make([]error, 11)
	call := func(i int) {
		defer wg.Done()
		ids[i], _, errs[i] = db.CreateRequest(ctx, req("v"+strconv.Itoa(i)), "u", "line")
	}
	wg.Add(1)
	go call(0)
	waitFor(t, func() bool { p, f := db.PendingCreatesForTest(); return p == 0 && f == 1 })
	armed.Store(true)
	for i := 1; i < 11; i++ {
		wg.Add(1)
		go call(i)
	}
	waitFor(t, func() bool { p, _ := db.PendingCreatesForTest(); return p == 10 })
	before := db.PipelinedCreatesForTest()
	release()
	wg.Wait()
	if !fired.Load() {
		t.Fatal("no batch of several rows reached its commit")
	}
	seen := map[int64]bool{}
	for i, id := range ids {
		if errs[i] != nil || seen[id] {
			t.Fatalf("call %d: %d %v", i, id, errs[i])
		}
		seen[id] = true
		if r, err := db.FindRequestByID(ctx, id); err != nil || r.ReconciliationValue != "v"+strconv.Itoa(i) {
			t.Fatalf("call %d: %+v %v", i, r, err)
		}
	}
	if db.PipelinedCreatesForTest() == before {
		t.Fatal("no batch was pipelined: the case is not tested")
	}
	if n, err := plain.Int(ctx, "SELECT count(*) FROM privacy_requests"); err != nil || n != 12 {
		t.Fatalf("%d rows, %v; want 12", n, err)
	}
	if head, err := db.VerifyAuditChain(ctx, nil); err != nil || head.Seq != 12 {
		t.Fatalf("chain %+v %v, want 12 lines", head, err)
	}
	assertNoTransactionLeft(t, plain)
}

// assertNoTransactionLeft fails when a session is idle inside a
// transaction holding a lock in the test's schema: a connection handed
// back to the pool in one (the other packages' tests share the database).
func assertNoTransactionLeft(t *testing.T, plain *storetest.Conn) {
	t.Helper()
	n, err := plain.Int(context.Background(), `SELECT count(*) FROM pg_stat_activity a
		WHERE a.state LIKE 'idle in transaction%' AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE l.pid = a.pid AND c.relnamespace = current_schema()::regnamespace)`)
	if err != nil || n != 0 {
		t.Fatalf("%d sessions idle in a transaction, %v", n, err)
	}
}

// waitFor waits up to 10 s for done.
func waitFor(t *testing.T, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !done(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
	}
}
