package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// writeCall is xtk:session#Write as acc-js-sdk sends it: the document as
// the element child of the second parameter.
func writeCall(method, token, doc string) string {
	return servertest.Envelope("", `<m:`+method+` xmlns:m="urn:xtk:session"><sessiontoken xsi:type="xsd:string">`+token+
		`</sessiontoken><doc xsi:type="">`+doc+`</doc></m:`+method+`>`)
}

func TestWrite(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		env.Operator(t, "bob", "bob password")
		token, _ := env.Logon(t, "ana", "correct horse")
		ctx := context.Background()
		count := func(table, col string, v any) int64 {
			t.Helper()
			n, err := env.DB.CountRows(ctx, table, col, v)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		write := func(doc string) string {
			_, body := env.Post(t, "xtk:session#Write", writeCall("Write", token, doc))
			return body
		}

		body := write(`<recipient xtkschema="nms:recipient" _operation="insert" email="ana@example.com" firstName="Ana" gender="2" birthDate="1980-02-29" blackList="false"/>`)
		mustContain(t, body, "<WriteResponse xmlns='urn:xtk:session'")
		// acc-js-sdk names an inherited method's service and namespace
		// "xtk:persist|xtk:session".
		sdk := strings.Replace(writeCall("Write", token, `<recipient xtkschema="nms:recipient" _operation="insert" email="sdk@example.com"/>`),
			`xmlns:m="urn:xtk:session"`, `xmlns:m="urn:xtk:persist|xtk:session"`, 1)
		_, body = env.Post(t, "xtk:persist|xtk:session#Write", sdk)
		mustContain(t, body, "<WriteResponse")
		mustContain(t, write(`<recipient xtkschema="nms:recipient" _operation="delete" _key="@email" email="sdk@example.com"/>`), "<WriteResponse")
		if count("nms_recipient", "email", "ana@example.com") != 1 {
			t.Fatal("recipient not inserted")
		}
		// insertOrUpdate on the email key updates the same record.
		mustContain(t, write(`<recipient xtkschema="nms:recipient" _key="@email" email="ana@example.com" lastName="Lima"/>`), "<WriteResponse")
		if count("nms_recipient", "", nil) != 1 || count("nms_recipient", "last_name", "Lima") != 1 {
			t.Fatal("insertOrUpdate did not update in place")
		}
		mustContain(t, write(`<recipient xtkschema="nms:recipient" _key="@email" email="ben@example.com" firstName="Ben"/>`), "<WriteResponse")
		if count("nms_recipient", "", nil) != 2 {
			t.Fatal("insertOrUpdate of a new key must insert")
		}

		// Ana was inserted first: her id is 1.
		coll := `<broadLogRcp-collection xtkschema="nms:broadLogRcp">` +
			`<broadLogRcp _operation="insert" recipient-id="1" address="ana@example.com" status="1" eventDate="2024-05-01 12:00:00.000Z"/>` +
			`<broadLogRcp _operation="insert" recipient-id="1" address="ana@example.com" status="2" eventDate="2024-05-02T12:00:00Z"/>` +
			`</broadLogRcp-collection>`
		_, body = env.Post(t, "xtk:session#WriteCollection", writeCall("WriteCollection", token, coll))
		mustContain(t, body, "<WriteCollectionResponse")
		if count("nms_broad_log_rcp", "recipient_id", 1) != 2 {
			t.Fatal("collection not written")
		}
		// One bad record: nothing of the collection is written.
		bad := strings.Replace(coll, `status="2"`, `status="999"`, 1)
		_, body = env.Post(t, "xtk:session#WriteCollection", writeCall("WriteCollection", token, bad))
		mustContain(t, body, "SOP-330011", "Record 2: @status must be an integer of 8 bits.")
		if count("nms_broad_log_rcp", "", nil) != 2 {
			t.Fatal("a failed collection left records behind")
		}

		// Deleting a recipient whose logs it owns is refused; the privacy
		// delete workflow is the tool for that.
		body = write(`<recipient xtkschema="nms:recipient" _operation="delete" _key="@email" email="ana@example.com"/>`)
		mustContain(t, body, "SOP-330011", "2 record(s) of nms:broadLogRcp belong to this nms:recipient record")
		mustContain(t, write(`<recipient xtkschema="nms:recipient" _operation="delete" _key="@email" email="ben@example.com"/>`), "<WriteResponse")
		if count("nms_recipient", "", nil) != 1 {
			t.Fatal("delete did not delete")
		}

		refused := []struct{ doc, detail string }{
			{`<gdprRequest xtkschema="nms:gdprRequest" _operation="insert" reconciliationValue="x@example.com" status="7"/>`, "privacy requests are created only through CreateRequestByName"},
			{`<privacyRequest xtkschema="nms:privacyRequest" _operation="update" id="1" status="7"/>`, "cannot be written"},
			{`<recipient email="x@example.com"/>`, "does not name its schema"},
			{`<recipient xtkschema="nms:nothing"/>`, "is not a data schema"},
			{`<recipient xtkschema="xtk:session"/>`, "is not a data schema"},
			{`<visitor xtkschema="nms:recipient" email="x@example.com"/>`, "does not match the schema"},
			{`<recipient xtkschema="nms:recipient" _operation="insert" password="x"/>`, "has no attribute @password"},
			{`<recipient xtkschema="nms:recipient" _operation="insert" folder-id="3"/>`, "has no link 'folder'"},
			{`<recipient xtkschema="nms:recipient" _operation="insert" id="5" email="x@example.com"/>`, "@id is assigned by the server"},
			{`<recipient xtkschema="nms:recipient" _operation="upsert" email="x@example.com"/>`, "Unknown _operation"},
			{`<recipient xtkschema="nms:recipient" _operation="update" email="nobody@example.com" _key="@email" firstName="X"/>`, "No record of nms:recipient matches the key."},
			{`<recipient xtkschema="nms:recipient" _operation="update" firstName="X"/>`, "needs a key"},
			{`<recipient xtkschema="nms:recipient" _key="email" email="x@example.com"/>`, "A _key lists attributes written @name"},
			{`<recipient xtkschema="nms:recipient" _key="@email" firstName="X"/>`, "The key attribute @email has no value"},
			{`<recipient xtkschema="nms:recipient" _operation="insert" email="` + strings.Repeat("x", 129) + `"/>`, "longer than 128 characters"},
			{`<recipient xtkschema="nms:recipient" _operation="insert" birthDate="yesterday"/>`, "@birthDate must be a date"},
			{`<recipient xtkschema="nms:recipient" _operation="insert" blackList="maybe"/>`, "@blackList must be true, false, 1 or 0."},
			{`<broadLogRcp xtkschema="nms:broadLogRcp" _operation="insert" recipient-id="abc"/>`, "@recipient-id must be a record id."},
		}
		for _, r := range refused {
			mustContain(t, write(r.doc), "SOP-330011", r.detail)
		}
		if count("nms_recipient", "", nil) != 1 || count("privacy_requests", "", nil) != 0 {
			t.Fatal("a refused write changed data")
		}
		// A quote in a key is a value, nothing else.
		mustContain(t, write(`<recipient xtkschema="nms:recipient" _operation="update" _key="@email" email="x' OR '1'='1" firstName="Hacked"/>`), "No record of nms:recipient matches the key.")
		if count("nms_recipient", "first_name", "Hacked") != 0 {
			t.Fatal("the key matched more than it names")
		}
		// Without the Privacy Data Right, no write.
		bob, _ := env.Logon(t, "bob", "bob password")
		_, body = env.Post(t, "xtk:session#Write", writeCall("Write", bob, `<recipient xtkschema="nms:recipient" _operation="insert" email="z@example.com"/>`))
		mustContain(t, body, "does not hold the Privacy Data Right")
	})
}
