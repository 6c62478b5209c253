package schemas

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/beevik/etree"
)

// The data description of a schema: its main element (the table), its
// attributes (columns), its links to other schemas (foreign keys, with their
// integrity) and its enumerations. ACC's own vocabulary throughout:
// sqltable, sqlname, autopk, view, revIntegrity, extendedSchema.

// Link integrity values (ACC). A link whose revIntegrity is "own" is
// deleted with its target: that is what privacy traversal follows.
const (
	IntegrityNormal  = "normal"
	IntegrityOwn     = "own"
	IntegrityOwnCopy = "owncopy"
	IntegrityNeutral = "neutral"
	IntegrityDefine  = "define"
)

var integrities = map[string]bool{IntegrityNormal: true, IntegrityOwn: true, IntegrityOwnCopy: true, IntegrityNeutral: true, IntegrityDefine: true}

// Data types of attributes, beyond the method parameter types.
const TypeMemo = "memo"

// isAttributeType reports whether name may type an attribute (types.go).
func isAttributeType(name string) bool { t := TypeOf(name); return t != nil && t.Attribute }

// isParamType reports whether name may type a method parameter.
func isParamType(name string) bool { t := TypeOf(name); return t != nil && t.Param }

// Attribute is one field of a schema's main element: a column.
type Attribute struct {
	Name    string // "email"; on the wire "@email"
	Type    string
	Length  int // strings: maximum length in characters (0 = type default)
	Label   string
	SQLName string // column name
	Enum    string // enumeration name, for byte/short/long/string attributes
	NotNull bool
	PK      bool // the autopk id
}

// Link is a foreign key from the schema to a target schema.
type Link struct {
	Name         string // "recipient"; on the wire "@recipient-id"
	Target       string // "nms:recipient"
	Label        string
	SQLName      string // foreign key column, "recipient_id"
	Integrity    string // what deleting the source does to the target: never own or owncopy (refused at load)
	RevIntegrity string // what deleting the target does to the source: "own" deletes it
	Schema       *Schema
}

// WireName is the attribute that carries the link's key in documents:
// "recipient-id", as ACC writes it.
func (l *Link) WireName() string { return l.Name + "-id" }

// EnumValue is one value of an enumeration.
type EnumValue struct{ Name, Label, Value string }

// Enumeration is a named list of values served in the schema.
type Enumeration struct {
	Name     string
	BaseType string
	Values   []EnumValue
}

// Value returns the stored value of the named entry.
func (e *Enumeration) Value(name string) (string, bool) {
	for _, v := range e.Values {
		if v.Name == name {
			return v.Value, true
		}
	}
	return "", false
}

// Data is the description of a schema's main element.
type Data struct {
	Table        string // sqltable
	View         bool   // the table is the service's own (a versioned migration creates it), not created from the schema
	Attributes   []*Attribute
	Links        []*Link
	Enumerations map[string]*Enumeration
	// Existing marks a customer's table that the service neither creates
	// nor alters (view="true" in a custom file: ACC's "not created by the
	// database update", an ETL's table mapped into the data model). Its
	// rows are the data model's like any custom table's: collected,
	// deleted, counted.
	Existing bool
}

// Attribute finds an attribute by name.
func (d *Data) Attribute(name string) (*Attribute, bool) {
	for _, a := range d.Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return nil, false
}

// Link finds a link by name.
func (d *Data) Link(name string) (*Link, bool) {
	for _, l := range d.Links {
		if l.Name == name {
			return l, true
		}
	}
	return nil, false
}

// columns returns the set of the table's columns: its attributes' and its
// links'.
func (d *Data) columns() map[string]bool {
	out := make(map[string]bool, len(d.Attributes)+len(d.Links))
	for _, a := range d.Attributes {
		out[a.SQLName] = true
	}
	for _, l := range d.Links {
		out[l.SQLName] = true
	}
	return out
}

// PrimaryKey returns the autopk attribute, or nil.
func (d *Data) PrimaryKey() *Attribute {
	for _, a := range d.Attributes {
		if a.PK {
			return a
		}
	}
	return nil
}

var (
	namePattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	tablePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// EncodedAttr is the attribute of the access file's rows (the collect's
// export) that names the row's base64-encoded values: the file writes it
// itself, beside the fields.
const EncodedAttr = "_base64"

// fieldNameReserved is why a field (attribute or link) may not start with
// "_": ACC's xmlns:persist reads such attributes of a Write as operations
// (_operation, _key), so the field could never be written, and the access
// file writes _base64 itself.
const fieldNameReserved = "names starting with _ are ACC's operations in a Write (_operation, _key) and the access file's (_base64)"

// reservedNames are the field names a schema may not use, with why: the
// access file writes each field as an attribute of its row, so a field
// named like an attribute the file writes itself, or like an XML
// namespace declaration, would give a row two attributes of one name (not
// well-formed XML) or change what the reader makes of it. namePattern
// already keeps out "xmlns:…" and any other name with a colon.
var reservedNames = map[string]string{
	EncodedAttr: "the access file writes it on each row that has base64-encoded values",
	"xmlns":     "it declares an XML namespace",
}

// SQLIdent turns an ACC name into a column or table name: lower snake case,
// "mobilePhone" → "mobile_phone", "OPTOUTCCPA" → "optoutccpa".
func SQLIdent(name string) string {
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]))
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1])
			if prevLower || nextLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// lines maps each element of doc to its line in data, for error messages.
