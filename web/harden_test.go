package web_test

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
	"github.com/campaign-privacy/campaign-privacy/web"
)

// TestLogonTargetStaysOnSite: a post-logon target that a browser would read
// as another host (after dropping TAB/CR/LF and turning backslashes into
// slashes) or that names no console page goes to the request list; the
// console's own pages survive, rebuilt from their parsed form. The WHATWG
// view of the same targets is checked by interop/browser (attacks.spec.js).
func TestLogonTargetStaysOnSite(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	b := newBrowser(t, w.env.URL)
	for target, want := range map[string]string{
		"/\t/evil.example":            "/privacy/",
		"/\t/evil.example/privacy/":   "/privacy/",
		"/%09/evil.example":           "/privacy/",
		"/\n/evil.example":            "/privacy/",
		"/\r\n/evil.example":          "/privacy/",
		`/\evil.example`:              "/privacy/",
		`\/evil.example`:              "/privacy/",
		"//evil.example/x":            "/privacy/",
		" //evil.example":             "/privacy/",
		"\x00//evil.example":          "/privacy/",
		"/\x0b/evil.example":          "/privacy/",
		"https://evil.example/":       "/privacy/",
		"javascript:alert(1)":         "/privacy/",
		"/privacy/../../evil.example": "/privacy/",
		"/evil.example":               "/privacy/",
		"/privacy/%2F%2Fevil.example": "/privacy/",
		"/privacy/requests/1/../../x": "/privacy/",
		"":                            "/privacy/",
		"/privacy/":                   "/privacy/",
		"/privacy/requests/12":        "/privacy/requests/12",
		"/privacy/new":                "/privacy/new",
		"/privacy/namespaces":         "/privacy/namespaces",
		"/privacy/download?id=7":      "/privacy/download?id=7",
		"/nms/gdpr.jssp?id=7":         "/nms/gdpr.jssp?id=7",
		"/privacy/?status=1&page=2":   "/privacy/?page=2&status=1",
		"/privacy/?subject=a%09b":     "/privacy/",
		"/privacy/?type=1&subject=x":  "/privacy/?type=1",
	} {
		resp, _ := b.do("POST", "/privacy/logon", url.Values{"login": {"ana"}, "password": {"ana password"}, "target": {target}})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("target %q: %d Location %q, want %q", target, resp.StatusCode, resp.Header.Get("Location"), want)
		}
		// The same target through the logon form's page and ACC's logon.jsp.
		resp, _ = b.do("GET", "/nl/jsp/logon.jsp?target="+url.QueryEscape(target), nil)
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("logon.jsp: %d", resp.StatusCode)
		}
		_, page := b.do("GET", resp.Header.Get("Location"), nil)
		if !strings.Contains(page, `name="target" value="`+strings.ReplaceAll(want, "&", "&amp;")+`"`) {
			t.Errorf("logon.jsp target %q: the form does not carry %q", target, want)
		}
	}
}

