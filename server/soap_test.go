package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
)

const (
	badLogon   = "<faultstring xsi:type='xsd:string'>XSV-350012 Invalid login or password.</faultstring>"
	badSession = "<faultstring xsi:type='xsd:string'>XSV-350008 Session has expired or is invalid. Please reconnect.</faultstring>"
)

func eachStore(t *testing.T, f func(t *testing.T, dialect string)) {
	for _, d := range storetest.Dialects {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			f(t, d)
		})
	}
}

func userInfoCall(token string) string {
	return servertest.Envelope("", `<m:GetUserInfo xmlns:m="urn:xtk:session"><sessiontoken>`+token+`</sessiontoken></m:GetUserInfo>`)
}

func logoffCall(token string) string {
	return servertest.Envelope("", `<m:Logoff xmlns:m="urn:xtk:session"><sessiontoken>`+token+`</sessiontoken></m:Logoff>`)
}

func mustContain(t *testing.T, body string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Fatalf("response lacks %q:\n%s", p, body)
		}
	}
}

func TestLogonLogoff(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)

		status, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")))
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		// Answers that carry tokens are never cached (security-bar.md #47).
		if resp, _ := post(t, env.URL+"/nl/jsp/soaprouter.jsp", "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse"))); resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("Logon answer Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
		mustContain(t, body, "<LogonResponse xmlns='urn:xtk:session'", `<login-right right="privacyRight"/>`,
			`<installed-package name="gdpr" namespace="nms"/>`, `login="ana"`, `sessionTimeOut="86400"`)
		token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
		security := servertest.Between(body, "<pstrSecurityToken xsi:type='xsd:string'>", "<")
		if len(token) < 40 || !strings.HasPrefix(security, "@") {
			t.Fatalf("tokens look wrong: %q %q", token, security)
		}

		_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
		mustContain(t, body, "<GetUserInfoResponse", "<pUserInfo xsi:type='ns:Element'", `login="ana"`)

		// A second logon is a new session: another jti of at least 128 bits
		// (security-bar.md #61); the first session still works.
		second, _ := env.Logon(t, "ana", "correct horse")
		jti := func(tok string) string {
			var c jwt.RegisteredClaims
			if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
				t.Fatal(err)
			}
			return c.ID
		}
		if a, b := jti(token), jti(second); a == b || len(a) < 22 || len(b) < 22 {
			t.Fatalf("session ids %q and %q: not distinct or shorter than 128 bits", a, b)
		}

		// Variants of the token whose last base64url character differs only
		// in its unused bits decode to the same signature without strict
		// decoding: they are refused (security-bar.md #56), before and after
		// the Logoff.
		variants := malleable(token)
		if len(variants) == 0 {
			t.Fatal("no malleable variant of the token")
		}
		for _, v := range variants {
			_, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(v))
			mustContain(t, body, badSession)
		}

		_, body = env.Post(t, "xtk:session#Logoff", logoffCall(token))
		mustContain(t, body, "<LogoffResponse xmlns='urn:xtk:session'")

		_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
		mustContain(t, body, badSession, "<faultcode>SOAP-ENV:Client</faultcode>")
		for _, v := range variants {
			_, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(v))
			mustContain(t, body, badSession)
		}
		_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(second))
		mustContain(t, body, "<GetUserInfoResponse")

		logs := env.Logs.String()
		for _, secret := range []string{token, security, "correct horse"} {
			if strings.Contains(logs, secret) {
				t.Fatalf("the log holds a secret: %q", secret)
			}
		}
		if !strings.Contains(logs, "action=xtk:session#Logoff") {
			t.Fatalf("the log does not record calls:\n%s", logs)
		}
	})
}

// malleable returns the variants of a JWT whose last character differs from
// the original only in bits base64url does not use: a lenient decoder reads
// the same signature from each.
func malleable(token string) []string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	sig := token[strings.LastIndexByte(token, '.')+1:]
	unused := map[int]int{2: 4, 3: 2}[len(sig)%4] // bits of the last character no byte uses
	last := strings.IndexByte(alphabet, token[len(token)-1])
	var out []string
	for v := 1; v < 1<<unused; v++ {
		out = append(out, token[:len(token)-1]+string(alphabet[last^v]))
	}
	return out
}