// etree keeps no positions, so a second pass with encoding/xml pairs start
// elements in document order.
func lines(data []byte, doc *etree.Document) map[*etree.Element]int {
	var order []*etree.Element
	var walk func(e *etree.Element)
	walk = func(e *etree.Element) {
		order = append(order, e)
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	if doc.Root() != nil {
		walk(doc.Root())
	}
	out := map[*etree.Element]int{}
	dec := xml.NewDecoder(bytes.NewReader(data))
	i := 0
	for i < len(order) {
		off := dec.InputOffset()
		tok, err := dec.RawToken()
		if err == io.EOF || err != nil {
			break
		}
		if _, ok := tok.(xml.StartElement); ok {
			out[order[i]] = 1 + bytes.Count(data[:off], []byte("\n"))
			i++
		}
	}
	return out
}

// schemaError names the file and line of a problem in a schema document.
type schemaError struct {
	file string
	line int
	msg  string
}

func (e *schemaError) Error() string {
	if e.line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.msg)
	}
	return e.file + ": " + e.msg
}

// parseData reads the main element of a schema (the <element> whose name is
// the schema's name), if it describes a table.
func parseData(file string, pos map[*etree.Element]int, s *Schema, root *etree.Element, extension, custom bool) (*Data, error) {
	fail := func(el *etree.Element, format string, args ...any) error {
		return &schemaError{file: file, line: pos[el], msg: fmt.Sprintf(format, args...)}
	}
	enums := map[string]*Enumeration{}
	for _, el := range root.SelectElements("enumeration") {
		e := &Enumeration{Name: el.SelectAttrValue("name", ""), BaseType: el.SelectAttrValue("basetype", TypeString)}
		if !namePattern.MatchString(e.Name) {
			return nil, fail(el, "enumeration name %q is not a valid name", e.Name)
		}
		for _, v := range el.SelectElements("value") {
			e.Values = append(e.Values, EnumValue{Name: v.SelectAttrValue("name", ""), Label: v.SelectAttrValue("label", ""), Value: v.SelectAttrValue("value", "")})
		}
		enums[e.Name] = e
	}
	var main *etree.Element
	for _, el := range root.SelectElements("element") {
		if el.SelectAttrValue("name", "") == s.Name {
			main = el
		}
	}
	if main == nil || (len(main.SelectElements("attribute")) == 0 && len(main.SelectElements("element")) == 0) {
		if len(enums) > 0 {
			return &Data{Enumerations: enums, View: true}, nil
		}
		return nil, nil
	}
	// view="true" in a custom file is a customer's table, never one of
	// the service's own (those are refused by name): left out of the
	// owned part as one, the rows it holds of a subject were kept.
	view := main.SelectAttrValue("view", "") == "true"
	d := &Data{
		Table:        main.SelectAttrValue("sqltable", s.Namespace+"_"+SQLIdent(s.Name)),
		View:         view && !custom,
		Existing:     view && custom,
		Enumerations: enums,
	}
	if !tablePattern.MatchString(d.Table) {
		return nil, fail(main, "sqltable %q must be lower case letters, digits and _", d.Table)
	}
	columns := map[string]bool{}
	addColumn := func(el *etree.Element, col string) error {
		if !tablePattern.MatchString(col) {
			return fail(el, "sqlname %q must be lower case letters, digits and _", col)
		}
		if columns[col] {
			return fail(el, "column %q is defined twice", col)
		}
		columns[col] = true
		return nil
	}
	if main.SelectAttrValue("autopk", "") == "true" {
		d.Attributes = append(d.Attributes, &Attribute{Name: "id", Type: TypeLong, Label: "Primary key", SQLName: "id", PK: true, NotNull: true})
		columns["id"] = true
	}
	for _, el := range main.ChildElements() {
		switch el.Tag {
		case "attribute":
			a := &Attribute{
				Name:    el.SelectAttrValue("name", ""),
				Type:    el.SelectAttrValue("type", TypeString),
				Label:   el.SelectAttrValue("label", ""),
				Enum:    el.SelectAttrValue("enum", ""),
				NotNull: el.SelectAttrValue("notNull", "") == "true",
			}
			if !namePattern.MatchString(a.Name) {
				return nil, fail(el, "attribute name %q is not a valid name", a.Name)
			}
			if why, reserved := reservedNames[a.Name]; reserved {
				return nil, fail(el, "attribute name %q is reserved: %s", a.Name, why)
			}
			if strings.HasPrefix(a.Name, "_") {
				return nil, fail(el, "attribute name %q is reserved: %s", a.Name, fieldNameReserved)
			}
			if _, dup := d.Attribute(a.Name); dup {
				return nil, fail(el, "attribute %q is defined twice", a.Name)
			}
			if !isAttributeType(a.Type) {
				return nil, fail(el, "attribute %q has an unknown type %q", a.Name, a.Type)
			}
			if l := el.SelectAttrValue("length", ""); l != "" {
				n, err := strconv.Atoi(l)
				if err != nil || n < 1 || n > 4000 {
					return nil, fail(el, "attribute %q: length must be 1 to 4000", a.Name)
				}
				a.Length = n
			}
			// An enumeration of another schema is written "nms:gdprRequest:status"
			// and checked once every schema is read.
			if a.Enum != "" && strings.Count(a.Enum, ":") != 2 && enums[a.Enum] == nil {
				return nil, fail(el, "attribute %q: unknown enumeration %q", a.Name, a.Enum)
			}
			a.SQLName = el.SelectAttrValue("sqlname", SQLIdent(a.Name))
			if err := addColumn(el, a.SQLName); err != nil {
				return nil, err
			}
			d.Attributes = append(d.Attributes, a)
		case "element":
			if el.SelectAttrValue("type", "") != "link" {
				return nil, fail(el, "only link elements are supported inside <element name=%q>", s.Name)
			}
			l := &Link{
				Name:         el.SelectAttrValue("name", ""),
				Target:       el.SelectAttrValue("target", ""),
				Label:        el.SelectAttrValue("label", ""),
				Integrity:    el.SelectAttrValue("integrity", IntegrityNormal),
				RevIntegrity: el.SelectAttrValue("revIntegrity", IntegrityNormal),
				Schema:       s,
			}
			if !namePattern.MatchString(l.Name) {
				return nil, fail(el, "link name %q is not a valid name", l.Name)
			}
			if strings.HasPrefix(l.Name, "_") {
				return nil, fail(el, "link name %q is reserved: %s", l.Name, fieldNameReserved)
			}
			if _, dup := d.Link(l.Name); dup {
				return nil, fail(el, "link %q is defined twice", l.Name)
			}
			if !strings.Contains(l.Target, ":") {
				return nil, fail(el, "link %q: target must be a schema id such as nms:recipient", l.Name)
			}
			if !integrities[l.Integrity] || !integrities[l.RevIntegrity] {
				return nil, fail(el, "link %q: integrity must be one of normal, own, owncopy, neutral, define", l.Name)
			}
			// The traversal follows owning links from the owned row to
			// its owner (revIntegrity). An owning integrity on the link's
			// own side (the target deleted with this row) would need the
			// other way too — reading this row's column to reach the
			// target, deleting the target after its only path is gone —
			// and a target several rows name (one card, two recipients)
			// would be deleted as one person's. Refused, rather than read
			// and ignored: the target was left behind.
			if l.Integrity == IntegrityOwn || l.Integrity == IntegrityOwnCopy {
				return nil, fail(el, "link %q: integrity=%q (the target deleted with this row) is not supported: declare the link on %s instead, pointing at this table, with revIntegrity=\"own\"", l.Name, l.Integrity, l.Target)
			}
			// A link is its column holding the target's id. ACC's other
			// forms would be read as one: a <join> on other fields, or the
			// collection side (unbound) declared on the parent, would get
			// an empty column of their own, and the rows they link would
			// be neither collected nor deleted with the subject.
			if el.SelectElement("join") != nil {
				return nil, fail(el, "link %q: <join> is not supported: a link is keyed on the target's id, held in the link's own column (%s_id, or the column named by sqlname=\"…\"); remove the <join> (and the field it names, if that field is the column)", l.Name, SQLIdent(l.Name))
			}
			if el.SelectAttrValue("unbound", "") == "true" {
				return nil, fail(el, "link %q: unbound=\"true\" (the collection side of a link) is not supported: declare the link only on the other table, pointing at this one", l.Name)
			}
			l.SQLName = el.SelectAttrValue("sqlname", SQLIdent(l.Name)+"_id")
			if err := addColumn(el, l.SQLName); err != nil {
				return nil, err
			}
			d.Links = append(d.Links, l)
		case "key", "compute-string", "sysFilter", "dbindex":
			// Descriptive; our keys are the autopk id and the link columns.
		default:
			return nil, fail(el, "unexpected <%s> in <element name=%q>", el.Tag, s.Name)
		}
	}
	if !d.View && !extension && d.PrimaryKey() == nil {
		return nil, fail(main, "a table schema needs autopk=\"true\" (an integer id)")
	}
	return d, nil
}
