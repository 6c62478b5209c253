package canon

import (
	"testing"
	"unicode"
)

func TestValue(t *testing.T) {
	for _, c := range []struct {
		rule, region, in, want string
		err                    error
	}{
		{Exact, "", "Jose\u0301", "José", nil},
		{Exact, "", " \tJo\u00adsé\u200b ", "José", nil},
		{Exact, "", "Ana@Example.COM", "Ana@Example.COM", nil},
		// Default-ignorable code points of every category are invisible:
		// CGJ (Mn), VS16, a Mongolian free variation selector, a tag, a
		// Hangul filler (Lo), an unassigned one of the U+2065 hole.
		{Exact, "", "cg\u034fj\ufe0f@e\u180bx\U000e0041a\u3164m\u2065ple", "cgj@example", nil},
		// Format characters that are visible are not removed: they may be
		// what tells two values apart.
		{Exact, "", "\u0600123", "\u0600123", nil},
		{Exact, "", "a\ufff9b\ufffbc", "a\ufff9b\ufffbc", nil},
		{Email, "", "Ana@Example.COM", "ana@example.com", nil},
		{Email, "", "ÉLISE@exemple.fr", "élise@exemple.fr", nil},
		// One IDNA form for the domain: Unicode, from punycode or not.
		{Email, "", "Ana@XN--BCHER-KVA.de", "ana@bücher.de", nil},
		{Email, "", "ana@BÜCHER.de", "ana@bücher.de", nil},
		{Email, "", "ana@mail.xn--bcher-kva.de", "ana@mail.bücher.de", nil},
		{Email, "", "xn--bcher-kva@example.com", "xn--bcher-kva@example.com", nil},
		// Non-transitional: ß is not ss.
		{Email, "", "ana@xn--fa-hia.de", "ana@faß.de", nil},
		{Email, "", "ana@fass.de", "ana@fass.de", nil},
		// Not valid IDNA (a bad punycode label, an underscore): the text.
		{Email, "", "ana@xn--zz.de", "ana@xn--zz.de", nil},
		{Email, "", "ana@xn--bcher-kva_x.de", "ana@xn--bcher-kva_x.de", nil},
		{Email, "", "ana@bü_cher.de", "ana@bü_cher.de", nil},
		{Email, "", "no-at-sign", "no-at-sign", nil},
		// The exact rule compares the text: no IDNA.
		{Exact, "", "ana@xn--bcher-kva.de", "ana@xn--bcher-kva.de", nil},
		{Phone, "US", "+1 (555) 010-9999", "+15550109999", nil},
		{Phone, "US", "(555) 010-9999", "+15550109999", nil},
		{Phone, "", "+15550109999", "+15550109999", nil},
		{Phone, "FR", "06 12 34 56 78", "+33612345678", nil},
		// An extension tells two people on one number apart, and parses back.
		{Phone, "US", "+1 650-253-0000 ext. 123", "+16502530000;ext=123", nil},
		{Phone, "US", "650 253 0000 x456", "+16502530000;ext=456", nil},
		{Phone, "", "+16502530000;ext=123", "+16502530000;ext=123", nil},
		// An extension's digits in any script are the ASCII ones, as the
		// national number's are.
		{Phone, "US", "+1 650-253-0000 ext. １２３", "+16502530000;ext=123", nil},
		{Phone, "", "+16502530000;ext=١٢٣", "+16502530000;ext=123", nil},
		{Phone, "", "0049 170 1234567", "+491701234567", nil},
		{Phone, "US", "0049 170 1234567", "+491701234567", nil},
		// Text the parser would leave out (a second number after "/ x",
		// an RFC 3966 sub-address, a domain context, a parameter after the
		// context): not one phone number, the text.
		{Phone, "US", "650 253 0000 / x123", "650 253 0000 / x123", nil},
		{Phone, "US", "(530) 583-6985 x302/x2303", "(530) 583-6985 x302/x2303", nil},
		{Phone, "US", "650 253 0000 \\ x12", "650 253 0000 \\ x12", nil},
		{Phone, "", "tel:+1-650-253-0000;isub=12", "tel:+1-650-253-0000;isub=12", nil},
		{Phone, "US", "tel:650-253-0000;phone-context=example.com", "tel:650-253-0000;phone-context=example.com", nil},
		{Phone, "", "tel:650-253-0000;phone-context=+1;foo=bar", "tel:650-253-0000;phone-context=+1;foo=bar", nil},
		// What the parser reads in full stays a number: a label before it,
		// a number prefix as context, a separator with nothing after it.
		{Phone, "US", "Tel. 650 253 0000", "+16502530000", nil},
		{Phone, "", "tel:650-253-0000;phone-context=+1", "+16502530000", nil},
		{Phone, "US", "650 253 0000 / x", "+16502530000", nil},
		// Not a phone number under the rule: the text, as a write stores it.
		{Phone, "", "555 010 9999", "555 010 9999", nil},
		{Phone, "US", "%", "%", nil},
		{Phone, "US", " call\u00a0me ", "call me", nil},
		{Exact, "", " \u200b\t", "", ErrEmpty},
		{Email, "", "", "", ErrEmpty},
		// Not UTF-8 (Latin-1 bytes): kept byte for byte, never U+FFFD,
		// so two people's bytes stay two values.
		{Email, "", "JOS\xe9@example.com ", "JOS\xe9@example.com ", nil},
		{Exact, "", "jos\xe8@example.com", "jos\xe8@example.com", nil},
		{Phone, "US", "650\xa0253 0000", "650\xa0253 0000", nil},
	} {
		got, err := Value(c.rule, c.region, c.in)
		if got != c.want || err != c.err {
			t.Errorf("Value(%s, %q, %q) = %q, %v; want %q, %v", c.rule, c.region, c.in, got, err, c.want, c.err)
		}
	}
	if got := Stored(Phone, "US", "unknown"); got != "unknown" {
		t.Errorf("Stored of a non-number = %q", got)
	}
}

// TestDigitValue: every decimal digit of the Unicode tables maps to its
// value (runs of ten, several side by side in one range).
func TestDigitValue(t *testing.T) {
	for _, c := range []struct {
		r    rune
		want rune
	}{{'０', 0}, {'９', 9}, {'٣', 3}, {'۷', 7}, {'७', 7}, {'\U0001D7CE', 0}, {'\U0001D7D8', 0}, {'\U0001D7FF', 9}, {'\U0001D7E1', 9}} {
		if got := digitValue(c.r); got != c.want {
			t.Errorf("digitValue(%U) = %d, want %d", c.r, got, c.want)
		}
	}
	for _, rg := range unicode.Nd.R16 {
		if rg.Stride != 1 || (rg.Hi-rg.Lo+1)%10 != 0 {
			t.Errorf("Nd range %U-%U is not runs of ten", rg.Lo, rg.Hi)
		}
	}
	for _, rg := range unicode.Nd.R32 {
		if rg.Stride != 1 || (rg.Hi-rg.Lo+1)%10 != 0 {
			t.Errorf("Nd range %U-%U is not runs of ten", rg.Lo, rg.Hi)
		}
	}
}
