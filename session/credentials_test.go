package session

import (
	"net/http/httptest"
	"testing"
)

// TestReadCredentials pins the one order both fronts read tokens in.
func TestReadCredentials(t *testing.T) {
	for _, c := range []struct {
		name       string
		env        Envelope
		header     map[string]string
		want       string
		cookieOnly bool
		security   string
	}{
		{"parameter first", Envelope{SessionToken: " p "}, map[string]string{"X-Session-Token": "h", "Cookie": "__sessiontoken=c"}, "p", false, ""},
		{"header before envelope cookie", Envelope{Cookie: "a=b; __sessiontoken=e"}, map[string]string{"X-Session-Token": "h"}, "h", false, ""},
		{"envelope cookie before bearer", Envelope{Cookie: "a=b; __sessiontoken=e"}, map[string]string{"Authorization": "Bearer b"}, "e", false, ""},
		{"bearer before the HTTP cookie", Envelope{}, map[string]string{"Authorization": "bearer b", "Cookie": "__sessiontoken=c"}, "b", false, ""},
		{"cookie alone needs the security token", Envelope{}, map[string]string{"Cookie": "__sessiontoken=c", "X-Security-Token": "s"}, "c", true, "s"},
		{"security token from the envelope", Envelope{SecurityToken: "es"}, map[string]string{"X-Session-Token": "h"}, "h", false, "es"},
		{"nothing", Envelope{}, nil, "", false, ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		got := ReadCredentials(r, c.env)
		if got.SessionToken != c.want || got.CookieOnly != c.cookieOnly || got.SecurityToken != c.security {
			t.Errorf("%s: got %+v, want token %q cookieOnly %v security %q", c.name, got, c.want, c.cookieOnly, c.security)
		}
	}
}
