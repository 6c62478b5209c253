package privacy_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// householdSchemas make an own-link cycle through the subject's own
// table: a household is owned by its head (a recipient), and a recipient
// is owned by its household (an extension of nms:recipient).
var householdSchemas = fstest.MapFS{
	"cus_household.xml": {Data: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="household" label="Households">
  <element name="household" autopk="true" label="Households">
    <attribute name="label" type="string" length="64" label="Label"/>
    <element name="head" type="link" target="nms:recipient" revIntegrity="own" label="Head"/>
  </element>
</schema>`)},
	"cus_recipient.xml": {Data: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="recipient" extendedSchema="nms:recipient" label="Recipients (household)">
  <element name="recipient">
    <element name="household" type="link" target="cus:household" revIntegrity="own" label="Household"/>
  </element>
</schema>`)},
}

// TestOwnCycleThroughSubjectTableRefused: a cycle of own links between
// two custom tables fails the request ("The data model around
// nms:recipient is inconsistent."), but one through the subject's own
// table was not seen: the recipient the subject's household owns was left
// out of the access file, and the request completed as if the file held
// everything the data model owns. Such a request is refused as for any
// other cycle, and no file is written.
func TestOwnCycleThroughSubjectTableRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: householdSchemas})
		sql := storetest.SQLOf(t, f.env.DB)
		for _, q := range []string{
			"INSERT INTO nms_recipient (id, email) VALUES (9101, 'head@example.com')",
			"INSERT INTO cus_household (id, label, head_id) VALUES (1, 'Home', 9101)",
			"INSERT INTO nms_recipient (id, email, household_id) VALUES (9102, 'member@example.com', 1)",
		} {
			if err := sql.Exec(f.ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		id := f.create(t, "defaultNamespace1", "head@example.com", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		r, err := f.env.DB.FindRequestByID(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if s := privacy.Status(r.Status); s == privacy.StatusComplete || !strings.Contains(r.Audit, "The data model around nms:recipient is inconsistent.") {
			t.Fatalf("a request over an own-link cycle through nms:recipient: status %s, audit:\n%s", s, r.Audit)
		}
		if _, _, err := f.env.Privacy.OpenExport(f.ctx, id); err == nil {
			t.Fatal("a file was written for a request over an inconsistent data model")
		}
	})
}
