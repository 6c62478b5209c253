package web_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/session"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestListPageNumberBounded: the list's offset is
// (page-1)*pageSize in int; a page number near MaxInt/25 wraps it
// negative, GORM drops a negative OFFSET, and the first page's requests
// are shown under a page number far past the last one.
func TestListPageNumberBounded(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	first := "privacyRequest" + strconv.FormatInt(w.access, 10)
	// Page 2 is past the end (two requests): no request on it.
	if _, body := ana.do("GET", "/privacy/?page=2", nil); strings.Contains(body, first) {
		t.Fatalf("page 2 of 1 lists %s", first)
	}
	// (368934881474191034-1)*25 = 2^63+17: an int64 overflow, negative.
	for _, p := range []string{"368934881474191034", "737869762948382065"} {
		resp, body := ana.do("GET", "/privacy/?page="+p, nil)
		if resp.StatusCode == http.StatusOK && strings.Contains(body, first) {
			t.Errorf("page %s (far past the last page) lists the first page's request %s (offset overflowed to a negative number)", p, first)
		}
		resp, body = ana.do("POST", "/privacy/", url.Values{"csrf": {ana.csrf}, "page": {p}})
		if resp.StatusCode == http.StatusOK && strings.Contains(body, first) {
			t.Errorf("posted page %s lists the first page's request %s", p, first)
		}
	}
}

// TestConfirmPostedTwiceSaysConfirmed: the confirm button clicked twice (or
// the form posted again on reload) after the first post confirmed the
// delete: the second answer says the request "was sent back to review
// after this page was shown" and to "check its new file, then confirm
// again", which is false: it was confirmed by the first post and waits
// for its delete run.
func TestConfirmPostedTwiceSaysConfirmed(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	resp, _ := ana.do("POST", "/privacy/new", url.Values{"csrf": {ana.csrf}, "namespace": {"defaultNamespace1"}, "value": {demodata.Email(1)}, "type": {"2"}, "regulation": {"1"}, "confirm": {"1"}})
	loc := resp.Header.Get("Location")
	id, _ := strconv.ParseInt(strings.TrimPrefix(strings.SplitN(loc, "?", 2)[0], "/privacy/requests/"), 10, 64)
	if _, err := w.env.Privacy.Run(w.ctx, privacy.Collect); err != nil {
		t.Fatal(err)
	}
	path := "/privacy/requests/" + strconv.FormatInt(id, 10)
	_, page := ana.do("GET", path, nil)
	round := regexp.MustCompile(`name="round" value="([0-9]+)"`).FindStringSubmatch(page)
	if round == nil {
		t.Fatal("no confirm form")
	}
	form := url.Values{"csrf": {ana.csrf}, "name": {"privacyRequest" + strconv.FormatInt(id, 10)}, "round": {round[1]}}
	if resp, _ := ana.do("POST", path+"/confirm", form); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first confirm: %d", resp.StatusCode)
	}
	if st := w.status(t, id); st != privacy.StatusDeletePending {
		t.Fatalf("after the first confirm: %s", st)
	}
	resp, body := ana.do("POST", path+"/confirm", form)
	if strings.Contains(body, "sent back to review") {
		t.Errorf("second post of the same confirm form (request already confirmed, %s): %d, the page says %q", w.status(t, id), resp.StatusCode, detailOf(body))
	}
}

var detailRe = regexp.MustCompile(`(?s)<p class="detail" role="alert">(.*?)</p>`)

func detailOf(body string) string {
	if m := detailRe.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return body
}

// TestBusyLogonSaysBusy: when the password hashing is
// saturated (apperr.Busy), the logon page answers 503 but tells the
// operator "Invalid login or password." for the right password: the
// operator retypes it, or thinks the account's password was changed.
func TestBusyLogonSaysBusy(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{Session: func(c *session.Config) {
		c.HashSlots, c.SuspectHashSlots, c.HashWait = 1, 1, 2*time.Millisecond
	}})
	for attempt := 0; attempt < 20; attempt++ {
		var wg sync.WaitGroup
		type answer struct {
			status int
			body   string
		}
		answers := make(chan answer, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.PostForm(w.env.URL+"/privacy/logon", url.Values{"login": {"ana"}, "password": {"ana password"}})
				if err != nil {
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				answers <- answer{resp.StatusCode, string(b)}
			}()
		}
		wg.Wait()
		close(answers)
		for a := range answers {
			if a.status == http.StatusServiceUnavailable {
				if strings.Contains(a.body, "Invalid login or password.") {
					t.Fatalf("a busy logon with the right password (503) tells the operator %q", "Invalid login or password.")
				}
				return
			}
		}
	}
	t.Skip("no busy answer")
}
