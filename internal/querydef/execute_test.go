package querydef_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/querydef"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

const dropTable = "x'); DROP TABLE nms_recipient;--"

// seeded returns a query service on a database holding five recipients and
// two delivery logs of the first.
func seeded(t *testing.T, dialect string) *querydef.Service {
	t.Helper()
	ctx := context.Background()
	clock := storetest.NewClock()
	db := storetest.Open(t, dialect, clock.Now)
	reg := registry(t)
	if err := db.SyncDataModel(ctx, reg); err != nil {
		t.Fatal(err)
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
		if err := storetest.SQLOf(t, db).InsertRow(ctx, r.table, r.values); err != nil {
			t.Fatal(err)
		}
	}
	return &querydef.Service{DB: db, Registry: reg}
}

func xmlOf(el *etree.Element) string {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	s, _ := doc.WriteToString()
	return s
}

func TestExecute(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			svc := seeded(t, dialect)
			tests := []struct{ name, xml, want string }{
				{"select with LIKE and IN",
					`<queryDef schema="nms:recipient" operation="select"><select><node expr="@id"/><node expr="@email"/><node expr="@gender"/></select>
					  <where><condition expr="@email LIKE '%@example.com'"/><condition expr="@gender IN (1, 2)"/></where></queryDef>`,
					`<recipient-collection><recipient id="1" email="a@example.com" gender="1"/><recipient id="2" email="o&apos;brien@example.com" gender="2"/></recipient-collection>`},
				{"get formats every type; NULL and empty left out",
					`<queryDef schema="nms:recipient" operation="get"><select><node expr="@id"/><node expr="@email"/><node expr="@firstName"/><node expr="@lastName"/>
					  <node expr="@birthDate"/><node expr="@gender"/><node expr="@blackList"/><node expr="@created"/></select>
					  <where><condition expr="@id = 1"/></where></queryDef>`,
					`<recipient id="1" email="a@example.com" firstName="Ana" birthDate="1990-05-17" gender="1" blackList="false" created="2024-03-14 13:54:49.168Z"/>`},
				{"empty string left out", `<queryDef schema="nms:recipient" operation="get"><select><node expr="@id"/><node expr="@firstName"/><node expr="@blackList"/></select><where><condition expr="@id = 4"/></where></queryDef>`,
					`<recipient id="4"/>`},
				{"getIfExists without a row", `<queryDef schema="nms:recipient" operation="getIfExists"><select><node expr="@id"/></select><where><condition expr="@id = 999"/></where></queryDef>`,
					`<recipient/>`},
				{"getIfExists with several rows takes the first", `<queryDef schema="nms:recipient" operation="getIfExists"><select><node expr="@id"/></select><where><condition expr="@gender = 1"/></where></queryDef>`,
					`<recipient id="1"/>`},
				{"empty select", `<queryDef schema="nms:recipient"><select><node expr="@id"/></select><where><condition expr="@id &lt; 0"/></where></queryDef>`,
					`<recipient-collection/>`},
				{"count", `<queryDef schema="nms:recipient" operation="count"/>`, `<recipient count="5"/>`},
				{"count with a condition", `<queryDef schema="nms:recipient" operation="count"><where><condition expr="@gender = 1"/><condition expr="@blackList = 1" bool-operator="OR"/></where></queryDef>`,
					`<recipient count="4"/>`},
				{"paging and order", `<queryDef schema="nms:recipient" lineCount="2" startLine="1"><select><node expr="@id"/></select><orderBy><node expr="@id" sortDesc="true"/></orderBy></queryDef>`,
					`<recipient-collection><recipient id="4"/><recipient id="3"/></recipient-collection>`},
				{"date comparison", `<queryDef schema="nms:recipient"><select><node expr="@id"/></select><where><condition expr="@created >= '2024-03-14' AND @created &lt; #2024-03-15#"/></where></queryDef>`,
					`<recipient-collection><recipient id="1"/></recipient-collection>`},
				{"link hop nested and aliased, link key", `<queryDef schema="nms:broadLogRcp"><select><node expr="@id"/><node expr="@recipient-id"/><node expr="[recipient/@email]"/>
					  <node expr="[recipient/@gender]"/><node expr="[recipient/@firstName]" alias="@firstName"/><node expr="@eventDate"/></select>
					  <where><condition expr="[recipient/@email] = 'a@example.com'"/></where></queryDef>`,
					`<broadLogRcp-collection><broadLogRcp id="1" recipient-id="1" firstName="Ana" eventDate="2024-03-14 13:54:49.168Z"><recipient email="a@example.com" gender="1"/></broadLogRcp>` +
						`<broadLogRcp id="2" recipient-id="1" firstName="Ana"><recipient email="a@example.com" gender="1"/></broadLogRcp></broadLogRcp-collection>`},
				{"IS NULL and NOT", `<queryDef schema="nms:broadLogRcp"><select><node expr="@id"/></select><where><condition expr="@eventDate IS NULL AND NOT @status = 1"/></where></queryDef>`,
					`<broadLogRcp-collection><broadLogRcp id="2"/></broadLogRcp-collection>`},
				{"OR 1=1 means just that", `<queryDef schema="nms:recipient" operation="count"><where><condition expr="@id = 1 OR 1=1"/></where></queryDef>`,
					`<recipient count="5"/>`},
				{"quote in a string", `<queryDef schema="nms:recipient"><select><node expr="@id"/></select><where><condition expr="@email = 'o''brien@example.com'"/></where></queryDef>`,
					`<recipient-collection><recipient id="2"/></recipient-collection>`},
				{"classic injection is one value", `<queryDef schema="nms:recipient" operation="count"><where><condition expr="@email = 'x'' OR ''1''=''1'"/></where></queryDef>`,
					`<recipient count="0"/>`},
				{"DROP TABLE is one value", `<queryDef schema="nms:recipient"><select><node expr="@id"/><node expr="@email"/></select><where><condition expr="@email = 'x''); DROP TABLE nms_recipient;--'"/></where></queryDef>`,
					`<recipient-collection><recipient id="5" email="x&apos;); DROP TABLE nms_recipient;--"/></recipient-collection>`},
				{"the table is still there", `<queryDef schema="nms:recipient" operation="count"/>`, `<recipient count="5"/>`},
				{"literal comparisons", `<queryDef schema="nms:recipient" operation="count"><where><condition expr="'a' = 'a' AND 1.5 > 1 AND 2 IN (1, 2)"/></where></queryDef>`,
					`<recipient count="5"/>`},
			}
			for _, tt := range tests {
				el, err := svc.ExecuteQuery(context.Background(), parse(t, tt.xml))
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if got := xmlOf(el); got != tt.want {
					t.Errorf("%s\n got %s\nwant %s", tt.name, got, tt.want)
				}
			}

			_, err := svc.ExecuteQuery(context.Background(), parse(t, `<queryDef schema="nms:recipient" operation="get"><select><node expr="@id"/></select><where><condition expr="@id = 999"/></where></queryDef>`))
			if apperr.CodeOf(err) != apperr.NotFound || apperr.MessageOf(err) != "The query returned no row." {
				t.Fatalf("get without a row: %v", err)
			}
			_, err = svc.ExecuteQuery(context.Background(), parse(t, `<queryDef schema="nms:recipient"><where><condition expr="@id = ;"/></where></queryDef>`))
			if apperr.CodeOf(err) != apperr.Invalid {
				t.Fatalf("bad expression: %v", err)
			}
		})
	}
}

