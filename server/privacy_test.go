package server_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// createCall is CreateRequestByName the way acc-js-sdk sends it; regulation
// "" leaves the parameter out (clients before 20.2).
func createCall(schema, token, ns, value, typ, confirm, regulation string) string {
	reg := ""
	if regulation != "" {
		reg = `<regulation xsi:type="xsd:int">` + regulation + `</regulation>`
	}
	return servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:`+schema+`"><sessiontoken xsi:type="xsd:string">`+token+
		`</sessiontoken><namespaceName xsi:type="xsd:string">`+ns+`</namespaceName><reconciliationValue xsi:type="xsd:string">`+value+
		`</reconciliationValue><type xsi:type="xsd:int">`+typ+`</type><confirmDeletePending xsi:type="xsd:boolean">`+confirm+
		`</confirmDeletePending>`+reg+`</m:CreateRequestByName>`)
}

// created returns the id of a CreateRequestByName answer, or fails.
func created(t *testing.T, body string) int64 {
	t.Helper()
	v := servertest.Between(body, "<id xsi:type='xsd:int'>", "<")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		t.Fatalf("no id in:\n%s", body)
	}
	return id
}

func requestRow(t *testing.T, env *servertest.Env, id int64) *store.Request {
	t.Helper()
	r, err := env.DB.FindRequestByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCreateRequestByName(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")

		_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", "john@example.com", "1", "true", "2"))
		mustContain(t, body, "<CreateRequestByNameResponse xmlns='urn:nms:privacyRequest'")
		id := created(t, body)
		r := requestRow(t, env, id)
		if r.Name != "privacyRequest"+strconv.FormatInt(id, 10) || r.URLFile != env.URL+"/nms/gdpr.jssp?id="+strconv.FormatInt(id, 10) ||
			r.Status != store.Status(privacy.StatusNew) || r.Type != 1 || r.Regulation != privacy.RegulationCCPA || !r.ConfirmDeletePending ||
			r.ReconciliationValue != "john@example.com" || !strings.Contains(r.Audit, "Request created by operator 'ana'.") {
			t.Fatalf("stored request: %+v", r)
		}

		// The same request while it is active: the same id.
		_, body = env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", "john@example.com", "1", "true", "2"))
		if again := created(t, body); again != id {
			t.Fatalf("duplicate got id %d, want %d", again, id)
		}
		// Another type is another request.
		_, body = env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", "john@example.com", "2", "false", "2"))
		del := created(t, body)
		if del == id || requestRow(t, env, del).ConfirmDeletePending {
			t.Fatal("a delete request must be a new request, one-step as asked")
		}

		// Four parameters (no regulation), regulation 0, and the legacy schema: GDPR.
		for _, c := range []struct{ action, call string }{
			{"nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace2", "+33600000001", "1", "true", "")},
			{"nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace2", "+33600000002", "1", "true", "0")},
			{"nms:gdprRequest#CreateRequestByName", createCall("nms:gdprRequest", token, "defaultNamespace3", "+3310000000", "1", "true", "")},
		} {
			_, body := env.Post(t, c.action, c.call)
			if r := requestRow(t, env, created(t, body)); r.Regulation != privacy.RegulationGDPR {
				t.Fatalf("%s: regulation %d, want GDPR", c.action, r.Regulation)
			}
		}

		// Adobe's SoapUI example: urn: prefix, no xsi:type, booleans as 1/0,
		// the token only in the body.
		soapUI := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:urn="urn:nms:privacyRequest"><soapenv:Header/><soapenv:Body><urn:CreateRequestByName><urn:sessiontoken>` + token +
			`</urn:sessiontoken><urn:namespaceName>defaultNamespace1</urn:namespaceName><urn:reconciliationValue>mary@example.com</urn:reconciliationValue><urn:type>2</urn:type><urn:confirmDeletePending>1</urn:confirmDeletePending></urn:CreateRequestByName></soapenv:Body></soapenv:Envelope>`
		_, body = env.Post(t, "nms:privacyRequest#CreateRequestByName", soapUI)
		if r := requestRow(t, env, created(t, body)); r.Type != privacy.TypeDelete || !r.ConfirmDeletePending {
			t.Fatalf("SoapUI request: %+v", r)
		}
		// confirmDeletePending left out: the 2-step default.
		noConfirm := servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue>nc@example.com</reconciliationValue><type>2</type></m:CreateRequestByName>`)
		_, body = env.Post(t, "nms:privacyRequest#CreateRequestByName", noConfirm)
		if !requestRow(t, env, created(t, body)).ConfirmDeletePending {
			t.Fatal("an omitted confirmDeletePending must mean the 2-step process")
		}
		// Elements the method does not declare are never bound to the
		// request (security-bar.md #70): at the end, or in place of none.
		extra := `<status>3</status><operator>admin</operator><id>7</id><audit>x</audit>`
		for name, call := range map[string]string{
			"trailing": servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken>`+token+`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue>extra1@example.com</reconciliationValue><type>1</type><confirmDeletePending>false</confirmDeletePending><regulation>1</regulation>`+extra+`</m:CreateRequestByName>`),
			"leading":  servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest">`+extra+`<sessiontoken>`+token+`</sessiontoken><namespaceName>defaultNamespace1</namespaceName><reconciliationValue>extra2@example.com</reconciliationValue><type>1</type><confirmDeletePending>false</confirmDeletePending></m:CreateRequestByName>`),
		} {
			_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", call)
			if strings.Contains(body, "<SOAP-ENV:Fault>") {
				continue // refused: fine
			}
			id := created(t, body)
			r := requestRow(t, env, id)
			if id == 7 || r.Status != store.Status(privacy.StatusNew) || strings.Contains(r.Audit, "admin") || strings.HasPrefix(r.Audit, "x") {
				t.Fatalf("%s extra elements were bound: id %d %+v", name, id, r)
			}
		}
	})
}

