package server_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// queryCall is ExecuteQuery as the console and WSDL clients send it (the
// queryDef in <entity>); acc-js-sdk names the parameter <document>.
func queryCall(token, param, queryDef string) string {
	return servertest.Envelope("", `<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken xsi:type="xsd:string">`+token+
		`</sessiontoken><`+param+` xsi:type="ns:Element">`+queryDef+`</`+param+`></m:ExecuteQuery>`)
}

// queryResult posts a queryDef and returns the document inside pdomOutput,
// or fails.
func queryResult(t *testing.T, env *servertest.Env, token, queryDef string) string {
	t.Helper()
	status, body := env.Post(t, "xtk:queryDef#ExecuteQuery", queryCall(token, "entity", queryDef))
	const open = "<pdomOutput xsi:type='ns:Element' SOAP-ENV:encodingStyle='http://xml.apache.org/xml-soap/literalxml'>"
	if status != 200 || !strings.Contains(body, "<ExecuteQueryResponse xmlns='urn:xtk:queryDef'") || !strings.Contains(body, open) {
		t.Fatalf("ExecuteQuery: %d\n%s", status, body)
	}
	return servertest.Between(body, open, "</pdomOutput>")
}

const queryFault = "<faultstring xsi:type='xsd:string'>SOP-330011 Error while executing the method 'ExecuteQuery' of service 'xtk:queryDef'.</faultstring>"

