// Package canon is the one place that decides when two spellings of a
// reconciliation value are the same person (DESIGN.md §4b "Canonical
// values"). Write stores a namespaced attribute in this form and
// CreateRequestByName records the reconciliation value in it, so the
// lookup stays one indexed equality ("column = ?") on both stores, with no
// lower() or expression index to keep in step with Go's idea of Unicode.
// It is a leaf: persist, privacy and store may all import it.
package canon

import (
	"errors"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"
)

// Version numbers this package's idea of the canonical form. Raise it when
// Text or a rule changes: each namespace's stored field is rewritten once
// more at the next start (privacy_namespaces.canonical). Version 3: every
// default-ignorable code point out (not only format characters), an
// extension's digits in ASCII, an e-mail's domain in one IDNA form, a
// phone text the parser would partly leave out kept as text. Version 4: a
// phone number's E.164 form read again until it stays the same (a second
// trunk 0 after the country code).
const Version = 4

// The match rules of a namespace (privacy_namespaces.match_rule).
const (
	// Exact compares the text as ACC does, after Text.
	Exact = "exact"
	// Email compares case-folded: "Ana@Example.COM" is "ana@example.com";
	// an internationalised domain in its Unicode form, however it was
	// written: "ana@xn--bcher-kva.de" is "ana@bücher.de". A domain that is
	// not valid IDNA keeps its text. Version 3.
	Email = "email"
	// Phone compares the E.164 form: "+1 (555) 010-9999" is "+15550109999",
	// "0049 170 1234567" (00, the international prefix most countries
	// dial) is "+491701234567", and an extension stays, in RFC 3966's
	// form: "+1 650-253-0000 ext. 123" is "+16502530000;ext=123" (two
	// people on one switchboard number are two values). A value that is
	// not a phone number under the rule keeps its Text form, compared as
	// Exact: a write stores it so, and a request must reach it; so does
	// one whose text the parser would partly leave out ("650 253 0000 /
	// x123", an RFC 3966 ";isub="), which is not one phone number.
	// Version 3.
	Phone = "phone"
)

// Rules lists the match rules, the default first.
var Rules = []string{Exact, Email, Phone}

// ValidRule reports whether r names a match rule ("" means Exact).
func ValidRule(r string) bool {
	return r == "" || r == Exact || r == Email || r == Phone
}

// ErrEmpty is returned when nothing is left of a value once cleaned: an
// empty value never matches anything.
var ErrEmpty = errors.New("the value is empty once white space and invisible characters are removed")

// Text is the form every value takes whatever the rule: Unicode NFC,
// invisible characters removed (Invisible: U+00AD soft hyphen, U+200B
// zero-width space, bidi marks, U+034F combining grapheme joiner,
// variation selectors: never what tells two people apart), other white
// space and controls (TAB, NBSP) read as a space, and the ends trimmed.
// Inner spaces are kept: "Ana  Silva" and "Ana Silva" stay different, as
// in ACC. Bytes that are not valid UTF-8 are returned as they are (see
// Value).
func Text(s string) string {
	if !utf8.ValidString(s) {
		return s
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case Invisible(r):
			return -1
		case unicode.IsSpace(r), unicode.IsControl(r):
			return ' '
		}
		return r
	}, s)
	// NFC after removal: a soft hyphen between a letter and its combining
	// accent would otherwise keep them apart.
	return norm.NFC.String(strings.TrimSpace(s))
}

// Invisible reports whether r is a Unicode Default_Ignorable_Code_Point
// (DerivedCoreProperties.txt): Other_Default_Ignorable_Code_Point, format
// characters (Cf) and variation selectors, less white space and the
// format characters that are visible (prepended concatenation marks such
// as U+0600 ARABIC NUMBER SIGN, interlinear annotation, Egyptian
// hieroglyph format controls). Such a character renders as nothing, so
// Text removes it; a visible one is kept, since it may be what tells two
// values apart.
func Invisible(r rune) bool {
	switch {
	case unicode.Is(unicode.White_Space, r), unicode.Is(unicode.Prepended_Concatenation_Mark, r),
		0xFFF9 <= r && r <= 0xFFFB, 0x13430 <= r && r <= 0x13440:
		return false
	}
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Variation_Selector, r)
}

// Value returns the canonical form of s under rule; region is the phone
// rule's default region ("US", "FR") for numbers written without +country.
// It never widens a match: the result is compared with "=", and an empty
// result is ErrEmpty.
//
// A value that is not valid UTF-8 (stored by another tool with plain SQL,
// a Latin-1 one on SQLite; PostgreSQL's UTF8 databases refuse it) is no
// text to normalise, and is returned byte for byte under every rule:
// cleaning it would turn each invalid byte into U+FFFD, so "jos\xe9" and
// "jos\xe8" (two people) would become one value and the stored bytes would
// be lost. An exact request for those bytes reaches it.
func Value(rule, region, s string) (string, error) {
	if !utf8.ValidString(s) {
		return s, nil
	}
	s = Text(s)
	if s == "" {
		return "", ErrEmpty
	}
	switch rule {
	case Email:
		// Full Unicode lower case (not SQL's ASCII-only lower()), then NFC
		// again: lower-casing may decompose nothing but keeps it certain.
		return domain(norm.NFC.String(strings.ToLower(s))), nil
	case Phone:
		v, ok := phone(s, region)
		if !ok {
			break
		}
		// Its own E.164 form read again must give it back: a form that
		// loses one more digit ("+49 (0) 030 1234567" is +490301234567, a
		// trunk 0 the parser strips again: +49301234567) is what the
		// number reads as in the end. Each step is shorter, so this ends.
		for {
			again, ok := phone(v, region)
			if !ok || again == v {
				return v, nil
			}
			v = again
		}
	}
	return s, nil
}

