package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestLogsHoldNoSecrets drives the whole API — logons good and bad, Write,
// requests, queries, workflows, faults — and then proves that no password,
// token or personal value reached the log (security-bar.md §3-I).
func TestLogsHoldNoSecrets(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "s3cret-Passw0rd", session.RightPrivacy)
	token, security := env.Logon(t, "ana", "s3cret-Passw0rd")
	env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "Wr0ng-Passw0rd")))
	env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("nobody-secret-login", "Wr0ng-Passw0rd")))
	secrets := []string{"s3cret-Passw0rd", "Wr0ng-Passw0rd", token, security, "maria.secret@example.com", "+33612345678", "Mariana-Secret"}

	write := writeCall("Write", token, `<recipient xtkschema="nms:recipient" _operation="insert" email="maria.secret@example.com" mobilePhone="+33612345678" firstName="Mariana-Secret"/>`)
	env.Post(t, "xtk:session#Write", write)
	env.Post(t, "xtk:session#Write", writeCall("Write", token, `<recipient xtkschema="nms:recipient" _operation="insert" email="maria.secret@example.com" birthDate="Mariana-Secret"/>`))
	_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", "maria.secret@example.com", "1", "false", "1"))
	created(t, body)
	env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace2", "+33612345678", "2", "false", "9"))
	env.Post(t, "xtk:queryDef#ExecuteQuery", servertest.Envelope("", `<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken>`+token+
		`</sessiontoken><entity><queryDef schema="nms:recipient" operation="select"><where><condition expr="@email = 'maria.secret@example.com'"/></where></queryDef></entity></m:ExecuteQuery>`))
	if _, err := env.Privacy.Run(context.Background(), "all"); err != nil {
		t.Fatal(err)
	}
	env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token+"x"))
	env.Post(t, "xtk:session#Logoff", logoffCall(token))

	logs := env.Logs.String()
	if !strings.Contains(logs, "privacy request step done") || !strings.Contains(logs, "soap fault") {
		t.Fatalf("the log does not show the traffic:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q", s)
		}
	}
}
