package querydef

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// class groups attribute types that compare with each other.
type class int

const (
	cNone class = iota
	cNumber
	cText
	cBool
	cTime
)

func (c class) String() string {
	return [...]string{"a value", "a number", "text", "a boolean", "a date"}[c]
}

func classOf(typ string) class {
	switch typ {
	case schemas.TypeString, schemas.TypeMemo:
		return cText
	case schemas.TypeBoolean:
		return cBool
	case schemas.TypeDatetime, schemas.TypeDate:
		return cTime
	}
	return cNumber
}

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

// intRange is the range of an integer field as the tables store it
// (byte and short: SMALLINT; long: INTEGER; keys and int64: BIGINT), so
// that an out-of-range literal is a clear error rather than a driver one.
func intRange(f *field) (int64, int64) {
	if f.key {
		return math.MinInt64, math.MaxInt64
	}
	switch f.typ {
	case schemas.TypeByte, schemas.TypeShort:
		return math.MinInt16, math.MaxInt16
	case schemas.TypeLong:
		return math.MinInt32, math.MaxInt32
	}
	return math.MinInt64, math.MaxInt64
}

// bind converts a literal to the Go value compared with field f.
func bind(lit token, f *field) (any, error) {
	wrong := func() (any, error) {
		return nil, fmt.Errorf("%s is %s: it cannot be compared with %s", f.expr, f.class, lit.describe())
	}
	switch f.class {
	case cNumber:
		if f.typ == schemas.TypeFloat || f.typ == schemas.TypeDouble {
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
		t, ok := parseTime(lit.text)
		if !ok {
			return nil, fmt.Errorf("%s is a date: write it as '2024-01-31', '2024-01-31 12:00:00Z' or #2024-01-31#", f.expr)
		}
		return t, nil
	}
	return wrong()
}

// timeLayouts are the date forms accepted in expressions and read back
// from SQLite, which returns datetimes as text when it cannot parse them.
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999-07",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04",
	"2006-01-02",
}

// parseTime reads a date or timestamp; without a zone it is UTC, as ACC
// documents write them.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// Formats of values in documents (acc-protocol.md §8).
const (
	accDatetime = "2006-01-02 15:04:05.000Z"
	accDate     = "2006-01-02"
)

// format renders a stored value as ACC writes it in a document: integers
// plain, booleans true/false, datetimes "2006-01-02 15:04:05.000Z" in UTC,
// dates "2006-01-02". ok is false for NULL and the empty string, which ACC
// leaves out.
func format(typ string, v any) (s string, ok bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case []byte:
		v = string(x)
	}
	switch typ {
	case schemas.TypeBoolean:
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
	case schemas.TypeDatetime, schemas.TypeDate:
		layout := accDatetime
		if typ == schemas.TypeDate {
			layout = accDate
		}
		switch x := v.(type) {
		case time.Time:
			if typ == schemas.TypeDate {
				// A DATE comes back at midnight in the session's zone:
				// keep its calendar day.
				return x.Format(layout), true
			}
			return x.UTC().Format(layout), true
		case string:
			if x == "" {
				return "", false
			}
			if t, ok := parseTime(x); ok {
				return t.Format(layout), true
			}
			return x, true
		}
	case schemas.TypeFloat, schemas.TypeDouble:
		if x, ok := v.(float64); ok {
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
		if classOf(typ) == cNumber {
			if x {
				return "1", true
			}
			return "0", true
		}
		return strconv.FormatBool(x), true
	case time.Time:
		return x.UTC().Format(accDatetime), true
	}
	return fmt.Sprint(v), true
}
