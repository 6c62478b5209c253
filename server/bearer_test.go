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
