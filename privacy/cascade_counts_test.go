package privacy_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestCascadedRowsCounted: a DBA's tables outside the data model whose
// foreign keys cascade a delete from nms_recipient (a note table in a
// schema of its own, a partitioned one whose rows sit in two partitions,
// and replies cascading from the notes) lose the subject's rows with the
// delete. The receipt said nothing of them: its tables are the data
// model's, its counts what the service's own statements removed. Now the
// delete's audit names each such table with the rows the database removed
// there, and the receipt's deleted_by_foreign_keys claim counts them, as
// plain SQL counts them before and after; another person's rows stay.
func TestCascadedRowsCounted(t *testing.T) {
	for _, twoStep := range []bool{false, true} {
		t.Run(map[bool]string{false: "one-step", true: "two-step"}[twoStep], func(t *testing.T) {
			r := newCascadeFixture(t)
			a := r.schema(t, "_cnt")
			subject, other := recipientID(t, r.f, 3), recipientID(t, r.f, 4)
			r.noteTarget(t, a+".note", "Countedtoken1")
			r.exec(t,
				"CREATE TABLE "+a+".reply (id BIGINT PRIMARY KEY, note_id BIGINT REFERENCES "+a+".note (id) ON DELETE CASCADE, body VARCHAR(200))",
				"INSERT INTO "+a+".reply VALUES (1, 50, 'r'), (2, 51, 'r'), (3, 90, 'another')",
				"CREATE TABLE "+a+".visit (id BIGINT, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, day INT, PRIMARY KEY (id, day)) PARTITION BY RANGE (day)",
				"CREATE TABLE "+a+".visit_1 PARTITION OF "+a+".visit FOR VALUES FROM (0) TO (10)",
				"CREATE TABLE "+a+".visit_2 PARTITION OF "+a+".visit FOR VALUES FROM (10) TO (20)",
				"INSERT INTO "+a+".visit VALUES (1, "+sqlInt(subject)+", 1), (2, "+sqlInt(subject)+", 15), (3, "+sqlInt(subject)+", 16), (4, "+sqlInt(other)+", 2)",
			)
			count := func(q string) int64 {
				t.Helper()
				n, err := r.conn.Int(r.f.ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			want := map[string]int64{"note": 3, "reply": 2, "visit": 3}
			before := map[string]int64{}
			for tbl := range want {
				before[tbl] = count("SELECT count(*) FROM " + a + "." + tbl)
			}
			var id int64
			if twoStep {
				id = r.confirmedDelete(t)
				if _, err := r.f.env.Privacy.Run(r.f.ctx, privacy.Delete); err != nil {
					t.Fatalf("delete run: %v", err)
				}
				if got := r.f.status(t, id); got != privacy.StatusComplete {
					t.Fatalf("status %v, want complete", got)
				}
			} else {
				id = r.deletedSubject(t)
			}
			audit := r.audit(t, id)
			_, c := r.f.receiptOf(t, id)
			got := map[string]int64{}
			for _, d := range c.DeletedByForeignKeys {
				got[d.Table[strings.LastIndexByte(d.Table, '.')+1:]] = d.Deleted
			}
			for tbl, n := range want {
				if gone := before[tbl] - count("SELECT count(*) FROM "+a+"."+tbl); gone != n {
					t.Fatalf("plain SQL: %d row(s) of %s gone, want %d", gone, tbl, n)
				}
				if got[tbl] != n {
					t.Errorf("the receipt counts %d row(s) deleted in %s by a foreign key, plain SQL %d: %+v", got[tbl], tbl, n, c.DeletedByForeignKeys)
				}
				var said int64
				for _, m := range regexp.MustCompile(`(\d+) record\(s\) deleted in \S+\.`+tbl+` by a foreign key outside the data model`).FindAllStringSubmatch(audit, -1) {
					k, _ := strconv.ParseInt(m[1], 10, 64)
					said += k
				}
				if said != n {
					t.Errorf("the audit says %d row(s) of %s deleted by a foreign key, want %d:\n%s", said, tbl, n, audit)
				}
			}
			if len(got) != len(want) {
				t.Errorf("deleted_by_foreign_keys %+v, want %v", c.DeletedByForeignKeys, want)
			}
			for _, tt := range c.Tables {
				if strings.Contains(tt.Table, ".") {
					t.Errorf("the receipt's tables (the data model's) list %s", tt.Table)
				}
			}
			if n := count("SELECT count(*) FROM " + a + ".note WHERE recipient_id = " + sqlInt(other)); n != 1 {
				t.Errorf("another person's note: %d left, want 1", n)
			}
		})
	}
}

// TestCascadedRowsCountedInSchemaNotUsable: the DBA's note table sits in a
// schema the service's role may not use (no USAGE: it may not name the
// table). The database's cascade still deletes the notes (a foreign key's
// action runs as the table's owner), and the deletes must neither fail on
// the count (a name resolved through the schema would be refused) nor
// leave it out: the count reads the table by its oid.
func TestCascadedRowsCountedInSchemaNotUsable(t *testing.T) {
	db, aconn, role, _ := appRoleLogged(t)
	ctx := context.Background()
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Privacy: withReceipts})
	subject := recipientID(t, f, 4)
	schema := dbaSchema(t, aconn, role, "cp_hidden_", "CREATE")
	if err := aconn.Exec(ctx, "CREATE TABLE "+schema+".dba_note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))"); err != nil {
		t.Fatal(err)
	}
	for j := range 3 {
		if err := aconn.Exec(ctx, "INSERT INTO "+schema+".dba_note VALUES (?, ?, 'hidden')", int64(j), subject); err != nil {
			t.Fatal(err)
		}
	}
	id := completeDelete(t, f, 4)
	if n, _ := aconn.Int(ctx, "SELECT count(*) FROM "+schema+".dba_note"); n != 0 {
		t.Fatalf("%d cascaded note(s) left", n)
	}
	_, c := f.receiptOf(t, id)
	if len(c.DeletedByForeignKeys) != 1 || c.DeletedByForeignKeys[0].Table != schema+".dba_note" || c.DeletedByForeignKeys[0].Deleted != 3 {
		t.Errorf("deleted_by_foreign_keys %+v, want %s.dba_note: 3", c.DeletedByForeignKeys, schema)
	}
}