func TestBadLogonIsUniform(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		env.Operator(t, "bob", "bob password")
		if err := env.Sessions.DisableOperator(context.Background(), "bob"); err != nil {
			t.Fatal(err)
		}
		var bodies []string
		for _, c := range [][2]string{{"ana", "wrong"}, {"nobody", "wrong"}, {"bob", "bob password"}, {"", ""}, {"' OR 1=1 --", "x"}, {"ana", strings.Repeat("p", 5000)},
			{strings.Repeat("a", 10<<10), "x"}, {"ana\r\nlevel=ERROR msg=forged", "x"}, {"%", "x"}, {"_", "x"}} {
			status, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall(c[0], c[1])))
			if status != 200 {
				t.Fatalf("%q: status %d", c[0], status)
			}
			mustContain(t, body, badLogon)
			bodies = append(bodies, body)
		}
		for _, b := range bodies[1:] {
			if b != bodies[0] {
				t.Fatalf("bad logon answers differ:\n%s\n%s", bodies[0], b)
			}
		}
		// Logins never reach the log: a CR/LF one cannot forge a line.
		if logs := env.Logs.String(); strings.Contains(logs, "forged") || strings.Contains(logs, "OR 1=1") {
			t.Fatalf("a login reached the log:\n%s", logs)
		}
	})
}

func TestLogonLockout(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		for i := 0; i < 3; i++ {
			_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "wrong")))
			mustContain(t, body, badLogon)
		}
		// Locked: even the right password is refused, with the same fault.
		_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")))
		mustContain(t, body, badLogon)
		// ACC's initial ban is 5 minutes; each further ban before a
		// successful logon doubles, up to 15 minutes.
		lockOut := func() {
			t.Helper()
			for i := 0; i < 3; i++ {
				_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "wrong")))
				mustContain(t, body, badLogon)
			}
		}
		refused := func(after time.Duration) {
			t.Helper()
			env.Clock.Advance(after)
			_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")))
			mustContain(t, body, badLogon)
		}
		for _, ban := range []time.Duration{5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 15 * time.Minute} {
			if ban > 5*time.Minute {
				lockOut()
			}
			refused(ban - 2*time.Second)
			env.Clock.Advance(3 * time.Second)
		}
		env.Logon(t, "ana", "correct horse")
		// A successful logon starts again from the initial ban.
		lockOut()
		refused(5*time.Minute - 2*time.Second)
		env.Clock.Advance(3 * time.Second)
		env.Logon(t, "ana", "correct horse")
	})
}

func TestTokenTransports(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, security := env.Logon(t, "ana", "correct horse")
		empty := userInfoCall("")
		tests := []struct {
			name    string
			body    string
			headers []string
			ok      bool
		}{
			{"body token", userInfoCall(token), nil, true},
			{"X-Session-Token", empty, []string{"X-Session-Token", token}, true},
			{"Authorization Bearer", empty, []string{"Authorization", "Bearer " + token}, true},
			{"SOAP header cookie", servertest.Envelope("<Cookie>__sessiontoken="+token+"</Cookie><X-Security-Token>"+security+"</X-Security-Token>",
				`<m:GetUserInfo xmlns:m="urn:xtk:session"><sessiontoken/></m:GetUserInfo>`), nil, true},
			{"cookie with security token", empty, []string{"Cookie", "__sessiontoken=" + token, "X-Security-Token", security}, true},
			{"cookie alone (CSRF)", empty, []string{"Cookie", "__sessiontoken=" + token}, false},
			{"wrong security token", userInfoCall(token), []string{"X-Security-Token", "@forged"}, false},
			{"no token", empty, nil, false},
			{"8 KiB of dots", userInfoCall(strings.Repeat(".", 8192)), nil, false},
			{"non-base64 garbage", userInfoCall("a.b.c!@#$%^&amp;*()"), nil, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, body := env.Post(t, "xtk:session#GetUserInfo", tt.body, tt.headers...)
				if tt.ok {
					mustContain(t, body, "<GetUserInfoResponse")
				} else {
					mustContain(t, body, badSession)
				}
			})
		}
		// A token in the URL is not a transport (security-bar.md #58):
		// URLs end up in logs and histories.
		t.Run("query string", func(t *testing.T) {
			q := "?__sessiontoken=" + url.QueryEscape(token) + "&sessiontoken=" + url.QueryEscape(token) + "&__securitytoken=" + url.QueryEscape(security)
			resp, body := post(t, env.URL+"/nl/jsp/soaprouter.jsp"+q, "xtk:session#GetUserInfo", empty)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			mustContain(t, body, badSession)
		})
	})
}

