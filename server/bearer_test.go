package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/imstest"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

func bearerCall(token string) string {
	return `<m:BearerTokenLogon xmlns:m="urn:xtk:session"><sessiontoken xsi:type="xsd:string"/><bearerToken xsi:type="xsd:string">` +
		token + `</bearerToken></m:BearerTokenLogon>`
}

// TestBearerTokenLogonSOAP: xtk:session#BearerTokenLogon over SOAP, as
// acc-js-sdk's ofBearerToken calls it: the answer has the shape of the
// captured BEARER_LOGON_RESPONSE, its session works, and a refused token
// is XSV-350012 without the token in the log.
func TestBearerTokenLogonSOAP(t *testing.T) {
	idp := imstest.New(t)
	eachStore(t, func(t *testing.T, dialect string) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		ims, err := session.NewIMS(ctx, session.IMSConfig{JWKS: idp.JWKSFile, Issuer: imstest.Issuer, Audience: imstest.Audience})
		if err != nil {
			t.Fatal(err)
		}
		env := servertest.New(t, dialect, servertest.Options{Session: func(c *session.Config) { c.IMS = ims }})
		env.Operator(t, "techacct", "unused password 1", session.RightAdmin)
		good := idp.Token(t, "techacct", env.Clock.Now(), time.Hour)

		// acc-js-sdk sends the token twice: the parameter and the header.
		status, body := env.Post(t, "xtk:session#BearerTokenLogon", servertest.Envelope("", bearerCall(good)), "Authorization", "Bearer "+good)
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		capture, err := os.ReadFile(filepath.Join("testdata", "captured", "bearer_logon.xml"))
		if err != nil {
			t.Fatal(err)
		}
		sameShape(t, "", parseXML(t, string(capture)), parseXML(t, body))
		token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
		_, info := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
		mustContain(t, info, `login="techacct"`, `<login-right right="admin"/>`)

		// The header alone, as Adobe's IMS example posts it.
		_, body = env.Post(t, "xtk:session#BearerTokenLogon", servertest.Envelope("", bearerCall("")), "Authorization", "Bearer "+good)
		mustContain(t, body, "<BearerTokenLogonResponse xmlns='urn:xtk:session'")

		expired := idp.Token(t, "techacct", env.Clock.Now().Add(-2*time.Hour), time.Hour)
		for name, tok := range map[string]string{"expired": expired, "unknown operator": idp.Token(t, "nobody", env.Clock.Now(), time.Hour), "garbage": "a.b.c"} {
			status, body := env.Post(t, "xtk:session#BearerTokenLogon", servertest.Envelope("", bearerCall(tok)))
			if status != 200 || !strings.Contains(body, badLogon) {
				t.Errorf("%s: %d %s", name, status, body)
			}
		}
		if strings.Contains(env.Logs.String(), good[len(good)-24:]) || strings.Contains(env.Logs.String(), expired[len(expired)-24:]) {
			t.Error("a bearer token reached the log")
		}
	})
}

// TestIMSBearerOnEveryCall: acc-js-sdk's ofImsBearerToken (Campaign 8.5)
// never logs on: every call carries Authorization: Bearer <IMS access
// token> and an empty <sessiontoken/>. With CP_IMS_JWKS the token is
// checked as BearerTokenLogon checks it and the call runs as its
// operator; anywhere else than the Authorization header, or not an access
// token, or expired, or of a disabled operator, it is the session fault.
// Logoff has nothing to end. The token never reaches the log.
func TestIMSBearerOnEveryCall(t *testing.T) {
	idp := imstest.New(t)
	eachStore(t, func(t *testing.T, dialect string) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		ims, err := session.NewIMS(ctx, session.IMSConfig{JWKS: idp.JWKSFile, Issuer: imstest.Issuer, Audience: imstest.Audience})
		if err != nil {
			t.Fatal(err)
		}
		env := servertest.New(t, dialect, servertest.Options{Session: func(c *session.Config) { c.IMS = ims }})
		env.Operator(t, "techacct", "unused password 1", session.RightPrivacy)
		now := env.Clock.Now()
		good := idp.Token(t, "techacct", now, time.Hour)
		bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

		_, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(""), bearer(good)...)
		mustContain(t, body, `login="techacct"`, `<login-right right="privacyRight"/>`)
		_, body = env.Post(t, "nms:privacyRequest#CreateRequestByName",
			createCall("nms:privacyRequest", "", "defaultNamespace1", "ims-bearer@example.com", "1", "false", ""), bearer(good)...)
		id := created(t, body)
		if r := requestRow(t, env, id); r.Label == "" && r.OperatorID == 0 {
			t.Errorf("request %d has no operator", id)
		}
		_, body = env.Post(t, "xtk:session#Logoff", logoffCall(""), bearer(good)...)
		mustContain(t, body, "<LogoffResponse xmlns='urn:xtk:session'")
		_, body = env.Post(t, "xtk:session#GetUserInfo", userInfoCall(""), bearer(good)...)
		mustContain(t, body, `login="techacct"`)

		refresh := idp.Sign(t, map[string]any{"iss": imstest.Issuer, "aud": imstest.Audience, "sub": "techacct",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "type": "refresh_token"})
		expired := idp.Token(t, "techacct", now.Add(-2*time.Hour), time.Hour)
		for name, call := range map[string][]string{
			"in X-Session-Token": {"X-Session-Token", good},
			"in the parameter":   nil,
			"a refresh token":    bearer(refresh),
			"expired":            bearer(expired),
			"unknown operator":   bearer(idp.Token(t, "nobody", now, time.Hour)),
		} {
			token := ""
			if call == nil {
				token = good
			}
			if _, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token), call...); !strings.Contains(body, badSession) {
				t.Errorf("%s: %s", name, body)
			}
		}
		if err := env.Sessions.DisableOperator(ctx, "techacct"); err != nil {
			t.Fatal(err)
		}
		if _, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(""), bearer(good)...); !strings.Contains(body, badSession) {
			t.Errorf("a disabled operator's token: %s", body)
		}
		for _, tok := range []string{good, refresh, expired} {
			if strings.Contains(env.Logs.String(), tok[len(tok)-24:]) {
				t.Error("a bearer token reached the log")
			}
		}
	})
}

// TestIMSBearerNeedsTheKeySet: without CP_IMS_JWKS an IMS token in
// Authorization: Bearer is no credential.
func TestIMSBearerNeedsTheKeySet(t *testing.T) {
	idp := imstest.New(t)
	env := servertest.New(t, "sqlite", servertest.Options{})
	env.Operator(t, "techacct", "unused password 1", session.RightPrivacy)
	good := idp.Token(t, "techacct", env.Clock.Now(), time.Hour)
	if _, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(""), "Authorization", "Bearer "+good); !strings.Contains(body, badSession) {
		t.Errorf("an IMS token without a key set: %s", body)
	}
}