// The row cap holds without lineCount, and lineCount cannot raise it.
func TestExecuteRowCap(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts 10,001 rows")
	}
	ctx := context.Background()
	db := storetest.Open(t, store.SQLite, storetest.NewClock().Now)
	reg := registry(t)
	if err := db.SyncDataModel(ctx, reg); err != nil {
		t.Fatal(err)
	}
	for i := 0; i <= querydef.MaxRows; i++ {
		if err := storetest.SQLOf(t, db).InsertRow(ctx, "nms_delivery", map[string]any{"label": "d"}); err != nil {
			t.Fatal(err)
		}
	}
	svc := &querydef.Service{DB: db, Registry: reg}
	for _, lc := range []string{"", ` lineCount="20000"`} {
		el, err := svc.ExecuteQuery(ctx, parse(t, `<queryDef schema="nms:delivery"`+lc+`><select><node expr="@id"/></select></queryDef>`))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(el.ChildElements()); n != querydef.MaxRows {
			t.Fatalf("lineCount %q: %d rows", lc, n)
		}
	}
	el, err := svc.ExecuteQuery(ctx, parse(t, `<queryDef schema="nms:delivery" operation="count"/>`))
	if err != nil || !strings.Contains(xmlOf(el), `count="10001"`) {
		t.Fatalf("count: %v %v", err, el)
	}
}