// post sends a SOAP call to u and returns the response (body read) and its
// body as a string.
func post(t *testing.T, u, action, envelope string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(envelope))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	req.Header.Set("SOAPAction", action)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestRequireSecurityToken(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{Session: func(c *session.Config) { c.RequireSecurityToken = true }})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, security := env.Logon(t, "ana", "correct horse")
	_, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
	mustContain(t, body, badSession)
	_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token), "X-Security-Token", security)
	mustContain(t, body, "<GetUserInfoResponse")
}

// TestForgedTokens runs the JWT attacks of security-bar.md §3-D.
func TestForgedTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		parsed, _, err := jwt.NewParser().ParseUnverified(token, &jwt.RegisteredClaims{})
		if err != nil {
			t.Fatal(err)
		}
		claims := *parsed.Claims.(*jwt.RegisteredClaims)
		sign := func(m jwt.SigningMethod, key any, c jwt.Claims) string {
			s, err := jwt.NewWithClaims(m, c).SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		noExp := claims
		noExp.ExpiresAt = nil
		otherSub := claims
		otherSub.Subject = "999"
		wrongAud := claims
		wrongAud.Audience = jwt.ClaimStrings{"other"}
		wrongIss := claims
		wrongIss.Issuer = "another-instance"
		zeroExp := claims
		zeroExp.ExpiresAt = jwt.NewNumericDate(time.Unix(0, 0))
		futureNbf := claims
		futureNbf.NotBefore = jwt.NewNumericDate(env.Clock.Now().Add(time.Hour))
		futureIat := claims
		futureIat.IssuedAt = jwt.NewNumericDate(env.Clock.Now().Add(time.Hour))
		parts := strings.Split(token, ".")
		forged := map[string]string{
			"alg none":        sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims),
			"HS512 same key":  sign(jwt.SigningMethodHS512, servertest.Key, claims),
			"other key":       sign(jwt.SigningMethodHS256, []byte("another-instance-key-of-32-bytes!!"), claims),
			"no exp":          sign(jwt.SigningMethodHS256, servertest.Key, noExp),
			"subject edited":  sign(jwt.SigningMethodHS256, servertest.Key, otherSub),
			"wrong audience":  sign(jwt.SigningMethodHS256, servertest.Key, wrongAud),
			"wrong issuer":    sign(jwt.SigningMethodHS256, servertest.Key, wrongIss),
			"exp 0":           sign(jwt.SigningMethodHS256, servertest.Key, zeroExp),
			"nbf in an hour":  sign(jwt.SigningMethodHS256, servertest.Key, futureNbf),
			"iat in an hour":  sign(jwt.SigningMethodHS256, servertest.Key, futureIat),
			"exp a string":    parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"campaign-privacy","sub":"1","aud":["acc-session"],"exp":"9999999999","jti":"`+claims.ID+`"}`)) + "." + parts[2],
			"empty signature": parts[0] + "." + parts[1] + ".",
			"payload edited":  parts[0] + "." + parts[1] + "x." + parts[2],
		}
		// Other algorithms and key references (security-bar.md #51).
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		forged["RS256"] = sign(jwt.SigningMethodRS256, rsaKey, claims)
		forged["ES256"] = sign(jwt.SigningMethodES256, ecKey, claims)
		withHeader := func(key string, value any) string {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
			tok.Header[key] = value
			s, err := tok.SignedString(servertest.Key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		forged["jku header"] = withHeader("jku", "https://attacker.example/keys.json")
		forged["jwk header"] = withHeader("jwk", map[string]any{"kty": "oct", "k": "c2VjcmV0"})
		forged["x5u header"] = withHeader("x5u", "https://attacker.example/cert.pem")
		forged["kid path"] = withHeader("kid", "../../dev/null")
		forged["kid SQL"] = withHeader("kid", "' OR 1=1 --")
		forged["kid a number"] = withHeader("kid", 7)
		for name, tok := range forged {
			t.Run(name, func(t *testing.T) {
				_, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(tok))
				mustContain(t, body, badSession)
			})
		}
		t.Run("expired", func(t *testing.T) {
			env.Clock.Advance(24*time.Hour - time.Second)
			_, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
			mustContain(t, body, "<GetUserInfoResponse")
			// 20 s past exp: within the 30 s leeway, on the token and on
			// its session row alike (security-bar.md #53); 60 s: refused.
			env.Clock.Advance(21 * time.Second)
			_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
			mustContain(t, body, "<GetUserInfoResponse")
			env.Clock.Advance(39 * time.Second)
			_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
			mustContain(t, body, badSession)
		})
	})
}

func TestDisabledOperatorLosesSessions(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		if err := env.Sessions.DisableOperator(context.Background(), "ana"); err != nil {
			t.Fatal(err)
		}
		_, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
		mustContain(t, body, badSession)
	})
}

// TestTwoServersOneDatabase: a token from one replica works on another, and
// a Logoff on one is honoured by the other at once.
func TestTwoServersOneDatabase(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		cfg := storetest.Config(t, dialect)
		open := func() *store.DB {
			db, err := store.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			if _, err := db.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			return db
		}
		a := servertest.New(t, dialect, servertest.Options{DB: open()})
		b := servertest.New(t, dialect, servertest.Options{DB: open()})
		a.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := a.Logon(t, "ana", "correct horse")
		_, body := b.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
		mustContain(t, body, "<GetUserInfoResponse")
		_, body = b.Post(t, "xtk:session#Logoff", logoffCall(token))
		mustContain(t, body, "<LogoffResponse")
		_, body = a.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
		mustContain(t, body, badSession)
	})
}

func TestRouting(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	getUser := userInfoCall(token)

	t.Run("action from the body when no SOAPAction", func(t *testing.T) {
		_, body := env.Post(t, "", getUser)
		mustContain(t, body, "<GetUserInfoResponse")
	})
	t.Run("unquoted SOAPAction and soap+xml", func(t *testing.T) {
		_, body := env.Post(t, "", getUser, "SoapAction", "xtk:session#GetUserInfo", "Content-Type", "application/soap+xml;charset=UTF-8")
		mustContain(t, body, "<GetUserInfoResponse")
	})
	t.Run("action spoofing", func(t *testing.T) {
		_, body := env.Post(t, "xtk:session#Logon", getUser)
		mustContain(t, body, "<faultcode>SOAP-ENV:Client</faultcode>", "SOP-330001")
	})
	t.Run("service spoofing", func(t *testing.T) {
		_, body := env.Post(t, "nms:privacyRequest#GetUserInfo", getUser)
		mustContain(t, body, "<faultcode>SOAP-ENV:Client</faultcode>")
	})
	t.Run("unknown method", func(t *testing.T) {
		call := servertest.Envelope("", `<m:GetModifiedEntities xmlns:m="urn:xtk:session"><sessiontoken>`+token+`</sessiontoken></m:GetModifiedEntities>`)
		_, body := env.Post(t, "xtk:session#GetModifiedEntities", call)
		mustContain(t, body, "SOP-330006 The method 'GetModifiedEntities' is not defined in SOAP service 'xtk:session'.")
	})
	t.Run("unknown service", func(t *testing.T) {
		call := servertest.Envelope("", `<m:Foo xmlns:m="urn:xyz:nothing"><sessiontoken/></m:Foo>`)
		_, body := env.Post(t, "xyz:nothing#Foo", call)
		mustContain(t, body, "SOP-330006")
	})
	t.Run("duplicate parameter", func(t *testing.T) {
		call := servertest.Envelope("", `<m:Logon xmlns:m="urn:xtk:session"><sessiontoken/><login>ana</login><login>bob</login><password>x</password></m:Logon>`)
		_, body := env.Post(t, "xtk:session#Logon", call)
		mustContain(t, body, "<faultcode>SOAP-ENV:Client</faultcode>", "given twice")
	})
	t.Run("parameters read by position, names ignored", func(t *testing.T) {
		call := servertest.Envelope("", `<ns0:Logon xmlns:ns0="urn:xtk:session"><ns0:a/><ns0:b>ana</ns0:b><ns0:c>correct horse</ns0:c><ns0:d/></ns0:Logon>`)
		_, body := env.Post(t, "xtk:session#Logon", call)
		mustContain(t, body, "<LogonResponse")
	})
	t.Run("parameters bound by name when a WSDL client omits empty ones", func(t *testing.T) {
		call := servertest.Envelope("", `<Logon xmlns="urn:xtk:session"><strLogin>ana</strLogin><strPassword>correct horse</strPassword></Logon>`)
		_, body := env.Post(t, "xtk:session#Logon", call)
		mustContain(t, body, "<LogonResponse")
	})
	t.Run("console names the token __sessiontoken", func(t *testing.T) {
		call := servertest.Envelope("", `<GetUserInfo xmlns="urn:xtk:session"><__sessiontoken>`+token+`</__sessiontoken></GetUserInfo>`)
		_, body := env.Post(t, "xtk:session#GetUserInfo", call)
		mustContain(t, body, "<GetUserInfoResponse")
	})
	t.Run("persist method through the schema answers in its URN", func(t *testing.T) {
		call := servertest.Envelope("", `<m:GetEntityIfMoreRecent xmlns:m="urn:xtk:session"><sessiontoken>`+token+`</sessiontoken><strPk>xtk:schema|xtk:session</strPk><strMd5/><bMustExist>true</bMustExist></m:GetEntityIfMoreRecent>`)
		_, body := env.Post(t, "xtk:session#GetEntityIfMoreRecent", call)
		mustContain(t, body, "<GetEntityIfMoreRecentResponse xmlns='urn:xtk:session'", `<schema namespace="xtk" name="session"`)
	})
	t.Run("mustExist on an unknown entity", func(t *testing.T) {
		call := servertest.Envelope("", `<m:GetEntityIfMoreRecent xmlns:m="urn:xtk:persist"><sessiontoken>`+token+`</sessiontoken><pk>xtk:form|nms:x</pk><md5/><mustExist>1</mustExist></m:GetEntityIfMoreRecent>`)
		_, body := env.Post(t, "xtk:persist#GetEntityIfMoreRecent", call)
		mustContain(t, body, "SOP-330011", "does not exist")
	})
	t.Run("declared but not implemented", func(t *testing.T) {
		call := servertest.Envelope("", `<m:DeleteRemoteData xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+`</sessiontoken><address/><midInstance>false</midInstance></m:DeleteRemoteData>`)
		_, body := env.Post(t, "nms:privacyRequest#DeleteRemoteData", call)
		mustContain(t, body, "SOP-330011", "does not implement")
	})
	t.Run("anonymous GetServerTime", func(t *testing.T) {
		call := servertest.Envelope("", `<m:GetServerTime xmlns:m="urn:xtk:session"><sessiontoken/></m:GetServerTime>`)
		_, body := env.Post(t, "xtk:session#GetServerTime", call)
		mustContain(t, body, "<ptmServerTime xsi:type='xsd:dateTime'>"+env.Clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	})
	t.Run("GetOption", func(t *testing.T) {
		call := servertest.Envelope("", `<m:GetOption xmlns:m="urn:xtk:session"><sessiontoken>`+token+`</sessiontoken><name>XtkSecurity_max_Unsuccessul_Attempts_Allowed</name></m:GetOption>`)
		_, body := env.Post(t, "xtk:session#GetOption", call)
		mustContain(t, body, "<pstrValue xsi:type='xsd:string'>3</pstrValue>", "<pbtType xsi:type='xsd:byte'>3</pbtType>")
		_, body = env.Post(t, "xtk:session#GetOption", strings.Replace(call, "XtkSecurity_max_Unsuccessul_Attempts_Allowed", "XtkSecurity_Max_Ban_Duration", 1))
		mustContain(t, body, "<pstrValue xsi:type='xsd:string'>15</pstrValue>")
		call = strings.Replace(call, "XtkSecurity_max_Unsuccessul_Attempts_Allowed", "NmsServer_Unknown", 1)
		_, body = env.Post(t, "xtk:session#GetOption", call)
		mustContain(t, body, "<pstrValue xsi:type='xsd:string'></pstrValue>", "<pbtType xsi:type='xsd:byte'>0</pbtType>")
	})
	t.Run("schema fetch for acc-js-sdk", func(t *testing.T) {
		call := func(pk string) string {
			return servertest.Envelope("", `<m:GetEntityIfMoreRecent xmlns:m="urn:xtk:persist"><sessiontoken>`+token+`</sessiontoken><pk>`+pk+`</pk><md5/><mustExist>false</mustExist></m:GetEntityIfMoreRecent>`)
		}
		_, body := env.Post(t, "xtk:persist#GetEntityIfMoreRecent", call("xtk:schema|nms:privacyRequest"))
		mustContain(t, body, "<GetEntityIfMoreRecentResponse xmlns='urn:wpp:default'", `<schema namespace="nms" name="privacyRequest"`, `<method name="CreateRequestByName" static="true"`)
		_, body = env.Post(t, "xtk:persist#GetEntityIfMoreRecent", call("xtk:schema|nms:nothing"))
		mustContain(t, body, "<pdomDoc xsi:type='ns:Element' SOAP-ENV:encodingStyle='http://xml.apache.org/xml-soap/literalxml'></pdomDoc>")
	})
}

