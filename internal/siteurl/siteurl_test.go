package siteurl

import (
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
		if got := Base(r, false, ":8080"); got != want {
			t.Errorf("Host %q: %s, want %s", host, got, want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Host = "example.com"
	if got := Base(r, true, ""); got != "https://example.com" {
		t.Errorf("TLS: %s", got)
	}
}
