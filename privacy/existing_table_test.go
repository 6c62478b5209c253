package privacy_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// crmOrderSchema maps a table the customer's ETL fills (view="true": ACC's
// "not created by the database update") to the recipient who placed the
// order (revIntegrity="own"), with an ordinary link to the recipient an
// order is a gift for.
var crmOrderSchema = fstest.MapFS{"cus_crmOrder.xml": {Data: []byte(`<schema namespace="cus" name="crmOrder">
  <element name="crmOrder" sqltable="crm_orders" view="true" autopk="true" label="CRM orders">
    <attribute name="product" type="string" length="64"/>
    <element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/>
    <element name="giftFor" type="link" target="nms:recipient"/>
  </element>
</schema>`)}}

// TestExistingCustomTableIsErased: view="true" in a custom schema meant,
// inside the service, "one of the service's own tables", and the owned
// part of the data model left out every link of such a schema: the
// subject's CRM order was neither in the access file nor in the coverage
// report, and survived a complete delete. A customer's table the service
// does not create is traversed like any custom table; only its creation
// is left to the customer.
func TestExistingCustomTableIsErased(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		db := storetest.Open(t, dialect, nil)
		sql := storetest.SQLOf(t, db)
		// The ETL's table, there before the service starts.
		if err := sql.Exec(t.Context(), "CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)"); err != nil {
			t.Fatal(err)
		}
		f := newFixture(t, dialect, servertest.Options{DB: db, Schemas: crmOrderSchema})
		subject, other := recipientID(t, f, 4), recipientID(t, f, 5)
		for _, row := range []map[string]any{
			{"id": int64(1), "product": "Subject's bike", "recipient_id": subject},
			{"id": int64(2), "product": "Other's gift", "recipient_id": other, "gift_for_id": subject},
			{"id": int64(3), "product": "Other's lamp", "recipient_id": other},
		} {
			if err := sql.InsertRow(f.ctx, "crm_orders", row); err != nil {
				t.Fatal(err)
			}
		}
		access := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeAccess, false)
		del := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		doc := f.export(t, access)
		if !strings.Contains(doc, `<table name="cus:crmOrder">`) || !strings.Contains(doc, `product="Subject's bike"`) {
			t.Errorf("the access file lacks the subject's CRM order:\n%s", tail(doc, 800))
		}
		if strings.Contains(doc, "Other's") {
			t.Errorf("the access file holds another person's order")
		}
		if line := `<table name="cus:crmOrder" link="giftFor" target="nms:recipient" count="1"/>`; !strings.Contains(doc, line) {
			t.Errorf("the coverage report lacks %s:\n%s", line, tail(doc, 600))
		}
		f.run(t, privacy.Delete)
		if s := f.status(t, del); s != privacy.StatusComplete {
			t.Fatalf("delete: %s", s)
		}
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM crm_orders WHERE recipient_id = ?", subject); n != 0 {
			t.Errorf("%d CRM order(s) of the erased subject left", n)
		}
		if n, _ := sql.Int(f.ctx, "SELECT count(*) FROM crm_orders WHERE recipient_id = ?", other); n != 2 {
			t.Errorf("the other person's orders: %d, want 2", n)
		}
	})
}