func TestHTTPLevel(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, security := env.Logon(t, "ana", "correct horse")
	router := env.URL + "/nl/jsp/soaprouter.jsp"
	do := func(method, url, ctype, body string, hdr ...string) (*http.Response, string) {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp, b.String()
	}
	if resp, _ := do("GET", router, "", ""); resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET router: %d %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	if resp, _ := do("POST", router, "application/json", "{}"); resp.StatusCode != 415 {
		t.Errorf("json: %d", resp.StatusCode)
	}
	if resp, _ := do("POST", router, "text/xml", "x", "Content-Encoding", "gzip"); resp.StatusCode != 415 {
		t.Errorf("gzip: %d", resp.StatusCode)
	}
	for _, ct := range []string{"text/xml; charset=ISO-8859-1", "text/xml; charset=utf-16", "multipart/related; boundary=x", ""} {
		if resp, _ := do("POST", router, ct, servertest.Envelope("", servertest.LogonCall("ana", "correct horse"))); resp.StatusCode != 415 {
			t.Errorf("Content-Type %q: %d", ct, resp.StatusCode)
		}
	}
	resp, body := do("POST", router, "text/xml", strings.Repeat(" ", 300<<10))
	if resp.StatusCode != 200 || !strings.Contains(body, "larger than") {
		t.Errorf("oversized body: %d %s", resp.StatusCode, body)
	}
	resp, body = do("GET", env.URL+"/nl/jsp/schemawsdl.jsp?schema=xtk:session", "", "")
	if resp.StatusCode != 200 || !strings.Contains(body, `location="`+env.URL+`/nl/jsp/soaprouter.jsp"`) {
		t.Errorf("wsdl: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do("GET", env.URL+"/nl/jsp/schemawsdl.jsp?schema=nms:nothing", "", ""); resp.StatusCode != 404 {
		t.Errorf("unknown wsdl: %d", resp.StatusCode)
	}
	resp, body = do("GET", env.URL+"/r/test", "", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "<redir status='OK'") {
		t.Errorf("/r/test: %d %s", resp.StatusCode, body)
	}
	// /r/test, serverInfo and the console footer name the same revision.
	if commit := env.Server.CommitID(); len(commit) != 7 || !strings.Contains(body, "commitId='"+commit+"'") {
		t.Errorf("/r/test does not carry the build's commit %q: %s", commit, body)
	} else if resp, page := do("GET", env.URL+"/privacy/logon", "", ""); resp.StatusCode != 200 || !strings.Contains(page, "revision "+commit+".") {
		t.Errorf("console footer does not carry the revision %q: %d", commit, resp.StatusCode)
	}
	resp, body = do("GET", env.URL+"/nl/jsp/ping.jsp", "", "", "X-Session-Token", token, "X-Security-Token", security)
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "OK\n") {
		t.Errorf("ping: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do("GET", env.URL+"/nl/jsp/ping.jsp", "", ""); resp.StatusCode != 401 {
		t.Errorf("anonymous ping: %d", resp.StatusCode)
	}
}

func TestFaultHTTPStatusSetting(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{Server: func(c *server.Config) { c.FaultHTTPStatus = 500 }})
	status, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("nobody", "x")))
	if status != 500 {
		t.Fatalf("status %d", status)
	}
	mustContain(t, body, badLogon)
}

