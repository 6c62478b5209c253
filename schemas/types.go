package schemas

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The ACC types in one table: every package that needs to know what a type
// is on the wire (WSDL, SOAP responses), in a column (the store), in a
// comparison (queryDef) or in a document (persist, query results, the
// data-subject file) reads it here.

// Class groups the types whose values compare with each other.
type Class int

// Classes of types.
const (
	ClassNone   Class = iota
	ClassNumber       // integers and floating-point numbers
	ClassText         // strings and memos
	ClassBool         // booleans
	ClassTime         // dates and datetimes
	ClassXML          // DOM elements and documents (method parameters only)
)

// String names the class in a message: "text", "a number".
func (c Class) String() string {
	switch c {
	case ClassNumber:
		return "a number"
	case ClassText:
		return "text"
	case ClassBool:
		return "a boolean"
	case ClassTime:
		return "a date"
	case ClassXML:
		return "an XML element"
	}
	return "a value"
}

// Type describes one ACC type.
type Type struct {
	Name  string // as ACC spells it in schema documents: "long"
	XSD   string // XML Schema type a WSDL declares, local name: "int", "Element"
	XSI   string // xsi:type of a SOAP response parameter: "xsd:int", "ns:Element"
	Class Class
	// Integers: Bits is the width of a value ACC accepts in a document;
	// Min and Max the range the column holds (byte is stored as SMALLINT).
	Bits     int
	Min, Max int64
	// Column type per dialect; a string with a length is VARCHAR(n) on
	// PostgreSQL (the store decides). Empty: not a column type.
	SQLite, Postgres string
	Param            bool // may type a method parameter
	Attribute        bool // may type an attribute of a data schema
}

// Float reports whether the type is a floating-point number.
func (t *Type) Float() bool { return t.Class == ClassNumber && t.Bits == 0 }

// IsXML reports whether values of the type are XML elements.
func (t *Type) IsXML() bool { return t.Class == ClassXML }

var typeTable = []*Type{
	{Name: TypeString, XSD: "string", XSI: "xsd:string", Class: ClassText, SQLite: "TEXT", Postgres: "TEXT", Param: true, Attribute: true},
	{Name: TypeMemo, XSD: "string", XSI: "xsd:string", Class: ClassText, SQLite: "TEXT", Postgres: "TEXT", Attribute: true},
	{Name: TypeBoolean, XSD: "boolean", XSI: "xsd:boolean", Class: ClassBool, SQLite: "BOOLEAN", Postgres: "BOOLEAN", Param: true, Attribute: true},
	{Name: TypeByte, XSD: "byte", XSI: "xsd:byte", Class: ClassNumber, Bits: 8, Min: math.MinInt16, Max: math.MaxInt16, SQLite: "INTEGER", Postgres: "SMALLINT", Param: true, Attribute: true},
	{Name: TypeShort, XSD: "short", XSI: "xsd:short", Class: ClassNumber, Bits: 16, Min: math.MinInt16, Max: math.MaxInt16, SQLite: "INTEGER", Postgres: "SMALLINT", Param: true, Attribute: true},
	{Name: TypeLong, XSD: "int", XSI: "xsd:int", Class: ClassNumber, Bits: 32, Min: math.MinInt32, Max: math.MaxInt32, SQLite: "INTEGER", Postgres: "INTEGER", Param: true, Attribute: true},
	{Name: TypeInt, XSD: "int", XSI: "xsd:int", Class: ClassNumber, Bits: 32, Min: math.MinInt32, Max: math.MaxInt32, SQLite: "INTEGER", Postgres: "INTEGER", Param: true},
	{Name: TypeInt64, XSD: "long", XSI: "xsd:long", Class: ClassNumber, Bits: 64, Min: math.MinInt64, Max: math.MaxInt64, SQLite: "BIGINT", Postgres: "BIGINT", Param: true, Attribute: true},
	{Name: TypeFloat, XSD: "float", XSI: "xsd:float", Class: ClassNumber, SQLite: "REAL", Postgres: "DOUBLE PRECISION", Param: true, Attribute: true},
	{Name: TypeDouble, XSD: "double", XSI: "xsd:double", Class: ClassNumber, SQLite: "REAL", Postgres: "DOUBLE PRECISION", Param: true, Attribute: true},
	{Name: TypeDatetime, XSD: "dateTime", XSI: "xsd:dateTime", Class: ClassTime, SQLite: "DATETIME", Postgres: "TIMESTAMPTZ", Param: true, Attribute: true},
	{Name: TypeDate, XSD: "date", XSI: "xsd:date", Class: ClassTime, SQLite: "DATE", Postgres: "DATE", Param: true, Attribute: true},
	{Name: TypePrimaryKey, XSD: "string", XSI: "xsd:primarykey", Class: ClassText, Param: true},
	{Name: TypeDOMElement, XSD: "Element", XSI: "ns:Element", Class: ClassXML, Param: true},
	{Name: TypeDOMDocument, XSD: "Element", XSI: "ns:Element", Class: ClassXML, Param: true},
}

