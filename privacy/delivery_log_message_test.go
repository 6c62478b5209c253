package privacy_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// ACC's access file (Adobe's example, privacy-access-file.png in
// AdobeDocs/campaign-classic.en help/platform/using/assets/do-not-localize,
// reproduced in privacy-anchors.md §4.5) writes a delivery log's message as
// the link key msg-id="6700" (nms:broadLogRcp's link "msg" to
// nms:broadLogMsg), as it writes recipient-id and delivery-id. A reader
// of the file built for ACC's (a DPO's script, a subject's tool) looks for
// @msg-id; this service wrote the same value as msgId. The messages are
// shared by many people's logs: like the deliveries, they are neither in
// the file nor in its coverage report (they do not refer to the subject),
// and a delete leaves them (TestTwoStepDelete's sharedTables).
func TestDeliveryLogMessageIsTheMsgLink(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		doc := f.export(t, id)
		rows := regexp.MustCompile(`<table name="nms:broadLogRcp">\s*(<row [^>]*/>\s*)+`).FindString(doc)
		if rows == "" {
			t.Fatalf("no delivery log in the file:\n%s", doc)
		}
		if regexp.MustCompile(`\smsgId="`).MatchString(rows) || !regexp.MustCompile(`\smsg-id="\d+"`).MatchString(rows) {
			t.Fatalf("a delivery log's message must be written msg-id=\"…\" as in ACC's file, got:\n%s", rows)
		}
		if strings.Contains(doc, "nms:broadLogMsg") {
			t.Fatalf("the shared delivery log messages are not the subject's:\n%s", doc)
		}
	})
}