// TestLogonLimitPerAddress: credential stuffing — one attempt on each of
// many accounts — is cut after 30 failures a minute from one client
// address; rotating a client-written X-Forwarded-For does not escape it;
// behind a trusted proxy each client has its own budget.
func TestLogonLimitPerAddress(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{Server: func(c *server.Config) {
		c.TrustedProxies = nil
	}})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	for i := 0; i < 30; i++ {
		_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("user"+strconv.Itoa(i), "guess")),
			"X-Forwarded-For", "10.0.0."+strconv.Itoa(i))
		mustContain(t, body, badLogon)
	}
	_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")), "X-Forwarded-For", "10.9.9.9")
	mustContain(t, body, badLogon)
	if !strings.Contains(env.Logs.String(), "too many failures from this address") {
		t.Fatal("the throttle is not logged")
	}
	env.Clock.Advance(61 * time.Second)
	env.Logon(t, "ana", "correct horse")

	// Behind a trusted proxy, the clients' budgets are their own.
	proxied := servertest.New(t, store.SQLite, servertest.Options{Server: func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}})
	proxied.Operator(t, "ana", "correct horse", session.RightPrivacy)
	for i := 0; i < 30; i++ {
		proxied.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("user"+strconv.Itoa(i), "guess")), "X-Forwarded-For", "203.0.113.7")
	}
	_, body = proxied.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")), "X-Forwarded-For", "203.0.113.7")
	mustContain(t, body, badLogon)
	_, body = proxied.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")), "X-Forwarded-For", "198.51.100.4")
	mustContain(t, body, "<LogonResponse")
}