// TestNoticesAreCodes: ?notice= shows only the fixed texts of its codes;
// free text (or an unknown code) shows no banner.
func TestNoticesAreCodes(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	detail := "/privacy/requests/" + strconv.FormatInt(w.access, 10)
	for _, path := range []string{"/privacy/?notice=", detail + "?notice=", "/privacy/namespaces?notice="} {
		for _, text := range []string{"Your+account+is+suspended,+call++1-555-0100.", "Request+created.", "workflows", "%3Cb%3Ex%3C%2Fb%3E"} {
			_, body := ana.do("GET", path+text, nil)
			if strings.Contains(body, `class="alert notice"`) {
				t.Errorf("%s%s shows a notice banner", path, text)
			}
		}
	}
	if _, body := ana.do("GET", detail+"?notice=created", nil); !strings.Contains(body, `<div class="alert notice" role="status">Request created.</div>`) {
		t.Error("?notice=created does not show its text")
	}
	// After a logon the target's notice is a code too.
	b := newBrowser(t, w.env.URL)
	resp, _ := b.do("POST", "/privacy/logon", url.Values{"login": {"ana"}, "password": {"ana password"}, "target": {"/privacy/?notice=Call+us+now"}})
	if _, body := b.do("GET", resp.Header.Get("Location"), nil); strings.Contains(body, "Call us now") {
		t.Errorf("notice text survived the logon redirect to %s", resp.Header.Get("Location"))
	}
	// The workflows' report comes from the run, not from the URL.
	root := newBrowser(t, w.env.URL)
	root.logon("root", "root password")
	resp, _ = root.do("POST", "/privacy/workflows", url.Values{"csrf": {root.csrf}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/privacy/?notice=workflows" {
		t.Fatalf("workflows: %d %s", resp.StatusCode, loc)
	}
	if _, body := root.do("GET", "/privacy/?notice=workflows", nil); !strings.Contains(body, `<div class="alert notice" role="status">Workflows run: `) {
		t.Error("no workflows report after the run")
	}
}

// TestLogonCSRF: a logon form posted from another origin is refused, so a
// page elsewhere cannot log a victim's browser on as the attacker; the
// console's own form (same origin, or a client that is no browser) works.
func TestLogonCSRF(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	host := strings.TrimPrefix(w.env.URL, "http://")
	form := url.Values{"login": {"ana"}, "password": {"ana password"}, "target": {"/privacy/"}}
	// The logon page lets its own form carry a real Origin.
	if resp, _ := newBrowser(t, w.env.URL).do("GET", "/privacy/logon", nil); resp.Header.Get("Referrer-Policy") != "same-origin" {
		t.Errorf("logon page Referrer-Policy %q", resp.Header.Get("Referrer-Policy"))
	}
	for _, h := range [][]string{
		{"Origin", "http://evil.example"},
		{"Origin", "null"},
		{"Origin", "http://" + host + ".evil.example"},
		{"Origin", "http://127.0.0.1:1"},
		{"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site"},
		{"Sec-Fetch-Site", "cross-site", "Origin", w.env.URL},
	} {
		b := newBrowser(t, w.env.URL)
		resp, _ := b.do("POST", "/privacy/logon", form, h...)
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("logon with %v: %d, %d cookies", h, resp.StatusCode, len(resp.Cookies()))
		}
	}
	for _, h := range [][]string{
		{"Origin", w.env.URL, "Sec-Fetch-Site", "same-origin"},
		{"Origin", "null", "Sec-Fetch-Site", "same-origin"},
		{"Origin", w.env.URL},
		{"Origin", "https://" + host},
		{"Sec-Fetch-Site", "none"},
		{},
	} {
		b := newBrowser(t, w.env.URL)
		if resp, _ := b.do("POST", "/privacy/logon", form, h...); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("logon with %v: %d", h, resp.StatusCode)
		}
	}
}

// TestRangeLimits: overlapping ranges are merged, more than 16 disjoint
// ones get the whole file, a few disjoint ones still get their parts.
func TestRangeLimits(t *testing.T) {
	w := newWorld(t, "sqlite", servertest.Options{})
	file := "/nms/gdpr.jssp?id=" + strconv.FormatInt(w.access, 10)
	ana := newBrowser(t, w.env.URL)
	ana.logon("ana", "ana password")
	_, body := ana.do("GET", file, nil)
	if len(body) < 200 {
		t.Fatalf("file of %d bytes is too small for the test", len(body))
	}
	ranges := func(n, step int) string {
		var parts []string
		for i := range n {
			parts = append(parts, strconv.Itoa(i*step)+"-"+strconv.Itoa(i*step))
		}
		return "bytes=" + strings.Join(parts, ",")
	}
	parts := func(resp *http.Response, data string) int {
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			return 1
		}
		r := multipart.NewReader(strings.NewReader(data), params["boundary"])
		n := 0
		for {
			if _, err := r.NextPart(); err != nil {
				return n
			}
			n++
		}
	}
	// 4,000 copies of one byte: one part.
	resp, data := ana.do("GET", file, nil, "Range", ranges(4000, 0))
	if resp.StatusCode != http.StatusPartialContent || data != body[:1] {
		t.Errorf("4,000 overlapping ranges: %d, %d parts, %d bytes", resp.StatusCode, parts(resp, data), len(data))
	}
	// Touching ranges merge too: 0-0,1-1,...,99-99 is 0-99.
	resp, data = ana.do("GET", file, nil, "Range", ranges(100, 1))
	if resp.StatusCode != http.StatusPartialContent || data != body[:100] {
		t.Errorf("100 touching ranges: %d, %d parts", resp.StatusCode, parts(resp, data))
	}
	// 17 disjoint ranges: the whole file.
	resp, data = ana.do("GET", file, nil, "Range", ranges(17, 3))
	if resp.StatusCode != http.StatusOK || data != body {
		t.Errorf("17 disjoint ranges: %d, %d parts", resp.StatusCode, parts(resp, data))
	}
	// 16 disjoint ranges: 16 parts.
	resp, data = ana.do("GET", file, nil, "Range", ranges(16, 3))
	if resp.StatusCode != http.StatusPartialContent || parts(resp, data) != 16 {
		t.Errorf("16 disjoint ranges: %d, %d parts", resp.StatusCode, parts(resp, data))
	}
	// Past the end: 416, as before.
	if resp, _ := ana.do("GET", file, nil, "Range", "bytes="+strconv.Itoa(len(body)+10)+"-"); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %d", resp.StatusCode)
	}
}

