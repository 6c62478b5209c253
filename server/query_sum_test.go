package server_test

import (
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestSumOverflowIsAClientFault: sum() of values a caller wrote
// (link keys are BIGINT and unchecked) can pass the 64-bit range. The
// answer must be a Client-safe Invalid fault, as J21 made of PostgreSQL's
// LIKE escape error, not "Internal error (reference …)" with the
// database's text in an ERROR log line — and both stores must agree.
func TestSumOverflowIsAClientFault(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		coll := `<broadLogRcp-collection xtkschema="nms:broadLogRcp">` +
			`<broadLogRcp _operation="insert" recipient-id="9223372036854775807" status="1"/>` +
			`<broadLogRcp _operation="insert" recipient-id="9223372036854775807" status="1"/>` +
			`</broadLogRcp-collection>`
		_, body := env.Post(t, "xtk:session#WriteCollection", writeCall("WriteCollection", token, coll))
		mustContain(t, body, "<WriteCollectionResponse")
		_, body = env.Post(t, "xtk:queryDef#ExecuteQuery", queryCall(token, "entity",
			`<queryDef schema="nms:broadLogRcp" operation="get"><select><node expr="sum(@recipient-id)" alias="@s"/></select></queryDef>`))
		i := strings.Index(body, "<SOAP-ENV:Body>")
		t.Logf("answer: %s", body[i:])
		if strings.Contains(body, "Internal error") {
			t.Errorf("sum() overflow is a Server fault 'Internal error'")
		}
		if strings.Contains(body, "<ExecuteQueryResponse") && !strings.Contains(body, `s="18446744073709551614"`) {
			t.Errorf("sum() answered without the right value")
		}
	})
}
