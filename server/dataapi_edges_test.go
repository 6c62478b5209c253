package server_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/querydef"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// mustWrite posts an xtk:session#Write and fails unless it succeeded.
func mustWrite(t *testing.T, env *servertest.Env, token, doc string) {
	t.Helper()
	_, body := env.Post(t, "xtk:session#Write", writeCall("Write", token, doc))
	if !strings.Contains(body, "<WriteResponse") {
		t.Fatalf("write %s: %s", doc, body)
	}
}

// TestQueryDefDateFieldComparedWithADate: a `date` field (nms:recipient
// @birthDate) compared with a date literal. SQLite stores a date as the
// text "1980-02-29" (schemas.Type.Parse → FormatDate), but the queryDef
// binds the literal as a time.Time (querydef.bind, cTime), which the
// SQLite driver writes as "1980-02-29 00:00:00+00:00"; the comparison is
// then one of text, and "=" never holds. PostgreSQL compares DATE values
// and finds the person.
// Harm: on the default store, an operator looking a person up by date of
// birth (`@birthDate = '1980-02-29'`, `IN (…)`, a range starting on the
// day) is told nobody matches, while the same call on PostgreSQL finds
// them; `<>` returns the very person excluded.
func TestQueryDefDateFieldComparedWithADate(t *testing.T) {
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
			{`@birthDate = '1980-02-29'`, 1},
			{`@birthDate = #1980-02-29#`, 1},
			{`@birthDate IN ('1980-02-29', '1970-01-01')`, 1},
			{`@birthDate &gt;= '1980-02-29'`, 2},
			{`@birthDate &lt;= '1980-02-29'`, 1},
			{`@birthDate &lt;&gt; '1980-02-29'`, 1},
		} {
			got := queryResult(t, env, token, `<queryDef schema="nms:recipient" operation="count"><where><condition expr="`+tt.cond+`"/></where></queryDef>`)
			if want := `<recipient count="` + strconv.Itoa(tt.want) + `"/>`; got != want {
				t.Errorf("%s: got %s, want %s", tt.cond, got, want)
			}
		}
	})
}

// TestQueryDefOrderByNullsSameOnBothStores: the same ExecuteQuery, an
// <orderBy> on a field some rows leave empty, with lineCount, on each
// store. SQLite sorts NULLs first and PostgreSQL last
// (store.Render writes a bare ORDER BY), so the first page is another
// person on each store. The README notes this only for grouped queries
// ("NULL groups sort first on SQLite and last on PostgreSQL"), not for a
// plain orderBy.
// Harm: a client paging recipients or requests by a nullable field
// (firstName, confirmDeadline, lastEnd) gets different rows, and a
// different first row for `get`, depending on the store it is deployed
// on; a migration from SQLite to PostgreSQL silently changes answers.
func TestQueryDefOrderByNullsSameOnBothStores(t *testing.T) {
	answers := map[string][]string{}
	queries := []string{
		`<queryDef schema="nms:recipient" lineCount="1"><select><node expr="@email"/></select><orderBy><node expr="@firstName"/></orderBy></queryDef>`,
		`<queryDef schema="nms:recipient" lineCount="1"><select><node expr="@email"/></select><orderBy><node expr="@firstName" sortDesc="true"/></orderBy></queryDef>`,
		`<queryDef schema="nms:recipient" operation="get"><select><node expr="@email"/></select><orderBy><node expr="@firstName"/></orderBy></queryDef>`,
	}
	for _, dialect := range []string{store.SQLite, store.Postgres} {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		mustWrite(t, env, token, `<recipient xtkschema="nms:recipient" _operation="insert" email="ana@example.com" firstName="Ana"/>`)
		mustWrite(t, env, token, `<recipient xtkschema="nms:recipient" _operation="insert" email="ben@example.com"/>`)
		mustWrite(t, env, token, `<recipient xtkschema="nms:recipient" _operation="insert" email="cy@example.com" firstName="Cy"/>`)
		for _, q := range queries {
			answers[dialect] = append(answers[dialect], queryResult(t, env, token, q))
		}
	}
	for i, q := range queries {
		if s, p := answers[store.SQLite][i], answers[store.Postgres][i]; s != p {
			t.Errorf("%s\n  sqlite:   %s\n  postgres: %s", q, s, p)
		}
	}
}

// TestQueryResultBoundHoldsForEscapedValues: the 32 MiB bound of one
// ExecuteQuery (J42) counted each value before it was written: 490 rows
// of 256 aliases of a 255-byte address of quotes counted under the bound
// and were answered with 183 MiB (each " is &quot;, heap +632 MiB, J85);
// of control bytes (each written as U+FFFD, three bytes: what Latin-1
// tools store, J68), 92 MiB (J94). Values are now counted as written: the
// call is refused, or answered within twice the bound.
func TestQueryResultBoundHoldsForEscapedValues(t *testing.T) {
	for name, b := range map[string]string{"quotes": `"`, "control bytes": "\x01", "not UTF-8": "\xe9"} {
		t.Run(name, func(t *testing.T) {
			env := servertest.New(t, store.SQLite, servertest.Options{})
			env.Operator(t, "ana", "correct horse", session.RightPrivacy)
			token, _ := env.Logon(t, "ana", "correct horse")
			const n = 490 // 490 rows × 256 columns × (255 + name + 4) < 32 MiB counted as bytes
			rows := make([][]any, n)
			for i := range rows {
				rows[i] = []any{"r" + strconv.Itoa(i) + "@example.com", strings.Repeat(b, 255)}
			}
			if err := env.DB.InsertRows(context.Background(), "nms_recipient", []string{"email", "address"}, rows); err != nil {
				t.Fatal(err)
			}
			var q strings.Builder
			q.WriteString(`<queryDef schema="nms:recipient" operation="select" lineCount="` + strconv.Itoa(n) + `"><select>`)
			for i := 0; i < 256; i++ {
				q.WriteString(`<node expr="@address" alias="@a` + strconv.Itoa(i) + `"/>`)
			}
			q.WriteString(`</select></queryDef>`)
			req, err := http.NewRequest(http.MethodPost, env.URL+"/nl/jsp/soaprouter.jsp", strings.NewReader(queryCall(token, "entity", q.String())))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "text/xml; charset=utf-8")
			req.Header.Set("SOAPAction", "xtk:queryDef#ExecuteQuery")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 2048)
			k, _ := io.ReadFull(resp.Body, head)
			rest, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if strings.Contains(string(head[:k]), "The result is larger than") {
				return // refused: the bound held
			}
			if size := int64(k) + rest; size > 2*querydef.MaxResultBytes {
				t.Fatalf("one ExecuteQuery answered %d MiB (bound %d MiB): values counted before they were written", size>>20, querydef.MaxResultBytes>>20)
			}
		})
	}
}
