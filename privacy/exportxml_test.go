package privacy_test

import (
	"encoding/base64"
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// Values another tool wrote with plain SQL may hold what XML 1.0 cannot
// carry; the file stays well-formed and the value comes back exactly.
func TestExportControlCharacters(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		values := map[string]string{"first_name": "bell\x07 esc\x1b[0m", "last_name": "ok\ttab"}
		if dialect == store.SQLite {
			// PostgreSQL refuses invalid UTF-8 itself; SQLite stores it.
			values["last_name"] = "latin1 caf\xe9"
		}
		row := map[string]any{"id": int64(9401), "email": "ctl@example.com"}
		for k, v := range values {
			row[k] = v
		}
		if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_recipient", row); err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace1", "ctl@example.com", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		doc := f.export(t, id)
		if strings.ContainsAny(doc, "\x07\x1b") || strings.Contains(doc, "\xe9") {
			t.Fatalf("a control character or invalid byte is raw in the file:\n%q", doc)
		}
		got := map[string]string{}
		dec := xml.NewDecoder(strings.NewReader(doc))
		for {
			tok, err := dec.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("the file is not well-formed XML: %v\n%q", err, doc)
			}
			se, ok := tok.(xml.StartElement)
			if !ok || se.Name.Local != "row" {
				continue
			}
			attrs := map[string]string{}
			for _, a := range se.Attr {
				attrs[a.Name.Local] = a.Value
			}
			if attrs["email"] != "ctl@example.com" {
				continue
			}
			encoded := strings.Fields(attrs["_base64"])
			for _, name := range []string{"firstName", "lastName"} {
				v := attrs[name]
				for _, e := range encoded {
					if e == name {
						b, err := base64.StdEncoding.DecodeString(v)
						if err != nil {
							t.Fatalf("%s flagged base64 but is not: %v", name, err)
						}
						v = string(b)
					}
				}
				got[name] = v
			}
			if len(encoded) == 0 {
				t.Errorf("no _base64 flag on the row: %v", attrs)
			}
		}
		if got["firstName"] != values["first_name"] || got["lastName"] != values["last_name"] {
			t.Fatalf("values do not come back exactly: %q\n%q", got, doc)
		}
	})
}
