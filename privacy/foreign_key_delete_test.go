package privacy_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// orderSchemas: the recipient owns its order lines, an order line its
// shipments.
var orderSchemas = fstest.MapFS{
	"cus_orderLine.xml": {Data: []byte(`<schema namespace="cus" name="orderLine">
  <element name="orderLine" autopk="true">
    <attribute name="product" type="string" length="64"/>
    <element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/>
  </element>
</schema>`)},
	"cus_shipment.xml": {Data: []byte(`<schema namespace="cus" name="shipment">
  <element name="shipment" autopk="true">
    <attribute name="carrier" type="string" length="64"/>
    <element name="orderLine" type="link" target="cus:orderLine" revIntegrity="own"/>
  </element>
</schema>`)},
}

// TestForeignKeyOutsideTheModelLeavesNothingHalfErased: a foreign key a
// DBA added from a table outside the data model (a return note of another
// flow naming the subject's order line) refuses the delete of the order
// line. A delete of several batches committed the subject's shipments and
// delivery logs, then failed on the order line at every attempt: the
// subject was left half erased for good, and the audit said only
// "Internal error.". The delete is now one transaction when a foreign key
// points into the subject's tables, so nothing is deleted, and the audit
// names the constraint and says what to do.
func TestForeignKeyOutsideTheModelLeavesNothingHalfErased(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: orderSchemas, Privacy: func(c *privacy.Config) {
			c.Workers = 1
			c.DeleteBatch = 1
		}})
		sql := storetest.SQLOf(t, f.env.DB)
		subject := recipientID(t, f, 4)
		for _, r := range []struct {
			table string
			row   map[string]any
		}{
			{"cus_order_line", map[string]any{"id": int64(10), "product": "Bike", "recipient_id": subject}},
			{"cus_shipment", map[string]any{"id": int64(20), "carrier": "Post", "order_line_id": int64(10)}},
		} {
			if err := sql.InsertRow(f.ctx, r.table, r.row); err != nil {
				t.Fatal(err)
			}
		}
		// The DBA's table, with its foreign key into the data model.
		if err := sql.Exec(f.ctx, "CREATE TABLE cus_return_note (id BIGINT PRIMARY KEY, order_line_id BIGINT CONSTRAINT return_note_order_line_fk REFERENCES cus_order_line (id))"); err != nil {
			t.Fatal(err)
		}
		if err := sql.InsertRow(f.ctx, "cus_return_note", map[string]any{"id": int64(30), "order_line_id": int64(10)}); err != nil {
			t.Fatal(err)
		}
		subjectRows := func() int64 {
			n, err := sql.Int(f.ctx, `SELECT (SELECT count(*) FROM nms_recipient WHERE id = ?) + (SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?)
				+ (SELECT count(*) FROM cus_order_line WHERE recipient_id = ?) + (SELECT count(*) FROM cus_shipment WHERE order_line_id = 10)`, subject, subject, subject)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := subjectRows()
		if before < 4 {
			t.Fatalf("the subject has %d row(s) in the tables counted", before)
		}
		id := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err != nil {
			t.Fatal(err)
		}
		r, err := f.env.DB.FindRequestByID(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if after := subjectRows(); after != before {
			t.Errorf("the refused delete left the subject half erased: %d of %d row(s) left", after, before)
		}
		want := []string{"foreign key", "cus_order_line"}
		if dialect == store.Postgres {
			want = append(want, "return_note_order_line_fk", "cus_return_note")
		}
		for _, w := range want {
			if !strings.Contains(r.Audit, w) {
				t.Errorf("the audit lacks %q:\n%s", w, r.Audit)
			}
		}
		if strings.Contains(r.Audit, "Internal error") || privacy.Status(r.Status) == privacy.StatusComplete {
			t.Errorf("status %s, audit:\n%s", privacy.Status(r.Status), r.Audit)
		}
		// Once the DBA's row is gone, the retry erases the subject.
		if err := sql.Exec(f.ctx, "DELETE FROM cus_return_note"); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5 && f.status(t, id) != privacy.StatusComplete; i++ {
			f.env.Clock.Advance(24 * time.Hour)
			f.run(t, privacy.Delete)
		}
		if s := f.status(t, id); s != privacy.StatusComplete || subjectRows() != 0 {
			t.Fatalf("after the referencing row went: %s, %d row(s) of the subject left", s, subjectRows())
		}
	})
}
