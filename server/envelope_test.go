package server

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/session"
)

var update = flag.Bool("update", false, "rewrite golden files")

const env11 = `<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">`

func wrap(body string) string {
	return env11 + `<SOAP-ENV:Body>` + body + `</SOAP-ENV:Body></SOAP-ENV:Envelope>`
}

// attrs repeats an attribute pattern (with %d for its number) n times.
func attrs(n int, pattern string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(" " + fmt.Sprintf(pattern, i))
	}
	return b.String()
}

// utf16LE encodes s (ASCII) as UTF-16 little-endian bytes.
func utf16LE(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		b.WriteByte(0)
	}
	return b.String()
}

func TestParseEnvelope(t *testing.T) {
	deep := strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40)
	wide := "<m:X xmlns:m='urn:xtk:session'>" + strings.Repeat("<b/>", 1001) + "</m:X>"
	manyAttrs := "<m:X xmlns:m='urn:xtk:session'"
	for i := 0; i < 33; i++ {
		manyAttrs += " a" + string(rune('a'+i%26)) + strings.Repeat("x", i) + "='1'"
	}
	manyAttrs += "/>"
	tests := []struct {
		name string
		in   string
		want apperr.Code // "" = accepted
	}{
		{"acc-js-sdk style", wrap(`<m:Logon xmlns:m="urn:xtk:session"><sessiontoken/></m:Logon>`), ""},
		{"default namespace, header", env11 + `<SOAP-ENV:Header><Cookie>__sessiontoken=x</Cookie></SOAP-ENV:Header><SOAP-ENV:Body><Logon xmlns='urn:xtk:session'/></SOAP-ENV:Body></SOAP-ENV:Envelope>`, ""},
		{"other prefix", `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><x:Logon xmlns:x="urn:xtk:session"/></soapenv:Body></soapenv:Envelope>`, ""},
		{"xml declaration and BOM", "\xef\xbb\xbf<?xml version='1.0' encoding='UTF-8'?>" + wrap(`<m:Logon xmlns:m="urn:xtk:session"/>`), ""},
		{"empty", "  ", apperr.Malformed},
		{"truncated", wrap(`<m:Logon xmlns:m="urn:xtk:session">`)[:80], apperr.Malformed},
		{"mismatched tags", wrap(`<a></b>`), apperr.Malformed},
		{"attribute without value", wrap(`<a b></a>`), apperr.Malformed},
		{"doctype without entities", `<!DOCTYPE x>` + wrap(`<a/>`), apperr.Malformed},
		{"xxe", `<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + wrap(`<a>&xxe;</a>`), apperr.Malformed},
		{"undefined entity", wrap(`<a>&lol9;</a>`), apperr.Malformed},
		{"processing instruction", wrap(`<?php echo 1 ?><a/>`), apperr.Malformed},
		{"utf-16 declared", `<?xml version="1.0" encoding="UTF-16"?>` + wrap(`<a/>`), apperr.Malformed},
		{"latin-1 declared", `<?xml version="1.0" encoding="ISO-8859-1"?>` + wrap(`<a/>`), apperr.Malformed},
		{"invalid utf-8", wrap("<a>\xff\xfe</a>"), apperr.Malformed},
		{"NUL character reference", wrap(`<a>&#0;</a>`), apperr.Malformed},
		{"surrogate character reference", wrap(`<a>&#xD800;</a>`), apperr.Malformed},
		{"surrogate character reference in an attribute", wrap(`<a b="&#57343;"/>`), apperr.Malformed},
		{"raw NUL", wrap("<a>\x00</a>"), apperr.Malformed},
		{"raw control byte", wrap("<a>\x01</a>"), apperr.Malformed},
		{"overlong UTF-8", wrap("<a>\xc0\xaf</a>"), apperr.Malformed},
		{"two roots", wrap(`<a/>`) + wrap(`<a/>`), apperr.Malformed},
		{"text after root", wrap(`<a/>`) + "garbage", apperr.Malformed},
		{"too deep", wrap(deep), apperr.TooLarge},
		{"too wide", wrap(wide), apperr.TooLarge},
		{"too many attributes", wrap(manyAttrs), apperr.TooLarge},
		{"long name", wrap("<" + strings.Repeat("n", 300) + "/>"), apperr.TooLarge},
		// security-bar.md #22, #24, #27.
		{"20,000 attributes", wrap("<a" + attrs(20000, "a%d='1'") + "/>"), apperr.TooLarge},
		{"20,000 namespace declarations", wrap("<a" + attrs(20000, "xmlns:p%d='urn:x'") + "/>"), apperr.TooLarge},
		{"100 KiB attribute name", wrap("<a " + strings.Repeat("n", 100<<10) + "='1'/>"), apperr.TooLarge},
		{"100 KiB prefix", wrap("<" + strings.Repeat("p", 100<<10) + ":a/>"), apperr.TooLarge},
		{"100 KiB element name", wrap("<" + strings.Repeat("n", 100<<10) + "/>"), apperr.TooLarge},
		{"real UTF-16 body", utf16LE("<?xml version='1.0' encoding='UTF-16'?>" + wrap("<a/>")), apperr.Malformed},
		{"real UTF-16 body with its BOM", "\xff\xfe" + utf16LE(wrap("<a/>")), apperr.Malformed},
		{"long attribute", wrap(`<a b="` + strings.Repeat("v", 9000) + `"/>`), apperr.TooLarge},
		{"long text", wrap(`<a>` + strings.Repeat("t", 70000) + `</a>`), apperr.TooLarge},
		{"soap 1.2 envelope", `<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><a/></e:Body></e:Envelope>`, apperr.VersionMismatch},
		{"right prefix, wrong namespace", `<SOAP-ENV:Envelope xmlns:SOAP-ENV="urn:evil"><SOAP-ENV:Body><a/></SOAP-ENV:Body></SOAP-ENV:Envelope>`, apperr.VersionMismatch},
		{"no namespace", `<Envelope><Body><a/></Body></Envelope>`, apperr.VersionMismatch},
		{"no body", env11 + `</SOAP-ENV:Envelope>`, apperr.Malformed},
		{"two bodies", env11 + `<SOAP-ENV:Body><a/></SOAP-ENV:Body><SOAP-ENV:Body><b/></SOAP-ENV:Body></SOAP-ENV:Envelope>`, apperr.Malformed},
		{"body before header", env11 + `<SOAP-ENV:Body><a/></SOAP-ENV:Body><SOAP-ENV:Header/></SOAP-ENV:Envelope>`, apperr.Malformed},
		{"two operations", wrap(`<a/><b/>`), apperr.Malformed},
		{"empty body", wrap(``), apperr.Malformed},
		{"mustUnderstand unknown header", env11 + `<SOAP-ENV:Header><w:Security xmlns:w="urn:wsse" SOAP-ENV:mustUnderstand="1"/></SOAP-ENV:Header><SOAP-ENV:Body><a/></SOAP-ENV:Body></SOAP-ENV:Envelope>`, apperr.MustUnderstand},
		{"unknown header without mustUnderstand", env11 + `<SOAP-ENV:Header><w:Security xmlns:w="urn:wsse"/></SOAP-ENV:Header><SOAP-ENV:Body><a/></SOAP-ENV:Body></SOAP-ENV:Envelope>`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DefaultLimits.parseEnvelope([]byte(tt.in))
			if got := apperr.CodeOf(err); got != tt.want {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.want)
			}
		})
	}
}

