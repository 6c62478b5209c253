package querydef_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/querydef"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

func registry(t testing.TB) *schemas.Registry {
	t.Helper()
	reg, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// parse reads a queryDef document.
func parse(t testing.TB, xml string) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromString(xml); err != nil {
		t.Fatalf("%v: %s", err, xml)
	}
	return doc.Root()
}

// attr escapes a value for an XML attribute in double quotes.
func attr(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// compiled is a compiled queryDef rendered by the store for one dialect.
type compiled struct {
	SQL  string
	Args []any
}

func compile(t testing.TB, dialect, xml string) (*compiled, error) {
	t.Helper()
	q, err := querydef.Compile(registry(t), parse(t, xml))
	if err != nil {
		return nil, err
	}
	return render(t, dialect, q), nil
}

func render(t testing.TB, dialect string, q *querydef.Query) *compiled {
	t.Helper()
	sql, args, err := store.Render(dialect, q.Plan)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return &compiled{sql, args}
}

// whereOf compiles a count on schema with one condition and returns the
// SQL after WHERE and the arguments.
func whereOf(t *testing.T, schema, expr string) (string, []any, error) {
	t.Helper()
	q, err := compile(t, store.SQLite, `<queryDef schema="`+schema+`" operation="count"><where><condition expr="`+attr(expr)+`"/></where></queryDef>`)
	if err != nil {
		return "", nil, err
	}
	_, where, ok := strings.Cut(q.SQL, " WHERE ")
	if !ok {
		t.Fatalf("no WHERE in %s", q.SQL)
	}
	return where, q.Args, nil
}

func TestCompileExpressions(t *testing.T) {
	day := time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		schema, expr, sql string
		args              []any
	}{
		{"nms:recipient", "@email = 'a@example.com'", `t0."email" = ?`, []any{"a@example.com"}},
		{"nms:recipient", "@gender <> 1", `t0."gender" <> ?`, []any{int64(1)}},
		{"nms:recipient", "@gender != 1", `t0."gender" <> ?`, []any{int64(1)}},
		{"nms:recipient", "@id < 5", `t0."id" < ?`, []any{int64(5)}},
		{"nms:recipient", "@id > -5", `t0."id" > ?`, []any{int64(-5)}},
		{"nms:recipient", "@id <= 5", `t0."id" <= ?`, []any{int64(5)}},
		{"nms:recipient", "@id >= 5", `t0."id" >= ?`, []any{int64(5)}},
		{"nms:recipient", "5 < @id", `? < t0."id"`, []any{int64(5)}},
		{"nms:recipient", "@gender IN (1, 2)", `t0."gender" IN (?, ?)`, []any{int64(1), int64(2)}},
		{"nms:recipient", "@gender not in (0)", `t0."gender" NOT IN (?)`, []any{int64(0)}},
		{"nms:recipient", "@email IN ('a', 'b''c')", `t0."email" IN (?, ?)`, []any{"a", "b'c"}},
		{"nms:recipient", "@email LIKE '%@example.com'", `t0."email" LIKE ?`, []any{"%@example.com"}},
		{"nms:recipient", "@email NOT LIKE 'x%'", `t0."email" NOT LIKE ?`, []any{"x%"}},
		{"nms:recipient", "@email IS NULL", `t0."email" IS NULL`, nil},
		{"nms:recipient", "@email is not null", `t0."email" IS NOT NULL`, nil},
		{"nms:recipient", "@email = NULL", `t0."email" IS NULL`, nil},
		{"nms:recipient", "NULL <> @email", `t0."email" IS NOT NULL`, nil},
		{"nms:recipient", "@email = @phone", `t0."email" = t0."phone"`, nil},
		{"nms:recipient", "@gender = '2'", `t0."gender" = ?`, []any{int64(2)}},
		{"nms:recipient", "@email = 42", `t0."email" = ?`, []any{"42"}},
		{"nms:recipient", "@blackList = 1", `t0."black_list" = ?`, []any{true}},
		{"nms:recipient", "@blackList = 'false'", `t0."black_list" = ?`, []any{false}},
		{"nms:recipient", "@birthDate = '2024-01-31'", `t0."birth_date" = ?`, []any{"2024-01-31"}}, // a date binds its day as text (SQLite compares text),
		{"nms:recipient", "@created >= #2024-01-31 10:30:00Z#", `t0."created" >= ?`, []any{day.Add(10*time.Hour + 30*time.Minute)}},
		{"nms:recipient", "@created < '2024-01-31T00:00:00.000Z'", `t0."created" < ?`, []any{day}},
		{"nms:recipient", "@mobilePhone = '+33'", `t0."mobile_phone" = ?`, []any{"+33"}},
		// Precedence: AND before OR; parentheses and NOT group.
		{"nms:recipient", "@id = 1 AND @gender = 2 OR @email = 'x'", `((t0."id" = ? AND t0."gender" = ?) OR t0."email" = ?)`, []any{int64(1), int64(2), "x"}},
		{"nms:recipient", "@id = 1 AND (@gender = 2 OR @email = 'x')", `(t0."id" = ? AND (t0."gender" = ? OR t0."email" = ?))`, []any{int64(1), int64(2), "x"}},
		{"nms:recipient", "NOT (@id = 1 OR @id = 2)", `NOT (t0."id" = ? OR t0."id" = ?)`, []any{int64(1), int64(2)}},
		{"nms:recipient", "not @email like 'a%'", `NOT (t0."email" LIKE ?)`, []any{"a%"}},
		{"nms:recipient", "((@id = 1))", `t0."id" = ?`, []any{int64(1)}},
		// Links: the key, and one hop.
		{"nms:gdprRequest", "@namespace-id = 1", `t0."namespace_id" = ?`, []any{int64(1)}},
		{"nms:gdprRequest", "[@namespace-id] = 1", `t0."namespace_id" = ?`, []any{int64(1)}},
		{"nms:gdprRequest", "[namespace/@name] = 'defaultNamespace1'", `l1."name" = ?`, []any{"defaultNamespace1"}},
		{"nms:gdprRequestData", "[@gdprRequest-id] = 7", `t0."gdpr_request_id" = ?`, []any{int64(7)}},
		{"nms:broadLogRcp", "[recipient/@email] LIKE '%@x.org' AND @status = 1", `(l1."email" LIKE ? AND t0."status" = ?)`, []any{"%@x.org", int64(1)}},
		// Injection attempts are values or plain logic.
		{"nms:recipient", "@id = 1 OR 1=1", `(t0."id" = ? OR CAST(? AS BIGINT) = CAST(? AS BIGINT))`, []any{int64(1), int64(1), int64(1)}},
		{"nms:recipient", "@email = 'o''brien@example.com'", `t0."email" = ?`, []any{"o'brien@example.com"}},
		{"nms:recipient", "@email = 'x'' OR ''1''=''1'", `t0."email" = ?`, []any{"x' OR '1'='1"}},
		{"nms:recipient", "@email = 'x''); DROP TABLE nms_recipient;--'", `t0."email" = ?`, []any{"x'); DROP TABLE nms_recipient;--"}},
		{"nms:recipient", "@email = '/* -- ; \" [a/b/@c] @x'", `t0."email" = ?`, []any{`/* -- ; " [a/b/@c] @x`}},
		{"nms:recipient", "'a' = 'b'", `CAST(? AS TEXT) = CAST(? AS TEXT)`, []any{"a", "b"}},
		{"nms:recipient", "1.5 >= 1", `CAST(? AS REAL) >= CAST(? AS BIGINT)`, []any{1.5, int64(1)}},
		{"nms:recipient", "1 IN (1, 2)", `CAST(? AS BIGINT) IN (CAST(? AS BIGINT), CAST(? AS BIGINT))`, []any{int64(1), int64(1), int64(2)}},
		{"nms:recipient", "@email = 'josé＠example.com'", `t0."email" = ?`, []any{"josé＠example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			sql, args, err := whereOf(t, tt.schema, tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if sql != tt.sql {
				t.Errorf("sql\n got %s\nwant %s", sql, tt.sql)
			}
			if !reflect.DeepEqual(args, tt.args) {
				t.Errorf("args\n got %#v\nwant %#v", args, tt.args)
			}
		})
	}
}