// Functions and grouping (what status dashboards send) on both stores.
func TestExecuteFunctions(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			svc := seeded(t, dialect)
			tests := []struct{ name, xml, want string }{
				{"count() without alias", `<queryDef schema="nms:recipient" operation="get"><select><node expr="count()"/></select></queryDef>`,
					`<recipient expr0="5"/>`},
				{"aggregates with aliases", `<queryDef schema="nms:recipient" operation="get"><select><node expr="Count(@id)" alias="@total"/>
					  <node expr="countDistinct(@gender)" alias="@genders"/><node expr="min(@id)" alias="@first"/><node expr="MAX(@id)" alias="@last"/>
					  <node expr="sum(@gender)" alias="@genderSum"/><node expr="min(@created)" alias="@since"/><node expr="max(@email)" alias="@maxEmail"/></select>
					  <where><condition expr="@email &lt;&gt; 'x'"/></where></queryDef>`,
					`<recipient total="5" genders="3" first="1" last="5" genderSum="5" since="2024-03-14 13:54:49.168Z" maxEmail="x&apos;); DROP TABLE nms_recipient;--"/>`},
				{"groupBy with order", `<queryDef schema="nms:recipient"><select><node expr="@gender"/><node expr="count()"/></select>
					  <groupBy><node expr="@gender"/></groupBy><orderBy><node expr="@gender" sortDesc="true"/></orderBy></queryDef>`,
					`<recipient-collection><recipient gender="2" expr1="1"/><recipient gender="1" expr1="3"/><recipient gender="0" expr1="1"/></recipient-collection>`},
				{"groups are the default order", `<queryDef schema="nms:recipient"><select><node expr="count()" alias="@n"/><node expr="@gender"/></select>
					  <groupBy><node expr="@gender"/></groupBy></queryDef>`,
					`<recipient-collection><recipient n="1" gender="0"/><recipient n="3" gender="1"/><recipient n="1" gender="2"/></recipient-collection>`},
				{"having", `<queryDef schema="nms:recipient"><select><node expr="@gender"/><node expr="count()" alias="@n"/></select>
					  <groupBy><node expr="@gender"/></groupBy><having><condition expr="count() &gt; 1"/><condition expr="@gender = 0" bool-operator="OR"/></having></queryDef>`,
					`<recipient-collection><recipient gender="0" n="1"/><recipient gender="1" n="3"/></recipient-collection>`},
				{"order by an aggregate, paged", `<queryDef schema="nms:recipient" lineCount="1"><select><node expr="@gender"/><node expr="count()" alias="@n"/></select>
					  <groupBy><node expr="@gender"/></groupBy><orderBy><node expr="count()" sortDesc="true"/></orderBy></queryDef>`,
					`<recipient-collection><recipient gender="1" n="3"/></recipient-collection>`},
				{"Lower, Upper", `<queryDef schema="nms:recipient"><select><node expr="@id"/><node expr="Upper(@firstName)" alias="@up"/><node expr="Lower(Upper(@email))"/></select>
					  <where><condition expr="Lower(@email) = 'a@example.com' OR Upper(@email) = 'B@OTHER.ORG'"/></where></queryDef>`,
					`<recipient-collection><recipient id="1" up="ANA" expr2="a@example.com"/><recipient id="3" expr2="b@other.org"/></recipient-collection>`},
				{"Year, Month, Day of a datetime and a date", `<queryDef schema="nms:recipient" operation="get"><select><node expr="Year(@created)" alias="@y"/><node expr="Month(@created)" alias="@m"/>
					  <node expr="Day(@created)" alias="@d"/><node expr="Year(@birthDate)" alias="@by"/><node expr="Month(@birthDate)" alias="@bm"/><node expr="Day(@birthDate)" alias="@bd"/></select>
					  <where><condition expr="Year(@created) = 2024 AND Month(@created) IN (3, 4)"/></where></queryDef>`,
					`<recipient y="2024" m="3" d="14" by="1990" bm="5" bd="17"/>`},
				{"grouped by a function", `<queryDef schema="nms:recipient"><select><node expr="Year(@created)" alias="@year"/><node expr="count()" alias="@n"/></select>
					  <where><condition expr="@created IS NOT NULL"/></where><groupBy><node expr="Year(@created)"/></groupBy></queryDef>`,
					`<recipient-collection><recipient year="2024" n="1"/></recipient-collection>`},
				{"GetDate()", `<queryDef schema="nms:recipient" operation="get"><select><node expr="count()" alias="@n"/></select>
					  <where><condition expr="@created &lt; GetDate() AND Year(GetDate()) &gt;= 2024"/></where></queryDef>`,
					`<recipient n="1"/>`},
				{"grouped over a link, nested as ACC does", `<queryDef schema="nms:broadLogRcp"><select><node expr="[recipient/@email]"/><node expr="count()" alias="@logs"/></select>
					  <groupBy><node expr="[recipient/@email]"/></groupBy></queryDef>`,
					`<broadLogRcp-collection><broadLogRcp logs="2"><recipient email="a@example.com"/></broadLogRcp></broadLogRcp-collection>`},
			}
			for _, tt := range tests {
				el, err := svc.ExecuteQuery(context.Background(), parse(t, tt.xml))
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if got := xmlOf(el); got != tt.want {
					t.Errorf("%s\n got %s\nwant %s", tt.name, got, tt.want)
				}
			}
			el, err := svc.ExecuteQuery(context.Background(), parse(t, `<queryDef schema="nms:recipient" operation="get"><select><node expr="GetDate()" alias="@now"/></select></queryDef>`))
			if err != nil {
				t.Fatal(err)
			}
			now, ok := schemas.ParseTime(el.SelectAttrValue("now", ""))
			if !ok || !strings.HasSuffix(el.SelectAttrValue("now", ""), "Z") || time.Since(now).Abs() > time.Hour {
				t.Fatalf("GetDate(): %s", xmlOf(el))
			}
		})
	}
}
