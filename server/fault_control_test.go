package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// J69's hole: writeFault makes the names it echoes valid UTF-8
// (apperr.Quote) and the detail too (strings.ToValidUTF8), but valid
// UTF-8 is not enough for XML 1.0: C0 control characters (U+0001–U+001F
// but TAB, LF, CR) are not allowed in a document, not even as character
// references, and schemas.EscapeText leaves them as they are. net/http
// keeps them out of headers, but the action may also come from the
// ?soapAction= query parameter (resolveAction), where %01 decodes to a
// raw U+0001 that the fault echoes (the service in faultstring, the
// method in the detail). Harm: the same as J69 — zeep/lxml, PHP's
// SoapClient (libxml2) and .NET's XmlReader get an XML syntax error
// instead of the fault and its reason.
func TestFaultEchoingControlCharacterIsWellFormed(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	call := servertest.Envelope("", `<m:GetUserInfo xmlns:m="urn:xtk:session"><sessiontoken>`+token+`</sessiontoken></m:GetUserInfo>`)
	for what, query := range map[string]string{
		"an unknown service":             "xtk:ses%01sion%23GetUserInfo",
		"a method other than the Body's": "xtk:session%23Get%01UserInfo",
	} {
		req, err := http.NewRequest(http.MethodPost, env.URL+"/nl/jsp/soaprouter.jsp?soapAction="+query, strings.NewReader(call))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body := string(data)
		mustContain(t, body, "<SOAP-ENV:Fault>")
		wellFormedUTF8(t, "?soapAction= naming "+what+" with U+0001", body)
	}
}
