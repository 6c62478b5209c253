package schemas

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestFieldNamedLikeTheFileAttributeRefused: the access file writes each
// field as an attribute of its row, beside its own _base64 (the names of
// the row's base64-encoded values). A field named "_base64" gave a row
// two _base64 attributes (not well-formed XML: a reader refuses the whole
// file) or made the reader decode a value that was never encoded; one
// named "xmlns" declared a namespace on the row. Both are refused at
// start, with the file and line, in a table of its own or an extension.
func TestFieldNamedLikeTheFileAttributeRefused(t *testing.T) {
	cases := map[string]struct{ file, doc, want string }{
		"table _base64": {"cus_note.xml", `<schema namespace="cus" name="note">
  <element name="note" autopk="true">
    <attribute name="body" type="memo"/>
    <attribute name="_base64" type="string" length="64" sqlname="b64"/>
    <element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/>
  </element>
</schema>`, `cus_note.xml:4: attribute name "_base64" is reserved`},
		"table xmlns": {"cus_note.xml", `<schema namespace="cus" name="note">
  <element name="note" autopk="true">
    <attribute name="xmlns" type="string"/>
  </element>
</schema>`, `cus_note.xml:3: attribute name "xmlns" is reserved`},
		"extension _base64": {"cus_recipient.xml", `<schema namespace="cus" name="recipient" extendedSchema="nms:recipient">
  <element name="recipient">
    <attribute name="_base64" type="string" sqlname="b64"/>
  </element>
</schema>`, `cus_recipient.xml:3: attribute name "_base64" is reserved`},
		// Any name starting with _: a Write reads such attributes as
		// operations, so the field could never be written.
		"table _note": {"cus_note.xml", `<schema namespace="cus" name="note">
  <element name="note" autopk="true">
    <attribute name="_note" type="string" sqlname="note_text"/>
  </element>
</schema>`, `cus_note.xml:3: attribute name "_note" is reserved`},
		"link _owner": {"cus_note.xml", `<schema namespace="cus" name="note">
  <element name="note" autopk="true">
    <element name="_owner" type="link" target="nms:recipient"/>
  </element>
</schema>`, `cus_note.xml:3: link name "_owner" is reserved`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(fstest.MapFS{c.file: {Data: []byte(c.doc)}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
	// Names that only look alike stay allowed.
	ok := fstest.MapFS{"cus_note.xml": {Data: []byte(`<schema namespace="cus" name="note">
  <element name="note" autopk="true">
    <attribute name="base64" type="string"/>
    <attribute name="xmlnsUri" type="string"/>
  </element>
</schema>`)}}
	if _, err := New(ok); err != nil {
		t.Fatal(err)
	}
}