// TestSOAPSecurityZone (security-bar.md #44, #63): with CP_SOAP_ALLOWED_SUBNETS
// set, a client outside it gets the ordinary logon failure even with the
// right password, and a valid token replayed from outside it is refused on
// every call; inside it, everything works. The client's address comes from
// X-Forwarded-For only through a trusted proxy.
func TestSOAPSecurityZone(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{Server: func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		c.SOAPAllowed = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	}})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	logon := servertest.Envelope("", servertest.LogonCall("ana", "correct horse"))

	_, body := env.Post(t, "xtk:session#Logon", logon, "X-Forwarded-For", "203.0.113.7")
	mustContain(t, body, badLogon)
	if strings.Contains(body, "pstrSessionToken") {
		t.Fatal("a token was issued outside the zone")
	}
	_, body = env.Post(t, "xtk:session#Logon", logon) // the proxy itself, 127.0.0.1: outside too
	mustContain(t, body, badLogon)

	_, body = env.Post(t, "xtk:session#Logon", logon, "X-Forwarded-For", "10.1.2.3")
	mustContain(t, body, "<LogonResponse")
	token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
	_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token), "X-Forwarded-For", "10.1.2.3")
	mustContain(t, body, "<GetUserInfoResponse")
	_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token), "X-Forwarded-For", "203.0.113.7")
	mustContain(t, body, badSession)
	if !strings.Contains(env.Logs.String(), "outside the security zone") {
		t.Fatal("a refusal for the zone is not logged")
	}
}