func TestCreateRequestValidation(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		env.Operator(t, "bob", "bob password")
		token, _ := env.Logon(t, "ana", "correct horse")
		bob, _ := env.Logon(t, "bob", "bob password")
		ctx := context.Background()
		before, _ := env.DB.CountRows(ctx, "privacy_requests", "", nil)
		cases := []struct {
			name, call, detail string
		}{
			{"unknown namespace", createCall("nms:privacyRequest", token, "noSuchNamespace", "a@example.com", "1", "true", "1"), "The namespace 'noSuchNamespace' does not exist."},
			{"wildcard namespace", createCall("nms:privacyRequest", token, "defaultNamespace%", "a@example.com", "1", "true", "1"), "does not exist"},
			{"empty namespace", createCall("nms:privacyRequest", token, "", "a@example.com", "1", "true", "1"), "namespace name"},
			{"long namespace", createCall("nms:privacyRequest", token, strings.Repeat("n", 10240), "a@example.com", "1", "true", "1"), "namespace name"},
			{"type 0", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "0", "true", "1"), "The type must be 1 (access) or 2 (delete)."},
			{"type 3", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "3", "true", "1"), "The type must be"},
			{"type -1", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "-1", "true", "1"), "The type must be"},
			{"type 2^31", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "2147483648", "true", "1"), "must be an integer"},
			{"type 1.0", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "1.0", "true", "1"), "must be an integer"},
			{"type with a space", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", " 1", "true", "1"), "must be an integer"},
			{"type abc", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "abc", "true", "1"), "must be an integer"},
			{"regulation 5", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "1", "true", "5"), "The regulation must be 1 (GDPR)"},
			{"regulation -1", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "1", "true", "-1"), "The regulation must be"},
			{"confirm yes", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "1", "yes", "1"), "must be true, false, 1 or 0"},
			{"confirm 2", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com", "1", "2", "1"), "must be true, false, 1 or 0"},
			{"empty value", createCall("nms:privacyRequest", token, "defaultNamespace1", "", "1", "true", "1"), "The reconciliation value is empty."},
			{"whitespace value", createCall("nms:privacyRequest", token, "defaultNamespace1", "   ", "1", "true", "1"), "white space"},
			{"percent", createCall("nms:privacyRequest", token, "defaultNamespace1", "%", "1", "true", "1"), "wildcard"},
			{"underscore", createCall("nms:privacyRequest", token, "defaultNamespace1", "_", "1", "true", "1"), "wildcard"},
			{"star", createCall("nms:privacyRequest", token, "defaultNamespace1", "*", "1", "true", "1"), "wildcard"},
			{"CRLF", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@example.com&#13;&#10;b@example.com", "1", "true", "1"), "control"},
			{"tab", createCall("nms:privacyRequest", token, "defaultNamespace1", "a@exa&#9;mple.com", "1", "true", "1"), "control"},
			{"RTL override", createCall("nms:privacyRequest", token, "defaultNamespace1", "a\u202e@example.com", "1", "true", "1"), "formatting"},
			{"zero-width joiner", createCall("nms:privacyRequest", token, "defaultNamespace1", "a\u200d@example.com", "1", "true", "1"), "formatting"},
			{"longer than the field", createCall("nms:privacyRequest", token, "defaultNamespace1", strings.Repeat("a", 120)+"@example.com", "1", "true", "1"), "longer than the 128 characters"},
			{"1 KiB + 1", createCall("nms:privacyRequest", token, "defaultNamespace1", strings.Repeat("a", 1025), "1", "true", "1"), "longer than 1024 bytes"},
			{"no privacy right", createCall("nms:privacyRequest", bob, "defaultNamespace1", "a@example.com", "1", "true", "1"), "does not hold the Privacy Data Right"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", c.call)
				mustContain(t, body, "<faultstring xsi:type='xsd:string'>SOP-330011 Error while executing the method 'CreateRequestByName' of service 'nms:privacyRequest'.</faultstring>", c.detail)
			})
		}
		_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", "", "defaultNamespace1", "a@example.com", "1", "true", "1"))
		mustContain(t, body, badSession)
		if after, _ := env.DB.CountRows(ctx, "privacy_requests", "", nil); after != before {
			t.Fatalf("refused calls wrote %d request(s)", after-before)
		}
		// The refusal for want of the right is logged, with the operator
		// (security-bar.md #62).
		if !regexp.MustCompile(`soap fault.*action=nms:privacyRequest#CreateRequestByName code=forbidden .*operator_id=[1-9]`).MatchString(env.Logs.String()) {
			t.Fatalf("the denial is not logged with its operator:\n%s", env.Logs.String())
		}
		// Quotes and SQL text are values, stored and matched verbatim.
		for _, v := range []string{"o'brien@example.com", "x@example.com'); DROP TABLE nms_recipient;--"} {
			_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", strings.ReplaceAll(v, "'", "&apos;"), "1", "true", "1"))
			if r := requestRow(t, env, created(t, body)); r.ReconciliationValue != v {
				t.Fatalf("stored %q, want %q", r.ReconciliationValue, v)
			}
		}
		if n, err := env.DB.CountRows(ctx, "nms_recipient", "", nil); err != nil || n != 0 {
			t.Fatalf("nms_recipient after the injection attempt: %d, %v", n, err)
		}
		// NFD input is stored in NFC: one subject, one spelling.
		_, body = env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", "jose\u0301@example.com", "1", "true", "1"))
		if r := requestRow(t, env, created(t, body)); r.ReconciliationValue != "jos\u00e9@example.com" {
			t.Fatalf("not NFC: %q", r.ReconciliationValue)
		}
	})
}

