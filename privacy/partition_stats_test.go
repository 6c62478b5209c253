package privacy_test

import "testing"

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
		layout statsLayout
	}{
		{"partitions", statsLayout{
			ddl: []string{
				"CREATE TABLE crm_orders (id BIGINT, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT, PRIMARY KEY (id)) PARTITION BY RANGE (id)",
				"CREATE TABLE crm_orders_a PARTITION OF crm_orders FOR VALUES FROM (0) TO (1000)",
				"CREATE TABLE crm_orders_b PARTITION OF crm_orders FOR VALUES FROM (1000) TO (2000)",
			},
			subjectTable: "crm_orders",
			otherTable:   "crm_orders",
			analyze:      []string{"ANALYZE crm_orders_a"},
			files:        []string{"crm_orders_a"},
		}},
		{"inheritance", statsLayout{
			ddl: []string{
				"CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)",
				"CREATE TABLE crm_orders_a (CHECK (id < 1000)) INHERITS (crm_orders)",
				"CREATE TABLE crm_orders_b (CHECK (id >= 1000)) INHERITS (crm_orders)",
			},
			subjectTable: "crm_orders_a",
			otherTable:   "crm_orders_b",
			analyze:      []string{"ANALYZE crm_orders_a"},
			files:        []string{"crm_orders_a"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) { runStatsLayout(t, c.layout) })
	}
}
