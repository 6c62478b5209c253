package web_test

import (
	"net/http"
	"runtime"
	"strconv"
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
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
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

// TestConfirmCarriesItsRound: the console's round check reads the request
// before the confirmation; the confirmation itself must carry the round
// to the store's update. A double click on round 1's confirm: both POSTs
// read round 1; the first confirms; a delete run meets a row written after
// the review and sends the request back for review (round 2); only then
// does the second POST's update run. It must not confirm round 2, whose
// file nobody saw. The store's clock, read by the second POST's update,
// runs the first click and the delete run at that moment; its time has a
// fraction of a second finer than PostgreSQL keeps, so the round compared
// is the stored one, not the clock's.
func TestConfirmCarriesItsRound(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			base := storetest.NewClock()
			base.Advance(123456789 * time.Nanosecond)
			var (
				mu      sync.Mutex
				between func()
			)
			now := func() time.Time {
				mu.Lock()
				f := between
				if f != nil && inStack("store.(*DB).ConfirmDeleteRequest") {
					between = nil
				} else {
					f = nil
				}
				mu.Unlock()
				if f != nil {
					f()
				}
				return base.Now()
			}
			w := newWorld(t, dialect, servertest.Options{DB: storetest.Open(t, dialect, now), Privacy: func(c *privacy.Config) { c.Now = now }})
			id := twoStepDelete(t, w, 1)
			detail := "/privacy/requests/" + strconv.FormatInt(id, 10)
			ana := newBrowser(t, w.env.URL)
			ana.logon("ana", "ana password")
			_, page := ana.do("GET", detail, nil)
			form := formOf(t, page, detail+"/confirm")
			form.Set("name", "privacyRequest"+strconv.FormatInt(id, 10))

			// A delivery log written for the person after the review.
			rcp, err := w.env.DB.FindIDs(w.ctx, "nms_recipient", "email", demodata.Email(1))
			if err != nil || len(rcp) != 1 {
				t.Fatalf("recipient: %v %v", rcp, err)
			}
			if err := storetest.SQLOf(t, w.env.DB).InsertRow(w.ctx, "nms_broad_log_rcp", map[string]any{"id": int64(990001), "recipient_id": rcp[0], "address": demodata.Email(1)}); err != nil {
				t.Fatal(err)
			}
			var ran bool
			mu.Lock()
			between = func() {
				ran = true
				if resp, body := ana.do("POST", detail+"/confirm", form); resp.StatusCode != http.StatusSeeOther {
					t.Errorf("the first click: %d %s", resp.StatusCode, body)
				}
				base.Advance(time.Minute)
				if _, err := w.env.Privacy.Run(w.ctx, privacy.Delete); err != nil {
					t.Error(err)
				}
				if s := statusOf(t, w, id); s != privacy.StatusConfirmDeletePending {
					t.Errorf("after round 1: %s, want back to review", s)
				}
			}
			mu.Unlock()
			resp, body := ana.do("POST", detail+"/confirm", form)
			if !ran {
				t.Fatal("the interleaving did not happen (the second click's update did not read the clock)")
			}
			if s := statusOf(t, w, id); resp.StatusCode == http.StatusSeeOther || s != privacy.StatusConfirmDeletePending {
				t.Fatalf("the second click on round 1's confirm confirmed round 2, whose file nobody saw: POST answered %d (Location %s), status now %s",
					resp.StatusCode, resp.Header.Get("Location"), s)
			}
			if !strings.Contains(body, "sent back") {
				t.Errorf("refused without saying why: %d %s", resp.StatusCode, body)
			}
		})
	}
}