func TestCreateRequestConcurrentDuplicates(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		call := createCall("nms:privacyRequest", token, "defaultNamespace1", "same@example.com", "2", "true", "1")
		var mu sync.Mutex
		ids := map[string]int{}
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", call)
				mu.Lock()
				ids[servertest.Between(body, "<id xsi:type='xsd:int'>", "<")]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(ids) != 1 || ids[""] != 0 {
			t.Fatalf("20 identical calls gave ids %v, want one id", ids)
		}
		if n, _ := env.DB.CountRows(context.Background(), "privacy_requests", "", nil); n != 1 {
			t.Fatalf("%d rows, want 1", n)
		}
	})
}

func TestDeduplicationSetting(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{Privacy: func(c *privacy.Config) { c.Deduplicate = false }})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	call := createCall("nms:privacyRequest", token, "defaultNamespace1", "same@example.com", "1", "true", "1")
	_, a := env.Post(t, "nms:privacyRequest#CreateRequestByName", call)
	_, b := env.Post(t, "nms:privacyRequest#CreateRequestByName", call)
	if created(t, a) == created(t, b) {
		t.Fatal("with deduplication off, each call creates a request")
	}
}

func confirmCall(schema, param, token, id string) string {
	return servertest.Envelope("", `<m:ConfirmDeletePending xmlns:m="urn:`+schema+`"><sessiontoken>`+token+`</sessiontoken><`+param+`>`+id+`</`+param+`></m:ConfirmDeletePending>`)
}

