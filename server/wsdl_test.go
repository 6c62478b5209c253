package server_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestWSDLForEverySchema: /nl/jsp/schemawsdl.jsp answers for every schema
// the registry knows (data-model and custom schemas too) and for the
// xtk:persist interface; a data schema's WSDL operations run: a WSDL
// client's nms:recipient#Write (no xtkschema, qualified children, no
// xsi:type) inserts the recipient and is answered in urn:nms:recipient.
func TestWSDLForEverySchema(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{Schemas: os.DirFS(filepath.Join("..", "examples", "schemas"))})
		ids := []string{"xtk:persist"}
		for _, s := range env.Registry.Schemas() {
			ids = append(ids, s.ID())
		}
		for _, id := range ids {
			resp, err := http.Get(env.URL + "/nl/jsp/schemawsdl.jsp?schema=" + id)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(body), `targetNamespace="urn:`+id+`"`) || !strings.Contains(string(body), `<soap:operation soapAction="`+id+`#`) {
				t.Errorf("%s: %d %.300s", id, resp.StatusCode, body)
			}
		}
		resp, err := http.Get(env.URL + "/nl/jsp/schemawsdl.jsp?schema=xtk:persist")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mustContain(t, string(body), `<part element="wpp:GetEntityIfMoreRecentResponse" name="parameters"/>`, `<s:schema elementFormDefault="qualified" targetNamespace="urn:wpp:default">`)

		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		write := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:nms:recipient"><soapenv:Body><urn:Write>` +
			`<urn:sessiontoken>` + token + `</urn:sessiontoken><urn:domDoc><recipient _key="@email" email="wsdl.client@example.com" lastName="Client"/></urn:domDoc>` +
			`</urn:Write></soapenv:Body></soapenv:Envelope>`
		status, out := env.Post(t, "nms:recipient#Write", write)
		if status != 200 {
			t.Fatalf("status %d %s", status, out)
		}
		mustContain(t, out, "<WriteResponse xmlns='urn:nms:recipient'")
		query := `<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken>` + token + `</sessiontoken><entity><queryDef schema="nms:recipient" operation="select"><select><node expr="@email"/></select></queryDef></entity></m:ExecuteQuery>`
		_, out = env.Post(t, "xtk:queryDef#ExecuteQuery", servertest.Envelope("", query))
		mustContain(t, out, `email="wsdl.client@example.com"`)

		other := strings.Replace(write, `<recipient `, `<recipient xtkschema="cus:transaction" `, 1)
		_, out = env.Post(t, "nms:recipient#Write", other)
		mustContain(t, out, "SOP-330011", "is not the schema called")
	})
}
