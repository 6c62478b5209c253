package schemas

import (
	"errors"
	"math"
	"testing"
	"time"
)

// TestTypeTable: every type the registry accepts has a complete row, and
// the parameter and attribute sets are exactly those of ACC's documents.
func TestTypeTable(t *testing.T) {
	params := []string{TypeString, TypeBoolean, TypeByte, TypeShort, TypeLong, TypeInt, TypeInt64, TypeFloat,
		TypeDouble, TypeDatetime, TypeDate, TypePrimaryKey, TypeDOMElement, TypeDOMDocument}
	attrs := []string{TypeString, TypeMemo, TypeBoolean, TypeByte, TypeShort, TypeLong, TypeInt64, TypeFloat,
		TypeDouble, TypeDatetime, TypeDate}
	for _, n := range params {
		if !isParamType(n) {
			t.Errorf("%s is not a parameter type", n)
		}
	}
	for _, n := range attrs {
		typ := TypeOf(n)
		if !isAttributeType(n) || typ.SQLite == "" || typ.Postgres == "" || typ.Class == ClassNone || typ.Class == ClassXML {
			t.Errorf("%s: incomplete attribute type %+v", n, typ)
		}
		if typ.Class == ClassNumber && !typ.Float() && (typ.Min >= 0 || typ.Max <= 0 || typ.Bits == 0) {
			t.Errorf("%s: integer without a range", n)
		}
	}
	if n := len(typeTable); n != len(params)+1 {
		t.Errorf("%d types, want %d", n, len(params)+1)
	}
	for _, typ := range typeTable {
		if typ.XSD == "" || typ.XSI == "" {
			t.Errorf("%s has no XML Schema type", typ.Name)
		}
	}
	if TypeOf("varchar") != nil || isParamType(TypeMemo) || isAttributeType(TypeDOMElement) {
		t.Error("the type sets are wider than ACC's")
	}
}

func TestParse(t *testing.T) {
	ok := []struct {
		typ, text string
		want      any
	}{
		{TypeByte, "-128", int64(-128)},
		{TypeLong, "2147483647", int64(math.MaxInt32)},
		{TypeInt64, "-9223372036854775808", int64(math.MinInt64)},
		{TypeDouble, "1.5", 1.5},
		{TypeBoolean, "1", true},
		{TypeDate, "2024-05-01 23:00:00Z", "2024-05-01"},
		{TypeDatetime, "2024-05-01 12:00:00.000Z", time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)},
		{TypeMemo, "a\nb", "a\nb"},
	}
	for _, tt := range ok {
		got, err := TypeOf(tt.typ).Parse(tt.text, 0)
		if err != nil || got != tt.want {
			t.Errorf("%s %q: %v %v, want %v", tt.typ, tt.text, got, err, tt.want)
		}
	}
	bad := []struct{ typ, text, want string }{
		{TypeByte, "128", "an integer of 8 bits"},
		{TypeShort, "1.0", "an integer of 16 bits"},
		{TypeFloat, "NaN", "a number"},
		{TypeBoolean, "yes", "true, false, 1 or 0"},
		{TypeString, "a\x00", "text without control characters"},
		{TypeDate, "May 1st", "a date such as 2024-05-01"},
	}
	for _, tt := range bad {
		_, err := TypeOf(tt.typ).Parse(tt.text, 0)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Want != tt.want {
			t.Errorf("%s %q: %v, want %q", tt.typ, tt.text, err, tt.want)
		}
	}
	_, err := TypeOf(TypeString).Parse("abcd", 3)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Length != 3 {
		t.Errorf("length: %v", err)
	}
	if _, err := TypeOf(TypeMemo).Parse("abcd", 3); err != nil {
		t.Errorf("a memo has no length: %v", err)
	}
}

func TestFormat(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 5e6, time.FixedZone("x", 3600))
	tests := []struct {
		typ  string
		v    any
		want string
		ok   bool
	}{
		{TypeBoolean, int64(1), "true", true},
		{TypeBoolean, "f", "false", true},
		{TypeBoolean, true, "true", true},
		{TypeDatetime, at, "2024-05-01 11:00:00.005Z", true},
		{TypeDatetime, "2024-05-01 12:00:00+00", "2024-05-01 12:00:00.000Z", true},
		{TypeDate, at, "2024-05-01", true},
		{TypeDate, "2024-05-01", "2024-05-01", true},
		{TypeDouble, 1.25, "1.25", true},
		{TypeDouble, 2.0, "2", true},
		{TypeLong, float64(3), "3", true},
		{TypeLong, true, "1", true},
		{TypeString, true, "true", true},
		{TypeString, "", "", false},
		{TypeString, nil, "", false},
		{TypeString, []byte("x"), "x", true},
		{"", int64(7), "7", true},
	}
	for _, tt := range tests {
		got, ok := TypeOf(tt.typ).Format(tt.v)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s %#v: %q %v, want %q %v", tt.typ, tt.v, got, ok, tt.want, tt.ok)
		}
	}
}
