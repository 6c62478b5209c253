// Package siteurl derives this server's own address as a client reached it,
// for the URLs the service hands out: the WSDL's soap:address and a
// request's @urlFile. The SOAP front end and the web front share it.
package siteurl

import (
	"net/http"
	"regexp"
	"strings"
)

// hostPattern is what a Host header may look like before it is echoed into
// a URL: a host name or IP literal, with an optional port.
var hostPattern = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// Base returns "scheme://host" for r, https when the client reached the
// service over TLS (netzone.Zone.HTTPS: its own, or its trusted proxy's).
// A Host header that does not look like
// a host (an injection attempt) is replaced by fallback, the listen
// address ("localhost" stands in for an empty host part).
func Base(r *http.Request, https bool, fallback string) string {
	scheme := "http"
	if https {
		scheme = "https"
	}
	host := r.Host
	if !hostPattern.MatchString(host) {
		host = fallback
		if host == "" || strings.HasPrefix(host, ":") {
			host = "localhost" + host
		}
	}
	return scheme + "://" + host
}