// TestDownloadAuditPerHour: HEADs write nothing; GETs, Ranges and 304s of
// one operator and file in one hour write one line, and their count when
// the hour is over.
func TestDownloadAuditPerHour(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			w := newWorld(t, dialect, servertest.Options{})
			file := "/nms/gdpr.jssp?id=" + strconv.FormatInt(w.access, 10)
			ana := newBrowser(t, w.env.URL)
			ana.logon("ana", "ana password")
			lines := func(prefix string) []string {
				v, err := w.env.Privacy.Request(w.ctx, &session.Caller{OperatorID: 1, Rights: []string{session.RightPrivacy}}, w.access)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, l := range v.AuditLines {
					if strings.Contains(l, prefix) {
						out = append(out, l)
					}
				}
				return out
			}
			for range 50 {
				if resp, _ := ana.do("HEAD", file, nil); resp.StatusCode != http.StatusOK {
					t.Fatalf("HEAD: %d", resp.StatusCode)
				}
			}
			if got := lines("File downloaded"); len(got) != 0 {
				t.Fatalf("HEADs were recorded as downloads: %q", got)
			}
			resp, _ := ana.do("GET", file, nil)
			etag := resp.Header.Get("ETag")
			for i := range 20 {
				if resp, _ := ana.do("GET", file, nil, "Range", "bytes="+strconv.Itoa(i)+"-"+strconv.Itoa(i+10)); resp.StatusCode != http.StatusPartialContent {
					t.Fatalf("Range: %d", resp.StatusCode)
				}
			}
			for range 10 {
				if resp, _ := ana.do("GET", file, nil, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
					t.Fatalf("If-None-Match: %d", resp.StatusCode)
				}
			}
			if got := lines("File downloaded"); len(got) != 1 || !strings.HasSuffix(got[0], "File downloaded by operator 'ana' from 127.0.0.1.") {
				t.Fatalf("31 downloads in one hour wrote %d lines: %q", len(got), got)
			}
			// Another operator's download is a line of its own.
			root := newBrowser(t, w.env.URL)
			root.logon("root", "root password")
			root.do("GET", file, nil)
			if got := lines("by operator 'root'"); len(got) != 1 {
				t.Fatalf("root's download: %q", got)
			}
			hour := w.env.Clock.Now().UTC().Truncate(time.Hour).Format("2006-01-02 15:04Z")
			w.env.Clock.Advance(time.Hour)
			ana.do("GET", file, nil)
			want := "File downloaded 30 more times by operator 'ana' in the hour from " + hour + "."
			if got := lines("File downloaded"); len(got) != 4 || !strings.HasSuffix(got[2], want) && !strings.HasSuffix(got[3], want) {
				t.Fatalf("after the hour: %q, want the count line %q and a new first line", got, want)
			}
		})
	}
}

// bigFile makes a complete access request whose file is about mb MB (one
// subject with many delivery logs, as bench/download does).
func bigFile(t *testing.T, w *world, mb int) int64 {
	t.Helper()
	const rid = 1_000_000
	if err := w.env.DB.InsertRows(w.ctx, "nms_recipient", []string{"id", "email", "first_name"}, [][]any{{int64(rid), "big@example.com", "Big"}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	var rows [][]any
	for i := range mb * 1_000_000 / 230 {
		rows = append(rows, []any{int64(rid + i), int64(rid), "big@example.com", int64(1), now, now, "Monthly newsletter, edition " + strconv.Itoa(i)})
	}
	for len(rows) > 0 {
		n := min(len(rows), 5_000)
		if err := w.env.DB.InsertRows(w.ctx, "nms_broad_log_rcp", []string{"id", "recipient_id", "address", "status", "event_date", "contact_date", "delivery_label"}, rows[:n]); err != nil {
			t.Fatal(err)
		}
		rows = rows[n:]
	}
	id, err := w.env.Privacy.CreateRequestByName(w.ctx, &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}},
		privacy.CreateRequest{NamespaceName: "defaultNamespace1", ReconciliationValue: "big@example.com", Type: privacy.TypeAccess})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.env.Privacy.Run(w.ctx, privacy.Collect); err != nil {
		t.Fatal(err)
	}
	return id
}

