package netzone

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func prefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := ParsePrefixes(s, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClientAddrAndZone(t *testing.T) {
	tests := []struct {
		name             string
		allowed, trusted string
		remote           string
		xff              []string
		wantAddr         string
		allowed_         bool
	}{
		{"socket address", "127.0.0.1/32", "", "127.0.0.1:5000", nil, "127.0.0.1", true},
		{"127.0.0.2 outside 127.0.0.1/32", "127.0.0.1/32", "", "127.0.0.2:5000", nil, "127.0.0.2", false},
		{"IPv4-mapped IPv6 is unmapped", "127.0.0.1/32", "", "[::ffff:127.0.0.1]:5000", nil, "127.0.0.1", true},
		{"spoofed XFF from an untrusted peer is ignored", "10.0.0.0/8", "", "192.0.2.7:5000", []string{"10.1.2.3"}, "192.0.2.7", false},
		{"trusted proxy: rightmost untrusted entry", "10.0.0.0/8", "127.0.0.1/32", "127.0.0.1:5000", []string{"203.0.113.9, 10.1.2.3"}, "10.1.2.3", true},
		{"trusted proxy chain", "10.0.0.0/8", "127.0.0.1/32,172.16.0.0/12", "127.0.0.1:5000", []string{"6.6.6.6, 10.9.9.9", "172.16.0.5"}, "10.9.9.9", true},
		{"client-written leftmost entry is never used", "10.0.0.0/8", "127.0.0.1/32", "127.0.0.1:5000", []string{"10.1.1.1, 203.0.113.9"}, "203.0.113.9", false},
		{"garbled chain believes nothing", "10.0.0.0/8", "127.0.0.1/32", "127.0.0.1:5000", []string{"10.1.1.1, not-an-ip"}, "invalid IP", false},
		{"mapped address in XFF", "10.0.0.0/8", "127.0.0.1/32", "127.0.0.1:5000", []string{"::ffff:10.2.3.4"}, "10.2.3.4", true},
		{"empty allow-list denies everyone", "", "", "127.0.0.1:5000", nil, "127.0.0.1", false},
		{"IPv6 loopback", "::1/128", "", "[::1]:5000", nil, "::1", true},
		// Mapped, compatible and zoned IPv6 peers (security-bar.md #76).
		{"mapped peer outside", "10.0.0.0/8", "", "[::ffff:203.0.113.5]:5000", nil, "203.0.113.5", false},
		{"mapped peer against a mapped allow-list", "::ffff:10.0.0.0/104", "", "10.0.0.7:5000", nil, "10.0.0.7", true},
		{"IPv4-compatible is not IPv4", "10.0.0.0/8", "", "[::10.0.0.7]:5000", nil, "::a00:7", false},
		{"zoned peer: compared without its zone", "fe80::/10", "", "[fe80::1%eth0]:5000", nil, "fe80::1", true},
		{"zoned peer outside", "10.0.0.0/8", "", "[fe80::1%eth0]:5000", nil, "fe80::1", false},
		// Odd entries fail closed (security-bar.md #75).
		{"unknown", "10.0.0.0/8", "127.0.0.1/32", "127.0.0.1:5000", []string{"unknown"}, "invalid IP", false},
		{"address with a port", "10.0.0.0/8", "127.0.0.1/32", "127.0.0.1:5000", []string{"10.0.0.7:80"}, "invalid IP", false},
		{"bracketed IPv6", "::1/128", "127.0.0.1/32", "127.0.0.1:5000", []string{"[::1]"}, "invalid IP", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := Zone{Allowed: prefixes(t, tt.allowed), Trusted: prefixes(t, tt.trusted)}
			r := httptest.NewRequest("GET", "/nms/gdpr.jssp?id=1", nil)
			r.RemoteAddr = tt.remote
			for _, h := range tt.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			a, ok := z.Allows(r)
			if a.String() != tt.wantAddr || ok != tt.allowed_ {
				t.Fatalf("got %s %v, want %s %v", a, ok, tt.wantAddr, tt.allowed_)
			}
		})
	}
}

// TestOtherHeadersIgnored: only X-Forwarded-For through a trusted proxy
// names the client; X-Real-IP, Forwarded and True-Client-IP are nobody's
// word (security-bar.md #75).
func TestOtherHeadersIgnored(t *testing.T) {
	z := Zone{Allowed: prefixes(t, "10.0.0.0/8"), Trusted: prefixes(t, "127.0.0.1/32")}
	for _, h := range []string{"X-Real-IP", "Forwarded", "True-Client-IP", "X-Client-IP", "CF-Connecting-IP"} {
		r := httptest.NewRequest("GET", "/nms/gdpr.jssp?id=1", nil)
		r.RemoteAddr = "127.0.0.1:5000"
		v := "10.0.0.7"
		if h == "Forwarded" {
			v = "for=10.0.0.7"
		}
		r.Header.Set(h, v)
		if a, ok := z.Allows(r); ok || a.String() != "127.0.0.1" {
			t.Errorf("%s: %s %v — a header other than X-Forwarded-For was believed", h, a, ok)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	for _, bad := range []string{"010.1.2.3", "10.0.0.1%eth0", "fe80::1%eth0/64", "10.0.0.0/33", "10.0.0.0/08", "0x0a.1.2.3", "2130706433", "nonsense",
		// IPv4-mapped and wider than the mapped range: used to be dropped
		// silently (a negative IPv4 length, a prefix matching nothing).
		"::ffff:0:0/95", "::ffff:10.0.0.0/88", "::ffff:10.0.0.0/64"} {
		if _, err := ParsePrefixes(bad, true); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParsePrefixes("0.0.0.0/0", false); err == nil {
		t.Error("0.0.0.0/0 accepted without being asked for")
	}
	if _, err := ParsePrefixes("::/0", false); err == nil {
		t.Error("::/0 accepted without being asked for")
	}
	p, err := ParsePrefixes("10.0.0.1/8, 192.168.1.7, ::ffff:172.16.0.0/108", false)
	if err != nil || p[0].String() != "10.0.0.0/8" || p[1].String() != "192.168.1.7/32" || p[2].String() != "172.16.0.0/12" {
		t.Fatalf("%v %v", p, err)
	}
}

// TestHTTPS: a client reached the service over TLS when its connection is
// TLS, or when its trusted proxy says so in the last X-Forwarded-Proto; the
// header from anyone else, or a value a client wrote before the proxy's,
// counts for nothing.
func TestHTTPS(t *testing.T) {
	z := Zone{Trusted: prefixes(t, "10.0.0.1")}
	for _, c := range []struct {
		peer   string
		protos []string
		want   bool
	}{
		{"10.0.0.1:4000", []string{"https"}, true},
		{"10.0.0.1:4000", []string{"HTTPS"}, true},
		{"[::ffff:10.0.0.1]:4000", []string{"https"}, true},
		{"10.0.0.1:4000", []string{"http"}, false},
		{"10.0.0.1:4000", []string{"https, http"}, false},
		{"10.0.0.1:4000", []string{"https", "http"}, false},
		{"10.0.0.1:4000", nil, false},
		{"10.0.0.9:4000", []string{"https"}, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, p := range c.protos {
			r.Header.Add("X-Forwarded-Proto", p)
		}
		if got := z.HTTPS(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-Proto %q: %v, want %v", c.peer, c.protos, got, c.want)
		}
	}
	r := httptest.NewRequest("GET", "https://example.com/", nil)
	if !z.HTTPS(r) {
		t.Error("a TLS connection of its own")
	}
}
