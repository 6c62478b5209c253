package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
)

// J53 says a subject value is never in "an address, a logon target or a
// redirect", and safeTarget drops it from /privacy/logon's
// target. The ACC-compatible entry /nl/jsp/logon.jsp?target=… (web.go:
// Register) still copies its target, unfiltered, into the Location of its
// redirect to /privacy/logon: a link to the list with ?subject=<e-mail>
// (an old bookmark, a link another tool built in the GET era) is answered
// with one more address carrying the person's e-mail — another line in
// the proxy's access log and the browser's history, which no delete
// reaches — where every other path now drops it.
func TestACCLogonRedirectDropsSubject(t *testing.T) {
	env := servertest.New(t, "sqlite", servertest.Options{})
	b := newBrowser(t, env.URL)
	const email = "alice.erased@example.com"
	target := "/privacy/?type=1&subject=" + url.QueryEscape(email)
	resp, _ := b.do("GET", "/nl/jsp/logon.jsp?target="+url.QueryEscape(target), nil)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("logon.jsp: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if strings.Contains(loc, "alice.erased") {
		t.Fatalf("the redirect of /nl/jsp/logon.jsp carries the data subject's value in its address: Location: %s", loc)
	}
}
