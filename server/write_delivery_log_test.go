package server_test

import (
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// A delivery log as ACC writes it (privacy-access-file.png, AdobeDocs
// campaign-classic.en; privacy-anchors.md §4.5): its message is the link
// key msg-id. A client copying ACC's delivery logs into the service (an
// ETL, a migration) writes that name; the service's nms:broadLogRcp called
// the field msgId and refused the record. The message is then read back as
// a link: @msg-id, and its fields through [msg/@…].
func TestWriteDeliveryLogAsACCWritesIt(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		_, body := env.Post(t, "xtk:session#Write", writeCall("Write", token,
			`<recipient xtkschema="nms:recipient" _operation="insert" email="someone@example.com"/>`))
		mustContain(t, body, "<WriteResponse")
		_, body = env.Post(t, "xtk:session#Write", writeCall("Write", token,
			`<broadLogRcp xtkschema="nms:broadLogRcp" _operation="insert" recipient-id="1" address="someone@example.com" msg-id="6700" status="1" deliveryType="0"/>`))
		mustContain(t, body, "<WriteResponse")
		_, body = env.Post(t, "xtk:session#Write", writeCall("Write", token,
			`<broadLogMsg xtkschema="nms:broadLogMsg" _operation="insert" text="550 5.1.1 Mailbox unavailable" failureType="2" failureReason="1"/>`))
		mustContain(t, body, "<WriteResponse")
		_, body = env.Post(t, "xtk:session#Write", writeCall("Write", token,
			`<broadLogRcp xtkschema="nms:broadLogRcp" _operation="insert" recipient-id="1" address="someone@example.com" msg-id="1" status="2" deliveryType="0"/>`))
		mustContain(t, body, "<WriteResponse")

		got := queryResult(t, env, token, `<queryDef schema="nms:broadLogRcp" operation="select"><select><node expr="@id"/><node expr="@msg-id"/>`+
			`<node expr="[msg/@text]" alias="@message"/></select><orderBy><node expr="@id"/></orderBy></queryDef>`)
		want := `<broadLogRcp-collection><broadLogRcp id="1" msg-id="6700"/><broadLogRcp id="2" msg-id="1" message="550 5.1.1 Mailbox unavailable"/></broadLogRcp-collection>`
		if got != want {
			t.Fatalf("delivery logs and their messages\n got %s\nwant %s", got, want)
		}
	})
}

// A tracking log as ACC writes it (privacy-anchors.md §4.5): its URL is the
// link key url-id, to the delivery's tracked URL (nms:trackingUrl).
func TestWriteTrackingLogAsACCWritesIt(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		for _, doc := range []string{
			`<recipient xtkschema="nms:recipient" _operation="insert" email="someone@example.com"/>`,
			`<trackingUrl xtkschema="nms:trackingUrl" _operation="insert" label="Open" type="2"/>`,
			`<trackingLogRcp xtkschema="nms:trackingLogRcp" _operation="insert" recipient-id="1" url-id="1" urlLabel="Open" urlType="2"/>`,
		} {
			_, body := env.Post(t, "xtk:session#Write", writeCall("Write", token, doc))
			mustContain(t, body, "<WriteResponse")
		}
		got := queryResult(t, env, token, `<queryDef schema="nms:trackingLogRcp" operation="select"><select><node expr="@id"/><node expr="@url-id"/>`+
			`<node expr="[url/@label]" alias="@url"/></select></queryDef>`)
		if want := `<trackingLogRcp-collection><trackingLogRcp id="1" url-id="1" url="Open"/></trackingLogRcp-collection>`; got != want {
			t.Fatalf("tracking logs and their URLs\n got %s\nwant %s", got, want)
		}
	})
}