// TestEntityAndIncludeAttacks (security-bar.md #15, #17, #18): an external
// entity aimed at a canary listener, a real billion laughs and a quadratic
// blowup are refused at the DOCTYPE, and XInclude is never processed; the
// canary sees no connection and no file content comes back.
func TestEntityAndIncludeAttacks(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	var hits atomic.Int32
	canary := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer canary.Close()

	var laughs strings.Builder
	laughs.WriteString(`<!ENTITY lol "lol">`)
	prev := "lol"
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&laughs, `<!ENTITY lol%d "%s">`, i, strings.Repeat("&"+prev+";", 10))
		prev = "lol" + strconv.Itoa(i)
	}
	big := strings.Repeat("x", 100<<10)
	logon := func(doctype, login string) string {
		return `<?xml version="1.0"?>` + doctype + `<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><m:Logon xmlns:m="urn:xtk:session"><strLogin>` +
			login + `</strLogin><strPassword>x</strPassword><elemParameters/></m:Logon></SOAP-ENV:Body></SOAP-ENV:Envelope>`
	}
	for name, body := range map[string]string{
		"canary entity":  logon(`<!DOCTYPE x [<!ENTITY e SYSTEM "`+canary.URL+`/canary">]>`, "&e;"),
		"file entity":    logon(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>`, "&e;"),
		"parameter":      logon(`<!DOCTYPE x [<!ENTITY % p SYSTEM "`+canary.URL+`/p"> %p;]>`, "ana"),
		"billion laughs": logon(`<!DOCTYPE x [`+laughs.String()+`]>`, "&lol9;"),
		"quadratic":      logon(`<!DOCTYPE x [<!ENTITY a "`+big+`">]>`, strings.Repeat("&a;", 1000)),
	} {
		_, resp := env.Post(t, "xtk:session#Logon", body)
		mustContain(t, resp, "<faultcode>SOAP-ENV:Client</faultcode>")
		if strings.Contains(resp, "root:") || strings.Contains(resp, "lollol") {
			t.Fatalf("%s: entity content in the answer", name)
		}
	}
	// XInclude is an element like any other: never followed.
	xinclude := servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest" xmlns:xi="http://www.w3.org/2001/XInclude"><sessiontoken>`+token+
		`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue><xi:include href="file:///etc/passwd" parse="text"/><xi:include href="`+canary.URL+`/xi"/></reconciliationValue><type>1</type></m:CreateRequestByName>`)
	_, resp := env.Post(t, "nms:privacyRequest#CreateRequestByName", xinclude)
	mustContain(t, resp, "<SOAP-ENV:Fault>")
	if strings.Contains(resp, "root:") {
		t.Fatal("XInclude was followed")
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the canary saw %d connection(s)", n)
	}
	if logs := env.Logs.String(); strings.Contains(logs, "root:") {
		t.Fatal("file content in the log")
	}
}

