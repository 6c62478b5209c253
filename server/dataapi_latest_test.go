package server_test

import (
	"strconv"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestQueryDefDateFieldComparedByItsDay: a `date` field compared with a
// time is compared with that time's day, on both stores. PostgreSQL always
// did so (the bound value takes the column's type, date); SQLite compared
// the stored text 1980-02-29 with the bound time's text, which made the
// day equal to nothing (J83) and a time of the same day later than it. A
// review of J83 expected midnight semantics on PostgreSQL too; the stores
// are checked here to agree on the day.
func TestQueryDefDateFieldComparedByItsDay(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		mustWrite(t, env, token, `<recipient xtkschema="nms:recipient" _operation="insert" email="ana@example.com" birthDate="1980-02-29"/>`)
		mustWrite(t, env, token, `<recipient xtkschema="nms:recipient" _operation="insert" email="ben@example.com" birthDate="1990-01-01"/>`)
		for _, tt := range []struct {
			cond string
			want int
		}{
			{`@birthDate &lt; #1980-02-29 12:00:00Z#`, 0},
			{`@birthDate &lt; '1980-02-29 12:00:00.000Z'`, 0},
			{`@birthDate = #1980-02-29 12:00:00Z#`, 1},
			{`@birthDate &gt;= #1980-02-29 12:00:00Z#`, 2},
			{`@birthDate &gt; #1980-02-29 23:59:59Z#`, 1},
		} {
			got := queryResult(t, env, token, `<queryDef schema="nms:recipient" operation="count"><where><condition expr="`+tt.cond+`"/></where></queryDef>`)
			if want := `<recipient count="` + strconv.Itoa(tt.want) + `"/>`; got != want {
				t.Errorf("%s: got %s, want %s (a date is compared by its day)", tt.cond, got, want)
			}
		}
	})
}
