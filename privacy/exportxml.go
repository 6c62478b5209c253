package privacy

import (
	"bufio"
	"encoding/base64"
	"strings"
	"unicode/utf8"

	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// Values written into the database by other tools (plain SQL) may hold
// what XML 1.0 cannot carry: invalid UTF-8, or C0 controls other than
// TAB, LF and CR (not even as character references). Such a value is
// written as the standard base64 of its stored bytes, and the element
// names those attributes in _base64 (space-separated), so the file stays
// well-formed and the data comes back exactly. ACC's file has no such
// attribute; it only appears when a value needs it.

// encodedAttr is the attribute naming the base64-encoded attributes. The
// schemas refuse a field of that name (it would be written twice).
const encodedAttr = schemas.EncodedAttr

// exportAttr returns text ready for an attribute value, and whether it had
// to be base64-encoded.
func exportAttr(text string) (string, bool) {
	if xmlSafe(text) {
		return attrEscape(text), false
	}
	return base64.StdEncoding.EncodeToString([]byte(text)), true
}

// xmlSafe reports whether every character of s is an XML 1.0 Char.
func xmlSafe(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			return false
		}
		if !xmlChar(r) {
			return false
		}
		i += size
	}
	return true
}

// xmlChar is production [2] Char of XML 1.0.
func xmlChar(r rune) bool {
	return r == 0x9 || r == 0xA || r == 0xD ||
		(r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF)
}

// writeEncodedFlag adds the _base64 attribute when names is not empty.
func writeEncodedFlag(w *bufio.Writer, names []string) {
	if len(names) > 0 {
		w.WriteString(" " + encodedAttr + "=\"" + strings.Join(names, " ") + "\"")
	}
}
