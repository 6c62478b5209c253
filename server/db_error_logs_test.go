package server_test

import (
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// birthdayCalls are calls carrying a date of birth whose year is unknown,
// written 0000-MM-DD as contact tools and CRMs export such birthdays
// (vCard/CardDAV exports, many CRMs). Go's date parsing accepts the year
// 0000, PostgreSQL's date input does not, and its error text quotes the
// value: `date/time field value out of range: "0000-07-14"`.
func birthdayCalls(token string) []struct{ name, action, envelope, value string } {
	return []struct{ name, action, envelope, value string }{
		{"Write", "xtk:session#Write", writeCall("Write", token,
			`<recipient xtkschema="nms:recipient" _operation="insert" email="ana.birthday@example.com" birthDate="0000-07-14"/>`), "0000-07-14"},
		{"WriteCollection", "xtk:session#WriteCollection", writeCall("WriteCollection", token,
			`<recipient-collection xtkschema="nms:recipient"><recipient _operation="insert" email="bo.birthday@example.com"/>`+
				`<recipient _operation="insert" email="cy.birthday@example.com" birthDate="0000-03-09"/></recipient-collection>`), "0000-03-09"},
		{"ExecuteQuery quoted", "xtk:queryDef#ExecuteQuery", queryCall(token, "entity",
			`<queryDef schema="nms:recipient" operation="select"><select><node expr="@id"/></select>`+
				`<where><condition expr="@birthDate = '0000-11-23'"/></where></queryDef>`), "0000-11-23"},
		{"ExecuteQuery date literal", "xtk:queryDef#ExecuteQuery", queryCall(token, "entity",
			`<queryDef schema="nms:recipient" operation="select"><select><node expr="@id"/></select>`+
				`<where><condition expr="@birthDate = #0000-05-30#"/></where></queryDef>`), "0000-05-30"},
	}
}

// TestDatabaseErrorTextQuotingAValueIsNotLogged (PostgreSQL).
//
// Bug: an error the store does not recognise becomes Internal "Database
// error." with the driver's error as its cause (internal/store/store.go:
// translate), and apperr.LogText keeps the cause of an Internal error
// verbatim in the "soap fault" ERROR line. PostgreSQL's error text quotes
// the value it refused, so a Write, a WriteCollection or an ExecuteQuery
// carrying a person's birthday without its year (0000-07-14, as contact
// tools export them) writes that birthday to the service's log:
//
//	level=ERROR msg="soap fault" … err="internal: Database error.: ERROR:
//	date/time field value out of range: \"0000-07-14\" (SQLSTATE 22008)"
//
// Harm: personal data in the log (security-bar §3-I), where no privacy
// delete reaches it; a data load of such contacts writes one line per
// person. (A collection's line is "(message withheld from the log): ERROR:
// … \"0000-03-09\" …": withheld message, value still there.)
func TestDatabaseErrorTextQuotingAValueIsNotLogged(t *testing.T) {
	env := servertest.New(t, store.Postgres, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	for _, c := range birthdayCalls(token) {
		t.Run(c.name, func(t *testing.T) {
			before := len(env.Logs.String())
			if _, body := env.Post(t, c.action, c.envelope); !strings.Contains(body, "<SOAP-ENV:Fault>") {
				t.Fatalf("no fault:\n%s", body)
			}
			logs := env.Logs.String()[before:]
			if !strings.Contains(logs, `msg="soap fault"`) {
				t.Fatalf("no fault logged:\n%s", logs)
			}
			if strings.Contains(logs, c.value) {
				t.Errorf("the log holds the date of birth %q sent in the call:\n%s", c.value, logs)
			}
		})
	}
}

// TestBirthdayWithoutYearIsNotAnInternalError (PostgreSQL).
//
// Bug: the same values are the caller's input, but PostgreSQL's refusal
// (SQLSTATE 22008) is not translated (store.translate maps only 22025 and
// 22019 of class 22), so the client gets "Internal error (reference …)."
// and the operator an ERROR line, where SQLite stores the Write and
// answers the query. persist/querydef accept the year 0000
// (schemas.ParseTime) and never say what is wrong.
//
// Harm: a client loading contacts cannot tell which record or value is
// at fault; an operator is paged with an ERROR for a client's data; the
// two stores answer the same call differently.
func TestBirthdayWithoutYearIsNotAnInternalError(t *testing.T) {
	env := servertest.New(t, store.Postgres, servertest.Options{})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	token, _ := env.Logon(t, "ana", "correct horse")
	for _, c := range birthdayCalls(token) {
		t.Run(c.name, func(t *testing.T) {
			_, body := env.Post(t, c.action, c.envelope)
			if strings.Contains(body, "Internal error") {
				t.Errorf("the caller's date is answered as an internal error:\n%s", body)
			}
		})
	}
}
