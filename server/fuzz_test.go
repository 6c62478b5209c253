package server_test

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// FuzzSOAP drives parseEnvelope, resolveAction, bindParams and the
// methods behind them through the real router on SQLite: a SOAPAction
// header, a ?soapAction=, and a call element (its tag, namespace and
// parameters; $TOKEN is a privacy operator's session token). Whatever the
// input, the answer is 200 or a SOAP fault, well-formed UTF-8 XML, and
// never an internal error (a panic, or a database error surfacing as a
// Server fault).
func FuzzSOAP(f *testing.F) {
	env := servertest.New(f, "sqlite", servertest.Options{})
	env.Operator(f, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(f, "ana", "correct horse")
	seeds := []struct{ action, query, tag, ns, params string }{
		{"xtk:session#Logon", "", "Logon", "urn:xtk:session", `<sessiontoken/><login>ana</login><password>correct horse</password><parameters><parameters/></parameters>`},
		{"xtk:session#GetServerTime", "", "GetServerTime", "urn:xtk:session", `<sessiontoken>$TOKEN</sessiontoken>`},
		{"", "", "GetUserInfo", "urn:xtk:session", `<__sessiontoken>$TOKEN</__sessiontoken>`},
		{"nms:privacyRequest#CreateRequestByName", "", "CreateRequestByName", "urn:nms:privacyRequest",
			`<sessiontoken>$TOKEN</sessiontoken><entity><privacyRequest namespaceName="defaultNamespace1" reconciliationValue="a@example.com" type="1" regulation="1" confirmDeletePending="false"/></entity>`},
		{"xtk:queryDef#ExecuteQuery", "", "ExecuteQuery", "urn:xtk:queryDef",
			`<sessiontoken>$TOKEN</sessiontoken><entity><queryDef schema="nms:privacyRequest" operation="select"><select><node expr="@id"/><node expr="@created"/></select><where><condition expr="@created &gt; '2024-01-01' AND @status IN (0, 1)"/></where><orderBy><node expr="@id"/></orderBy></queryDef></entity>`},
		{"xtk:queryDef#ExecuteQuery", "", "ExecuteQuery", "urn:xtk:queryDef",
			`<sessiontoken>$TOKEN</sessiontoken><entity><queryDef schema="nms:gdprRequest" operation="count"><where><condition expr="[namespace/@name] LIKE 'default%'"/></where></queryDef></entity>`},
		{"xtk:session#Write", "", "Write", "urn:xtk:session", `<sessiontoken>$TOKEN</sessiontoken><domDoc><recipient xtkschema="nms:recipient" _operation="insert" email="b@example.com"/></domDoc>`},
		{"xtk:persist|xtk:session#Logoff", "", "Logoff", "urn:xtk:persist|xtk:session", `<sessiontoken>$TOKEN</sessiontoken>`},
		{"", "xtk:session#GetOption", "GetOption", "", `<sessiontoken>$TOKEN</sessiontoken><name>XtkDatabaseId</name>`},
		{"nms:privacyRequest#ConfirmDeletePending", "", "ConfirmDeletePending", "urn:nms:privacyRequest", `<sessiontoken>$TOKEN</sessiontoken><id>1</id>`},
		{"xtk:workflow#PostEvent", "", "PostEvent", "urn:xtk:workflow", `<sessiontoken>$TOKEN</sessiontoken><strWorkflowId>collectPrivacyRequests</strWorkflowId><strActivity>signal</strActivity><strTransition/><elemParameters><variables/></elemParameters><bComplete>false</bComplete>`},
	}
	for _, s := range seeds {
		f.Add(s.action, s.query, s.tag, s.ns, s.params)
	}
	f.Fuzz(func(t *testing.T, action, query, tag, ns, params string) {
		params = strings.ReplaceAll(params, "$TOKEN", token)
		call := "<m:" + tag + " xmlns:m=\"" + ns + "\">" + params + "</m:" + tag + ">"
		if ns == "" {
			call = "<" + tag + ">" + params + "</" + tag + ">"
		}
		body := servertest.Envelope("", call)
		req, err := http.NewRequest(http.MethodPost, env.URL+"/nl/jsp/soaprouter.jsp", strings.NewReader(body))
		if err != nil {
			t.Skip()
		}
		if query != "" {
			q := req.URL.Query()
			q.Set("soapAction", query)
			req.URL.RawQuery = q.Encode()
		}
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		if action != "" {
			if strings.ContainsAny(action, "\r\n\x00") {
				t.Skip()
			}
			req.Header.Set("SOAPAction", action)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Skip() // a header value net/http will not send
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 500 {
			t.Fatalf("status %d for\n%s\n%s", resp.StatusCode, body, out)
		}
		if bytes.Contains(out, []byte("Internal error")) || strings.Contains(env.Logs.String(), "panic in SOAP call") {
			t.Fatalf("internal error for action %q query %q\n%s\n%s", action, query, body, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("answer not UTF-8: %q", out)
		}
		d := xml.NewDecoder(bytes.NewReader(out))
		for {
			if _, err := d.Token(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("answer not well-formed XML (%v) for\n%s\n%s", err, body, out)
			}
		}
	})
}
