package store_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// TestExistingTableLeftToTheCustomer: a custom schema with view="true"
// maps a table the customer's ETL fills. The service does not create it;
// the start refuses a schema whose table or columns are not there, rather
// than fail every lookup that reaches it.
func TestExistingTableLeftToTheCustomer(t *testing.T) {
	reg, err := schemas.New(fstest.MapFS{"cus_crmOrder.xml": {Data: []byte(`<schema namespace="cus" name="crmOrder">
  <element name="crmOrder" sqltable="crm_orders" view="true" autopk="true">
    <attribute name="product" type="string" length="64"/>
    <element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/>
  </element>
</schema>`)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, nil)
			if err := db.SyncDataModel(ctx, reg); err != nil {
				t.Fatal(err)
			}
			if cols, _ := db.ExistingColumnsForTest(ctx, "crm_orders"); cols != nil {
				t.Fatalf("the service created the customer's table: %v", cols)
			}
			if err := db.CheckViews(ctx, reg); err == nil || !strings.Contains(err.Error(), "table crm_orders does not exist") {
				t.Fatalf("a missing existing table: %v", err)
			}
			sql := storetest.SQLOf(t, db)
			if err := sql.Exec(ctx, "CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64))"); err != nil {
				t.Fatal(err)
			}
			if err := db.CheckViews(ctx, reg); err == nil || !strings.Contains(err.Error(), "crm_orders.recipient_id does not exist") {
				t.Fatalf("a missing column: %v", err)
			}
			if err := sql.Exec(ctx, "ALTER TABLE crm_orders ADD COLUMN recipient_id BIGINT"); err != nil {
				t.Fatal(err)
			}
			if err := db.CheckViews(ctx, reg); err != nil {
				t.Fatal(err)
			}
		})
	}
}
