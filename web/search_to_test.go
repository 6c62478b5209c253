package web_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// TestSearchToLastDay: the console's request search with "to" the
// last day the date field takes (9999-12-31, the bound the queryDef dates
// keep too) must find today's requests, as "to" far in the future does.
// handleList adds a day ("to" includes its day): 10000-01-01, which SQLite
// compares as text ("10000-…" < "2025-…"), so nothing is found.
func TestSearchToLastDay(t *testing.T) {
	w := newWorld(t, store.SQLite, servertest.Options{})
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	for _, to := range []string{"2999-12-31", "9998-12-31", "9999-12-31"} {
		resp, body := ana.do("POST", "/privacy/", url.Values{"csrf": {ana.csrf}, "to": {to}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("to=%s: %d", to, resp.StatusCode)
		}
		if !strings.Contains(body, `href="/privacy/requests/`+strconv.FormatInt(w.access, 10)+`"`) {
			t.Errorf("search to=%s does not find the request created today", to)
		}
	}
}
