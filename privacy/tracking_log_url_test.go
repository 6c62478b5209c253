package privacy_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// ACC's access file (privacy-anchors.md §4.5) writes a tracking log's URL
// as the link key url-id="1" (nms:trackingLogRcp's link "url" to
// nms:trackingUrl), beside broadLog-id and urlLabel; this service's
// tracking logs had no such field. The tracked URLs are the delivery's,
// shared by everyone who clicked: neither in the file nor erased.
func TestTrackingLogURLIsTheURLLink(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		doc := f.export(t, id)
		rows := regexp.MustCompile(`<table name="nms:trackingLogRcp">\s*(<row [^>]*/>\s*)+`).FindString(doc)
		if rows == "" {
			t.Fatalf("no tracking log in the file:\n%s", doc)
		}
		if !regexp.MustCompile(`\surl-id="\d+"`).MatchString(rows) {
			t.Fatalf("a tracking log's URL must be written url-id=\"…\" as in ACC's file, got:\n%s", rows)
		}
		if strings.Contains(doc, "nms:trackingUrl") {
			t.Fatalf("the shared tracked URLs are not the subject's:\n%s", doc)
		}
	})
}
