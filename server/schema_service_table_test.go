package server_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// fatalTB turns Fatal into a recorded refusal, so that a service that
// refuses to start is an outcome the test can check.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Fatal(args ...any) { f.msg = fmt.Sprint(args...); runtime.Goexit() }
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// TestCustomSchemaOnServiceTable: a custom schema file (CP_SCHEMAS_DIR,
// "new tables linked to the data model") that names one of the service's own
// tables as its sqltable must be refused at start. Accepted, it makes the
// operators table (password hashes, rights) a data schema: any holder of the
// Privacy Data Right reads every password hash with ExecuteQuery and grants
// itself admin with Write.
func TestCustomSchemaOnServiceTable(t *testing.T) {
	doc := `<schema namespace="cus" name="op" label="x">
  <element name="op" sqltable="operators" autopk="true" label="x">
    <attribute name="login" type="string" length="64" label="x"/>
    <attribute name="passwordHash" type="string" length="255" sqlname="password_hash" label="x"/>
    <attribute name="rights" type="string" length="255" label="x"/>
  </element>
</schema>`
	eachStore(t, func(t *testing.T, dialect string) {
		tb := &fatalTB{TB: t}
		var env *servertest.Env
		done := make(chan struct{})
		go func() {
			defer close(done)
			env = servertest.New(tb, dialect, servertest.Options{Schemas: fstest.MapFS{"cus_op.xml": {Data: []byte(doc)}}})
		}()
		<-done
		if env == nil && t.Skipped() {
			return // no database for this store
		}
		if env == nil {
			if !strings.Contains(tb.msg, "one of the service's own tables") {
				t.Fatalf("refused at start, but not for its table: %.300s", tb.msg)
			}
			return
		}
		env.Operator(t, "root", "root password", session.RightAdmin)
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")

		_, body := env.Post(t, "xtk:queryDef#ExecuteQuery", queryCall(token, "entity",
			`<queryDef schema="cus:op" operation="select"><select><node expr="@login"/><node expr="@passwordHash"/></select></queryDef>`))
		if strings.Contains(body, "$argon2id$") {
			t.Errorf("a custom schema on the operators table was accepted; a privacyRight caller read password hashes:\n%.400s", body)
		}
		_, body = env.Post(t, "xtk:session#Write", writeCall("Write", token,
			`<op xtkschema="cus:op" _operation="update" _key="@login" login="ana" rights="admin privacyRight"/>`))
		if strings.Contains(body, "<WriteResponse") {
			ana, _ := env.Logon(t, "ana", "correct horse")
			_, info := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(ana))
			if strings.Contains(info, `right="admin"`) || strings.Contains(info, `right='admin'`) {
				t.Errorf("a privacyRight caller granted itself admin through Write on the custom schema")
			}
		}
	})
}