func TestExecuteQuery(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		env.Operator(t, "bob", "bob password")
		env.Operator(t, "root", "root password", session.RightAdmin)
		token, _ := env.Logon(t, "ana", "correct horse")

		// Three requests, a second apart.
		var ids []string
		var stamps []string
		for _, r := range []struct{ ns, value, typ, regulation string }{
			{"defaultNamespace1", "a@example.com", "1", "1"},
			{"defaultNamespace1", "b@example.com", "2", "2"},
			{"defaultNamespace2", "+33600000001", "1", "1"},
		} {
			stamps = append(stamps, env.Clock.Now().UTC().Format("2006-01-02 15:04:05.000Z"))
			_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, r.ns, r.value, r.typ, "true", r.regulation))
			ids = append(ids, strconv.FormatInt(created(t, body), 10))
			env.Clock.Advance(time.Second)
		}
		url := func(id string) string { return env.URL + "/nms/gdpr.jssp?id=" + id }

		get := func(schema, id, link string) string {
			return `<queryDef schema="` + schema + `" operation="get" xtkschema="xtk:queryDef"><select><node expr="@id"/><node expr="@status"/><node expr="@type"/>` +
				`<node expr="@regulation"/><node expr="@urlFile"/><node expr="@name"/>` + link + `</select><where><condition expr="@id = ` + id + `"/></where></queryDef>`
		}
		alias := `<node expr="[namespace/@name]" alias="@namespaceName"/>`
		nested := `<node expr="[namespace/@name]"/>`
		tests := []struct{ name, query, want string }{
			{"get with the namespace as an alias", get("nms:gdprRequest", ids[0], alias),
				`<gdprRequest id="` + ids[0] + `" status="0" type="1" regulation="1" urlFile="` + url(ids[0]) + `" name="privacyRequest` + ids[0] + `" namespaceName="defaultNamespace1"/>`},
			{"get with the namespace nested", get("nms:gdprRequest", ids[1], nested),
				`<gdprRequest id="` + ids[1] + `" status="0" type="2" regulation="2" urlFile="` + url(ids[1]) + `" name="privacyRequest` + ids[1] + `"><namespace name="defaultNamespace1"/></gdprRequest>`},
			{"get on nms:privacyRequest", get("nms:privacyRequest", ids[2], alias),
				`<privacyRequest id="` + ids[2] + `" status="0" type="1" regulation="1" urlFile="` + url(ids[2]) + `" name="privacyRequest` + ids[2] + `" namespaceName="defaultNamespace2"/>`},
			{"getIfExists on a missing id", `<queryDef schema="nms:gdprRequest" operation="getIfExists"><select><node expr="@id"/></select><where><condition expr="@id = 999999"/></where></queryDef>`,
				`<gdprRequest/>`},
			{"getIfExists on nms:privacyRequest", `<queryDef schema="nms:privacyRequest" operation="getIfExists"><select><node expr="@status"/><node expr="@confirmDeletePending"/><node expr="@created"/></select><where><condition expr="@id = ` + ids[1] + `"/></where></queryDef>`,
				`<privacyRequest status="0" confirmDeletePending="true" created="` + stamps[1] + `"/>`},
			{"select, newest first, two rows", `<queryDef schema="nms:gdprRequest" operation="select" lineCount="2"><select><node expr="@id"/><node expr="@reconciliationValue"/><node expr="@namespace-id"/></select><orderBy><node expr="@created" sortDesc="true"/></orderBy></queryDef>`,
				`<gdprRequest-collection><gdprRequest id="` + ids[2] + `" reconciliationValue="+33600000001" namespace-id="2"/><gdprRequest id="` + ids[1] + `" reconciliationValue="b@example.com" namespace-id="1"/></gdprRequest-collection>`},
			{"select the next page", `<queryDef schema="nms:privacyRequest" lineCount="2" startLine="2"><select><node expr="@id"/></select><orderBy><node expr="@created" sortDesc="true"/></orderBy></queryDef>`,
				`<privacyRequest-collection><privacyRequest id="` + ids[0] + `"/></privacyRequest-collection>`},
			{"select on the namespace", `<queryDef schema="nms:gdprRequest"><select><node expr="@id"/></select><where><condition expr="[namespace/@name] = 'defaultNamespace1'"/><condition expr="@type = 2"/></where></queryDef>`,
				`<gdprRequest-collection><gdprRequest id="` + ids[1] + `"/></gdprRequest-collection>`},
			{"select nothing", `<queryDef schema="nms:gdprRequest"><select><node expr="@id"/></select><where><condition expr="@status = 7"/></where></queryDef>`,
				`<gdprRequest-collection/>`},
			{"count", `<queryDef schema="nms:gdprRequest" operation="count"/>`, `<gdprRequest count="3"/>`},
			{"count with OR", `<queryDef schema="nms:privacyRequest" operation="count"><where><condition expr="@regulation = 2"/><condition expr="[namespace/@name] = 'defaultNamespace2'" bool-operator="OR"/></where></queryDef>`,
				`<privacyRequest count="2"/>`},
			{"namespaces", `<queryDef schema="nms:privacyNamespace"><select><node expr="@name"/><node expr="@reconciliationKey"/></select><where><condition expr="@aecId IN (6, 7)"/></where></queryDef>`,
				`<privacyNamespace-collection><privacyNamespace name="defaultNamespace1" reconciliationKey="@email"/><privacyNamespace name="defaultNamespace3" reconciliationKey="@phone"/></privacyNamespace-collection>`},
		}
		for _, tt := range tests {
			if got := queryResult(t, env, token, tt.query); got != tt.want {
				t.Errorf("%s\n got %s\nwant %s", tt.name, got, tt.want)
			}
		}

		// Recipients inserted directly: the data model is queryable too.
		ctx := context.Background()
		for _, r := range []map[string]any{
			{"email": "a@example.com", "gender": 1, "first_name": "Ana"},
			{"email": "b@example.com", "gender": 0},
			{"email": "c@example.com", "gender": 2, "black_list": true},
			{"email": "d@other.org", "gender": 1},
		} {
			if err := storetest.SQLOf(t, env.DB).InsertRow(ctx, "nms_recipient", r); err != nil {
				t.Fatal(err)
			}
		}
		got := queryResult(t, env, token, `<queryDef schema="nms:recipient" operation="select"><select><node expr="@id"/><node expr="@email"/><node expr="@gender"/><node expr="@blackList"/></select>`+
			`<where><condition expr="@email LIKE '%@example.com'"/><condition expr="@gender IN (1,2)"/></where></queryDef>`)
		if want := `<recipient-collection><recipient id="1" email="a@example.com" gender="1"/><recipient id="3" email="c@example.com" gender="2" blackList="true"/></recipient-collection>`; got != want {
			t.Errorf("recipients\n got %s\nwant %s", got, want)
		}
		// An injection attempt in a string is one value; the table survives.
		got = queryResult(t, env, token, `<queryDef schema="nms:recipient" operation="count"><where><condition expr="@email = 'x''); DROP TABLE nms_recipient;--'"/></where></queryDef>`)
		if got != `<recipient count="0"/>` {
			t.Errorf("injection: %s", got)
		}
		if got = queryResult(t, env, token, `<queryDef schema="nms:recipient" operation="count"/>`); got != `<recipient count="4"/>` {
			t.Errorf("recipients after the injection attempt: %s", got)
		}

		// acc-js-sdk's form: <document xsi:type="">, xtkschema on the root.
		_, body := env.Post(t, "xtk:queryDef#ExecuteQuery", servertest.Envelope("",
			`<m:ExecuteQuery xmlns:m="urn:xtk:queryDef" SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><sessiontoken xsi:type="xsd:string">`+token+
				`</sessiontoken><document xsi:type=""><queryDef schema="nms:gdprRequest" operation="get" xtkschema="xtk:queryDef"><select><node expr="@status"/></select><where><condition expr="@id = `+ids[0]+`"/></where></queryDef></document></m:ExecuteQuery>`))
		mustContain(t, body, `literalxml'><gdprRequest status="0"/></pdomOutput>`)

		// An administrator holds every right.
		rootToken, _ := env.Logon(t, "root", "root password")
		if got := queryResult(t, env, rootToken, `<queryDef schema="nms:gdprRequest" operation="count"/>`); got != `<gdprRequest count="3"/>` {
			t.Errorf("admin count: %s", got)
		}

		// Faults.
		bobToken, _ := env.Logon(t, "bob", "bob password")
		faults := []struct{ name, token, call, detail string }{
			{"get on a missing id", token, queryCall(token, "entity", `<queryDef schema="nms:gdprRequest" operation="get"><select><node expr="@id"/></select><where><condition expr="@id = 999999"/></where></queryDef>`),
				"The query returned no row."},
			{"get on a missing id, nms:privacyRequest", token, queryCall(token, "entity", `<queryDef schema="nms:privacyRequest" operation="get"><where><condition expr="@id = 999999"/></where></queryDef>`),
				"The query returned no row."},
			{"no privacyRight", bobToken, queryCall(bobToken, "entity", `<queryDef schema="nms:gdprRequest" operation="count"/>`),
				"The operator does not hold the Privacy Data Right (privacyRight)."},
			{"no queryDef", token, queryCall(token, "entity", ``), "The queryDef document is missing."},
			{"unknown schema", token, queryCall(token, "entity", `<queryDef schema="xtk:operator" operation="select"/>`), "Invalid queryDef: unknown schema 'xtk:operator'."},
			{"unknown function", token, queryCall(token, "entity", `<queryDef schema="nms:recipient"><where><condition expr="version() = 'x'"/></where></queryDef>`),
				"Invalid queryDef: condition 1: unknown function 'version' (the functions are count(), countDistinct(), min(), max(), sum(), Lower(), Upper(), Year(), Month(), Day(), GetDate()) at character 1."},
			{"statement separator", token, queryCall(token, "entity", `<queryDef schema="nms:recipient"><where><condition expr="@id = 1; DROP TABLE nms_recipient"/></where></queryDef>`),
				"Invalid queryDef: condition 1: ';' is not allowed at character 8."},
		}
		for _, f := range faults {
			status, body := env.Post(t, "xtk:queryDef#ExecuteQuery", f.call)
			if status != 200 {
				t.Fatalf("%s: status %d", f.name, status)
			}
			mustContain(t, body, queryFault, "<faultcode>SOAP-ENV:Server</faultcode>", "<detail xsi:type='xsd:string'>"+f.detail+"</detail>")
		}
		if got := queryResult(t, env, token, `<queryDef schema="nms:recipient" operation="count"/>`); got != `<recipient count="4"/>` {
			t.Errorf("recipients after the faults: %s", got)
		}
		// The log records calls, never the values of a query.
		if logs := env.Logs.String(); strings.Contains(logs, "a@example.com") || strings.Contains(logs, "DROP TABLE") {
			t.Errorf("the log holds query values:\n%s", logs)
		}
	})
}

