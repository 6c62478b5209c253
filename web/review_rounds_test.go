package web_test

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// formOf is the fields a page's form posting to action would send: its
// inputs with their values (the text field the operator types into is
// empty; the caller fills it).
func formOf(t *testing.T, page, action string) url.Values {
	t.Helper()
	i := strings.Index(page, `action="`+action+`"`)
	if i < 0 {
		t.Fatalf("no form posting to %s", action)
	}
	form := page[i:]
	form = form[:strings.Index(form, "</form>")]
	out := url.Values{}
	for _, m := range inputField.FindAllStringSubmatch(form, -1) {
		name, value := "", ""
		for _, a := range inputAttr.FindAllStringSubmatch(m[0], -1) {
			switch a[1] {
			case "name":
				name = a[2]
			case "value":
				value = html.UnescapeString(a[2])
			}
		}
		if name != "" {
			out.Set(name, value)
		}
	}
	return out
}

var (
	inputField = regexp.MustCompile(`<input[^>]*>`)
	inputAttr  = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// twoStepDelete creates a two-step delete of demodata.Email(n) and
// collects it: it waits for its confirmation with its reviewed file.
func twoStepDelete(t *testing.T, w *world, n int64) int64 {
	t.Helper()
	id, err := w.env.Privacy.CreateRequestByName(w.ctx, &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}},
		privacy.CreateRequest{NamespaceName: "defaultNamespace1", ReconciliationValue: demodata.Email(n), Type: privacy.TypeDelete,
			ConfirmDeletePending: true, DownloadURL: w.env.URL + "/nms/gdpr.jssp?id="})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.env.Privacy.Run(w.ctx, privacy.Collect); err != nil {
		t.Fatal(err)
	}
	if s := statusOf(t, w, id); s != privacy.StatusConfirmDeletePending {
		t.Fatalf("after the collect: %s", s)
	}
	return id
}

func statusOf(t *testing.T, w *world, id int64) privacy.Status {
	t.Helper()
	r, err := w.env.DB.FindRequestByID(w.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return privacy.Status(r.Status)
}

// TestStaleConfirmFormRefused: the confirm form is not bound
// to the round the operator reviewed. A two-step delete whose first round
// met a row written after the review goes back to review with a new file
// of just the unreviewed rows (privacy reviewAgain), under the same name,
// privacyRequestN. The form of the first round's page — posted a second
// time (a double click that lands after a delete run, the browser's
// "resubmit" on reload or back, a second tab left open on the old page)
// — confirms the second round, whose file the operator never saw: rows
// are deleted that nobody reviewed (DESIGN §4b "never deletes an
// unreviewed row silently"), while the console answers "Deletion
// confirmed." The form carries only the security token and the name,
// which no round changes. Fix: put the reviewed file's version (the
// export's created time, or the deadline) in the form and refuse a
// confirmation for another one (409, "the request was reviewed again").
func TestStaleConfirmFormRefused(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			w := newWorld(t, dialect, servertest.Options{})
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
			if resp, body := ana.do("POST", detail+"/confirm", form); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("confirm: %d %s", resp.StatusCode, body)
			}
			w.env.Clock.Advance(time.Minute)
			if _, err := w.env.Privacy.Run(w.ctx, privacy.Delete); err != nil {
				t.Fatal(err)
			}
			if s := statusOf(t, w, id); s != privacy.StatusConfirmDeletePending {
				t.Fatalf("after round 1: %s, want back to review", s)
			}
			// The first round's form, posted again.
			resp, _ := ana.do("POST", detail+"/confirm", form)
			if s := statusOf(t, w, id); s != privacy.StatusConfirmDeletePending {
				t.Fatalf("the first round's form, posted again, confirmed the second round (%d %s, Location %s): "+
					"its file of rows written after the review was never shown to the operator", resp.StatusCode, s, resp.Header.Get("Location"))
			}
		})
	}
}

