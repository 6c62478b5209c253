package web_test

import (
	"crypto/ed25519"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestRangeLimitWithUnsatisfiableTail: the Range cap of
// SECURITY-CATALOGUE J3 (more than 16 disjoint ranges → the whole file)
// must hold whatever else the header holds. A trailing part that starts past
// the end of the file with an end that does not parse ("N-x") makes
// limitRanges hand the header back untouched, while net/http's parser skips
// that part without reading its end and serves every other range.
func TestRangeLimitWithUnsatisfiableTail(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	file := "/nms/gdpr.jssp?id=" + strconv.FormatInt(w.access, 10)
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	_, body := ana.do("GET", file, nil)
	n := min(len(body)/2, 4000)
	if n < 100 {
		t.Fatalf("file of %d bytes is too small for the test", len(body))
	}
	var parts []string
	for i := range n {
		parts = append(parts, strconv.Itoa(2*i)+"-"+strconv.Itoa(2*i)) // disjoint one-byte ranges
	}
	tail := strconv.Itoa(len(body)+1000) + "-x"
	resp, data := ana.do("GET", file, nil, "Range", "bytes="+strings.Join(parts, ",")+","+tail)
	got := 1
	if mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && mt == "multipart/byteranges" {
		r := multipart.NewReader(strings.NewReader(data), params["boundary"])
		for got = 0; ; got++ {
			if _, err := r.NextPart(); err != nil {
				break
			}
		}
	}
	if got > 16 {
		t.Fatalf("%d disjoint ranges plus %q: %d, %d parts, %d bytes sent for a file of %d bytes (the cap is 16 parts)",
			n, tail, resp.StatusCode, got, len(data), len(body))
	}
}

// TestLogoffWithoutPrivacyRight: an operator who may log on to the
// console but does not hold the Privacy Data Right gets the "Access denied"
// page, which carries a "Log off" button; logging off must end the session.
// The gate refuses the logoff for want of the right, and the page's form
// even lacks its security token, so the session stays valid for 24 h.
func TestLogoffWithoutPrivacyRight(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	bob := newBrowser(t, w.env.URL)
	bob.logon("bob", "bob password")
	resp, page := bob.do("GET", "/privacy/", nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, `action="/privacy/logoff"`) {
		t.Fatalf("setup: %d, logoff form shown: %v", resp.StatusCode, strings.Contains(page, `action="/privacy/logoff"`))
	}
	formToken := csrfField.FindStringSubmatch(page)
	// Use the session's real security token (from the cookie jar), as a
	// fixed page would put in the form.
	u, _ := url.Parse(w.env.URL)
	var security string
	for _, c := range bob.c.Jar.Cookies(u) {
		if c.Name == "cp_security" {
			security = c.Value
		}
	}
	resp, _ = bob.do("POST", "/privacy/logoff", url.Values{"csrf": {security}})
	after, _ := bob.do("GET", "/privacy/", nil)
	if resp.StatusCode != http.StatusSeeOther || after.StatusCode != http.StatusFound {
		t.Fatalf("logoff by an operator without the privacy right: %d (want 303), then the console answers %d (want 302 to the logon page: session still valid); the page's logoff form token: %q",
			resp.StatusCode, after.StatusCode, formToken)
	}
}

// TestReceiptHeadIsNotAnAuditedDownload: as for the file (J7), a
// HEAD of the receipt reads nothing and must write nothing in the audit
// (nor in the audit hash chain), and repeated GETs within an hour must not
// each add a line. Every HEAD and GET of ?receipt=1 appends "Receipt
// downloaded by operator ..." to the request's audit.
func TestReceiptHeadIsNotAnAuditedDownload(t *testing.T) {
	key := ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	w := newWorld(t, "sqlite", servertest.Options{Privacy: func(c *privacy.Config) { c.ReceiptKey = key }})
	path := "/nms/gdpr.jssp?id=" + strconv.FormatInt(w.access, 10) + "&receipt=1"
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	lines := func() int {
		v, err := w.env.Privacy.Request(w.ctx, &session.Caller{OperatorID: 1, Rights: []string{session.RightPrivacy}}, w.access)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range v.AuditLines {
			if strings.Contains(l, "Receipt downloaded") {
				n++
			}
		}
		return n
	}
	for range 20 {
		if resp, body := ana.do("HEAD", path, nil); resp.StatusCode != http.StatusOK || body != "" {
			t.Fatalf("HEAD: %d", resp.StatusCode)
		}
	}
	if n := lines(); n != 0 {
		t.Errorf("20 HEADs of the receipt wrote %d 'Receipt downloaded' audit lines, want 0", n)
	}
	for range 20 {
		if resp, _ := ana.do("GET", path, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET: %d", resp.StatusCode)
		}
	}
	if n := lines(); n > 2 {
		t.Errorf("20 HEADs and 20 GETs of the receipt in one hour wrote %d audit lines, want at most the first download and a count", n)
	}
}

// countingBody is a request body of n bytes that counts what was read of
// it (the client's transport reads it in a goroutine of its own).
type countingBody struct {
	n      int64
	read   atomic.Int64
	prefix []byte
}

func (c *countingBody) Read(p []byte) (int, error) {
	read := c.read.Load()
	if read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-read)
	for i := range p[:k] {
		if off := read + int64(i); off < int64(len(c.prefix)) {
			p[i] = c.prefix[off]
		} else {
			p[i] = 'A'
		}
	}
	c.read.Add(k)
	return int(k), nil
}

// TestFormBodyBoundedBeforeAuthentication: the console's form posts
// (logoff, new request, confirm, namespaces, workflows) read the whole body
// (r.PostFormValue: up to 32 MiB of a multipart body in memory, the rest of
// its file parts on disk, without limit) before the caller is
// authenticated, so any client inside the zone, with no session, makes the
// server swallow what it sends. The logon form bounds its body at 16 KiB;
// a refused anonymous post must not read tens of MiB.
func TestFormBodyBoundedBeforeAuthentication(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	const size = 40 << 20
	head := "--XX\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a\"\r\nContent-Type: application/octet-stream\r\n\r\n"
	body := &countingBody{n: size, prefix: []byte(head)}
	req, _ := http.NewRequest("POST", w.env.URL+"/privacy/logoff", body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "multipart/form-data; boundary=XX")
	resp, err := http.DefaultClient.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		resp.Body.Close()
	}
	if read := body.read.Load(); read > 8<<20 {
		t.Fatalf("an anonymous form post of %d MiB: the server read %d MiB of it before answering %d (err %v)",
			size>>20, read>>20, status, err)
	}
}
