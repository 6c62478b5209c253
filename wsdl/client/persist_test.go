package client_test

import (
	"strings"
	"testing"

	"github.com/hooklift/gowsdl/soap"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/wsdl/client/nmsrecipient"
	"github.com/campaign-privacy/campaign-privacy/wsdl/client/xtkpersist"
)

var (
	_ func(*soap.Client) xtkpersist.PersistMethodsSoap     = xtkpersist.NewPersistMethodsSoap
	_ func(*soap.Client) nmsrecipient.RecipientMethodsSoap = nmsrecipient.NewRecipientMethodsSoap
)

// TestPersistAndDataSchemaClients: the clients gowsdl generated from the
// xtk:persist WSDL (responses in urn:wpp:default, as real servers answer
// interface methods) and from a data schema's WSDL (nms:recipient, which
// implements xtk:persist) call the real server.
func TestPersistAndDataSchemaClients(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			env.Operator(t, login, password, "privacyRight")
			resp, err := logon(sessionClient(env, nil), password)
			if err != nil {
				t.Fatal(err)
			}
			router := soap.NewClient(env.URL+"/nl/jsp/soaprouter.jsp", soap.WithHTTPHeaders(map[string]string{"X-Security-Token": resp.PstrSecurityToken}))
			token := resp.PstrSessionToken

			persist := xtkpersist.NewPersistMethodsSoap(router)
			got, err := persist.GetEntityIfMoreRecent(&xtkpersist.GetEntityIfMoreRecent{Sessiontoken: token, StrPk: "xtk:schema|nms:recipient"})
			if err != nil || got.PdomDoc == nil || len(got.PdomDoc.Items) != 1 {
				t.Fatalf("xtk:persist GetEntityIfMoreRecent = %#v, %v", got, err)
			}
			_, err = persist.GetEntityIfMoreRecent(&xtkpersist.GetEntityIfMoreRecent{Sessiontoken: token, StrPk: "xtk:schema|cus:none", BMustExist: true})
			wantFault(t, err, "SOAP-ENV:Server", "SOP-330011")

			rcp := nmsrecipient.NewRecipientMethodsSoap(router)
			r, err := rcp.GetEntityIfMoreRecent(&nmsrecipient.GetEntityIfMoreRecent{Sessiontoken: token, StrPk: "xtk:schema|nms:recipient"})
			if err != nil || r.PdomDoc == nil || len(r.PdomDoc.Items) != 1 {
				t.Fatalf("nms:recipient GetEntityIfMoreRecent = %#v, %v", r, err)
			}
			_, err = rcp.Write(&nmsrecipient.Write{Sessiontoken: "not-a-token"})
			if err == nil || !strings.Contains(err.Error(), "XSV-350008") {
				t.Fatalf("nms:recipient Write with a bad token: %v", err)
			}
		})
	}
}