// A status dashboard over SOAP: requests counted per status and type, the
// newest per namespace, with groupBy and having (issue 14 item 5).
func TestExecuteQueryFunctions(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		for _, r := range []struct{ ns, value, typ string }{
			{"defaultNamespace1", "a@example.com", "1"},
			{"defaultNamespace1", "b@example.com", "2"},
			{"defaultNamespace1", "c@example.com", "2"},
			{"defaultNamespace2", "+33600000001", "1"},
		} {
			_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, r.ns, r.value, r.typ, "true", "1"))
			created(t, body)
			env.Clock.Advance(time.Second)
		}
		year := strconv.Itoa(env.Clock.Now().UTC().Year())
		tests := []struct{ name, query, want string }{
			{"count() per type", `<queryDef schema="nms:gdprRequest" operation="select" xtkschema="xtk:queryDef"><select><node expr="@type"/><node expr="count()"/></select>` +
				`<groupBy><node expr="@type"/></groupBy></queryDef>`,
				`<gdprRequest-collection><gdprRequest type="1" expr1="2"/><gdprRequest type="2" expr1="2"/></gdprRequest-collection>`},
			{"per namespace over a link, having", `<queryDef schema="nms:gdprRequest"><select><node expr="[namespace/@name]" alias="@namespace"/><node expr="count()" alias="@requests"/>` +
				`<node expr="countDistinct(@type)" alias="@types"/><node expr="max(@created)" alias="@newest"/><node expr="Year(min(@created))" alias="@since"/></select>` +
				`<groupBy><node expr="[namespace/@name]"/></groupBy><having><condition expr="count() &gt; 1"/></having></queryDef>`,
				""},
			{"today's requests by status", `<queryDef schema="nms:gdprRequest" operation="get"><select><node expr="count()" alias="@n"/><node expr="sum(@type)" alias="@typeSum"/></select>` +
				`<where><condition expr="Year(@created) = Year(GetDate()) AND Lower(@reconciliationValue) LIKE '%@example.com'"/></where></queryDef>`,
				`<gdprRequest n="3" typeSum="5"/>`},
		}
		for _, tt := range tests {
			got := queryResult(t, env, token, tt.query)
			if tt.want == "" {
				continue
			}
			if got != tt.want {
				t.Errorf("%s\n got %s\nwant %s", tt.name, got, tt.want)
			}
		}
		got := queryResult(t, env, token, tests[1].query)
		if !strings.HasPrefix(got, `<gdprRequest-collection><gdprRequest namespace="defaultNamespace1" requests="3" types="2" newest="`) ||
			!strings.Contains(got, `Z" since="`+year+`"/>`) || strings.Count(got, "<gdprRequest ") != 1 {
			t.Errorf("per namespace: %s", got)
		}

		faults := []struct{ name, query, detail string }{
			{"unknown function", `<queryDef schema="nms:gdprRequest"><select><node expr="avg(@type)"/></select></queryDef>`,
				"Invalid queryDef: &lt;select&gt; node 1: unknown function 'avg'"},
			{"aggregate in where", `<queryDef schema="nms:gdprRequest" operation="count"><where><condition expr="count() &gt; 1"/></where></queryDef>`,
				"Invalid queryDef: condition 1: count() is an aggregate: it belongs in &lt;select&gt;, &lt;orderBy&gt; or &lt;having&gt; at character 1."},
			{"not grouped", `<queryDef schema="nms:gdprRequest"><select><node expr="@status"/><node expr="count()"/></select></queryDef>`,
				"Invalid queryDef: &lt;select&gt; node 1: @status is neither an aggregate nor in &lt;groupBy&gt;."},
		}
		for _, f := range faults {
			status, body := env.Post(t, "xtk:queryDef#ExecuteQuery", queryCall(token, "entity", f.query))
			if status != 200 {
				t.Fatalf("%s: status %d", f.name, status)
			}
			mustContain(t, body, queryFault, "<faultcode>SOAP-ENV:Server</faultcode>", "<detail xsi:type='xsd:string'>"+f.detail)
		}
	})
}

