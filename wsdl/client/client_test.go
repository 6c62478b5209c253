package client_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hooklift/gowsdl/soap"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/wsdl/client/nmsprivacyrequest"
	"github.com/campaign-privacy/campaign-privacy/wsdl/client/xtksession"
)

// The generated constructors return the generated portType interfaces.
var (
	_ func(*soap.Client) xtksession.SessionMethodsSoap               = xtksession.NewSessionMethodsSoap
	_ func(*soap.Client) nmsprivacyrequest.PrivacyRequestMethodsSoap = nmsprivacyrequest.NewPrivacyRequestMethodsSoap
)

const (
	login    = "ana"
	password = "secret-pw-1"
)

// sessionClient is a generated xtk:session client of env's SOAP router;
// headers are sent with every call.
func sessionClient(env *servertest.Env, headers map[string]string) xtksession.SessionMethodsSoap {
	var opts []soap.Option
	if headers != nil {
		opts = append(opts, soap.WithHTTPHeaders(headers))
	}
	return xtksession.NewSessionMethodsSoap(soap.NewClient(env.URL+"/nl/jsp/soaprouter.jsp", opts...))
}

func logon(c xtksession.SessionMethodsSoap, password string) (*xtksession.LogonResponse, error) {
	return c.Logon(&xtksession.Logon{
		Sessiontoken:   "",
		StrLogin:       login,
		StrPassword:    password,
		ElemParameters: &xtksession.Element{},
	})
}

// wantFault checks that err is the SOAP fault gowsdl returns for a fault
// answered with HTTP 200 (the server's default, as ACC): *soap.SOAPFault
// with the faultstring in String.
func wantFault(t *testing.T, err error, code, prefix string) {
	t.Helper()
	var f *soap.SOAPFault
	if !errors.As(err, &f) {
		t.Fatalf("error = %#v, want a *soap.SOAPFault %q", err, prefix)
	}
	if f.Code != code || !strings.HasPrefix(f.String, prefix) {
		t.Fatalf("fault = %q %q, want %q %q…", f.Code, f.String, code, prefix)
	}
	if !strings.HasPrefix(err.Error(), prefix) {
		t.Fatalf("err.Error() = %q, want prefix %q", err.Error(), prefix)
	}
}

func TestSessionRoundTrip(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			env.Operator(t, login, password, "privacyRight")

			resp, err := logon(sessionClient(env, nil), password)
			if err != nil {
				t.Fatalf("Logon: %v", err)
			}
			if resp.PstrSessionToken == "" || resp.PstrSecurityToken == "" {
				t.Fatalf("Logon tokens: session %q, security %q", resp.PstrSessionToken, resp.PstrSecurityToken)
			}
			// gowsdl maps the WSDL's Element (xs:any) to Items []string,
			// which keeps only character data: the rights in
			// <sessionInfo><userInfo><login-right right='…'/> are not
			// exposed, so only the element's presence is checked.
			if resp.PSessionInfo == nil || len(resp.PSessionInfo.Items) != 1 {
				t.Fatalf("Logon pSessionInfo = %#v, want one <sessionInfo>", resp.PSessionInfo)
			}

			c := sessionClient(env, map[string]string{"X-Security-Token": resp.PstrSecurityToken})
			token := resp.PstrSessionToken
			info, err := c.GetUserInfo(&xtksession.GetUserInfo{Sessiontoken: token})
			if err != nil || info.PUserInfo == nil {
				t.Fatalf("GetUserInfo = %#v, %v", info, err)
			}
			if _, err := c.Logoff(&xtksession.Logoff{Sessiontoken: token}); err != nil {
				t.Fatalf("Logoff: %v", err)
			}
			_, err = c.Logoff(&xtksession.Logoff{Sessiontoken: token})
			wantFault(t, err, "SOAP-ENV:Client", "XSV-350008")
			_, err = c.GetUserInfo(&xtksession.GetUserInfo{Sessiontoken: token})
			wantFault(t, err, "SOAP-ENV:Client", "XSV-350008")
		})
	}
}

func TestLogonWrongPassword(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			env.Operator(t, login, password, "privacyRight")
			_, err := logon(sessionClient(env, nil), "wrong-pw-1")
			if err == nil || !strings.Contains(err.Error(), "XSV-350012") {
				t.Fatalf("Logon with a wrong password: %v, want XSV-350012", err)
			}
			wantFault(t, err, "SOAP-ENV:Client", "XSV-350012")
		})
	}
}

// With FaultHTTPStatus 500 (strict SOAP 1.1), gowsdl v0.5.0 does not parse
// the fault: any status >= 400 is a *soap.HTTPError carrying the raw body.
func TestFaultWithHTTP500(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{
				Server: func(c *server.Config) { c.FaultHTTPStatus = http.StatusInternalServerError },
			})
			_, err := sessionClient(env, nil).GetUserInfo(&xtksession.GetUserInfo{Sessiontoken: "not-a-token"})
			var he *soap.HTTPError
			if !errors.As(err, &he) {
				t.Fatalf("error = %#v, want a *soap.HTTPError", err)
			}
			if he.StatusCode != http.StatusInternalServerError || !strings.Contains(string(he.ResponseBody), "<faultstring xsi:type='xsd:string'>XSV-350008 ") {
				t.Fatalf("HTTPError = %d %s", he.StatusCode, he.ResponseBody)
			}
		})
	}
}

// TestSchemaFetchThroughSession: gowsdl omits the empty <sessiontoken/>
// and <strMd5/>; the server binds the remaining parameters by their WSDL
// names, and answers the persist method in urn:xtk:session, the namespace
// the xtk:session WSDL declares for it.
func TestSchemaFetchThroughSession(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			env.Operator(t, login, password, "privacyRight")
			resp, err := logon(sessionClient(env, nil), password)
			if err != nil {
				t.Fatal(err)
			}
			c := sessionClient(env, nil)
			got, err := c.GetEntityIfMoreRecent(&xtksession.GetEntityIfMoreRecent{
				Sessiontoken: resp.PstrSessionToken, StrPk: "xtk:schema|nms:privacyRequest", BMustExist: true,
			})
			if err != nil {
				t.Fatalf("GetEntityIfMoreRecent: %v", err)
			}
			if got.PdomDoc == nil || len(got.PdomDoc.Items) != 1 {
				t.Fatalf("pdomDoc = %#v, want the schema element", got.PdomDoc)
			}
			_, err = c.GetEntityIfMoreRecent(&xtksession.GetEntityIfMoreRecent{
				Sessiontoken: resp.PstrSessionToken, StrPk: "xtk:schema|nms:nothing", BMustExist: true,
			})
			wantFault(t, err, "SOAP-ENV:Server", "SOP-330011")
		})
	}
}
