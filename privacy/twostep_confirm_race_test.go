package privacy_test

import (
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// inStack reports whether a function whose name ends with fn is on the
// calling goroutine's stack.
func inStack(fn string) bool {
	pc := make([]uintptr, 64)
	n := runtime.Callers(2, pc)
	frames := runtime.CallersFrames(pc[:n])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, fn) {
			return true
		}
		if !more {
			return false
		}
	}
}

// TestConfirmAtDeadlineNotOverwritten: a two-step delete whose
// first round deleted the recipient is back in confirmDeletePending. The
// operator confirms right at the deadline: the confirm reads the clock one
// second before it (it is accepted: "Deletion confirmed"), and its UPDATE
// lands just after ClaimExpiredRounds claimed the request (deadline <= its
// now). The claim leaves the status confirmDeletePending, so the confirm's
// UPDATE (status = confirmDeletePending AND deadline > its now) moves it to
// deletePending; then the expired round's commit, fenced on claimed_by
// only, overwrites it with error "were not confirmed". A confirmation the
// operator was told succeeded must not end as an unconfirmed error with
// the confirmed rows left.
func TestConfirmAtDeadlineNotOverwritten(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		base := storetest.NewClock()
		var (
			mu          sync.Mutex
			armed       bool
			parked      bool
			released    bool
			confirmRead = make(chan struct{})
			claimDone   = make(chan struct{})
			confirmDone = make(chan struct{})
		)
		now := func() time.Time {
			t0 := base.Now()
			mu.Lock()
			if armed && !parked && inStack("store.(*DB).ConfirmDeleteRequest") {
				// The operator's confirm has read its time; it is
				// scheduled out until the expire path has claimed.
				parked = true
				mu.Unlock()
				close(confirmRead)
				select {
				case <-claimDone:
				case <-time.After(20 * time.Second):
				}
				return t0
			}
			if parked && !released && inStack("store.(*DB).CommitBatch") && inStack("privacy.(*Service).expireConfirmations") {
				// The claim is done; the confirm's UPDATE runs now, before
				// the expired round's commit.
				released = true
				mu.Unlock()
				close(claimDone)
				select {
				case <-confirmDone:
				case <-time.After(20 * time.Second):
				}
				return t0
			}
			mu.Unlock()
			return t0
		}
		db := storetest.Open(t, dialect, now)
		f := newFixture(t, dialect, servertest.Options{DB: db, Privacy: func(c *privacy.Config) {
			withReceipts(c)
			c.Now = now
		}})
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 1)
		id := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeDelete, true)
		f.run(t, privacy.Collect)
		if err := sql.InsertRow(f.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990001), "recipient_id": rcp, "address": demodata.Email(1)}); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusConfirmDeletePending {
			t.Fatalf("after round 1: %s", s)
		}
		r, err := f.env.DB.FindRequestByID(f.ctx, id)
		if err != nil || r.ConfirmDeadline == nil {
			t.Fatalf("request: %v %v", r, err)
		}
		// One second before the deadline.
		base.Advance(r.ConfirmDeadline.Sub(base.Now()) - time.Second)

		mu.Lock()
		armed = true
		mu.Unlock()
		var confirmErr error
		go func() {
			defer close(confirmDone)
			confirmErr = f.env.Privacy.ConfirmDeletePending(f.ctx, operator, id)
		}()
		select {
		case <-confirmRead:
		case <-time.After(20 * time.Second):
			t.Fatal("the confirm did not read the clock")
		}
		base.Advance(time.Second) // the deadline: the expire path claims
		if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err != nil {
			t.Logf("delete run: %v", err)
		}
		<-confirmDone
		mu.Lock()
		ok := released
		mu.Unlock()
		if !ok {
			t.Fatal("the interleaving did not happen (no expired-round commit after the confirm read its clock)")
		}
		st, err := sql.Int(f.ctx, "SELECT status FROM privacy_requests WHERE id = ?", id)
		if err != nil {
			t.Fatal(err)
		}
		if confirmErr != nil {
			// Refused while the expiry held the request: the operator is
			// told, and the request ends as the expiry says.
			if privacy.Status(st) != privacy.StatusError {
				t.Fatalf("the confirm was refused (%v), yet the request is %s", confirmErr, privacy.Status(st))
			}
			return
		}
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE id = 990001")
		if err != nil {
			t.Fatal(err)
		}
		r, _ = f.env.DB.FindRequestByID(f.ctx, id)
		if privacy.Status(st) == privacy.StatusError {
			t.Errorf("ConfirmDeletePending returned success (audit: %q), yet the request ended %s with \"not confirmed\"; the confirmed log row left: %d (plain SQL)\naudit tail:\n%s",
				"Deletion confirmed by operator 'ana'", privacy.Status(st), left, tail(r.Audit, 700))
		}
	})
}
