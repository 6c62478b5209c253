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

// TestLogLinesCannotBeForged (security-bar.md #114): input with CR/LF in
// any parameter of a call — the namespace, the value, the type — never
// starts a log line of its own: what reaches the log is quoted.
func TestLogLinesCannotBeForged(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	forged := "x\r\ntime=2026-01-01T00:00:00Z level=ERROR msg=forged"
	env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, forged, "a@example.com", "1", "false", ""))
	env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", forged, "1", "false", ""))
	env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", forged, "false", ""))
	// (HTTP itself refuses CR/LF in a header value: no client can send one.)
	for _, line := range strings.Split(env.Logs.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "time=2026-01-01") {
			t.Fatalf("a forged log line:\n%s", env.Logs.String())
		}
	}
}
