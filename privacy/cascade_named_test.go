package privacy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// cascadeSaid is what the purge's record says of the tables outside the
// data model that foreign keys cascade the deletes into.
const cascadeSaid = "foreign keys outside the data model cascade the deletes into "

// TestCascadeTargetsNamed (J161): a DBA's tables outside the data model
// whose foreign keys cascade a delete from nms_recipient (a note table in a
// schema of its own, replies cascading from the notes, a partitioned visit
// table) lose the subject's rows with the delete, and one whose key sets
// null keeps them unlinked. The audit and the receipt said nothing of
// them: their counts are the data model's. Now the purge's audit line and
// the receipt's residue_purge claim name every such table (not their
// partitions), and plain SQL shows the rows gone or unlinked; another
// person's rows stay.
func TestCascadeTargetsNamed(t *testing.T) {
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
				"CREATE TABLE "+a+".survey (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE SET NULL)",
				"INSERT INTO "+a+".survey VALUES (1, "+sqlInt(subject)+"), (2, "+sqlInt(other)+")",
			)
			count := func(q string) int64 {
				t.Helper()
				n, err := r.conn.Int(r.f.ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				return n
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
			for q, want := range map[string]int64{
				"SELECT count(*) FROM " + a + ".note":                                  1,
				"SELECT count(*) FROM " + a + ".reply":                                 1,
				"SELECT count(*) FROM " + a + ".visit":                                 1,
				"SELECT count(*) FROM " + a + ".survey WHERE recipient_id IS NULL":     1,
				"SELECT count(*) FROM " + a + ".survey WHERE recipient_id IS NOT NULL": 1,
			} {
				if n := count(q); n != want {
					t.Fatalf("plain SQL: %s: %d, want %d", q, n, want)
				}
			}
			line := purgeLine(r.audit(t, id))
			_, c := r.f.receiptOf(t, id)
			for _, record := range []string{line, c.ResiduePurge} {
				i := strings.Index(record, cascadeSaid)
				if i < 0 {
					t.Fatalf("the purge's record does not name the tables the deletes cascade into: %q", record)
				}
				said := record[i+len(cascadeSaid):]
				said = said[:strings.Index(said, " (")]
				var names []string
				for _, n := range strings.Split(said, ", ") {
					names = append(names, n[strings.LastIndexByte(n, '.')+1:])
				}
				if strings.Join(names, ",") != "note,reply,survey,visit" {
					t.Errorf("the purge's record names %q, want the note, reply, survey and visit tables (not the partitions): %q", said, record)
				}
			}
		})
	}
}

// TestCascadeTargetNamedInSchemaNotUsable: the DBA's note table sits in a
// schema the service's role may not use. The database's cascade still
// deletes the notes (a foreign key's action runs as the table's owner), the
// request completes, and the purge's record names the table (from the
// catalogs: no name is resolved through the schema).
func TestCascadeTargetNamedInSchemaNotUsable(t *testing.T) {
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
	if !strings.Contains(c.ResiduePurge, cascadeSaid+schema+".dba_note (") {
		t.Errorf("the receipt's residue_purge does not name %s.dba_note: %q", schema, c.ResiduePurge)
	}
}