// TestLikePatternEndingInEscapeIsAClientFault: a queryDef whose LIKE
// pattern ends with a backslash is bad input on PostgreSQL (backslash is
// LIKE's default escape there): a clear Invalid fault, not the Server
// fault of an internal error logged at ERROR with the database's text.
func TestLikePatternEndingInEscapeIsAClientFault(t *testing.T) {
	env := servertest.New(t, store.Postgres, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	// One recipient: PostgreSQL checks the pattern when it compares a row.
	_, body := env.Post(t, "xtk:session#Write", writeCall("Write", token, `<recipient xtkschema="nms:recipient" _operation="insert" email="ana@example.com"/>`))
	if !strings.Contains(body, "<WriteResponse") {
		t.Fatalf("write: %s", body)
	}
	_, body = env.Post(t, "xtk:queryDef#ExecuteQuery", queryCall(token, "entity",
		`<queryDef schema="nms:recipient" operation="select"><select><node expr="@email"/></select>`+
			`<where><condition expr="@email LIKE '%\'"/></where></queryDef>`))
	if strings.Contains(body, "Internal error") || !strings.Contains(body, "ends with its escape character") {
		t.Errorf("a bad LIKE pattern is not answered with a clear fault:\n%s", body)
	}
	for _, line := range strings.Split(env.Logs.String(), "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Errorf("a caller's bad LIKE pattern is logged as a server error:\n%s", line)
		}
	}
}
