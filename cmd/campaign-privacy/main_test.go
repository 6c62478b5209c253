package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// run executes one command line in-process with the given environment.
func run(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	err := m.Run(context.Background(), args)
	return out.String() + errOut.String(), err
}

func testEnv(t *testing.T, dialect string) map[string]string {
	cfg := storetest.Config(t, dialect)
	return map[string]string{"CP_DATA_DIR": cfg.DataDir, "CP_DATABASE_URL": cfg.DatabaseURL, "CP_LOG_LEVEL": "warn"}
}

func TestOperatorCommands(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			if out, err := run(t, env, "", "migrate"); err != nil || !regexp.MustCompile(`database schema at version [1-9]`).MatchString(out) {
				t.Fatalf("migrate: %v %s", err, out)
			}
			if out, err := run(t, env, "s3cret pass\n", "operator", "create", "--login", "ana", "--password-stdin", "--right", "privacyRight"); err != nil {
				t.Fatalf("create: %v %s", err, out)
			}
			if _, err := run(t, env, "x\n", "operator", "create", "--login", "ana", "--password-stdin"); err == nil || !strings.Contains(errorText(err), "already exists") {
				t.Fatalf("duplicate create: %v", err)
			}
			if _, err := run(t, env, "x\n", "operator", "create", "--login", "eve", "--password-stdin", "--right", "superuser"); err == nil || !strings.Contains(errorText(err), "Unknown right") {
				t.Fatalf("unknown right: %v", err)
			}
			if _, err := run(t, env, "", "operator", "create", "--login", "eve", "--password", "x"); err == nil {
				t.Fatal("a password flag must not exist")
			}
			out, err := run(t, env, "", "operator", "list")
			if err != nil || !regexp.MustCompile(`ana\s+privacyRight\s+active`).MatchString(out) {
				t.Fatalf("list: %v\n%s", err, out)
			}
			if strings.Contains(out, "s3cret") || strings.Contains(out, "argon2") {
				t.Fatal("list shows a password or hash")
			}
			// Locked out by three failures, then unlocked by the command
			// (security-bar.md #41).
			db, err := store.Open(context.Background(), store.Config{DatabaseURL: env["CP_DATABASE_URL"], DataDir: env["CP_DATA_DIR"]})
			if err != nil {
				t.Fatal(err)
			}
			sessions, err := session.New(db, session.Config{Key: []byte("a-session-key-of-at-least-32-bytes"), HashSlots: 1})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := sessions.Logon(context.Background(), "ana", "not her password", ""); apperr.CodeOf(err) != apperr.BadLogon {
					t.Fatalf("a wrong password: %v", err)
				}
			}
			db.Close()
			if out, _ := run(t, env, "", "operator", "list"); !regexp.MustCompile(`ana\s+privacyRight\s+locked until`).MatchString(out) {
				t.Fatalf("list of a locked operator:\n%s", out)
			}
			if out, err := run(t, env, "", "operator", "unlock", "--login", "ana"); err != nil || !strings.Contains(out, "operator ana unlocked") {
				t.Fatalf("unlock: %v %s", err, out)
			}
			if out, _ := run(t, env, "", "operator", "list"); !regexp.MustCompile(`ana\s+privacyRight\s+active`).MatchString(out) {
				t.Fatalf("list after unlock:\n%s", out)
			}
			// Rights and password (security-bar.md #57).
			if out, err := run(t, env, "", "operator", "rights", "--login", "ana", "--right", "admin,privacyRight"); err != nil || !strings.Contains(out, "admin, privacyRight") {
				t.Fatalf("rights: %v %s", err, out)
			}
			if out, _ := run(t, env, "", "operator", "list"); !regexp.MustCompile(`ana\s+admin,privacyRight\s+active`).MatchString(out) {
				t.Fatalf("list after rights:\n%s", out)
			}
			if _, err := run(t, env, "", "operator", "rights", "--login", "ana", "--right", "superuser"); err == nil {
				t.Fatal("an unknown right was given")
			}
			if _, err := run(t, env, "", "operator", "password", "--login", "ana"); err == nil {
				t.Fatal("a password from anywhere but standard input")
			}
			if out, err := run(t, env, "another pass\n", "operator", "password", "--login", "ana", "--password-stdin"); err != nil || !strings.Contains(out, "sessions are revoked") || strings.Contains(out, "another pass") {
				t.Fatalf("password: %v %s", err, out)
			}

			if _, err := run(t, env, "", "operator", "disable", "--login", "ana"); err != nil {
				t.Fatal(err)
			}
			out, _ = run(t, env, "", "operator", "list")
			if !regexp.MustCompile(`ana\s+admin,privacyRight\s+disabled`).MatchString(out) {
				t.Fatalf("list after disable:\n%s", out)
			}
			if _, err := run(t, env, "", "operator", "disable", "--login", "nobody"); err == nil {
				t.Fatal("disabling an unknown operator must fail")
			}
		})
	}
}

