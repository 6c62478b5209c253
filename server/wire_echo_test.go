package server_test

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// wellFormedUTF8 fails unless body is valid UTF-8 that a strict XML parser
// reads to the end (what lxml/zeep, PHP's libxml2 and .NET require).
func wellFormedUTF8(t *testing.T, what, body string) {
	t.Helper()
	if !utf8.ValidString(body) {
		i := 0
		for i < len(body) {
			r, n := utf8.DecodeRuneInString(body[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		lo, hi := max(0, i-40), min(len(body), i+20)
		t.Errorf("%s: the answer is not valid UTF-8 (byte %d, around %q)", what, i, body[lo:hi])
		return
	}
	d := xml.NewDecoder(strings.NewReader(body))
	for {
		if _, err := d.Token(); err == io.EOF {
			return
		} else if err != nil {
			t.Errorf("%s: the answer does not parse as XML: %v", what, err)
			return
		}
	}
}

// Was a bug: a caller-given name echoed in a fault detail is shortened by bytes
// (server/methods.go: truncate,
// internal/persist/persist.go: clip, internal/querydef/expr.go: short,
// privacy/technical.go: clip): when the cut falls inside a multi-byte
// character the fault carries a broken UTF-8 sequence, in an answer
// declared text/xml;charset=utf-8.
// The same holds for a service or method name taken from the SOAPAction
// header, whose bytes need not be UTF-8 at all (server/response.go:
// writeFault echoes it into faultstring).
// Harm: WSDL clients parse the answer as bytes with libxml2 (zeep/lxml,
// PHP SoapClient) or a strict .NET reader: instead of the SOP-330011 fault
// with its explanation ("entity does not exist", "not a data schema"),
// the caller gets an XML syntax error ("Input is not proper UTF-8") and no
// reason at all; acc-js-sdk shows U+FFFD in the text.
func TestFaultEchoingCallerTextIsUTF8(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")

	// 127 ASCII bytes then "é": the 128-byte cut of GetEntityIfMoreRecent.
	pk := "xtk:form|" + strings.Repeat("p", 127-len("xtk:form|")) + "é"
	call := servertest.Envelope("", `<m:GetEntityIfMoreRecent xmlns:m="urn:xtk:persist"><sessiontoken>`+token+
		`</sessiontoken><pk>`+pk+`</pk><md5/><mustExist>true</mustExist></m:GetEntityIfMoreRecent>`)
	_, body := env.Post(t, "xtk:persist#GetEntityIfMoreRecent", call)
	mustContain(t, body, "SOP-330011")
	wellFormedUTF8(t, "GetEntityIfMoreRecent of a missing entity", body)

	// Write with an unknown xtkschema (persist.clip, 64 bytes).
	schema := "nms:" + strings.Repeat("s", 59) + "é"
	call = servertest.Envelope("", `<m:Write xmlns:m="urn:xtk:session"><sessiontoken>`+token+
		`</sessiontoken><domDoc><recipient xtkschema="`+schema+`" email="a@example.com"/></domDoc></m:Write>`)
	_, body = env.Post(t, "xtk:session#Write", call)
	mustContain(t, body, "SOP-330011")
	wellFormedUTF8(t, "Write with an unknown schema", body)

	// The same echo without any cut: a SOAPAction header may carry
	// obs-text bytes (0x80-0xFF, which net/http accepts); the service or
	// method it names is written into the fault as is.
	call = servertest.Envelope("", `<GetUserInfo><sessiontoken>`+token+`</sessiontoken></GetUserInfo>`)
	_, body = env.Post(t, "", call, "SOAPAction", "xtk:sess\xe9ion#GetUserInfo")
	mustContain(t, body, "SOP-330006")
	wellFormedUTF8(t, "SOAPAction naming an unknown service in Latin-1", body)
}

// Was a bug: a string parameter is read with etree's Element.Text(), which stops
// at the first child element: `<reconciliationValue>alice@example.com<b/>.au</reconciliationValue>`
// is read as "alice@example.com", and the request is created for that
// value, with no fault (server/soap.go: call.String). The same holds for
// Logon's password: `correct horse<x/>anything` logs on.
// Harm: a privacy request — a delete — is created and run for another
// person than the one the caller sent (the value is silently cut, and the
// fault the caller would need is never raised); a string parameter with
// mixed content should be refused (or read whole), never cut.
func TestTextParameterWithAnElementRefused(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")

	t.Run("reconciliation value", func(t *testing.T) {
		before := countRequests(t, env)
		_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName",
			createCall("nms:privacyRequest", token, "defaultNamespace1", "alice@example.com<b/>.au", "2", "false", "1"))
		if strings.Contains(body, "<CreateRequestByNameResponse") {
			r := requestRow(t, env, created(t, body))
			t.Fatalf("a delete request was created for %q though the caller sent \"alice@example.com<b/>.au\"", r.ReconciliationValue)
		}
		if n := countRequests(t, env); n != before {
			t.Fatalf("%d requests stored, want %d", n, before)
		}
	})
	t.Run("password", func(t *testing.T) {
		_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("",
			`<m:Logon xmlns:m="urn:xtk:session"><sessiontoken/><login>ana</login><password>correct horse<x/>not the password</password><parameters/></m:Logon>`))
		if strings.Contains(body, "<LogonResponse") {
			t.Fatalf("Logon succeeded with the password \"correct horse<x/>not the password\"")
		}
	})
}

// Was a bug: server/soap.go: resolveAction accepts a SOAPAction naming several
// services as long as the Body's service is one of them, and
// registry.Method then runs the method of the FIRST service listed, not
// the one the Body calls. `SOAPAction: nms:gdprRequest|nms:privacyRequest#CreateRequestByName`
// over a Body in urn:nms:privacyRequest with regulation 2 (CCPA) runs
// nms:gdprRequest#CreateRequestByName, which has no regulation: the
// request is stored as GDPR and answered in urn:nms:gdprRequest.
// Harm: the server's own rule ("an action naming another method or service
// than the body is refused") is bypassed; the request is recorded, run and
// receipted under the wrong regulation, with no fault.
func TestSOAPActionListingOtherServicesRunsTheBodys(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")

	before := countRequests(t, env)
	_, body := env.Post(t, "nms:gdprRequest|nms:privacyRequest#CreateRequestByName",
		createCall("nms:privacyRequest", token, "defaultNamespace1", "john@example.com", "1", "true", "2"))
	if !strings.Contains(body, "<CreateRequestByNameResponse") {
		// Refusing the action is a fix too: then nothing may be stored.
		mustContain(t, body, "<faultcode>SOAP-ENV:Client</faultcode>")
		if n := countRequests(t, env); n != before {
			t.Fatalf("refused, yet %d requests stored (want %d)", n, before)
		}
		return
	}
	r := requestRow(t, env, created(t, body))
	if r.Regulation != privacy.RegulationCCPA {
		t.Fatalf("the Body called nms:privacyRequest#CreateRequestByName with regulation 2 (CCPA); the request was stored with regulation %d\n%s", r.Regulation, body)
	}
}

// Was a bug: the URLs the service hands to clients are built from the request
// as this process sees it (internal/siteurl: Base): the scheme is "https"
// only when this process itself terminated TLS, which it never does (it
// has no TLS setting), and nothing else is read — not X-Forwarded-Proto
// from a proxy listed in CP_TRUSTED_PROXIES, nor a configured public URL.
// Behind the TLS-terminating proxy that any real deployment needs:
//   - the WSDL's soap:address is http://…/nl/jsp/soaprouter.jsp: zeep,
//     PHP SoapClient, SoapUI, JAX-WS and .NET post to the WSDL's address,
//     so their Logon sends the operator's login and password in clear;
//   - CreateRequestByName stores @urlFile as http://…/nms/gdpr.jssp?id=N,
//     which clients read back with ExecuteQuery and follow with their
//     session token and cookie to download the person's data.
//
// The stored @urlFile also takes the Host header of whichever caller
// created the request, and a deduplicated identical request returns that
// same row to every later caller.
func TestURLsBehindTLSProxyAreHTTPS(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{Server: func(c *server.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	}})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	proxied := []string{"X-Forwarded-For", "198.51.100.7", "X-Forwarded-Proto", "https"}

	req, err := http.NewRequest(http.MethodGet, env.URL+"/nl/jsp/schemawsdl.jsp?schema=xtk:session", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "privacy.example.com"
	for i := 0; i < len(proxied); i += 2 {
		req.Header.Set(proxied[i], proxied[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	wsdlBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `<soap:address location="https://privacy.example.com/nl/jsp/soaprouter.jsp"/>`; !strings.Contains(string(wsdlBody), want) {
		i := strings.Index(string(wsdlBody), "<soap:address")
		t.Errorf("WSDL fetched through a trusted TLS proxy: want %s, got %.90s", want, string(wsdlBody)[max(i, 0):])
	}

	token, _ := env.Logon(t, "ana", "correct horse")
	_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName",
		createCall("nms:privacyRequest", token, "defaultNamespace1", "john@example.com", "1", "true", "1"), proxied...)
	r := requestRow(t, env, created(t, body))
	if !strings.HasPrefix(r.URLFile, "https://") {
		t.Errorf("request created through a trusted TLS proxy: @urlFile = %q, want an https:// URL", r.URLFile)
	}
}
