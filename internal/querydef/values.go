package querydef

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// class groups types that compare with each other (the schemas type
// table's classes).
type class = schemas.Class

const (
	cNone   = schemas.ClassNone
	cNumber = schemas.ClassNumber
	cText   = schemas.ClassText
	cBool   = schemas.ClassBool
	cTime   = schemas.ClassTime
)

func literalClass(t token) class {
	switch t.kind {
	case tInt, tDec:
		return cNumber
	case tString:
		return cText
	case tDate:
		return cTime
	}
	return cNone
}

// intRange is the range of an integer field as the tables store it (the
// type table's Min and Max; keys are BIGINT), so that an out-of-range
// literal is a clear error rather than a driver one.
func intRange(f *field) (int64, int64) {
	if f.key {
		return math.MinInt64, math.MaxInt64
	}
	return f.typ.Min, f.typ.Max
}

// bind converts a literal to the Go value compared with field f.
func bind(lit token, f *field) (any, error) {
	wrong := func() (any, error) {
		return nil, fmt.Errorf("%s is %s: it cannot be compared with %s", f.expr, f.class, lit.describe())
	}
	switch f.class {
	case cNumber:
		if f.typ.Float() {
			if lit.kind != tInt && lit.kind != tDec && lit.kind != tString {
				return wrong()
			}
			v, err := strconv.ParseFloat(strings.TrimSpace(lit.text), 64)
			if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
				return wrong()
			}
			return v, nil
		}
		if lit.kind != tInt && lit.kind != tString {
			if lit.kind == tDec {
				return nil, fmt.Errorf("%s is an integer: it cannot be compared with a decimal number", f.expr)
			}
			return wrong()
		}
		v, err := parseInt(strings.TrimSpace(lit.text))
		if err != nil {
			if lit.kind == tString {
				return wrong()
			}
			return nil, fmt.Errorf("the number compared with %s is out of range", f.expr)
		}
		if lo, hi := intRange(f); v < lo || v > hi {
			return nil, fmt.Errorf("the number compared with %s is out of range", f.expr)
		}
		return v, nil
	case cText:
		if lit.kind == tDate {
			return wrong()
		}
		return lit.text, nil
	case cBool:
		switch strings.ToLower(lit.text) {
		case "1", "true":
			if lit.kind == tInt || lit.kind == tString {
				return true, nil
			}
		case "0", "false":
			if lit.kind == tInt || lit.kind == tString {
				return false, nil
			}
		}
		return nil, fmt.Errorf("%s is a boolean: compare it with 0, 1, 'true' or 'false'", f.expr)
	case cTime:
		if lit.kind != tString && lit.kind != tDate {
			return wrong()
		}
		t, ok := schemas.ParseTime(lit.text)
		if !ok {
			return nil, fmt.Errorf("%s is a date: write it as '2024-01-31', '2024-01-31 12:00:00Z' or #2024-01-31#", f.expr)
		}
		if f.typ != nil && f.typ.Name == schemas.TypeDate {
			// A date is compared by its day, on both stores: PostgreSQL
			// reads the value as a date (the column's type), so a time of
			// day is dropped there; SQLite keeps the text 2024-01-31 and
			// compared it with a bound time (2024-01-31 00:00:00+00:00),
			// which never equals it.
			return schemas.FormatDate(t), nil
		}
		return t, nil
	}
	return wrong()
}
