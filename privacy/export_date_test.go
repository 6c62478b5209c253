package privacy_test

import (
	"encoding/base64"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// Helpers that read the access file (collect's export) back with a real
// XML parser, as the person receiving it would.

// fileRow is one <row> of the file: its table, and its attributes with
// the _base64 ones decoded.
type fileRow struct {
	table string
	attrs map[string]string
}

// parseFile reads the whole file with encoding/xml (which refuses what is
// not well-formed: duplicate attributes, illegal characters) and returns
// its rows.
func parseFile(t *testing.T, doc string) []fileRow {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(doc))
	var rows []fileRow
	table := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the file is not well-formed XML: %v\n%s", err, tail(doc, 2000))
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch se.Name.Local {
		case "table":
			for _, a := range se.Attr {
				if a.Name.Local == "name" {
					table = a.Value
				}
			}
		case "row":
			attrs := map[string]string{}
			seen := map[string]bool{}
			for _, a := range se.Attr {
				if seen[a.Name.Local] {
					t.Fatalf("attribute %q twice on one row of %s (not well-formed XML)", a.Name.Local, table)
				}
				seen[a.Name.Local] = true
				attrs[a.Name.Local] = a.Value
			}
			for _, name := range strings.Fields(attrs["_base64"]) {
				b, err := base64.StdEncoding.DecodeString(attrs[name])
				if err != nil {
					t.Fatalf("%s flagged base64 but is not: %v", name, err)
				}
				attrs[name] = string(b)
			}
			delete(attrs, "_base64")
			rows = append(rows, fileRow{table, attrs})
		}
	}
	return rows
}

// rowsOf returns the rows of one table of the file.
func rowsOf(rows []fileRow, table string) []map[string]string {
	var out []map[string]string
	for _, r := range rows {
		if r.table == table {
			out = append(out, r.attrs)
		}
	}
	return out
}

// TestExportDateKeepsItsDay: a DATE that another tool stored on SQLite
// with its zone ("1990-05-01 00:00:00+02:00", what database/sql drivers
// write for a local midnight) comes back from the driver as a time at
// midnight in that zone. schemas.Type.Format keeps the day "in its own
// location" for exactly this, and ExecuteQuery gets 1990-05-01, but
// store.StreamRows converted every time.Time to UTC before Format saw it:
// the access file said birthDate="1990-04-30", a day early for any date
// stored east of UTC, and disagreed with the service's own queries. A
// datetime stored with a zone is still written in UTC. PostgreSQL's DATE
// has no zone; it runs the same for the datetime.
func TestExportDateKeepsItsDay(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx,
			"INSERT INTO nms_recipient (id, email, birth_date, created) VALUES (9201, 'dz@example.com', '1990-05-01 00:00:00+02:00', '2020-01-01 01:30:00+02:00')"); err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace1", "dz@example.com", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		// What the service's own ExecuteQuery says of the same row.
		f.env.Operator(t, "dz", "dz password", session.RightPrivacy)
		token, _ := f.env.Logon(t, "dz", "dz password")
		_, body := f.env.Post(t, "xtk:queryDef#ExecuteQuery", servertest.Envelope("", `<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken>`+token+
			`</sessiontoken><entity><queryDef schema="nms:recipient" operation="get"><select><node expr="@birthDate"/><node expr="@created"/></select>`+
			`<where><condition expr="@id = 9201"/></where></queryDef></entity></m:ExecuteQuery>`))
		query := servertest.Between(body, "<pdomOutput", "</pdomOutput>")
		if !strings.Contains(query, `birthDate="1990-05-01"`) {
			t.Fatalf("ExecuteQuery: %s", query)
		}
		rcp := rowsOf(parseFile(t, f.export(t, id)), "nms:recipient")
		if len(rcp) != 1 {
			t.Fatalf("%d recipients in the file, want 1", len(rcp))
		}
		if rcp[0]["birthDate"] != "1990-05-01" || rcp[0]["created"] != "2019-12-31 23:30:00.000Z" {
			t.Fatalf("in the file: birthDate %q (stored 1990-05-01 +02:00), created %q (stored 2020-01-01 01:30 +02:00); ExecuteQuery answers: %s",
				rcp[0]["birthDate"], rcp[0]["created"], query)
		}
	})
}
