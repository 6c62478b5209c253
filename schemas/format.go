package schemas

import (
	"strings"
	"time"
)

// How ACC writes dates and text in its documents, in one place: the SOAP
// responses, the queryDef results, the export file and the console all use
// these.

// FormatDateTime writes an ACC datetime as ACC's documents do:
// "2026-12-02 10:04:05.000Z", always UTC, milliseconds.
func FormatDateTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }

// FormatXSDDateTime writes an xsd:dateTime, as ACC's SOAP responses carry a
// datetime parameter: "2026-12-02T10:04:05.000Z".
func FormatXSDDateTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// FormatDate writes an ACC date, "2026-12-02", of the day t falls on in
// its own location (a date has no time zone).
func FormatDate(t time.Time) string { return t.Format("2006-01-02") }

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#xD;")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;",
		"\n", "&#xA;", "\r", "&#xD;", "\t", "&#x9;")
)

// EscapeText escapes s for XML character data. A carriage return is
// written as a reference, or the reader's end-of-line handling would turn
// it into a line feed.
func EscapeText(s string) string { return textEscaper.Replace(s) }

// EscapeAttr escapes s for an XML attribute value in either quotes. TAB,
// LF and CR are references, or attribute-value normalisation would read
// them back as spaces.
func EscapeAttr(s string) string { return attrEscaper.Replace(s) }