// TestFailedTwoStepDeleteDestroysItsFile: J13 destroys a two-step
// delete's reviewed file in the commit that ends the delete — only when it
// completes (deletedUpdate). A confirmed delete whose first attempt
// committed its deletes (every reviewed row, the recipient among them) and
// then failed, and whose retries failed too until the last attempt, ends
// in `error` with its reviewed file intact: the person's data, gone from
// every table, stays in the service and is served to any holder of the
// right at /nms/gdpr.jssp for the 90 days of the retention (fileDestroyed
// only knows deleteInProgress and complete). Fix: destroy the file (and
// its key) when a two-step delete that has deleted rows ends in error, as
// a completed one does, or serve only the rows not deleted.
func TestFailedTwoStepDeleteDestroysItsFile(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			var failLookups bool
			w := newWorld(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
				c.MaxAttempts = 2
				c.Failpoint = func(name string) error {
					switch {
					case name == "delete-after-batch" && !failLookups:
						failLookups = true // the deletes have committed
						return fmt.Errorf("connection lost")
					case name == "delete-lookup" && failLookups:
						return fmt.Errorf("connection lost")
					}
					return nil
				}
			}})
			id := twoStepDelete(t, w, 1)
			file := "/nms/gdpr.jssp?id=" + strconv.FormatInt(id, 10)
			detail := "/privacy/requests/" + strconv.FormatInt(id, 10)
			ana := newBrowser(t, w.env.URL)
			ana.logon("ana", "ana password")
			if resp, body := ana.do("GET", file, nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, demodata.Email(1)) {
				t.Fatalf("the reviewed file: %d", resp.StatusCode)
			}
			_, page := ana.do("GET", detail, nil)
			form := formOf(t, page, detail+"/confirm")
			form.Set("name", "privacyRequest"+strconv.FormatInt(id, 10))
			if resp, body := ana.do("POST", detail+"/confirm", form); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("confirm: %d %s", resp.StatusCode, body)
			}
			for range 2 {
				if _, err := w.env.Privacy.Run(w.ctx, privacy.Delete); err != nil {
					t.Fatal(err)
				}
				w.env.Clock.Advance(time.Hour)
			}
			if s := statusOf(t, w, id); s != privacy.StatusError {
				t.Fatalf("after the last attempt: %s", s)
			}
			left, err := storetest.SQLOf(t, w.env.DB).Int(w.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", demodata.Email(1))
			if err != nil || left != 0 {
				t.Fatalf("the recipient is still there (%d, %v): the setup did not delete it", left, err)
			}
			resp, body := ana.do("GET", file, nil)
			if resp.StatusCode == http.StatusOK && strings.Contains(body, demodata.Email(1)) {
				t.Fatalf("the delete ended in error after deleting the person's rows (plain SQL: 0 recipients with %s), yet the reviewed file "+
					"is still served: %d, %d bytes holding the deleted rows", demodata.Email(1), resp.StatusCode, len(body))
			}
		})
	}
}

// TestConsoleAccessRequestDeduplicated: DESIGN §4 "Duplicates":
// a request identical to one still active returns the existing id;
// confirmDeletePending is part of the key because a one-step and a
// two-step delete differ in what happens — "requests that differ in what
// would happen are never merged", and only those. For an access request
// the flag changes nothing, yet it stays in the key, and the console's
// new-request form has the "2-step process" box checked by default while
// ACC's clients send false: an access request made in the console for a
// person whose access request from ACC (or a script) is still waiting is a
// second request — a second collect, a second encrypted copy of the
// person's whole data kept 90 days, a second file to hand out. Fix: key an
// access request without the flag (or store it false for access).
func TestConsoleAccessRequestDeduplicated(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	// w.fresh: an access request for demodata.Email(3) made through the
	// service as a SOAP client makes it (confirmDeletePending false), not
	// collected yet.
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	_, page := ana.do("GET", "/privacy/new", nil)
	if !strings.Contains(page, `name="confirm" value="1" checked`) {
		t.Fatal("the form's 2-step box is no longer checked by default")
	}
	resp, body := ana.do("POST", "/privacy/new", url.Values{"csrf": {ana.csrf}, "regulation": {"1"}, "type": {"1"},
		"namespace": {"defaultNamespace1"}, "value": {demodata.Email(3)}, "confirm": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("new request: %d %s", resp.StatusCode, body)
	}
	want := "/privacy/requests/" + strconv.FormatInt(w.fresh, 10) + "?notice=created"
	if loc := resp.Header.Get("Location"); loc != want {
		reqs, total, _ := w.env.Privacy.Requests(w.ctx, &session.Caller{OperatorID: 1, Rights: []string{session.RightPrivacy}},
			privacy.RequestQuery{Subject: demodata.Email(3), Limit: 10})
		t.Fatalf("an access request for %s, identical but for the 2-step box that an access request ignores, while request %d is still active: "+
			"a second request (%s); %d requests for the person (%d listed)", demodata.Email(3), w.fresh, loc, total, len(reqs))
	}
}