func TestCompileConditions(t *testing.T) {
	tests := []struct {
		name, where, sql string
		args             []any
	}{
		{"AND by default", `<condition expr="@gender = 1"/><condition expr="@email LIKE '%a'"/>`,
			`(t0."gender" = ? AND t0."email" LIKE ?)`, []any{int64(1), "%a"}},
		{"bool-operator OR", `<condition expr="@gender = 1"/><condition expr="@gender = 2" bool-operator="OR"/>`,
			`(t0."gender" = ? OR t0."gender" = ?)`, []any{int64(1), int64(2)}},
		{"AND before OR", `<condition expr="@id = 1"/><condition expr="@id = 2" bool-operator="OR"/><condition expr="@gender = 0"/>`,
			`(t0."id" = ? OR (t0."id" = ? AND t0."gender" = ?))`, []any{int64(1), int64(2), int64(0)}},
		{"nested group", `<condition expr="@gender = 1"/><condition><condition expr="@email LIKE '%a'"/><condition expr="@email LIKE '%b'" bool-operator="OR"/></condition>`,
			`(t0."gender" = ? AND (t0."email" LIKE ? OR t0."email" LIKE ?))`, []any{int64(1), "%a", "%b"}},
		{"group with expr", `<condition expr="@gender = 1"><condition expr="@id = 2"/><condition expr="@id = 3" bool-operator="or"/></condition>`,
			`(t0."gender" = ? AND (t0."id" = ? OR t0."id" = ?))`, []any{int64(1), int64(2), int64(3)}},
		{"expression groups stay whole", `<condition expr="@id = 1 OR @id = 2"/><condition expr="@gender = 1"/>`,
			`((t0."id" = ? OR t0."id" = ?) AND t0."gender" = ?)`, []any{int64(1), int64(2), int64(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := compile(t, store.SQLite, `<queryDef schema="nms:recipient" operation="count"><where>`+tt.where+`</where></queryDef>`)
			if err != nil {
				t.Fatal(err)
			}
			want := `SELECT COUNT(*) FROM "nms_recipient" AS t0 WHERE ` + tt.sql
			if q.SQL != want {
				t.Errorf("sql\n got %s\nwant %s", q.SQL, want)
			}
			if !reflect.DeepEqual(q.Args, tt.args) {
				t.Errorf("args\n got %#v\nwant %#v", q.Args, tt.args)
			}
		})
	}
}

func TestCompileStatements(t *testing.T) {
	const req = `SELECT t0."id", t0."status", l1."name" FROM "privacy_requests" AS t0 LEFT JOIN "privacy_namespaces" AS l1 ON l1."id" = t0."namespace_id"`
	recipientAll := []string{"id", "email", "phone", "mobile_phone", "first_name", "last_name", "middle_name", "salutation",
		"birth_date", "gender", "company", "account", "language", "address", "city", "zip_code", "country",
		"black_list", "black_list_email", "created", "last_modified"}
	for i, c := range recipientAll {
		recipientAll[i] = `t0."` + c + `"`
	}
	tests := []struct {
		name, dialect, xml, sql string
		args                    []any
	}{
		{"select with link, orderBy and paging", store.SQLite,
			`<queryDef schema="nms:gdprRequest" operation="select" lineCount="5" startLine="10" xtkschema="xtk:queryDef">
			  <select><node expr="@id"/><node expr="@status"/><node expr="[namespace/@name]" alias="@namespaceName"/></select>
			  <where><condition expr="@status = 0"/></where>
			  <orderBy><node expr="@created" sortDesc="true"/></orderBy></queryDef>`,
			req + ` WHERE t0."status" = ? ORDER BY t0."created" DESC NULLS FIRST, t0."id" LIMIT ? OFFSET ?`, []any{int64(0), int64(5), int64(10)}},
		{"select is the default operation; primary key order", store.Postgres,
			`<queryDef schema="nms:gdprRequest"><select><node expr="@id"/><node expr="@status"/><node expr="[namespace/@name]"/></select></queryDef>`,
			req + ` ORDER BY t0."id" LIMIT ?`, []any{int64(querydef.MaxRows)}},
		{"lineCount above the cap", store.SQLite,
			`<queryDef schema="nms:gdprRequest" lineCount="50000"><select><node expr="@id"/><node expr="@status"/><node expr="[namespace/@name]"/></select></queryDef>`,
			req + ` ORDER BY t0."id" LIMIT ?`, []any{int64(querydef.MaxRows)}},
		{"orderBy on a link, primary key given", store.SQLite,
			`<queryDef schema="nms:gdprRequest"><select><node expr="@id"/><node expr="@status"/><node expr="[namespace/@name]"/></select>
			  <orderBy><node expr="[namespace/@name]"/><node expr="@id" sortDesc="true"/></orderBy></queryDef>`,
			req + ` ORDER BY l1."name" NULLS LAST, t0."id" DESC LIMIT ?`, []any{int64(querydef.MaxRows)}},
		{"get reads one row", store.SQLite,
			`<queryDef schema="nms:gdprRequest" operation="get" startLine="3"><select><node expr="@id"/><node expr="@status"/><node expr="[namespace/@name]"/></select><where><condition expr="@id = 176650"/></where></queryDef>`,
			req + ` WHERE t0."id" = ? ORDER BY t0."id" LIMIT ?`, []any{int64(176650), int64(1)}},
		{"count ignores select, orderBy and paging", store.Postgres,
			`<queryDef schema="nms:gdprRequest" operation="count" lineCount="3"><select><node expr="[namespace/@name]"/></select><orderBy><node expr="@name"/></orderBy>
			  <where><condition expr="[namespace/@name] = 'defaultNamespace1'"/></where></queryDef>`,
			`SELECT COUNT(*) FROM "privacy_requests" AS t0 LEFT JOIN "privacy_namespaces" AS l1 ON l1."id" = t0."namespace_id" WHERE l1."name" = ?`, []any{"defaultNamespace1"}},
		{"count without where", store.SQLite, `<queryDef schema="nms:recipient" operation="count"/>`,
			`SELECT COUNT(*) FROM "nms_recipient" AS t0`, nil},
		{"empty where", store.SQLite, `<queryDef schema="nms:recipient" operation="count"><where/></queryDef>`,
			`SELECT COUNT(*) FROM "nms_recipient" AS t0`, nil},
		{"no select: every attribute", store.SQLite, `<queryDef schema="nms:recipient" operation="getIfExists"><select/></queryDef>`,
			`SELECT ` + strings.Join(recipientAll, ", ") + ` FROM "nms_recipient" AS t0 ORDER BY t0."id" LIMIT ?`, []any{int64(1)}},
		{"decimal cast on PostgreSQL", store.Postgres, `<queryDef schema="nms:recipient" operation="count"><where><condition expr="1.5 = 1.5"/></where></queryDef>`,
			`SELECT COUNT(*) FROM "nms_recipient" AS t0 WHERE CAST(? AS DOUBLE PRECISION) = CAST(? AS DOUBLE PRECISION)`, []any{1.5, 1.5}},
		{"grouped: the groups order the rows, having binds its values", store.Postgres,
			`<queryDef schema="nms:recipient" lineCount="10"><select><node expr="Year(@created)" alias="@year"/><node expr="count()"/></select>
			  <where><condition expr="@email LIKE '%@example.com'"/></where><groupBy><node expr="Year(@created)"/></groupBy>
			  <having><condition expr="count() &gt;= 2 AND max(@id) &lt;&gt; 7"/></having><orderBy><node expr="count()" sortDesc="true"/></orderBy></queryDef>`,
			`SELECT CAST(EXTRACT(YEAR FROM t0."created" AT TIME ZONE 'UTC') AS INTEGER), COUNT(*) FROM "nms_recipient" AS t0 WHERE t0."email" LIKE ? GROUP BY CAST(EXTRACT(YEAR FROM t0."created" AT TIME ZONE 'UTC') AS INTEGER) HAVING (COUNT(*) >= ? AND MAX(t0."id") <> ?) ORDER BY COUNT(*) DESC NULLS FIRST, CAST(EXTRACT(YEAR FROM t0."created" AT TIME ZONE 'UTC') AS INTEGER) NULLS LAST LIMIT ?`,
			[]any{"%@example.com", int64(2), int64(7), int64(10)}},
		{"two hops to the same link share the join", store.SQLite,
			`<queryDef schema="nms:broadLogRcp"><select><node expr="[recipient/@email]"/><node expr="@recipient-id"/></select><where><condition expr="[recipient/@gender] = 1"/></where></queryDef>`,
			`SELECT l1."email", t0."recipient_id" FROM "nms_broad_log_rcp" AS t0 LEFT JOIN "nms_recipient" AS l1 ON l1."id" = t0."recipient_id" WHERE l1."gender" = ? ORDER BY t0."id" LIMIT ?`,
			[]any{int64(1), int64(querydef.MaxRows)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := compile(t, tt.dialect, tt.xml)
			if err != nil {
				t.Fatal(err)
			}
			if q.SQL != tt.sql {
				t.Errorf("sql\n got %s\nwant %s", q.SQL, tt.sql)
			}
			if !reflect.DeepEqual(q.Args, tt.args) {
				t.Errorf("args\n got %#v\nwant %#v", q.Args, tt.args)
			}
		})
	}
}

func TestCompileRejects(t *testing.T) {
	deepParens := strings.Repeat("(", 33) + "@id = 1" + strings.Repeat(")", 33)
	deepConditions := strings.Repeat("<condition>", 33) + `<condition expr="@id = 1"/>` + strings.Repeat("</condition>", 33)
	manyValues := "@id IN (" + strings.Repeat("1,", 1000) + "1)"
	one := func(expr string) string {
		return `<queryDef schema="nms:recipient" operation="select"><where><condition expr="` + attr(expr) + `"/></where></queryDef>`
	}
	tests := []struct{ name, xml, want string }{
		{"semicolon", one("@id = 1; DELETE FROM nms_recipient"), "';' is not allowed at character 8"},
		{"line comment", one("@id = 1 -- comment"), "comments (--) are not allowed"},
		{"block comment", one("@id = 1 /* x */"), "comments (/* */) are not allowed"},
		{"unknown function", one("version() = 'x'"), "unknown function 'version'"},
		{"unknown function with a field", one("Soundex(@email) = 'x'"), "unknown function 'Soundex' (the functions are count(), countDistinct(), min(), max(), sum(), Lower(), Upper(), Year(), Month(), Day(), GetDate())"},
		{"aggregate in where", one("count() > 1"), "condition 1: count() is an aggregate: it belongs in <select>, <orderBy> or <having> at character 1"},
		{"function of the wrong class", one("Year(@email) = 2024"), "Year() cannot take @email, which is text"},
		{"sum of text", `<queryDef schema="nms:recipient"><select><node expr="sum(@email)"/></select></queryDef>`, "<select> node 1: sum() cannot take @email, which is text"},
		{"nested aggregate", `<queryDef schema="nms:recipient"><select><node expr="max(count())"/></select></queryDef>`, "max() cannot take an aggregate (count())"},
		{"arity", `<queryDef schema="nms:recipient"><select><node expr="Lower(@email, @phone)"/></select></queryDef>`, "Lower() takes one argument"},
		{"GetDate with an argument", one("@created < GetDate(@created)"), "GetDate() takes no argument"},
		{"function without parentheses closed", one("Lower(@email = 'x'"), "expected ',' or ')' but found '='"},
		{"literal as an argument", one("Lower('X') = 'x'"), "expected a field or a function but found a string"},
		{"not grouped", `<queryDef schema="nms:recipient"><select><node expr="@gender"/><node expr="count()"/></select></queryDef>`, "<select> node 1: @gender is neither an aggregate nor in <groupBy>"},
		{"order not grouped", `<queryDef schema="nms:recipient"><select><node expr="@gender"/><node expr="count()"/></select><groupBy><node expr="@gender"/></groupBy><orderBy><node expr="@email"/></orderBy></queryDef>`, "<orderBy> node 1: @email is neither an aggregate nor in <groupBy>"},
		{"having not grouped", `<queryDef schema="nms:recipient"><select><node expr="@gender"/></select><groupBy><node expr="@gender"/></groupBy><having><condition expr="@email = 'x'"/></having></queryDef>`, "<having> node 1: @email is neither an aggregate nor in <groupBy>"},
		{"having without groupBy", `<queryDef schema="nms:recipient"><select><node expr="count()"/></select><having><condition expr="count() > 1"/></having></queryDef>`, "<having> needs <groupBy>"},
		{"aggregate in groupBy", `<queryDef schema="nms:recipient"><select><node expr="count()"/></select><groupBy><node expr="count()"/></groupBy></queryDef>`, "<groupBy> node 1: count() is an aggregate"},
		{"groupBy with count", `<queryDef schema="nms:recipient" operation="count"><groupBy><node expr="@gender"/></groupBy></queryDef>`, "<groupBy> and <having> need operation select"},
		{"empty groupBy", `<queryDef schema="nms:recipient"><select><node expr="count()"/></select><groupBy/></queryDef>`, "<groupBy> has no node"},
		{"bare word", one("@email = admin"), "unknown word 'admin'"},
		{"unknown attribute", one("@password = 'x'"), "unknown field @password in nms:recipient"},
		{"unknown link", one("[operator/@login] = 'x'"), "unknown link 'operator' in nms:recipient"},
		{"unknown link key", one("@folder-id = 1"), "unknown link 'folder' in nms:recipient"},
		{"unknown field behind a link", `<queryDef schema="nms:gdprRequest"><where><condition expr="[namespace/@password] = 'x'"/></where></queryDef>`,
			"unknown field @password in nms:privacyNamespace"},
		{"two hops", one("[a/b/@c] = 1"), "only one link may be followed"},
		{"bad path", one("[namespace/name] = 1"), "a path must be written"},
		{"unterminated string", one("@email = 'abc"), "the string is not terminated"},
		{"unterminated quote injection", one("@email = 'x' OR '1'='1"), "the string is not terminated"},
		{"double-quoted identifier", one(`"email" = 'x'`), "double-quoted identifiers are not supported"},
		{"injection outside a string", one("x'); DROP TABLE nms_recipient;--"), "unknown word 'x'"},
		{"5 KiB expression", one("@email = '" + strings.Repeat("a", 5<<10) + "'"), "longer than 4096 bytes"},
		{"deep parentheses", one(deepParens), "nested deeper than 32 levels"},
		{"deep NOTs", one(strings.Repeat("NOT ", 40) + "@id = 1"), "nested deeper than 32 levels"},
		{"deep conditions", `<queryDef schema="nms:recipient"><where>` + deepConditions + `</where></queryDef>`, "nested deeper than 32 levels"},
		{"too many values", one(manyValues), "more than 1000 values"},
		{"unknown schema", `<queryDef schema="nms:nothing"/>`, "unknown schema 'nms:nothing'"},
		{"schema without data", `<queryDef schema="xtk:session"/>`, "unknown schema 'xtk:session'"},
		{"no schema", `<queryDef operation="select"/>`, "unknown schema ''"},
		{"bad operation", `<queryDef schema="nms:recipient" operation="delete"/>`, "unknown operation 'delete'"},
		{"not a queryDef", `<recipient schema="nms:recipient"/>`, "must be a <queryDef> element"},
		{"negative lineCount", `<queryDef schema="nms:recipient" lineCount="-1"/>`, "lineCount must be a non-negative integer"},
		{"bad startLine", `<queryDef schema="nms:recipient" startLine="1e3"/>`, "startLine must be a non-negative integer"},
		{"groupBy without select", `<queryDef schema="nms:recipient"><groupBy><node expr="@gender"/></groupBy></queryDef>`, "<select> node 1: @id is neither an aggregate nor in <groupBy>"},
		{"two wheres", `<queryDef schema="nms:recipient"><where/><where/></queryDef>`, "<where> is given twice"},
		{"select unknown function", `<queryDef schema="nms:recipient"><select><node expr="Avg(@id)"/></select></queryDef>`, "<select> node 1: unknown function 'Avg'"},
		{"select two fields", `<queryDef schema="nms:recipient"><select><node expr="@id"/><node expr="@id + @gender"/></select></queryDef>`, "<select> node 2: unexpected character '+'"},
		{"select unknown", `<queryDef schema="nms:recipient"><select><node expr="@secret"/></select></queryDef>`, "<select> node 1: unknown field @secret"},
		{"bad alias", `<queryDef schema="nms:recipient"><select><node expr="@id" alias="@a b"/></select></queryDef>`, "alias must be written @name"},
		{"orderBy unknown", `<queryDef schema="nms:recipient"><orderBy><node expr="@nope"/></orderBy></queryDef>`, "<orderBy> node 1: unknown field @nope"},
		{"bad sortDesc", `<queryDef schema="nms:recipient"><orderBy><node expr="@id" sortDesc="yes"/></orderBy></queryDef>`, "sortDesc must be true or false"},
		{"enabledIf", `<queryDef schema="nms:recipient"><where><condition expr="@id = 1" enabledIf="$(x)"/></where></queryDef>`, "enabledIf is not supported"},
		{"bad bool-operator", `<queryDef schema="nms:recipient"><where><condition expr="@id = 1"/><condition expr="@id = 2" bool-operator="XOR"/></where></queryDef>`, "bool-operator must be AND or OR"},
		{"empty condition", `<queryDef schema="nms:recipient"><where><condition/></where></queryDef>`, "condition 1: the expression is empty"},
		{"subQuery", `<queryDef schema="nms:recipient"><where><subQuery/></where></queryDef>`, "<subQuery> is not supported in <where>"},
		{"decimal on an integer", one("@id = 1.5"), "@id is an integer"},
		{"out of range", one("@gender = 100000"), "out of range"},
		{"huge number", one("@id = 99999999999999999999"), "out of range"},
		{"text on a number", one("@id = 'one'"), "@id is a number: it cannot be compared with a string"},
		{"field types differ", one("@email = @id"), "@email is text and @id is a number"},
		{"literal types differ", one("1 = 'a'"), "a number cannot be compared with a string"},
		{"LIKE on a number", one("@id LIKE '1%'"), "LIKE needs text: @id is a number"},
		{"LIKE without a string", one("@email LIKE 5"), "LIKE compares text with a quoted pattern"},
		{"bad date", one("@created > 'yesterday'"), "@created is a date"},
		{"bad boolean", one("@blackList = 2"), "@blackList is a boolean"},
		{"NULL = NULL", one("NULL = NULL"), "NULL cannot be compared with NULL"},
		{"NULL <", one("@id < NULL"), "NULL can only be compared with =, <> or IS"},
		{"IS a value", one("@email IS 'x'"), "expected NULL after IS"},
		{"empty IN", one("@id IN ()"), "IN takes a list of values"},
		{"IN a field", one("@id IN (@gender)"), "IN takes a list of values"},
		{"no operator", one("@email"), "expected an operator after @email"},
		{"dangling AND", one("@id = 1 AND"), "expected a field or a value but found the end of the expression"},
		{"unbalanced parenthesis", one("(@id = 1"), "expected ')'"},
		{"extra parenthesis", one("@id = 1)"), "unexpected ')'"},
		{"chained comparison", one("@id = 1 = 1"), "unexpected '='"},
		{"malformed number", one("@id = 12abc"), "malformed number"},
		{"unexpected character", one("@id = 1 | 2"), "unexpected character '|'"},
		{"unterminated date", one("@created = #2024-01-01"), "the date is not terminated"},
		{"lone at sign", one("@ = 1"), "a field name must follow '@'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := compile(t, store.Postgres, tt.xml)
			if err == nil {
				t.Fatalf("accepted: %s %v", q.SQL, q.Args)
			}
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("code %s: %v", apperr.CodeOf(err), err)
			}
			if msg := apperr.MessageOf(err); !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "Invalid queryDef: ") {
				t.Fatalf("message %q lacks %q", msg, tt.want)
			}
		})
	}
}