// TestParseEnvelopeBoundedAlloc checks that hostile documents are refused
// while tokenising, before a tree is built: the allocation stays small.
func TestParseEnvelopeBoundedAlloc(t *testing.T) {
	cases := map[string]string{
		"85k unclosed elements": strings.Repeat("<a>", 85_000),
		"60k siblings":          wrap(strings.Repeat("<b/>", 60_000)),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			body := []byte(in)
			allocs := testing.AllocsPerRun(3, func() { _, _ = DefaultLimits.parseEnvelope(body) })
			if allocs > 5000 {
				t.Fatalf("%.0f allocations: the limit did not stop the parser early", allocs)
			}
			if _, err := DefaultLimits.parseEnvelope(body); apperr.CodeOf(err) != apperr.TooLarge {
				t.Fatalf("err = %v, want a limit", err)
			}
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestResponseGolden(t *testing.T) {
	reg, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	logon, _ := reg.Method("xtk:session", "Logon")
	info := etree.NewElement("sessionInfo")
	info.CreateElement("userInfo").CreateAttr("login", "ana")
	out, err := writeResponse(logon, "xtk:session", []any{"TOKEN", info, "@SECURITY"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "logon_response.xml", out)

	create, _ := reg.Method("nms:privacyRequest", "CreateRequestByName")
	out, err = writeResponse(create, "nms:privacyRequest", []any{int64(176650)})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "create_request_response.xml", out)

	tm, _ := reg.Method("xtk:session", "GetServerTime")
	out, err = writeResponse(tm, "xtk:session", []any{time.Date(2023, 8, 25, 13, 58, 11, 477e6, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "server_time_response.xml", out)

	get, _ := reg.Method("xtk:persist", "GetEntityIfMoreRecent")
	out, err = writeResponse(get, "xtk:persist", []any{nil})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "entity_not_found_response.xml", out)

	logoff, _ := reg.Method("xtk:session", "Logoff")
	out, err = writeResponse(logoff, "xtk:session", nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "logoff_response.xml", out)
}

func TestFaultGolden(t *testing.T) {
	tests := []struct {
		file string
		err  error
	}{
		{"fault_bad_logon.xml", apperr.Errorf(apperr.BadLogon, "Invalid login or password.")},
		{"fault_bad_session.xml", apperr.Errorf(apperr.BadSession, "Session has expired or is invalid. Please reconnect.")},
		{"fault_unknown_method.xml", apperr.Errorf(apperr.UnknownMethod, "unknown")},
		{"fault_invalid.xml", apperr.Errorf(apperr.Invalid, "The namespace 'x' does not exist.")},
		{"fault_internal.xml", apperr.Wrap(apperr.Internal, os.ErrPermission, "SELECT secret FROM x")},
		{"fault_malformed.xml", apperr.Errorf(apperr.Malformed, "The XML SOAP message is not well-formed.")},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			method, service := "Logon", "xtk:session"
			if tt.file == "fault_malformed.xml" {
				method, service = "", ""
			}
			out := writeFault(tt.err, method, service, "0123456789ab")
			golden(t, tt.file, out)
			if bytes.Contains(out, []byte("SELECT")) || bytes.Contains(out, []byte("permission")) {
				t.Fatal("internal detail leaked into the fault")
			}
		})
	}
}

// TestEveryFaultCodeHasARow keeps the fault table complete.
func TestEveryFaultCodeHasARow(t *testing.T) {
	for _, c := range []apperr.Code{apperr.Invalid, apperr.Malformed, apperr.TooLarge, apperr.VersionMismatch,
		apperr.MustUnderstand, apperr.UnknownMethod, apperr.BadLogon, apperr.BadSession, apperr.Forbidden,
		apperr.NotFound, apperr.Conflict, apperr.Busy, apperr.Internal} {
		if _, ok := faults[c]; !ok {
			t.Errorf("no fault for code %s", c)
		}
	}
}

// TestSessionInfoGolden pins serverInfo and userInfo as Logon, GetUserInfo
// and GetOption("XtkDatabaseId") write them (the attributes of the
// captured responses, in their order; see captured_test.go).
func TestSessionInfoGolden(t *testing.T) {
	reg, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := session.New(nil, session.Config{Key: []byte("golden-signing-key-of-32-bytes-at-least")})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 14, 11, 31, 986e6, time.UTC)
	s := New(Config{InstanceName: "acme", Version: "1.2.3", DatabaseID: "uFE80000000000000F1FA913DD7CC7C480041161C",
		CommitID: "f5f3ec3", Now: func() time.Time { return now }}, reg, sessions, nil)
	caller := &session.Caller{OperatorID: 1059, Login: "admin", Rights: []string{session.RightAdmin}}
	info := etree.NewElement("sessionInfo")
	info.AddChild(s.serverInfo())
	info.AddChild(s.userInfo(caller))
	logon, _ := reg.Method("xtk:session", "Logon")
	out, err := writeResponse(logon, "xtk:session", []any{"TOKEN", info, "@SECURITY"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "logon_session_info_response.xml", out)

	userInfo, _ := reg.Method("xtk:session", "GetUserInfo")
	priv := &session.Caller{OperatorID: 1060, Login: "ana", Rights: []string{session.RightPrivacy}}
	out, err = writeResponse(userInfo, "xtk:session", []any{s.userInfo(priv)})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "get_user_info_response.xml", out)

	getOption, _ := reg.Method("xtk:session", "GetOption")
	values, err := s.getOption(context.Background(), &call{method: getOption, args: []*etree.Element{nil, textElement("name", "XtkDatabaseId")}})
	if err != nil {
		t.Fatal(err)
	}
	out, err = writeResponse(getOption, "xtk:session", values)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "get_option_database_id_response.xml", out)
}

func textElement(tag, text string) *etree.Element {
	el := etree.NewElement(tag)
	el.SetText(text)
	return el
}
