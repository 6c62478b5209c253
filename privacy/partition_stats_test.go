package privacy_test

import (
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestEmptiedPartitionKeepsNoStatistics: a table of the data model that
// the customer's DBA partitioned (crm_orders, by id), one partition of
// which holds only the subject's orders and has planner statistics
// (autovacuum analyzes partitions, not their parent). The delete empties
// that partition. ANALYZE leaves an empty table's statistics as they were,
// and PostgreSQL refuses the purge's way of dropping them (a column's type
// set again) on a partition, whose columns are its parent's: the
// subject's values stayed in pg_statistic after a complete delete (J150).
//
// "inheritance" is the same with PostgreSQL's older way, child tables that
// inherit crm_orders' columns (the rows inserted into the children): there
// the deleted rows themselves stayed in the child's file too, as a VACUUM
// of the parent does not reach its children.
func TestEmptiedPartitionKeepsNoStatistics(t *testing.T) {
	for _, c := range []struct {
		name   string
		ddl    []string
		insert string // the table a's rows are inserted into
	}{
		{"partitions", []string{
			"CREATE TABLE crm_orders (id BIGINT, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT, PRIMARY KEY (id)) PARTITION BY RANGE (id)",
			"CREATE TABLE crm_orders_a PARTITION OF crm_orders FOR VALUES FROM (0) TO (1000)",
			"CREATE TABLE crm_orders_b PARTITION OF crm_orders FOR VALUES FROM (1000) TO (2000)",
		}, "crm_orders"},
		{"inheritance", []string{
			"CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)",
			"CREATE TABLE crm_orders_a (CHECK (id < 1000)) INHERITS (crm_orders)",
			"CREATE TABLE crm_orders_b (CHECK (id >= 1000)) INHERITS (crm_orders)",
		}, "crm_orders_a"},
	} {
		t.Run(c.name, func(t *testing.T) { emptiedChild(t, c.ddl, c.insert) })
	}
}

func emptiedChild(t *testing.T, ddl []string, insert string) {
	db := storetest.Open(t, store.Postgres, nil)
	conn := storetest.SQLOf(t, db)
	for _, ddl := range ddl {
		if err := conn.Exec(t.Context(), ddl); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Schemas: crmOrderSchema, Privacy: withReceipts})
	subject, other := recipientID(t, f, 4), recipientID(t, f, 5)
	const token = "Partitionedbike5e1f"
	for i := range 5 {
		if err := conn.InsertRow(f.ctx, insert, map[string]any{"id": int64(10 + i), "product": token, "recipient_id": subject}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.InsertRow(f.ctx, strings.Replace(insert, "_a", "_b", 1), map[string]any{"id": int64(1500), "product": "Other's lamp", "recipient_id": other}); err != nil {
		t.Fatal(err)
	}
	if err := conn.Exec(f.ctx, "ANALYZE crm_orders_a"); err != nil {
		t.Fatal(err)
	}
	if n := conn.PostgresFileCount(t, f.ctx, "crm_orders_a", token); n == 0 {
		t.Fatal("the subject's product is not in the partition's files or statistics before the delete")
	}
	id := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeDelete, false)
	runAll(t, f)
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
	if n, _ := conn.Int(f.ctx, "SELECT count(*) FROM crm_orders WHERE recipient_id = ?", other); n != 1 {
		t.Errorf("the other person's order: %d, want 1", n)
	}
	if n, _ := conn.Int(f.ctx, "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND most_common_vals::text LIKE ?", "%"+token+"%"); n != 0 {
		t.Errorf("the request is complete, but %d statistics row(s) still hold the subject's product", n)
	}
	if n := conn.PostgresFileCount(t, f.ctx, "crm_orders_a", token); n != 0 {
		t.Errorf("the request is complete, but the subject's product is still in the partition's files or pg_statistic %d time(s)", n)
	}
}
