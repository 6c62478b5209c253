package interop_test

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// privacyClients are the privacy-request scripts, one per real client; each
// shares the runtime check of its foundation script (same name).
var privacyClients = []clientScript{
	withScript("acc-js-sdk", "js/acc-js-sdk-privacy.js"),
	withScript("node-soap", "js/node-soap-privacy.js"),
	withScript("zeep", "python/zeep_privacy.py"),
	withScript("php-soapclient", "php/soapclient_privacy.php"),
	withScript("soap-lite", "perl/soaplite_privacy.pl"),
}

// withScript returns the client named name running script instead.
func withScript(name, script string) clientScript {
	for _, c := range clients {
		if c.name == name {
			c.command = []string{c.command[0], script}
			return c
		}
	}
	panic("interop: no client " + name)
}

// exampleSchemas is the absolute path of examples/schemas (the CCPA
// extension of nms:recipient, cus:transaction, cus:transactionDetail).
func exampleSchemas(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(examplesDir, "schemas"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// privacyInstance starts a fresh server with two operators: "pia" holding
// privacyRight and "noah" holding no named right.
func privacyInstance(t *testing.T, env ...string) (in *instance, pia, noah operator) {
	t.Helper()
	// The tests expect new requests to stay new (status 0): keep the
	// privacy workflows (daily at 01:00 by default) from running meanwhile.
	in = newInstance(t, append([]string{"CP_WORKFLOW_SCHEDULE=24h"}, env...)...)
	pia = in.createOperator(t, "pia", "privacyRight")
	noah = in.createOperator(t, "noah", "")
	in.start(t)
	return in, pia, noah
}

// TestPrivacyRequestAPI covers the privacy-request API with every real
// client: CreateRequestByName on nms:privacyRequest (with and without
// regulation) and on the legacy nms:gdprRequest, deduplication of an
// identical active request, the SOP-330011 faults (bad type, unknown
// namespace, ConfirmDeletePending on a fresh request, an operator without
// privacyRight). acc-js-sdk also covers the schema API against a server
// started with the example custom schemas (CP_SCHEMAS_DIR=examples/schemas),
// xtkSession.write and xtkQueryDef reads; curl sends the examples/soap
// envelopes. Each client gets a fresh server.
func TestPrivacyRequestAPI(t *testing.T) {
	for _, st := range stores() {
		t.Run(st.name, func(t *testing.T) {
			st.require(t)
			for _, c := range privacyClients {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel() // a server of its own per client
					requireRuntime(t, c)
					env := st.env(t)
					var scriptEnv []string
					if c.name == "acc-js-sdk" {
						env = append(env, "CP_SCHEMAS_DIR="+exampleSchemas(t))
						scriptEnv = append(scriptEnv, "CP_CUSTOM_SCHEMAS=1")
					}
					in, pia, noah := privacyInstance(t, env...)
					runScript(t, c, in.baseURL, pia, append(scriptEnv,
						"CP_UNPRIVILEGED_LOGIN="+noah.login, "CP_UNPRIVILEGED_PASSWORD="+noah.password)...)
				})
			}
			t.Run("curl", func(t *testing.T) {
				requireCommand(t, "curl", "apt-get install curl")
				in, pia, noah := privacyInstance(t, st.env(t)...)
				curlPrivacy(t, in.baseURL, pia, noah)
			})
		})
	}
}

// curlLogon sends examples/soap/logon.xml and returns the session token.
func curlLogon(t *testing.T, baseURL string, op operator) string {
	t.Helper()
	r := curlSOAP(t, baseURL, "xtk:session#Logon",
		readExample(t, "soap/logon.xml", map[string]string{"LOGIN": op.login, "PASSWORD": op.password}))
	requireOK(t, "Logon as "+op.login, r)
	token := r.value("pstrSessionToken")
	if token == "" {
		t.Fatalf("Logon as %s: empty pstrSessionToken:\n%s", op.login, r)
	}
	return token
}

