package store_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// Render is the second line of defence behind internal/querydef: only
// registry identifiers, and operators and functions from its fixed tables.
func TestRenderRefusesWhatIsNotInTheTables(t *testing.T) {
	ok := func() *store.Plan {
		return &store.Plan{Table: "nms_recipient", Columns: []store.Expr{store.Col(0, "email", nil)}}
	}
	bad := map[string]func(p *store.Plan){
		"quoted table":      func(p *store.Plan) { p.Table = `x" ; DROP TABLE y; --` },
		"upper-case column": func(p *store.Plan) { p.Columns[0].Column = "Email" },
		"join key":          func(p *store.Plan) { p.Joins = []store.Join{{Table: "a", Key: "id)", Column: "b"}} },
		"operator": func(p *store.Plan) {
			p.Where = &store.Cond{Op: "= 1 OR 1 =", Left: store.Col(0, "id", nil), Right: []store.Expr{store.Val(1, nil)}}
		},
		"function":     func(p *store.Plan) { p.Columns[0] = store.Call(store.Func(200), store.Col(0, "id", nil)) },
		"arity":        func(p *store.Plan) { p.Columns[0] = store.Call(store.FuncLower) },
		"empty select": func(p *store.Plan) { p.Columns = nil },
		"empty AND":    func(p *store.Plan) { p.Where = &store.Cond{Op: store.OpAnd} },
	}
	for name, spoil := range bad {
		p := ok()
		spoil(p)
		if sql, _, err := store.Render(store.SQLite, p); err == nil {
			t.Errorf("%s: rendered %s", name, sql)
		}
	}
}

func TestRenderDialects(t *testing.T) {
	created := store.Col(0, "created", schemas.TypeOf(schemas.TypeDatetime))
	birth := store.Col(0, "birth_date", schemas.TypeOf(schemas.TypeDate))
	p := &store.Plan{
		Table: "nms_recipient",
		Columns: []store.Expr{store.Call(store.FuncYear, created), store.Call(store.FuncDay, birth),
			store.Call(store.FuncCount), store.Call(store.FuncNow)},
		Where:   &store.Cond{Op: store.OpGt, Left: store.Val(1.5, schemas.TypeOf(schemas.TypeDouble)), Right: []store.Expr{store.Val(int64(1), nil)}},
		GroupBy: []store.Expr{store.Call(store.FuncYear, created), store.Call(store.FuncDay, birth)},
		Having:  &store.Cond{Op: store.OpGe, Left: store.Call(store.FuncCount), Right: []store.Expr{store.Val(int64(2), nil)}},
		Limit:   10,
	}
	want := map[string]string{
		store.SQLite:   `SELECT CAST(strftime('%Y', t0."created") AS INTEGER), CAST(strftime('%d', t0."birth_date") AS INTEGER), COUNT(*), strftime('%Y-%m-%d %H:%M:%fZ', 'now') FROM "nms_recipient" AS t0 WHERE CAST(? AS REAL) > ? GROUP BY CAST(strftime('%Y', t0."created") AS INTEGER), CAST(strftime('%d', t0."birth_date") AS INTEGER) HAVING COUNT(*) >= ? LIMIT ?`,
		store.Postgres: `SELECT CAST(EXTRACT(YEAR FROM t0."created" AT TIME ZONE 'UTC') AS INTEGER), CAST(EXTRACT(DAY FROM t0."birth_date") AS INTEGER), COUNT(*), CURRENT_TIMESTAMP FROM "nms_recipient" AS t0 WHERE CAST(? AS DOUBLE PRECISION) > ? GROUP BY CAST(EXTRACT(YEAR FROM t0."created" AT TIME ZONE 'UTC') AS INTEGER), CAST(EXTRACT(DAY FROM t0."birth_date") AS INTEGER) HAVING COUNT(*) >= ? LIMIT ?`,
	}
	for dialect, w := range want {
		sql, args, err := store.Render(dialect, p)
		if err != nil {
			t.Fatal(err)
		}
		if sql != w {
			t.Errorf("%s\n got %s\nwant %s", dialect, sql, w)
		}
		if n := strings.Count(strings.ReplaceAll(sql, "'%", ""), "?"); n != len(args) || !reflect.DeepEqual(args, []any{1.5, int64(1), int64(2), int64(10)}) {
			t.Errorf("%s: %d placeholders, args %v", dialect, n, args)
		}
	}
}
