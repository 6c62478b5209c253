package querydef_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/querydef"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// whereQuery builds <queryDef schema="nms:recipient" operation=op> with
// one condition expr, selecting @id in id order.
func whereQuery(op, expr string) *etree.Element {
	root := etree.NewElement("queryDef")
	root.CreateAttr("schema", "nms:recipient")
	root.CreateAttr("operation", op)
	if op != "count" {
		root.CreateElement("select").CreateElement("node").CreateAttr("expr", "@id")
		root.CreateElement("orderBy").CreateElement("node").CreateAttr("expr", "@id")
	}
	root.CreateElement("where").CreateElement("condition").CreateAttr("expr", expr)
	return root
}

// whereIDs runs a select of @id under expr; ok is false when the
// expression does not compile (an Invalid error, checked).
func whereIDs(t *testing.T, svc *querydef.Service, expr string) (ids []string, ok bool) {
	t.Helper()
	el, err := svc.ExecuteQuery(context.Background(), whereQuery("select", expr))
	if err != nil {
		if apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("%q: %v (code %s), want a result or an Invalid error", expr, err, apperr.CodeOf(err))
		}
		return nil, false
	}
	for _, r := range el.ChildElements() {
		ids = append(ids, r.SelectAttrValue("id", "?"))
	}
	sort.Strings(ids)
	return ids, true
}

// FuzzWhere compiles and runs any condition on a real SQLite store
// of five recipients: no panic, an error is Invalid (never a database
// error surfacing), and the answers agree: C and NOT (C) share no row,
// (C) AND (C) and (C) OR (C) are C, count is the number of rows, and each
// row of C is found by (C) AND @id = its id.
func FuzzWhere(f *testing.F) {
	for _, s := range []string{"@id = 1 OR 1=1", "@email LIKE '%a''b'", "NOT (@id < -1.5)", "@gender IN (1, 2)",
		"@created > #2024-01-01#", "@email IS NOT NULL AND @gender != 2", "@birthDate = '1990-05-17 23:00:00-02:00'",
		"Year(@created) = 2024 AND Lower(@email) LIKE 'a%'", "@blackList = 'true'", "@firstName = ''", "@email = 1",
		"@gender = '1'", "@birthDate < GetDate()", "@created = '2024-03-14 13:54:49.168Z'", "@email LIKE '%\\_%'",
		"Upper(@email) = 'A@EXAMPLE.COM'", "@id NOT IN (1, 2)", "@email NOT LIKE '%example%'", "@gender <> NULL",
		"@lastName >= 'O'", "Month(@birthDate) = 5", "@email < @firstName", "@id = '  2 '", "@gender > 1.5"} {
		f.Add(s)
	}
	svc := whereSeeded(f)
	f.Fuzz(func(t *testing.T, expr string) {
		a, ok := whereIDs(t, svc, expr)
		if !ok {
			return
		}
		if b, ok := whereIDs(t, svc, "NOT ("+expr+")"); ok {
			in := map[string]bool{}
			for _, id := range a {
				in[id] = true
			}
			for _, id := range b {
				if in[id] {
					t.Fatalf("row %s is in both %q (%v) and its negation (%v)", id, expr, a, b)
				}
			}
		}
		for _, w := range []string{"(" + expr + ") AND (" + expr + ")", "(" + expr + ") OR (" + expr + ")"} {
			if c, ok := whereIDs(t, svc, w); ok && fmt.Sprint(c) != fmt.Sprint(a) {
				t.Fatalf("%q gives %v, %q gives %v", expr, a, w, c)
			}
		}
		el, err := svc.ExecuteQuery(context.Background(), whereQuery("count", expr))
		if err != nil || el.SelectAttrValue("count", "") != fmt.Sprint(len(a)) {
			t.Fatalf("%q: %d rows selected, count %v (%v)", expr, len(a), el, err)
		}
		for _, id := range a {
			if c, ok := whereIDs(t, svc, "("+expr+") AND @id = "+id); ok && fmt.Sprint(c) != "["+id+"]" {
				t.Fatalf("%q selects %s, but (%s) AND @id = %s gives %v", expr, id, expr, id, c)
			}
		}
	})
}

// whereSeeded is seeded (execute_test.go) for a fuzz target: the same
// five recipients and two delivery logs on SQLite.
func whereSeeded(tb testing.TB) *querydef.Service {
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(tb, store.SQLite, clock.Now)
	reg := registry(tb)
	if err := db.SyncDataModel(ctx, reg); err != nil {
		tb.Fatal(err)
	}
	created := time.Date(2024, 3, 14, 13, 54, 49, 168_000_000, time.UTC)
	rows := []struct {
		table  string
		values map[string]any
	}{
		{"nms_recipient", map[string]any{"email": "a@example.com", "first_name": "Ana", "gender": 1, "black_list": false,
			"birth_date": time.Date(1990, 5, 17, 0, 0, 0, 0, time.UTC), "created": created}},
		{"nms_recipient", map[string]any{"email": "o'brien@example.com", "last_name": "O'Brien", "gender": 2, "black_list": true}},
		{"nms_recipient", map[string]any{"email": "b@other.org", "gender": 1}},
		{"nms_recipient", map[string]any{"email": "c@example.com", "gender": 0, "first_name": ""}},
		{"nms_recipient", map[string]any{"email": dropTable, "gender": 1}},
		{"nms_broad_log_rcp", map[string]any{"recipient_id": 1, "status": 1, "address": "a@example.com", "event_date": created}},
		{"nms_broad_log_rcp", map[string]any{"recipient_id": 1, "status": 2, "address": "a@example.com"}},
	}
	for _, r := range rows {
		if err := storetest.SQLOf(tb, db).InsertRow(ctx, r.table, r.values); err != nil {
			tb.Fatal(err)
		}
	}
	return &querydef.Service{DB: db, Registry: reg}
}