// curlPrivacy drives the privacy API with curl and the examples/soap
// envelopes (SoapUI style, then acc-js-sdk style).
func curlPrivacy(t *testing.T, baseURL string, pia, noah operator) {
	token := curlLogon(t, baseURL, pia)
	withToken := map[string]string{"SESSION_TOKEN": token}
	create := readExample(t, "soap/create-request.xml", withToken)

	id := requestID(t, "create-request.xml", curlSOAP(t, baseURL, "nms:privacyRequest#CreateRequestByName", create))
	if again := requestID(t, "create-request.xml again", curlSOAP(t, baseURL, "nms:privacyRequest#CreateRequestByName", create)); again != id {
		t.Errorf("identical active request: id %d, want the first request's %d", again, id)
	}

	// Adobe's SoapUI example: no regulation at all, which means GDPR, so
	// the same request as the explicit regulation 1 above.
	const regulationLine = "<urn:regulation>1</urn:regulation>"
	if !strings.Contains(create, regulationLine) {
		t.Fatalf("create-request.xml has no %s", regulationLine)
	}
	noRegulation := strings.Replace(create, regulationLine, "", 1)
	if got := requestID(t, "create-request.xml without regulation", curlSOAP(t, baseURL, "nms:privacyRequest#CreateRequestByName", noRegulation)); got != id {
		t.Errorf("request without regulation: id %d, want %d (GDPR, identical to the first)", got, id)
	}

	legacy := requestID(t, "create-request-legacy.xml", curlSOAP(t, baseURL, "nms:gdprRequest#CreateRequestByName",
		readExample(t, "soap/create-request-legacy.xml", withToken)))
	if legacy == id {
		t.Errorf("legacy delete request got the access request's id %d", id)
	}

	badType := strings.Replace(create, "<urn:type>1</urn:type>", "<urn:type>3</urn:type>", 1)
	checkFault(t, "type 3", curlSOAP(t, baseURL, "nms:privacyRequest#CreateRequestByName", badType), "SOP-330011", "")
	badNamespace := strings.Replace(create, "defaultNamespace1", "noSuchNamespace", 1)
	checkFault(t, "unknown namespace", curlSOAP(t, baseURL, "nms:privacyRequest#CreateRequestByName", badNamespace),
		"SOP-330011", "noSuchNamespace")

	// An operator without privacyRight may log on but not create requests.
	noahToken := curlLogon(t, baseURL, noah)
	checkFault(t, "CreateRequestByName as "+noah.login,
		curlSOAP(t, baseURL, "nms:privacyRequest#CreateRequestByName",
			readExample(t, "soap/create-request.xml", map[string]string{"SESSION_TOKEN": noahToken})),
		"SOP-330011", "privacyRight")

	// Status of the request (ExecuteQuery get on nms:gdprRequest).
	r := curlSOAP(t, baseURL, "xtk:queryDef#ExecuteQuery", readExample(t, "soap/query-status.xml",
		map[string]string{"SESSION_TOKEN": token, "REQUEST_ID": strconv.Itoa(id)}))
	checkRequestRow(t, "query-status.xml", r, map[string]string{
		"id": strconv.Itoa(id), "status": "0", "type": "1", "regulation": "1",
		"reconciliationValue": "john.doe@example.com", "namespaceName": "defaultNamespace1",
	}, id)

	curlSDKStyle(t, baseURL, pia, id, legacy)

	requireOK(t, "logoff.xml", curlSOAP(t, baseURL, "xtk:session#Logoff", readExample(t, "soap/logoff.xml", withToken)))
	checkFault(t, "create-request.xml after Logoff",
		curlSOAP(t, baseURL, "nms:privacyRequest#CreateRequestByName", create), "XSV-350008", "")
}

// curlSDKStyle sends the examples/soap/sdk-style envelopes: a CCPA delete
// request, then its status.
func curlSDKStyle(t *testing.T, baseURL string, op operator, others ...int) {
	t.Helper()
	r := curlSDK(t, baseURL, "xtk:session#Logon", "",
		readExample(t, "soap/sdk-style/logon.xml", map[string]string{"LOGIN": op.login, "PASSWORD": op.password}))
	requireOK(t, "sdk-style/logon.xml", r)
	tokens := map[string]string{"SESSION_TOKEN": r.value("pstrSessionToken"), "SECURITY_TOKEN": r.value("pstrSecurityToken")}
	if tokens["SESSION_TOKEN"] == "" || tokens["SECURITY_TOKEN"] == "" {
		t.Fatalf("sdk-style/logon.xml: missing tokens:\n%s", r)
	}
	id := requestID(t, "sdk-style/create-request.xml", curlSDK(t, baseURL, "nms:privacyRequest#CreateRequestByName",
		tokens["SECURITY_TOKEN"], readExample(t, "soap/sdk-style/create-request.xml", tokens)))
	for _, other := range others {
		if id == other {
			t.Errorf("sdk-style CCPA delete request got the id %d of another request", id)
		}
	}
	tokens["REQUEST_ID"] = strconv.Itoa(id)
	r = curlSDK(t, baseURL, "xtk:queryDef#ExecuteQuery", tokens["SECURITY_TOKEN"],
		readExample(t, "soap/sdk-style/query-status.xml", tokens))
	checkRequestRow(t, "sdk-style/query-status.xml", r,
		map[string]string{"id": strconv.Itoa(id), "status": "0", "type": "2", "regulation": "2"}, id)
}

// checkRequestRow checks an ExecuteQuery "get" response on nms:gdprRequest:
// a <gdprRequest> element with the wanted attributes and the urlFile of
// request id.
func checkRequestRow(t *testing.T, what string, r soapResult, want map[string]string, id int) {
	t.Helper()
	if fs, d, isFault := r.fault(); r.status != 200 || isFault {
		t.Errorf("%s: want the request row, got fault %q (%s):\n%s", what, fs, d, r)
		return
	}
	out := r.root.find("pdomOutput")
	row := out.find("gdprRequest")
	if row == nil {
		t.Errorf("%s: no <gdprRequest> in pdomOutput:\n%s", what, r)
		return
	}
	for k, v := range want {
		if row.attrs[k] != v {
			t.Errorf("%s: %s=%q, want %q (row %v)", what, k, row.attrs[k], v, row.attrs)
		}
	}
	if suffix := "/nms/gdpr.jssp?id=" + strconv.Itoa(id); !strings.HasSuffix(row.attrs["urlFile"], suffix) {
		t.Errorf("%s: urlFile %q, want it to end with %s", what, row.attrs["urlFile"], suffix)
	}
}
