package privacy_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// appRole opens the store as an application role (LOGIN, not a
// superuser, owner of nothing but what it creates, USAGE and CREATE on the
// test's schema), as TestReceiptSaysStatisticsNotZeroed does; it returns
// the store, a superuser's connection to the same schema (the DBA), and
// the role's name.
func appRole(t *testing.T) (*store.DB, *storetest.Conn, string) {
	db, aconn, role, _ := appRoleLogged(t)
	return db, aconn, role
}

// appRoleLogged is appRole, with what the store logs.
func appRoleLogged(t *testing.T) (*store.DB, *storetest.Conn, string, *servertest.SyncBuffer) {
	roleURL, role, aconn := storetest.ServiceRole(t, storetest.Config(t, store.Postgres))
	logs := &servertest.SyncBuffer{}
	db := storetest.OpenConfig(t, store.Config{DataDir: t.TempDir(), DatabaseURL: roleURL, Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	return db, aconn, role, logs
}

// dbaSchema creates, as the DBA, a schema named prefix and the role's
// suffix, grants the role privileges (USAGE; USAGE, CREATE) on it, and
// drops it when the test ends.
func dbaSchema(t *testing.T, aconn *storetest.Conn, role, prefix, privileges string) string {
	t.Helper()
	schema := prefix + strings.TrimPrefix(role, "cp_role_")
	for _, q := range []string{"CREATE SCHEMA " + schema, "GRANT " + privileges + " ON SCHEMA " + schema + " TO " + role} {
		if err := aconn.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { _ = aconn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE") })
	return schema
}

// heapFileCount counts token in table's own heap file (not its indexes nor
// pg_statistic), after a CHECKPOINT.
func heapFileCount(t *testing.T, aconn *storetest.Conn, table, token string) int {
	ctx := context.Background()
	if err := aconn.Exec(ctx, "CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	p, err := aconn.Bytes(ctx, "SELECT pg_relation_filepath(?::regclass)", table)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := os.Getenv("CP_TEST_PG_DATA")
	if dataDir == "" {
		t.Skip("needs scripts/with-test-postgres (CP_TEST_PG_DATA)")
	}
	b, err := os.ReadFile(filepath.Join(dataDir, string(p)))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte(token))
}

// TestTableOfAnotherOwnerHoldsTheRequest: crm_orders belongs to the
// service's role (an application role: not a superuser, not the
// database's owner), and a DBA put a table of another role under it — an
// inheritance child, or a partition. PostgreSQL reached the child's rows
// with the delete but skipped, with a mere warning, the VACUUM FULL of a
// table the role does not own: the request was complete while the
// subject's deleted rows were still in the child's file (and, once the
// statistics were dropped through the parent, "must be owner" failed
// every run). Now the purge refuses such a table before it starts,
// naming it: the requests stay deleteInProgress, and the run after the
// DBA hands the table to the role completes them, its file clean (J151).
func TestTableOfAnotherOwnerHoldsTheRequest(t *testing.T) {
	for _, c := range []struct {
		name    string
		app     []string // the service's role's DDL
		dba     []string // another role's, then granted
		subject string   // where the subject's orders go (by the DBA)
		other   string
		child   string
	}{
		{"inheritance child with the subject's rows",
			[]string{"CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)"},
			[]string{"CREATE TABLE crm_orders_archive (CHECK (id < 1000)) INHERITS (crm_orders)"},
			"crm_orders_archive", "crm_orders", "crm_orders_archive"},
		{"inheritance child with another's rows",
			[]string{"CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)"},
			[]string{"CREATE TABLE crm_orders_archive (CHECK (id >= 1000)) INHERITS (crm_orders)"},
			"crm_orders", "crm_orders_archive", "crm_orders_archive"},
		{"partition",
			[]string{"CREATE TABLE crm_orders (id BIGINT, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT, PRIMARY KEY (id)) PARTITION BY RANGE (id)",
				"CREATE TABLE crm_orders_b PARTITION OF crm_orders FOR VALUES FROM (1000) TO (2000)"},
			[]string{"CREATE TABLE crm_orders_a PARTITION OF crm_orders FOR VALUES FROM (0) TO (1000)"},
			"crm_orders", "crm_orders", "crm_orders_a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, aconn, role := appRole(t)
			ctx := context.Background()
			conn := storetest.SQLOf(t, db)
			for _, q := range c.app {
				if err := conn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			for _, q := range append(c.dba, "GRANT SELECT, INSERT, DELETE ON "+c.child+" TO "+role) {
				if err := aconn.Exec(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			f := newFixture(t, store.Postgres, servertest.Options{DB: db, Schemas: crmOrderSchema, Privacy: withReceipts})
			subject, other := recipientID(t, f, 4), recipientID(t, f, 5)
			const token = "Otherownerbike81c4"
			for i := range 5 {
				if err := aconn.InsertRow(ctx, c.subject, map[string]any{"id": int64(10 + i), "product": token, "recipient_id": subject}); err != nil {
					t.Fatal(err)
				}
			}
			if err := aconn.InsertRow(ctx, c.other, map[string]any{"id": int64(1500), "product": "Other's lamp", "recipient_id": other}); err != nil {
				t.Fatal(err)
			}
			table := c.subject
			if c.subject == "crm_orders" && c.child != "crm_orders_archive" {
				table = c.child // the partition the rows went to
			}
			if n := heapFileCount(t, aconn, table, token); n != 5 {
				t.Fatalf("before: %d", n)
			}
			// What the service warns about at start.
			if refused, err := db.NotVacuumable(ctx, []string{"crm_orders"}); err != nil || len(refused) != 1 || !strings.HasSuffix(refused[0], "."+c.child) {
				t.Fatalf("NotVacuumable: %v %v, want %s", refused, err, c.child)
			}
			id := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeDelete, false)
			_, err := f.env.Privacy.Run(f.ctx, "all")
			if apperr.CodeOf(err) != apperr.Forbidden || !strings.Contains(err.Error(), c.child) {
				t.Fatalf("the run: %v, want forbidden naming %s", err, c.child)
			}
			if got := f.status(t, id); got != privacy.StatusDeleteInProgress {
				t.Fatalf("status %v while the role may not purge %s, want deleteInProgress", got, c.child)
			}
			if n, _ := aconn.Int(ctx, "SELECT count(*) FROM crm_orders WHERE recipient_id = ?", subject); n != 0 {
				t.Fatalf("%d of the subject's orders left", n)
			}
			if err := aconn.Exec(ctx, "ALTER TABLE "+c.child+" OWNER TO "+role); err != nil {
				t.Fatal(err)
			}
			if refused, err := db.NotVacuumable(ctx, []string{"crm_orders"}); err != nil || len(refused) != 0 {
				t.Fatalf("NotVacuumable after the owner changed: %v %v", refused, err)
			}
			if _, err := f.env.Privacy.Run(f.ctx, privacy.Delete); err != nil {
				t.Fatalf("the run after the table was handed over: %v", err)
			}
			if got := f.status(t, id); got != privacy.StatusComplete {
				t.Fatalf("status %v, want complete", got)
			}
			if n := heapFileCount(t, aconn, table, token); n != 0 {
				t.Errorf("complete, but the subject's deleted orders are still in %s's file %d time(s)", table, n)
			}
		})
	}
}

// TestForcedRowSecurityStatsDropped: crm_orders is the role's own table,
// with row-level security forced on it (a DBA's tenant policy; here one
// that lets every row through). pg_stats shows a table's statistics only
// where row security is not active for the reader, so the purge, which
// finds the statistics to drop in pg_stats, finds none: the emptied
// table's statistics keep the subject's product, with no warning, and the
// request says complete.
func TestForcedRowSecurityStatsDropped(t *testing.T) {
	db, aconn, _ := appRole(t)
	ctx := context.Background()
	conn := storetest.SQLOf(t, db)
	for _, q := range []string{
		"CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)",
		"ALTER TABLE crm_orders ENABLE ROW LEVEL SECURITY",
		"ALTER TABLE crm_orders FORCE ROW LEVEL SECURITY",
		"CREATE POLICY every_row ON crm_orders USING (true) WITH CHECK (true)",
	} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Schemas: crmOrderSchema, Privacy: withReceipts})
	subject := recipientID(t, f, 4)
	for i := range 5 {
		if err := conn.InsertRow(ctx, "crm_orders", map[string]any{"id": int64(10 + i), "product": layoutToken, "recipient_id": subject}); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Exec(ctx, "ANALYZE crm_orders"); err != nil {
		t.Fatal(err)
	}
	stats := func() int64 {
		n, err := aconn.Int(ctx, `SELECT count(*) FROM pg_stats WHERE schemaname = current_schema()
			AND (coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '')) LIKE ?`, "%"+layoutToken+"%")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if stats() == 0 {
		t.Fatal("precondition: no statistics row holds the subject's product")
	}
	completeDelete(t, f, 4)
	if n, _ := aconn.Int(ctx, "SELECT count(*) FROM crm_orders WHERE recipient_id = ?", subject); n != 0 {
		t.Fatalf("%d of the subject's orders left", n)
	}
	if n := stats(); n != 0 {
		t.Errorf("the request is complete, but %d statistics row(s) of crm_orders still hold the subject's product", n)
	}
	// pg_statistic's own file is not read: this role may not rewrite it,
	// and the receipt says so (J119).
	if n := heapFileCount(t, aconn, "crm_orders", layoutToken); n != 0 {
		t.Errorf("the request is complete, but the subject's product is still in crm_orders's file %d time(s)", n)
	}
}

// TestNoInheritMemberOfOwnerHoldsTheRequest: the DBA's inheritance child of
// crm_orders belongs to a role the service's role is a member of, but
// without inheriting its privileges (NOINHERIT: it would have to SET ROLE
// to use them). mayNotVacuum asks pg_has_role(..., 'MEMBER'), which is
// true for such a member; PostgreSQL's VACUUM asks for the owner's
// privileges (has_privs_of_role), which the role does not have, and skips
// the child with a mere warning: the request says complete while the
// subject's deleted orders are still in the child's file.
func TestNoInheritMemberOfOwnerHoldsTheRequest(t *testing.T) {
	db, aconn, role := appRole(t)
	ctx := context.Background()
	ownerRole := role + "_o"
	for _, q := range []string{"CREATE ROLE " + ownerRole + " NOLOGIN", "ALTER ROLE " + role + " NOINHERIT", "GRANT " + ownerRole + " TO " + role} {
		if err := aconn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = aconn.Exec(context.Background(), "DROP OWNED BY "+ownerRole+" CASCADE")
		_ = aconn.Exec(context.Background(), "DROP ROLE "+ownerRole)
	})
	conn := storetest.SQLOf(t, db)
	if err := conn.Exec(ctx, "CREATE TABLE crm_orders (id BIGINT PRIMARY KEY, product VARCHAR(64), recipient_id BIGINT, gift_for_id BIGINT)"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE crm_orders_archive (CHECK (id < 1000)) INHERITS (crm_orders)",
		"ALTER TABLE crm_orders_archive OWNER TO " + ownerRole,
		"GRANT SELECT, INSERT, DELETE ON crm_orders_archive TO " + role,
	} {
		if err := aconn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Schemas: crmOrderSchema, Privacy: withReceipts})
	subject, other := recipientID(t, f, 4), recipientID(t, f, 5)
	const token = "Noinheritbike55e1"
	for i := range 5 {
		if err := aconn.InsertRow(ctx, "crm_orders_archive", map[string]any{"id": int64(10 + i), "product": token, "recipient_id": subject}); err != nil {
			t.Fatal(err)
		}
	}
	if err := aconn.InsertRow(ctx, "crm_orders", map[string]any{"id": int64(1500), "product": "Other's lamp", "recipient_id": other}); err != nil {
		t.Fatal(err)
	}
	if n := heapFileCount(t, aconn, "crm_orders_archive", token); n != 5 {
		t.Fatalf("before: %d", n)
	}
	refused, nvErr := db.NotVacuumable(ctx, []string{"crm_orders"})
	t.Logf("NotVacuumable: %v %v", refused, nvErr)
	id := f.create(t, "defaultNamespace1", demodata.Email(4), privacy.TypeDelete, false)
	_, err := f.env.Privacy.Run(f.ctx, "all")
	status := f.status(t, id)
	t.Logf("run: %v; status %v", err, status)
	if n, _ := aconn.Int(ctx, "SELECT count(*) FROM crm_orders WHERE recipient_id = ?", subject); n != 0 {
		t.Fatalf("%d of the subject's orders left", n)
	}
	if status == privacy.StatusComplete {
		if n := heapFileCount(t, aconn, "crm_orders_archive", token); n != 0 {
			t.Errorf("the request is complete, but the subject's deleted orders are still in crm_orders_archive's file %d time(s)", n)
		}
	} else if err == nil || !strings.Contains(err.Error(), "crm_orders_archive") {
		t.Errorf("the request is %v, but the run's error does not name crm_orders_archive: %v", status, err)
	}
}

// TestCascadeTargetOfAnotherOwnerNamed: two DBA tables in a schema of
// their own cascade a delete from nms:recipient; the service's role owns
// one, another role the other. The owned one is rewritten (J153: another
// schema), the other is left as J149 decided — it holds back no delete —
// but no longer silently: the log and the purge's record name it, and
// nothing of the subject.
func TestCascadeTargetOfAnotherOwnerNamed(t *testing.T) {
	db, aconn, role, storeLogs := appRoleLogged(t)
	ctx := context.Background()
	f := newFixture(t, store.Postgres, servertest.Options{DB: db, Privacy: withReceipts})
	subject := recipientID(t, f, 4)
	schema := dbaSchema(t, aconn, role, "cp_crm_", "USAGE, CREATE")
	const token = "Ownedcascadetoken3f0e"
	for _, q := range []string{
		"CREATE TABLE " + schema + ".dba_note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))",
		"CREATE TABLE " + schema + ".own_note (id BIGINT PRIMARY KEY, recipient_id BIGINT REFERENCES nms_recipient (id) ON DELETE CASCADE, body VARCHAR(200))",
		"ALTER TABLE " + schema + ".own_note OWNER TO " + role,
	} {
		if err := aconn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i, table := range []string{schema + ".dba_note", schema + ".own_note"} {
		for j := range 3 {
			if err := aconn.Exec(ctx, "INSERT INTO "+table+" VALUES (?, ?, ?)", int64(10*i+j), subject, token+" "+table); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := heapFileCount(t, aconn, schema+".own_note", token); n != 3 {
		t.Fatalf("before: %d", n)
	}
	id := completeDelete(t, f, 4)
	if n, _ := aconn.Int(ctx, "SELECT count(*) FROM "+schema+".dba_note WHERE recipient_id = ?", subject); n != 0 {
		t.Fatalf("%d cascaded note(s) left", n)
	}
	if n := heapFileCount(t, aconn, schema+".own_note", token); n != 0 {
		t.Errorf("complete, but the cascaded notes are still in %s.own_note's file %d time(s)", schema, n)
	}
	logs := storeLogs.String() + f.env.Logs.String()
	if !strings.Contains(logs, schema+".dba_note") || !strings.Contains(logs, "does not own") {
		t.Errorf("the log does not name the cascade target the role does not own: %s", logs)
	}
	if strings.Contains(logs, token) || strings.Contains(logs, demodata.Email(4)) {
		t.Errorf("the log holds the subject's data")
	}
	// Outside what the receipt speaks for, but not left unsaid: the purge's
	// audit line (and the receipt's residue_purge claim) names it.
	audit, err := aconn.Bytes(ctx, "SELECT audit FROM privacy_requests WHERE id = ?", id)
	if err != nil {
		t.Fatal(err)
	}
	if line := purgeLine(string(audit)); !strings.Contains(line, "not purged: "+schema+".dba_note") {
		t.Errorf("the purge's record does not name the cascade target it did not purge: %q", line)
	}
}