func TestConfirmDeletePending(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		env.Operator(t, "bob", "bob password")
		token, _ := env.Logon(t, "ana", "correct horse")
		bob, _ := env.Logon(t, "bob", "bob password")
		ctx := context.Background()
		newRequest := func(value string) int64 {
			_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", value, "2", "true", "1"))
			return created(t, body)
		}
		id := newRequest("del@example.com")
		sid := strconv.FormatInt(id, 10)
		_, body := env.Post(t, "nms:privacyRequest#ConfirmDeletePending", confirmCall("nms:privacyRequest", "privacyRequestId", token, sid))
		mustContain(t, body, "SOP-330011", fmt.Sprintf("The privacy request %d is not waiting for a delete confirmation (status new).", id))

		// The collect workflow puts it in confirmDeletePending for 15 days.
		deadline := env.Clock.Now().Add(15 * 24 * time.Hour)
		if err := storetest.SQLOf(t, env.DB).Exec(ctx, "UPDATE privacy_requests SET status = ?, confirm_deadline = ? WHERE id = ?", int(privacy.StatusConfirmDeletePending), &deadline, id); err != nil {
			t.Fatal(err)
		}
		_, body = env.Post(t, "nms:privacyRequest#ConfirmDeletePending", confirmCall("nms:privacyRequest", "privacyRequestId", bob, sid))
		mustContain(t, body, "does not hold the Privacy Data Right")
		_, body = env.Post(t, "nms:privacyRequest#ConfirmDeletePending", confirmCall("nms:privacyRequest", "privacyRequestId", token, sid))
		mustContain(t, body, "<ConfirmDeletePendingResponse xmlns='urn:nms:privacyRequest'")
		if r := requestRow(t, env, id); r.Status != store.Status(privacy.StatusDeletePending) || !strings.Contains(r.Audit, "Deletion confirmed by operator 'ana'.") {
			t.Fatalf("after confirmation: %+v", r)
		}
		_, body = env.Post(t, "nms:privacyRequest#ConfirmDeletePending", confirmCall("nms:privacyRequest", "privacyRequestId", token, sid))
		mustContain(t, body, "is not waiting for a delete confirmation (status deletePending)")

		// The window closes after 15 days; the legacy schema names its parameter gdprRequestId.
		late := newRequest("late@example.com")
		if err := storetest.SQLOf(t, env.DB).Exec(ctx, "UPDATE privacy_requests SET status = ?, confirm_deadline = ? WHERE id = ?", int(privacy.StatusConfirmDeletePending), &deadline, late); err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(15*24*time.Hour + time.Second)
		token, _ = env.Logon(t, "ana", "correct horse") // the old session expired meanwhile
		_, body = env.Post(t, "nms:gdprRequest#ConfirmDeletePending", confirmCall("nms:gdprRequest", "gdprRequestId", token, strconv.FormatInt(late, 10)))
		mustContain(t, body, "SOP-330011", "confirmation window", "'nms:gdprRequest'")
		for _, bad := range []string{"", "0", "-4", "abc", "999999"} {
			_, body = env.Post(t, "nms:privacyRequest#ConfirmDeletePending", confirmCall("nms:privacyRequest", "privacyRequestId", token, bad))
			mustContain(t, body, "SOP-330011")
		}
	})
}

