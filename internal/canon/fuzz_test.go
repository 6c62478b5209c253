package canon

import (
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzRegions = []string{"", "US", "FR", "DE", "GB", "IT"}

// FuzzValue checks the canonical forms' properties: idempotent
// (Value(Value(x)) == Value(x)), never empty for a value Text keeps, valid
// UTF-8 out for valid UTF-8 in, and under the phone rule a visible digit
// changed in the input never gives the same E.164 form (two numbers merged).
func FuzzValue(f *testing.F) {
	for _, s := range []string{"Ana@Example.COM", "ana@xn--bcher-kva.de", "ana@bücher.de", "faß.de", "a@ｅｘａｍｐｌｅ.com",
		"+1 (555) 010-9999", "0049 170 1234567", "+1 650-253-0000 ext. 123", "650 253 0000 / x123", "tel:+1-650-253-0000;isub=12",
		"+1 650-253-0000 ext. １２３", "06 12 34 56 78", "+44 (0) 20 7031 3000", "jos\xe9@example.com", "\u00ad", "a\u200bb",
		"tel:6502530000;phone-context=+1", "+1 800 FLOWERS", "Tel. 2: +1 650 253 0000", "+33 6 12 34 56 78 poste 12"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, rule := range Rules {
			for _, region := range fuzzRegions {
				if rule != Phone && region != "" {
					continue
				}
				v, err := Value(rule, region, s)
				if err != nil {
					if err != ErrEmpty || Text(s) != "" {
						t.Fatalf("Value(%q, %q, %q): %v (Text %q)", rule, region, s, err, Text(s))
					}
					continue
				}
				if v == "" {
					t.Fatalf("Value(%q, %q, %q) is empty", rule, region, s)
				}
				if utf8.ValidString(s) && !utf8.ValidString(v) {
					t.Fatalf("Value(%q, %q, %q) = %q: not UTF-8", rule, region, s, v)
				}
				v2, err := Value(rule, region, v)
				if err != nil || v2 != v {
					t.Fatalf("not idempotent: rule %q region %q\n in  %q\n once %q\n twice %q (%v)", rule, region, s, v, v2, err)
				}
				if rule == Phone && strings.HasPrefix(v, "+") && utf8.ValidString(s) {
					text := Text(s)
					for i := 0; i < len(text); i++ {
						if c := text[i]; c >= '0' && c <= '9' {
							other := text[:i] + string('0'+(c-'0'+1)%10) + text[i+1:]
							if w, err := Value(rule, region, other); err == nil && w == v {
								t.Fatalf("region %q: %q and %q (a digit changed) are both %q", region, text, other, v)
							}
						}
					}
				}
			}
		}
	})
}

// TestPhoneCanonicalFormIsStable: the phone rule's canonical form of
// a German number written with the trunk 0 twice, "+49 (0) 030 1234567"
// (the "(0)" habit plus the national spelling "030"), is "+490301234567";
// but that form is not canonical itself: Value strips one more trunk 0 and
// gives "+49301234567", and again for each leading 0. The lookup compares
// the stored field (written once through Value) with Value of the recorded
// value (Value applied twice, privacy/workflows.go: matchValue), so such a
// person is never found. Found by FuzzValue ("0000000000", region DE).
func TestPhoneCanonicalFormIsStable(t *testing.T) {
	for _, c := range []struct{ region, s string }{
		{"DE", "+49 (0) 030 1234567"},
		{"", "0049 (0) 030 1234567"},
		{"DE", "0000000000"},
	} {
		once, err := Value(Phone, c.region, c.s)
		if err != nil {
			t.Fatal(err)
		}
		twice, err := Value(Phone, c.region, once)
		if err != nil || twice != once {
			t.Errorf("region %q: Value(%q) = %q, but Value(%q) = %q (%v): the canonical form is not canonical", c.region, c.s, once, once, twice, err)
		}
	}
}
