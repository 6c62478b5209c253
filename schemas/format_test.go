package schemas

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

// TestEscapersRoundTrip reads escaped text and attributes back with
// encoding/xml: what was written is what is read, TAB, CR and LF included.
func TestEscapersRoundTrip(t *testing.T) {
	in := "a&b<c>d\"e'f\tg\nh\ri"
	var v struct {
		A    string `xml:"a,attr"`
		Text string `xml:",chardata"`
	}
	doc := `<x a='` + EscapeAttr(in) + `'>` + EscapeText(in) + `</x>`
	if err := xml.NewDecoder(strings.NewReader(doc)).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v.A != in || v.Text != in {
		t.Fatalf("attribute %q, text %q, want %q", v.A, v.Text, in)
	}
}

func TestFormats(t *testing.T) {
	at := time.Date(2026, 12, 2, 23, 4, 5, 6e6, time.FixedZone("x", -3600))
	for got, want := range map[string]string{
		FormatDateTime(at):    "2026-12-03 00:04:05.006Z",
		FormatXSDDateTime(at): "2026-12-03T00:04:05.006Z",
		FormatDate(at):        "2026-12-02",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
}
