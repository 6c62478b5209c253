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

// TestFaultsEchoingInputAreRedactedInTheLog: faults that quote the
// caller's input — an email sent by position as the namespaceName, an
// unquoted word in a queryDef condition, a GetEntityIfMoreRecent key —
// give it back in the fault string, and the log gets the message's
// template only.
func TestFaultsEchoingInputAreRedactedInTheLog(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	cases := []struct {
		name, action, envelope, secret string
	}{
		{"namespace", "nms:privacyRequest#CreateRequestByName",
			createCall("nms:privacyRequest", token, "erin.positional@example.com", "1", "1", "false", ""), "erin.positional@example.com"},
		{"queryDef", "xtk:queryDef#ExecuteQuery", servertest.Envelope("", `<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken>`+token+
			`</sessiontoken><entity><queryDef schema="nms:recipient" operation="select"><where><condition expr="@email = Unquotedsecretword"/></where></queryDef></entity></m:ExecuteQuery>`), "Unquotedsecretword"},
		{"entity key", "xtk:persist#GetEntityIfMoreRecent", servertest.Envelope("", `<m:GetEntityIfMoreRecent xmlns:m="urn:xtk:persist"><sessiontoken>`+token+
			`</sessiontoken><pk>nms:recipient|key.secret@example.com</pk><md5/><mustExist>1</mustExist></m:GetEntityIfMoreRecent>`), "key.secret@example.com"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, body := env.Post(t, c.action, c.envelope)
			if !strings.Contains(body, "faultstring") || !strings.Contains(body, c.secret) {
				t.Fatalf("the fault does not give the caller its input back:\n%s", body)
			}
			logs := env.Logs.String()
			if !strings.Contains(logs, "soap fault") {
				t.Fatalf("no fault logged:\n%s", logs)
			}
			if strings.Contains(logs, c.secret) {
				t.Fatalf("the log holds %q:\n%s", c.secret, logs)
			}
		})
	}
}

// TestFailedLogonsLogTheClientAddress (issue 13): every refused logon logs
// the client's address, and never the login when it does not exist.
func TestFailedLogonsLogTheClientAddress(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "wrong horse")))
	env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("no-such-operator-login", "wrong horse")))
	env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "")))
	var refused []string
	for _, line := range strings.Split(env.Logs.String(), "\n") {
		if strings.Contains(line, "logon refused") {
			refused = append(refused, line)
		}
	}
	if len(refused) != 3 {
		t.Fatalf("want 3 refused logons in the log, got %d:\n%s", len(refused), env.Logs.String())
	}
	for _, line := range refused {
		if !strings.Contains(line, "from=127.0.0.1") {
			t.Errorf("a refused logon without the client address: %s", line)
		}
	}
	if strings.Contains(env.Logs.String(), "no-such-operator-login") {
		t.Error("the log names a login that does not exist")
	}
}

// TestAuthFailuresNameTheClient (security-bar #114): every refused logon
// and every refused session token is one log event with its reason and the
// client's address, and without the password, login or token it refused.
func TestAuthFailuresNameTheClient(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{})
	env.Operator(t, "ana", "s3cret-Passw0rd", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "s3cret-Passw0rd")
	forged := token[:len(token)-4] + "AAAA"
	for _, c := range []struct{ name, action, envelope, event string }{
		{"wrong password", "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "Wr0ng-Passw0rd")), "logon refused"},
		{"unknown login", "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("nobody-secret-login", "Wr0ng-Passw0rd")), "logon refused"},
		{"no token", "xtk:session#GetUserInfo", userInfoCall(""), "session refused"},
		{"forged token", "xtk:session#GetUserInfo", userInfoCall(forged), "session refused"},
	} {
		before := strings.Count(env.Logs.String(), "\n")
		if _, body := env.Post(t, c.action, c.envelope); !strings.Contains(body, "<SOAP-ENV:Fault>") {
			t.Fatalf("%s: not refused: %s", c.name, body)
		}
		lines := strings.Split(env.Logs.String(), "\n")[before:]
		var events []string
		for _, l := range lines {
			if strings.Contains(l, `msg="`+c.event+`"`) {
				events = append(events, l)
			}
		}
		if len(events) != 1 || !strings.Contains(events[0], "from=127.0.0.1") || !strings.Contains(events[0], "reason=") {
			t.Fatalf("%s: %d %q event(s), want one with the reason and from=127.0.0.1:\n%s", c.name, len(events), c.event, strings.Join(lines, "\n"))
		}
		for _, secret := range []string{"Wr0ng-Passw0rd", "nobody-secret-login", forged, token} {
			if strings.Contains(events[0], secret) {
				t.Fatalf("%s: the event holds what it refused: %s", c.name, events[0])
			}
		}
	}
}

// TestFaultLogNamesNoCallerService: the "soap fault" log line names the
// action only when it is a method of the registry, by the registry's
// name: the service as the caller wrote it (the SOAPAction's, or the
// Body's namespace URI when there is no header) is the caller's text, any
// text, unauthenticated, as the fault's own text is
// (TestFaultsEchoingInputAreRedactedInTheLog).
func TestFaultLogNamesNoCallerService(t *testing.T) {
	const secret = "maria.review@example.com"
	cases := []struct {
		name, action, envelope string
	}{
		// A registry method reached through a "service|service" SOAPAction
		// (acc-js-sdk's form); the token is refused: a bad-session fault.
		{"SOAPAction service", "xtk:session|" + secret + "#GetUserInfo", userInfoCall("not-a-token")},
		// No SOAPAction: the service is the Body's namespace URI; no such
		// method: an unknown-method fault.
		{"Body namespace", "", servertest.Envelope("", `<m:Logon xmlns:m="urn:`+secret+`"><login>x</login><password>y</password></m:Logon>`)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := servertest.New(t, store.SQLite, servertest.Options{})
			env.Operator(t, "ana", "correct horse", session.RightPrivacy)
			_, body := env.Post(t, c.action, c.envelope)
			if !strings.Contains(body, "<SOAP-ENV:Fault>") {
				t.Fatalf("no fault:\n%s", body)
			}
			logs := env.Logs.String()
			if !strings.Contains(logs, `msg="soap fault"`) {
				t.Fatalf("no fault logged:\n%s", logs)
			}
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, secret) {
					t.Fatalf("the log holds the caller's %q:\n%s", secret, line)
				}
			}
		})
	}
}