// rawGet opens a download on a socket of its own, with a small receive
// buffer, sends the request and reads only the status line.
func rawGet(t *testing.T, b *browser, path string) (net.Conn, string) {
	t.Helper()
	u, _ := url.Parse(b.base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	var cookies []string
	for _, c := range b.c.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nCookie: %s\r\n\r\n", path, u.Host, strings.Join(cookies, "; "))
	line := make([]byte, 12)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(conn, line); err != nil {
		t.Fatal(err)
	}
	return conn, string(line)
}

// TestSlowDownloads: downloads in flight are capped per operator and in
// total; a reader that stops reading is dropped after the stall time and
// its slot is free again.
func TestSlowDownloads(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			w := newWorld(t, dialect, servertest.Options{Web: func(c *web.Config) {
				c.Downloads = web.DownloadLimits{Total: 3, PerOperator: 2, MinRate: 64 << 10, Stall: time.Second}
			}})
			id := bigFile(t, w, 12)
			file := "/nms/gdpr.jssp?id=" + strconv.FormatInt(id, 10)
			ana, root := newBrowser(t, w.env.URL), newBrowser(t, w.env.URL)
			ana.logon("ana", "ana password")
			root.logon("root", "root password")
			head, _ := ana.do("HEAD", file, nil)
			t.Logf("file of %d bytes", head.ContentLength)

			var slow []net.Conn
			defer func() {
				for _, c := range slow {
					c.Close()
				}
			}()
			for range 2 {
				c, status := rawGet(t, ana, file)
				if status != "HTTP/1.1 200" {
					t.Fatalf("ana's download: %q", status)
				}
				slow = append(slow, c)
			}
			if resp, _ := ana.do("GET", file, nil); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("ana's third download at once: %d", resp.StatusCode)
			}
			c, status := rawGet(t, root, file)
			if status != "HTTP/1.1 200" {
				t.Fatalf("root's download: %q", status)
			}
			slow = append(slow, c)
			if resp, _ := root.do("GET", file, nil); resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("a fourth download in all: %d", resp.StatusCode)
			}
			// A HEAD is no download: it still answers.
			if resp, _ := ana.do("HEAD", file, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("HEAD while the slots are taken: %d", resp.StatusCode)
			}
			// The readers never read: the server gives up on them after the
			// stall time and their slots are free again.
			start := time.Now()
			var resp *http.Response
			var body string
			for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
				if resp, body = ana.do("GET", file, nil); resp.StatusCode != http.StatusServiceUnavailable {
					break
				}
			}
			t.Logf("slots free again after %s", time.Since(start).Round(100*time.Millisecond))
			for _, c := range slow {
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				if n, _ := io.Copy(io.Discard, c); n >= head.ContentLength {
					t.Fatalf("a stalled reader got the whole file (%d bytes)", n)
				}
			}
			if resp.StatusCode != http.StatusOK || len(body) < 10_000_000 {
				t.Fatalf("after the slow readers: %d, %d bytes", resp.StatusCode, len(body))
			}
		})
	}
}

// TestRefusalLogsNoCallerText: what a refused client wrote — a console
// URL's path from outside the security zone, a Sec-Fetch-Site header on a
// cross-site logon — is any text, personal data too: the log names the
// route and the known header values only.
func TestRefusalLogsNoCallerText(t *testing.T) {
	const secret = "maria.review@example.com"
	env := servertest.New(t, "sqlite", servertest.Options{Web: func(c *web.Config) {
		c.Zone = netzone.Zone{Allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	}})
	resp, err := http.Get(env.URL + "/privacy/requests/" + secret)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("from outside the zone: %d", resp.StatusCode)
	}
	open := servertest.New(t, "sqlite", servertest.Options{})
	req, _ := http.NewRequest(http.MethodPost, open.URL+"/privacy/logon", strings.NewReader("login=ana&password=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", secret)
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site logon: %d", resp.StatusCode)
	}
	for logs, want := range map[string]string{env.Logs.String(): `path="GET /privacy/requests/{id}"`, open.Logs.String(): "sec_fetch_site=other"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the refusal is not logged with %s:\n%s", want, logs)
		}
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, secret) {
				t.Errorf("the log holds the caller's %q:\n%s", secret, line)
			}
		}
	}
}
