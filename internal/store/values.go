package store

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// Values as ACC writes them in documents (query results, the data-subject
// file), from whatever each dialect hands back: SQLite keeps timestamps as
// text and booleans as integers, PostgreSQL returns time.Time and bool.

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

// ParseTime reads a date or timestamp; without a zone it is UTC, as ACC
// documents write them.
func ParseTime(s string) (time.Time, bool) {
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

// FormatValue renders a stored value as ACC writes it in a document: integers
// plain, booleans true/false, datetimes "2006-01-02 15:04:05.000Z" in UTC,
// dates "2006-01-02". ok is false for NULL and the empty string, which ACC
// leaves out.
func FormatValue(typ string, v any) (s string, ok bool) {
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
			if t, ok := ParseTime(x); ok {
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
		if typ != schemas.TypeString && typ != schemas.TypeMemo {
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
