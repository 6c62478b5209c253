// Package netzone is ACC's security zone for HTTP: which client address a
// request really comes from (the socket's peer, or, through trusted
// reverse proxies, the rightmost untrusted X-Forwarded-For entry) and
// whether it is allowed. The web pages use it for their allow-list, the
// SOAP router for its per-address logon limit.
package netzone

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Zone is ACC's security zone for the web pages: the networks allowed to
// reach them, and the reverse proxies whose X-Forwarded-For is believed.
type Zone struct {
	Allowed []netip.Prefix
	Trusted []netip.Prefix
}

// ParsePrefixes reads a comma-separated list of CIDRs or addresses
// (CP_ALLOWED_SUBNETS, CP_TRUSTED_PROXIES). Parsing is strict (no leading
// zeros, no zones); "allow everything" (0.0.0.0/0, ::/0) must be written
// on purpose and is refused unless allowAll says so.
func ParsePrefixes(list string, allowAll bool) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var p netip.Prefix
		var err error
		if strings.Contains(part, "/") {
			p, err = netip.ParsePrefix(part)
		} else {
			var a netip.Addr
			a, err = netip.ParseAddr(part)
			if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%q is not an IP address or CIDR", part)
		}
		if p.Addr().Is4In6() && p.Bits() < 96 {
			// Beyond the IPv4-mapped range: no IPv4 prefix it could be.
			return nil, fmt.Errorf("%q is wider than the IPv4-mapped range ::ffff:0:0/96", part)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p)).Masked()
		if p.Bits() == 0 && !allowAll {
			return nil, fmt.Errorf("%q allows every address: write it together with the explicit setting if you mean it", part)
		}
		out = append(out, p)
	}
	return out, nil
}

func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return 96
	}
	return 0
}

func contains(list []netip.Prefix, a netip.Addr) bool {
	for _, p := range list {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address a request comes from: the socket's peer, unless
// that peer is a trusted proxy; then the rightmost X-Forwarded-For entry
// that is not a trusted proxy (entries to its left are written by the
// client and worth nothing). IPv4-mapped IPv6 is unmapped. ok is false when
// no usable address can be derived.
func (z Zone) ClientAddr(r *http.Request) (netip.Addr, bool) {
	peer, ok := peerOf(r)
	if !ok {
		return netip.Addr{}, false
	}
	if !contains(z.Trusted, peer) {
		return peer, true
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, false // a garbled chain: believe nothing
		}
		a = a.Unmap()
		if !contains(z.Trusted, a) {
			return a, true
		}
	}
	return peer, true // only proxies: the request comes from the proxy itself
}

// HTTPS reports whether the client reached the service over TLS: a TLS
// connection of its own, or, from a trusted proxy (which terminates TLS in
// front of the service), X-Forwarded-Proto https as the proxy wrote it (its
// last value). A client's own header through an untrusted peer counts for
// nothing.
func (z Zone) HTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if peer, ok := peerOf(r); !ok || !contains(z.Trusted, peer) {
		return false
	}
	var protos []string
	for _, h := range r.Header.Values("X-Forwarded-Proto") {
		protos = append(protos, strings.Split(h, ",")...)
	}
	return len(protos) > 0 && strings.EqualFold(strings.TrimSpace(protos[len(protos)-1]), "https")
}

// peerOf is the socket's peer of r, IPv4-mapped IPv6 unmapped, without a
// zone.
func peerOf(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return peer.Unmap().WithZone(""), true
}

// Allows reports whether the request's client is inside the zone. An empty
// allow-list allows nobody.
func (z Zone) Allows(r *http.Request) (netip.Addr, bool) {
	a, ok := z.ClientAddr(r)
	return a, ok && contains(z.Allowed, a)
}
