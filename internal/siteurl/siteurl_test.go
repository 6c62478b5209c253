package siteurl

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

func TestBase(t *testing.T) {
	for host, want := range map[string]string{
		"example.com":         "http://example.com",
		"example.com:8080":    "http://example.com:8080",
		"[::1]:8080":          "http://[::1]:8080",
		`evil.com/"><script>`: "http://localhost:8080",
		"a.com@b.com":         "http://localhost:8080",
		"":                    "http://localhost:8080",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		if got := Base(r, ":8080"); got != want {
			t.Errorf("Host %q: %s, want %s", host, got, want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Host, r.TLS = "example.com", &tls.ConnectionState{}
	if got := Base(r, ""); got != "https://example.com" {
		t.Errorf("TLS: %s", got)
	}
}