// TestActionSpoofingHasNoEffect (security-bar.md #35): a SOAPAction naming
// one method over a Body carrying another is refused both ways, and
// nothing happens: no request row, no token, no logon failure counted.
func TestActionSpoofingHasNoEffect(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	ctx := context.Background()
	before, _ := env.DB.CountRows(ctx, "privacy_requests", "", nil)
	create := servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+
		`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue>spoof@example.com</reconciliationValue><type>1</type></m:CreateRequestByName>`)
	_, body := env.Post(t, "xtk:session#Logon", create)
	mustContain(t, body, "<faultcode>SOAP-ENV:Client</faultcode>")
	_, body = env.Post(t, "nms:privacyRequest#CreateRequestByName", servertest.Envelope("", servertest.LogonCall("ana", "wrong")))
	mustContain(t, body, "<faultcode>SOAP-ENV:Client</faultcode>")
	if strings.Contains(body, "pstrSessionToken") {
		t.Fatal("a token was issued")
	}
	if after, _ := env.DB.CountRows(ctx, "privacy_requests", "", nil); after != before {
		t.Fatal("a spoofed call wrote a request")
	}
	if op, err := env.DB.FindOperatorByLogin(ctx, "ana"); err != nil || op.FailedLogons != 0 {
		t.Fatalf("a spoofed logon counted as a failure: %v %+v", err, op)
	}
}