// TestSlowDatabase (security-bar.md #11, #112): while another session holds
// a lock on the requests table (on SQLite, the database's write lock),
// creates wait on it. A client that gives up has its call cancelled and
// nothing written; a call that outlasts the call deadline ends with a
// Server fault in time; once the lock is released the next call succeeds
// at once.
func TestSlowDatabase(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{Server: func(c *server.Config) { c.CallTimeout = time.Second }})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		ctx := context.Background()
		// Through the service, not SOAP: under the race detector on a busy
		// machine a Logon's argon2id alone can outlast the 1 s deadline.
		tokens, err := env.Sessions.Logon(ctx, "ana", "correct horse", "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		token := tokens.SessionToken
		action := "nms:privacyRequest#CreateRequestByName"

		release, err := storetest.SQLOf(t, env.DB).LockTable(ctx, "privacy_requests")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { release() }()

		// The client gives up after 200 ms and closes its connection.
		req, _ := http.NewRequest(http.MethodPost, env.URL+"/nl/jsp/soaprouter.jsp",
			strings.NewReader(createCall("nms:privacyRequest", token, "defaultNamespace1", "gave-up@example.com", "1", "false", "")))
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		req.Header.Set("SOAPAction", action)
		impatient := &http.Client{Timeout: 200 * time.Millisecond, Transport: &http.Transport{}}
		if resp, err := impatient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatalf("the call answered %d while the table was locked", resp.StatusCode)
		}

		// A patient client: the call's own deadline (1 s here) ends it.
		began := time.Now()
		_, body := env.Post(t, action, createCall("nms:privacyRequest", token, "defaultNamespace1", "deadline@example.com", "1", "false", ""))
		mustContain(t, body, "<faultcode>SOAP-ENV:Server</faultcode>", "SOP-330011")
		if took := time.Since(began); took > 3*time.Second {
			t.Fatalf("the call took %s against a 1 s deadline", took)
		}

		release()
		release = func() {}
		_, body = env.Post(t, action, createCall("nms:privacyRequest", token, "defaultNamespace1", "after@example.com", "1", "false", ""))
		created(t, body)
		n, err := storetest.SQLOf(t, env.DB).Int(ctx, "SELECT COUNT(*) FROM privacy_requests WHERE reconciliation_value IN (?, ?)",
			"gave-up@example.com", "deadline@example.com")
		if err != nil || n != 0 {
			t.Fatalf("calls that ended before the lock was released wrote %d requests (%v)", n, err)
		}
	})
}

// TestOperatorChanges (security-bar.md #57): a right taken away stops the
// next call at once (on this replica; within the cache's second on
// others); a new password ends the operator's sessions.
func TestOperatorChanges(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		ctx := context.Background()
		create := func(value string) string {
			_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", value, "1", "false", ""))
			return body
		}
		created(t, create("before@example.com"))

		if err := env.Sessions.SetRights(ctx, "ana", nil); err != nil {
			t.Fatal(err)
		}
		mustContain(t, create("norights@example.com"), "does not hold the Privacy Data Right")
		if err := env.Sessions.SetRights(ctx, "ana", []string{session.RightPrivacy}); err != nil {
			t.Fatal(err)
		}
		created(t, create("again@example.com"))
		if err := env.Sessions.SetRights(ctx, "ana", []string{"superuser"}); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("an unknown right: %v", err)
		}

		if err := env.Sessions.SetPassword(ctx, "ana", "a new horse"); err != nil {
			t.Fatal(err)
		}
		mustContain(t, create("afterpassword@example.com"), badSession)
		_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")))
		mustContain(t, body, badLogon)
		env.Logon(t, "ana", "a new horse")
	})
}
