package privacy_test

import (
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/persist"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// ticketSchema is a custom table with an ordinary link to the recipient:
// no owning integrity, so the data model's rules neither collect nor
// erase its rows.
var ticketSchema = fstest.MapFS{"cus_ticket.xml": {Data: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="ticket" label="Support tickets">
  <element name="ticket" autopk="true" label="Support tickets">
    <attribute name="subject" type="string" length="128" label="Subject"/>
    <element name="recipient" type="link" target="nms:recipient" label="Recipient"/>
  </element>
</schema>`)}}

// TestCoverageReport: the rows that link to the subject without owning
// integrity are counted and named in the audit, "linked, not collected or
// erased by the data model's rules", and stay where they are.
func TestCoverageReport(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: ticketSchema})
		sc, _ := f.env.Registry.Schema("nms:recipient")
		email, _ := sc.Data.Attribute("email")
		ticket := func(value string) {
			ids, err := f.env.DB.FindIDs(f.ctx, sc.Data.Table, email.SQLName, value)
			if err != nil || len(ids) != 1 {
				t.Fatalf("recipient %v %v", ids, err)
			}
			el := etree.NewElement("ticket")
			el.CreateAttr("xtkschema", "cus:ticket")
			el.CreateAttr("_operation", "insert")
			el.CreateAttr("subject", "Refund")
			el.CreateAttr("recipient-id", strconv.FormatInt(ids[0], 10))
			if err := persist.New(f.env.DB, f.env.Registry, nil).Write(f.ctx, el); err != nil {
				t.Fatal(err)
			}
		}
		ticket(demodata.Email(4))
		ticket(demodata.Email(4))
		ticket(demodata.Email(5))
		access := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeAccess, false)
		other := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		want := "Linked, not collected or erased by the data model's rules: 2 record(s) in cus:ticket (link recipient to nms:recipient)."
		if r, _ := f.env.DB.FindRequestByID(f.ctx, access); !strings.Contains(r.Audit, want) {
			t.Fatalf("audit lacks the coverage line:\n%s", r.Audit)
		}
		if r, _ := f.env.DB.FindRequestByID(f.ctx, other); strings.Contains(r.Audit, "Linked, not collected") {
			t.Fatalf("a subject without tickets has a coverage line:\n%s", r.Audit)
		}
		doc := f.export(t, access)
		if !strings.Contains(doc, `<linkedNotCollected note="linked, not collected or erased by the data model&apos;s rules">`) ||
			!strings.Contains(doc, `<table name="cus:ticket" link="recipient" target="nms:recipient" count="2"/>`) {
			t.Fatalf("the file lacks the coverage report:\n%s", doc)
		}
		v, err := f.env.Privacy.Request(f.ctx, operator, access)
		if err != nil || len(v.Linked) != 1 || v.Linked[0].RecordCount != 2 {
			t.Fatalf("the console's view lacks the coverage report: %+v %v", v, err)
		}
		if n := f.count(t, "cus_ticket"); n != 3 {
			t.Fatalf("%d tickets, want 3 untouched", n)
		}
	})
}