// idnaLookup is IDNA2008 as a resolver reads a name (UTS #46 mapping,
// non-transitional: "faß.de" and "fass.de" stay two domains), with every
// label checked: a name that fails any check is no IDN to convert.
var idnaLookup = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule(),
	idna.CheckHyphens(true), idna.CheckJoiners(true))

// domain brings the domain of an address, s lower case, to one IDNA form,
// the Unicode one: what the person types, and never longer than its ASCII
// (punycode) form, so a value that fits the field still fits. A domain in
// plain ASCII with no "xn--" label is left as it is, and so is one that is
// not valid IDNA (ToUnicode fails): it is only compared as text.
func domain(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at < 0 {
		return s
	}
	d := s[at+1:]
	ascii := true
	for i := 0; i < len(d); i++ {
		ascii = ascii && d[i] < utf8.RuneSelf
	}
	if ascii && !strings.HasPrefix(d, "xn--") && !strings.Contains(d, ".xn--") {
		return s
	}
	u, err := idnaLookup.ToUnicode(d)
	if err != nil || u == "" {
		return s
	}
	return s[:at+1] + norm.NFC.String(strings.ToLower(u))
}

// phone is s in E.164 (with its extension), if it is a phone number under
// region's rules, or written with 00 before its country code.
func phone(s, region string) (string, bool) {
	if region == "" {
		region = "ZZ" // unknown: only +country numbers parse
	}
	if dropsText(s) {
		return "", false
	}
	n, err := phonenumbers.Parse(s, strings.ToUpper(region))
	if (err != nil || !phonenumbers.IsPossibleNumber(n)) && strings.HasPrefix(s, "00") {
		n, err = phonenumbers.Parse("+"+s[2:], "ZZ")
	}
	if err != nil || !phonenumbers.IsPossibleNumber(n) {
		return "", false
	}
	v := phonenumbers.Format(n, phonenumbers.E164)
	if ext := n.GetExtension(); ext != "" {
		v += ";ext=" + asciiDigits(ext)
	}
	return v, true
}

var (
	// phonenumbers' VALID_START_CHAR and SECOND_NUMBER_START.
	phoneStart   = regexp.MustCompile(`[+＋\p{Nd}]`)
	secondNumber = regexp.MustCompile(`[\\/] *x`)
)

// dropsText reports whether phonenumbers.Parse would leave out a part of s
// that says something (a letter or a digit): a second number or extension
// after "/ x" ("650 253 0000 / x123", libphonenumber's second-number
// rule), an RFC 3966 sub-address (";isub=12"), a domain phone-context or a
// parameter after the phone-context. What is left out may be all that
// tells two people apart ("/ x123" and "/ x456" on one switchboard
// number), so such a value is not one phone number: it keeps its text.
// Text before the number (a label, "Tel.", "tel:") holds no digit, the
// parser starting at the first one, and is not counted.
func dropsText(s string) bool {
	const context, isub = ";phone-context=", ";isub="
	var national string
	if i := strings.Index(s, context); i >= 0 {
		ctx := s[i+len(context):]
		if j := strings.IndexByte(ctx, ';'); j >= 0 {
			if saysSomething(ctx[j+1:]) {
				return true
			}
			ctx = ctx[:j]
		}
		if !strings.HasPrefix(ctx, "+") && saysSomething(ctx) {
			return true // a domain: the parser ignores it
		}
		national = s[:i]
		if k := strings.Index(national, "tel:"); k >= 0 {
			if saysSomething(national[:k]) {
				return true
			}
			national = national[k+len("tel:"):]
		}
	} else {
		loc := phoneStart.FindStringIndex(s)
		if loc == nil {
			return false // no digit: not a number anyway
		}
		national = s[loc[0]:]
		if m := secondNumber.FindStringIndex(national); m != nil {
			if saysSomething(national[m[1]:]) {
				return true
			}
			national = national[:m[0]]
		}
	}
	if k := strings.Index(national, isub); k > 0 && saysSomething(national[k+len(isub):]) {
		return true
	}
	return false
}

// saysSomething reports whether s holds a letter or a digit.
func saysSomething(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) })
}

// asciiDigits writes the decimal digits of s in ASCII: the parser does so
// for the national number ("０６" from a Japanese IME is "06"), not for the
// extension, where "１２３" and "123" are one extension too.
func asciiDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII && unicode.IsDigit(r) {
			return '0' + digitValue(r)
		}
		return r
	}, s)
}

// digitValue is the value of a decimal digit (general category Nd). Unicode
// encodes them in runs of ten from 0 to 9, so within a range of the Nd
// table (a run or several runs side by side, as the mathematical digits)
// the value is the distance from the range's start, modulo 10.
func digitValue(r rune) rune {
	for _, rg := range unicode.Nd.R16 {
		if lo, hi := rune(rg.Lo), rune(rg.Hi); lo <= r && r <= hi && rg.Stride == 1 {
			return (r - lo) % 10
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if lo, hi := rune(rg.Lo), rune(rg.Hi); lo <= r && r <= hi && rg.Stride == 1 {
			return (r - lo) % 10
		}
	}
	return r - '0' // not reached for a rune unicode.IsDigit accepts
}

// Stored is Value for a value being written: an empty one is stored as
// its Text, "".
func Stored(rule, region, s string) string {
	v, _ := Value(rule, region, s)
	return v
}
