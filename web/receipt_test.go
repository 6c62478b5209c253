package web_test

import (
	"crypto/ed25519"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestReceiptDownload: the receipt is served under the file's rules and
// linked from the request page; a request without one has none.
func TestReceiptDownload(t *testing.T) {
	key := ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			w := newWorld(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) { c.ReceiptKey = key }})
			path := "/nms/gdpr.jssp?id=" + strconv.FormatInt(w.access, 10) + "&receipt=1"
			anon := newBrowser(t, w.env.URL)
			if resp, _ := anon.do("GET", path, nil); resp.StatusCode != http.StatusFound {
				t.Fatalf("anonymous: %d", resp.StatusCode)
			}
			bob := newBrowser(t, w.env.URL)
			bob.logon("bob", "bob password")
			if resp, _ := bob.do("GET", path, nil); resp.StatusCode != http.StatusForbidden {
				t.Fatalf("without the right: %d", resp.StatusCode)
			}
			ana := newBrowser(t, w.env.URL)
			ana.logon("ana", "ana password")
			resp, body := ana.do("GET", path, nil)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jose" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Fatalf("receipt: %d %v", resp.StatusCode, resp.Header)
			}
			c, err := privacy.VerifyReceipt(body, []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
			if err != nil || c.RequestID != w.access {
				t.Fatalf("served receipt: %+v %v", c, err)
			}
			if resp, _ := ana.do("GET", "/nms/gdpr.jssp?id="+strconv.FormatInt(w.fresh, 10)+"&receipt=1", nil); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("a request without a receipt: %d", resp.StatusCode)
			}
			if _, page := ana.do("GET", "/privacy/requests/"+strconv.FormatInt(w.access, 10), nil); !strings.Contains(page, `id="receipt" href="/nms/gdpr.jssp?id=`+strconv.FormatInt(w.access, 10)+`&amp;receipt=1"`) {
				t.Fatalf("no receipt link on the request page:\n%s", page)
			}
			if _, page := ana.do("GET", "/privacy/requests/"+strconv.FormatInt(w.fresh, 10), nil); strings.Contains(page, `id="receipt"`) {
				t.Fatal("a receipt link on a request without one")
			}
		})
	}
}

// TestConsoleSaysAStoredReceiptDoesNotVerify: a receipt changed where it
// is stored is refused by the download (a Conflict, J142); the request page
// then offers no link to it, and says the stored receipt does not verify,
// naming the command that checks them all.
func TestConsoleSaysAStoredReceiptDoesNotVerify(t *testing.T) {
	key := ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			w := newWorld(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) { c.ReceiptKey = key }})
			ctx := t.Context()
			conn := storetest.SQLOf(t, w.env.DB)
			jws, err := conn.Bytes(ctx, "SELECT jws FROM privacy_receipts WHERE request_id = ?", w.access)
			if err != nil {
				t.Fatal(err)
			}
			// The last signature character changed: the JWS no longer verifies.
			forged := string(jws[:len(jws)-2]) + map[bool]string{true: "AA", false: "BB"}[string(jws[len(jws)-2:]) != "AA"]
			if err := conn.Exec(ctx, "UPDATE privacy_receipts SET jws = ? WHERE request_id = ?", forged, w.access); err != nil {
				t.Fatal(err)
			}
			ana := newBrowser(t, w.env.URL)
			ana.logon("ana", "ana password")
			id := strconv.FormatInt(w.access, 10)
			if resp, _ := ana.do("GET", "/nms/gdpr.jssp?id="+id+"&receipt=1", nil); resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("the changed receipt's download: %d, want 400 (a Conflict)", resp.StatusCode)
			}
			_, page := ana.do("GET", "/privacy/requests/"+id, nil)
			if strings.Contains(page, `id="receipt"`) {
				t.Errorf("the request page links to a receipt its download refuses")
			}
			if !strings.Contains(page, `id="receipt-invalid"`) || !strings.Contains(page, "audit verify") {
				t.Errorf("the request page does not say its stored receipt does not verify:\n%s", page)
			}
		})
	}
}