var types = func() map[string]*Type {
	m := make(map[string]*Type, len(typeTable))
	for _, t := range typeTable {
		m[t.Name] = t
	}
	return m
}()

// TypeOf returns the descriptor of an ACC type, or nil for a name that is
// none.
func TypeOf(name string) *Type { return types[name] }

// timeLayouts are the date forms accepted in documents and expressions and
// read back from SQLite, which returns datetimes as text when it cannot
// parse them.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// ParseTime reads a date or timestamp; without a zone it is UTC, as ACC
// documents write them.
func ParseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			// Years 1 to 9999: both stores hold them (PostgreSQL has no
			// year 0, a birthday exported without its year).
			if t = t.UTC(); t.Year() < 1 || t.Year() > 9999 {
				return time.Time{}, false
			}
			return t, true
		}
	}
	return time.Time{}, false
}

// ParseError says what a value should have been: "@email must be <Want>."
// Length is set instead when a string is longer than its attribute allows.
type ParseError struct {
	Want   string
	Length int
}

func (e *ParseError) Error() string {
	if e.Length > 0 {
		return fmt.Sprintf("longer than %d characters", e.Length)
	}
	return "must be " + e.Want
}

// MaxTextBytes bounds one text value of a document.
const MaxTextBytes = 1 << 20

// Parse reads text, a value as ACC writes it in a document, into the Go
// value stored in a column of this type: string, bool, int64, float64,
// time.Time, or a date as "2006-01-02". length is the attribute's maximum
// length in characters for strings (0: none). The error is a *ParseError.
func (t *Type) Parse(text string, length int) (any, error) {
	bad := func(what string) error { return &ParseError{Want: what} }
	switch t.Class {
	case ClassText:
		for _, r := range text {
			if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
				return nil, bad("text without control characters")
			}
		}
		if t.Name == TypeString && length > 0 && utf8.RuneCountInString(text) > length {
			return nil, &ParseError{Length: length}
		}
		if len(text) > MaxTextBytes {
			return nil, bad("at most 1 MiB")
		}
		return text, nil
	case ClassBool:
		switch text {
		case "true", "1":
			return true, nil
		case "false", "0":
			return false, nil
		}
		return nil, bad("true, false, 1 or 0")
	case ClassNumber:
		if t.Float() {
			v, err := strconv.ParseFloat(text, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, bad("a number")
			}
			return v, nil
		}
		v, err := strconv.ParseInt(text, 10, t.Bits)
		if err != nil {
			return nil, bad("an integer of " + strconv.Itoa(t.Bits) + " bits")
		}
		return v, nil
	case ClassTime:
		tm, ok := ParseTime(text)
		if t.Name == TypeDate {
			if !ok {
				return nil, bad("a date such as 2024-05-01")
			}
			return FormatDate(tm), nil
		}
		if !ok {
			return nil, bad("a date and time such as 2024-05-01 12:00:00.000Z")
		}
		return tm, nil
	}
	return nil, bad("of a supported type")
}

// Format renders a stored value of this type as ACC writes it in a
// document, from whatever each dialect hands back (SQLite keeps timestamps
// as text and booleans as integers, PostgreSQL returns time.Time and bool):
// integers plain, booleans true/false, datetimes "2006-01-02 15:04:05.000Z"
// in UTC, dates "2006-01-02". ok is false for NULL and the empty string,
// which ACC leaves out. t may be nil (a value of no declared type).
func (t *Type) Format(v any) (s string, ok bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case []byte:
		v = string(x)
	}
	class := ClassNone
	if t != nil {
		class = t.Class
	}
	switch class {
	case ClassBool:
		switch x := v.(type) {
		case bool:
			return strconv.FormatBool(x), true
		case int64:
			return strconv.FormatBool(x != 0), true
		case string:
			switch strings.ToLower(x) {
			case "1", "t", "true":
				return "true", true
			case "0", "f", "false":
				return "false", true
			}
		}
	case ClassTime:
		date := t.Name == TypeDate
		switch x := v.(type) {
		case time.Time:
			if date {
				// A DATE comes back at midnight in the session's zone:
				// keep its calendar day.
				return FormatDate(x), true
			}
			return FormatDateTime(x), true
		case string:
			if x == "" {
				return "", false
			}
			if tm, ok := ParseTime(x); ok {
				if date {
					return FormatDate(tm), true
				}
				return FormatDateTime(tm), true
			}
			return x, true
		}
	case ClassNumber:
		if x, ok := v.(float64); ok && t.Float() {
			return strconv.FormatFloat(x, 'f', -1, 64), true
		}
	}
	switch x := v.(type) {
	case string:
		return x, x != ""
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		if class != ClassText {
			if x {
				return "1", true
			}
			return "0", true
		}
		return strconv.FormatBool(x), true
	case time.Time:
		return FormatDateTime(x), true
	}
	return fmt.Sprint(v), true
}
