package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// TestConsoleRequestValueNotInTheLog (PostgreSQL).
//
// Bug: the console's "New privacy request" form takes the value as bytes
// (a form post need not be UTF-8; privacy.CheckReconciliationValue and
// canon keep bytes that are not UTF-8 as they are, J68). On PostgreSQL the
// INSERT fails with SQLSTATE 22021, the error is Internal "Database
// error." with the driver's text as cause, and web.fail logs it as is:
//
//	level=ERROR msg="web request failed" path="POST /privacy/new"
//	err="internal: Database error.: ERROR: invalid byte sequence for
//	encoding \"UTF8\": 0xe9 0x2e 0x73 (SQLSTATE 22021)"
//
// — bytes of the data subject's value ("é.s" of "josé.secret@…" in
// Latin-1) in the log, and the DPO gets a 500 where SQLite records the
// request.
//
// Harm: part of a reconciliation value in the log (the rule is none);
// same root cause as server/review_logs_test.go: the database's error text
// is kept verbatim for Internal errors.
func TestConsoleRequestValueNotInTheLog(t *testing.T) {
	w := newWorld(t, store.Postgres, servertest.Options{})
	b := newBrowser(t, w.env.URL)
	b.logon("ana", "ana password")
	before := len(w.env.Logs.String())
	resp, _ := b.do("POST", "/privacy/new", url.Values{"csrf": {b.csrf}, "namespace": {"defaultNamespace1"},
		"value": {"jos\xe9.secret@example.com"}, "type": {"1"}, "regulation": {"1"}})
	logs := w.env.Logs.String()[before:]
	// The value's bytes as PostgreSQL quotes them, and its text.
	for _, part := range []string{"0xe9 0x2e 0x73", "secret@example.com"} {
		if strings.Contains(logs, part) {
			t.Errorf("the log holds the value's bytes %q:\n%s", part, logs)
		}
	}
	if resp.StatusCode == http.StatusInternalServerError {
		t.Errorf("the DPO's request is answered 500 (SQLite records it):\n%s", logs)
	}
}
