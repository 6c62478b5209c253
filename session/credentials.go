package session

import (
	"net/http"
	"strings"
)

// SessionCookie is ACC's session cookie; a token that arrives only in it
// needs the security token too (CookieOnly), since a browser sends cookies
// by itself.
const SessionCookie = "__sessiontoken"

// Envelope holds the credentials a SOAP envelope carries: the session
// token parameter and the Cookie and X-Security-Token entries of the SOAP
// header. The web front has none.
type Envelope struct {
	SessionToken  string // the first positional parameter
	Cookie        string // the SOAP header's Cookie value
	SecurityToken string // the SOAP header's X-Security-Token
}

// ReadCredentials is the one reader of a caller's credentials, for the SOAP
// router and the web front alike. The session token is the first found of:
// the envelope's parameter, the X-Session-Token header, the envelope's
// __sessiontoken cookie, an Authorization bearer (then Bearer: it may be an
// IMS token), the HTTP __sessiontoken cookie (then CookieOnly). The security token is the X-Security-Token
// header, else the envelope's.
func ReadCredentials(r *http.Request, env Envelope) Credentials {
	var cred Credentials
	cred.SessionToken = strings.TrimSpace(env.SessionToken)
	if cred.SessionToken == "" {
		cred.SessionToken = strings.TrimSpace(r.Header.Get("X-Session-Token"))
	}
	if cred.SessionToken == "" && env.Cookie != "" {
		cred.SessionToken = cookieValue(env.Cookie, SessionCookie)
	}
	if cred.SessionToken == "" {
		if auth := r.Header.Get("Authorization"); len(auth) > 7 && strings.EqualFold(auth[:7], "Bearer ") {
			cred.SessionToken = strings.TrimSpace(auth[7:])
			cred.Bearer = cred.SessionToken != ""
		}
	}
	if cred.SessionToken == "" {
		if ck, err := r.Cookie(SessionCookie); err == nil {
			cred.SessionToken = ck.Value
			cred.CookieOnly = true
		}
	}
	cred.SecurityToken = strings.TrimSpace(r.Header.Get("X-Security-Token"))
	if cred.SecurityToken == "" {
		cred.SecurityToken = strings.TrimSpace(env.SecurityToken)
	}
	return cred
}

// cookieValue extracts one cookie from a Cookie header value.
func cookieValue(header, name string) string {
	for _, part := range strings.Split(header, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == name {
			return v
		}
	}
	return ""
}