// A value the caller wrote never reaches an error message: it may be
// personal data.
func TestCompileErrorsDoNotEchoValues(t *testing.T) {
	for _, expr := range []string{"@id = 'john@example.com'", "@email > 'john@example.com' ; x", "'john@example.com' = 1"} {
		_, err := compile(t, store.SQLite, `<queryDef schema="nms:recipient"><where><condition expr="`+attr(expr)+`"/></where></queryDef>`)
		if err == nil {
			t.Fatalf("%s accepted", expr)
		}
		if strings.Contains(apperr.MessageOf(err), "john") {
			t.Fatalf("%s: message echoes the value: %s", expr, apperr.MessageOf(err))
		}
	}
}

// FuzzCompile: any expression either compiles to SQL whose placeholders
// match its arguments, or is refused as Invalid; nothing panics, and no
// caller text reaches the SQL.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"@id = 1 OR 1=1", "@email LIKE '%a''b'", "[namespace/@name] IN ('a', 'b')", "NOT (@id < -1.5)",
		"@created > #2024-01-01#", "@email IS NOT NULL AND @gender != 2", "x'); DROP TABLE t;--", `"a"`, "version()",
		"Year(@created) = 2024 AND Lower([namespace/@name]) LIKE 'a%'", "count() > 1", "@created < GetDate()"} {
		f.Add(s)
	}
	reg := registry(f)
	f.Fuzz(func(t *testing.T, expr string) {
		root := etree.NewElement("queryDef")
		root.CreateAttr("schema", "nms:gdprRequest")
		root.CreateElement("where").CreateElement("condition").CreateAttr("expr", expr)
		query, err := querydef.Compile(reg, root)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("%q: %v", expr, err)
			}
			return
		}
		q := render(t, store.Postgres, query)
		if n := strings.Count(q.SQL, "?"); n != len(q.Args) {
			t.Fatalf("%q: %d placeholders, %d args: %s", expr, n, len(q.Args), q.SQL)
		}
		// The store's own function texts carry quotes; nothing else may.
		if strings.ContainsAny(strings.ReplaceAll(q.SQL, " AT TIME ZONE 'UTC'", ""), "';@[#") {
			t.Fatalf("%q: caller text in the SQL: %s", expr, q.SQL)
		}
	})
}