// serve starts "serve" in-process and returns its base URL, its output and
// a stop function that waits for the graceful shutdown.
func serve(t *testing.T, env map[string]string) (string, *servertest.SyncBuffer, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &servertest.SyncBuffer{}
	ready := make(chan string, 1)
	if env["CP_ADDR"] == "" {
		env["CP_ADDR"] = "127.0.0.1:0"
	}
	m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Getenv: func(k string) string { return env[k] }, Ready: func(a string) { ready <- a }}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, []string{"serve"}) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve stopped: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not start:\n%s", out)
	}
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	}
	return "http://" + addr, out, stop
}

func post(t *testing.T, url, action, body string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", url+"/nl/jsp/soaprouter.jsp", strings.NewReader(body))
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("SOAPAction", action)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestServeFirstStart: a fresh data directory gets an admin with a generated
// password printed once; it logs on; a restart prints nothing.
func TestServeFirstStart(t *testing.T) {
	env := testEnv(t, "sqlite")
	url, out, stop := serve(t, env)
	m := regexp.MustCompile(`generated password:\s+(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		stop()
		t.Fatalf("no generated password in:\n%s", out)
	}
	body := post(t, url, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("admin", m[1])))
	if !strings.Contains(body, `<login-right right="admin"/>`) {
		t.Fatalf("admin logon: %s", body)
	}
	stop()
	if strings.Count(out.String(), m[1]) != 1 {
		t.Fatal("the generated password must appear exactly once in the output")
	}
	_, out2, stop2 := serve(t, env)
	stop2()
	if strings.Contains(out2.String(), "generated password") {
		t.Fatal("a restart must not create or print a password again")
	}
}

// TestOpenSOAPZoneWarning: an empty CP_SOAP_ALLOWED_SUBNETS on a listener
// other machines can reach is said at start; on loopback, or with a zone,
// nothing is said.
func TestOpenSOAPZoneWarning(t *testing.T) {
	const warning = "the SOAP API is open to every address"
	for _, c := range []struct {
		addr, zone string
		warn       bool
	}{{"0.0.0.0:0", "", true}, {"127.0.0.1:0", "", false}, {"0.0.0.0:0", "10.0.0.0/8", false}} {
		env := testEnv(t, "sqlite")
		env["CP_ADDR"], env["CP_SOAP_ALLOWED_SUBNETS"] = c.addr, c.zone
		_, out, stop := serve(t, env)
		stop()
		if got := strings.Contains(out.String(), warning); got != c.warn {
			t.Errorf("CP_ADDR=%s CP_SOAP_ALLOWED_SUBNETS=%q: warning %v, want %v\n%s", c.addr, c.zone, got, c.warn, out)
		}
	}
}

// TestTwoServeProcessesShareSessions: two servers on one PostgreSQL with one
// signing key accept each other's tokens, and Logoff on one holds on both.
func TestTwoServeProcessesShareSessions(t *testing.T) {
	base := testEnv(t, "postgres")
	base["CP_ADMIN_PASSWORD"] = "admin pass 1"
	// Data directories of their own: the replicas share their keys by
	// setting (a start with other keys is refused, replica_keys_test.go).
	for i, k := range []string{"CP_SESSION_KEY", "CP_EXPORT_KEY", "CP_SUBJECT_KEY", "CP_RECEIPT_KEY"} {
		base[k] = strings.Repeat(fmt.Sprintf("a%d", i), 32)
	}
	envB := map[string]string{}
	for k, v := range base {
		envB[k] = v
	}
	envB["CP_DATA_DIR"] = t.TempDir()
	urlA, _, stopA := serve(t, base)
	defer stopA()
	urlB, _, stopB := serve(t, envB)
	defer stopB()
	body := post(t, urlA, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("admin", "admin pass 1")))
	token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
	if token == "" {
		t.Fatalf("logon: %s", body)
	}
	call := func(method string) string {
		return servertest.Envelope("", `<m:`+method+` xmlns:m="urn:xtk:session"><sessiontoken>`+token+`</sessiontoken></m:`+method+`>`)
	}
	if b := post(t, urlB, "xtk:session#GetUserInfo", call("GetUserInfo")); !strings.Contains(b, "<GetUserInfoResponse") {
		t.Fatalf("B refused A's token: %s", b)
	}
	if b := post(t, urlB, "xtk:session#Logoff", call("Logoff")); !strings.Contains(b, "<LogoffResponse") {
		t.Fatalf("logoff on B: %s", b)
	}
	if b := post(t, urlA, "xtk:session#GetUserInfo", call("GetUserInfo")); !strings.Contains(b, "XSV-350008") {
		t.Fatalf("A still accepts a token logged off on B: %s", b)
	}
}

func TestSettingsValidation(t *testing.T) {
	env := testEnv(t, "sqlite")
	env["CP_FAULT_HTTP_STATUS"] = "404"
	if _, err := run(t, env, "", "serve"); err == nil || !strings.Contains(err.Error(), "CP_FAULT_HTTP_STATUS") {
		t.Fatalf("bad fault status accepted: %v", err)
	}
	env["CP_FAULT_HTTP_STATUS"] = ""
	env["CP_SESSION_KEY"] = "short"
	if _, err := run(t, env, "", "serve"); err == nil || !strings.Contains(err.Error(), "CP_SESSION_KEY") {
		t.Fatalf("short key accepted: %v", err)
	}
	env["CP_SESSION_KEY"] = ""
	// A retention shorter than the confirmation window would purge the
	// file of a delete still waiting for its review (defect 6).
	env["CP_RETENTION"] = "240h"
	if _, err := run(t, env, "", "serve"); err == nil || !strings.Contains(err.Error(), "CP_RETENTION") || !strings.Contains(err.Error(), "confirmation window") {
		t.Fatalf("a retention shorter than the confirm window accepted: %v", err)
	}
	env["CP_RETENTION"] = ""
	// A damaged key file stops the start, naming the file: the service
	// never runs without its key or with another one (security-bar.md #96).
	for _, file := range []string{"session.key", "export.key"} {
		path := filepath.Join(env["CP_DATA_DIR"], file)
		if err := os.MkdirAll(env["CP_DATA_DIR"], 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := run(t, env, "", "serve"); err == nil || !strings.Contains(err.Error(), file) {
			t.Fatalf("a damaged %s: %v", file, err)
		}
		os.Remove(path)
	}
	for _, name := range []string{"CP_SESSION_PREVIOUS_KEYS", "CP_EXPORT_PREVIOUS_KEYS"} {
		env[name] = strings.Repeat("ab", 32) + ",short"
		if _, err := run(t, env, "", "serve"); err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("a short previous key in %s accepted: %v", name, err)
		}
		env[name] = ""
	}
	if out, err := run(t, env, "", "version"); err != nil || !strings.HasPrefix(out, "campaign-privacy ") {
		t.Fatalf("version: %v %s", err, out)
	}
	if _, err := run(t, env, "", "nonsense"); err == nil {
		t.Fatal("unknown command accepted")
	}
}

// TestCustomSchemasAndNamespaces: custom schema files are loaded and their
// tables created; a bad one stops the start with its file and line; a
// custom namespace created from the command line is usable at once.
func TestCustomSchemasAndNamespaces(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			dir := t.TempDir()
			env["CP_SCHEMAS_DIR"] = dir
			write := func(name, body string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write("cus_recipient.xml", `<schema namespace="cus" name="recipient" extendedSchema="nms:recipient">
  <element name="recipient"><attribute name="loyaltyId" type="string" length="32" label="Loyalty card"/></element>
</schema>`)
			write("cus_transaction.xml", `<schema namespace="cus" name="transaction" label="Transactions">
  <element name="transaction" autopk="true">
    <attribute name="amount" type="double"/>
    <element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/>
  </element>
</schema>`)
			if out, err := run(t, env, "", "namespace", "create", "--name", "loyalty", "--label", "Loyalty card", "--key", "@loyaltyId", "--aec-id", "0"); err != nil {
				t.Fatalf("namespace create: %v %s", err, out)
			}
			if _, err := run(t, env, "", "namespace", "create", "--name", "bad", "--label", "Bad", "--key", "@nothing"); err == nil || !strings.Contains(errorText(err), "not an attribute") {
				t.Fatalf("a namespace on an unknown field: %v", err)
			}
			out, err := run(t, env, "", "namespace", "list")
			if err != nil || !strings.Contains(out, "defaultNamespace1") || !regexp.MustCompile(`loyalty\s+Loyalty card\s+nms:recipient\s+@loyaltyId`).MatchString(out) {
				t.Fatalf("namespace list: %v\n%s", err, out)
			}
			if out, err := run(t, env, "", "namespace", "update", "--name", "defaultNamespace3", "--match", "phone", "--region", "US"); err != nil {
				t.Fatalf("namespace update: %v %s", err, out)
			}
			if _, err := run(t, env, "", "namespace", "update", "--name", "defaultNamespace3", "--match", "fuzzy"); err == nil || !strings.Contains(errorText(err), "match rule") {
				t.Fatalf("an unknown match rule: %v", err)
			}
			if out, err := run(t, env, "", "namespace", "update", "--name", "defaultNamespace3", "--label", "Recipient - phone"); err != nil {
				t.Fatalf("namespace update of the label: %v %s", err, out)
			}
			out, err = run(t, env, "", "namespace", "list")
			if err != nil || !regexp.MustCompile(`defaultNamespace3\s+Recipient - phone\s+nms:recipient\s+@phone\s+7\s+phone\s+US`).MatchString(out) {
				t.Fatalf("namespace list after update: %v\n%s", err, out)
			}

			env["CP_ADMIN_PASSWORD"] = "admin pass 1"
			url, _, stop := serve(t, env)
			body := post(t, url, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("admin", "admin pass 1")))
			token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
			call := servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+
				`</sessiontoken><namespaceName>loyalty</namespaceName><reconciliationValue>LC-0042</reconciliationValue><type>1</type><confirmDeletePending>false</confirmDeletePending><regulation>2</regulation></m:CreateRequestByName>`)
			if b := post(t, url, "nms:privacyRequest#CreateRequestByName", call); !strings.Contains(b, "<id xsi:type='xsd:int'>") {
				t.Fatalf("request on the custom namespace: %s", b)
			}
			schemaCall := servertest.Envelope("", `<m:GetEntityIfMoreRecent xmlns:m="urn:xtk:persist"><sessiontoken>`+token+
				`</sessiontoken><pk>xtk:schema|nms:recipient</pk><md5/><mustExist>true</mustExist></m:GetEntityIfMoreRecent>`)
			if b := post(t, url, "xtk:persist#GetEntityIfMoreRecent", schemaCall); !strings.Contains(b, `name="loyaltyId"`) {
				t.Fatalf("the served nms:recipient lacks the extension: %s", b)
			}
			writeCall := servertest.Envelope("", `<m:Write xmlns:m="urn:xtk:session"><sessiontoken>`+token+
				`</sessiontoken><doc><transaction xtkschema="cus:transaction" _operation="insert" amount="12.5"/></doc></m:Write>`)
			if b := post(t, url, "xtk:session#Write", writeCall); !strings.Contains(b, "<WriteResponse") {
				t.Fatalf("write to the custom table: %s", b)
			}
			stop()

			write("cus_broken.xml", "<schema namespace=\"cus\" name=\"broken\">\n  <element name=\"broken\" autopk=\"true\">\n    <attribute name=\"x\" type=\"blob\"/>\n  </element>\n</schema>")
			if _, err := run(t, env, "", "serve"); err == nil || !strings.Contains(err.Error(), "cus_broken.xml:3:") || !strings.Contains(err.Error(), "unknown type") {
				t.Fatalf("a bad schema file must stop the start with file and line: %v", err)
			}
		})
	}
}

// TestScheduledWorkflows: with CP_WORKFLOW_SCHEDULE=1s, serve runs the
// workflows by itself: a new access request completes without a command.
func TestScheduledWorkflows(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			if out, err := run(t, env, "", "demo-data", "--recipients", "2"); err != nil {
				t.Fatalf("demo-data: %v %s", err, out)
			}
			env["CP_ADMIN_PASSWORD"] = "admin pass 1"
			env["CP_WORKFLOW_SCHEDULE"] = "1s"
			url, _, stop := serve(t, env)
			defer stop()
			body := post(t, url, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("admin", "admin pass 1")))
			token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
			create := servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+
				`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue>demo-1@example.com</reconciliationValue><type>1</type><confirmDeletePending>false</confirmDeletePending></m:CreateRequestByName>`)
			id := servertest.Between(post(t, url, "nms:privacyRequest#CreateRequestByName", create), "<id xsi:type='xsd:int'>", "<")
			query := servertest.Envelope("", `<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken>`+token+
				`</sessiontoken><entity><queryDef schema="nms:gdprRequest" operation="get"><select><node expr="@status"/></select><where><condition expr="@id = `+id+`"/></where></queryDef></entity></m:ExecuteQuery>`)
			deadline := time.Now().Add(15 * time.Second)
			for {
				if b := post(t, url, "xtk:queryDef#ExecuteQuery", query); strings.Contains(b, `status="7"`) {
					return
				} else if time.Now().After(deadline) {
					t.Fatalf("the scheduled workflows did not complete the request: %s", b)
				}
				time.Sleep(300 * time.Millisecond)
			}
		})
	}
}
