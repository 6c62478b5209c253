package server_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// ourAttributes are attributes this server adds to what real servers send
// (server/README.md): which software answers.
var ourAttributes = map[string]bool{"serverInfo/productName": true, "serverInfo/productVersion": true}

// ourElements are elements this server sends where a capture of the same
// method has none; another capture shows them (the Logon capture lists the
// installed packages, the GetUserInfo capture does not).
var ourElements = map[string]bool{"installed-package": true}

// valueKinds classify a value so that a capture and our answer can be
// compared without comparing values: first match wins.
var valueKinds = []struct {
	name string
	re   *regexp.Regexp
}{
	{"empty", regexp.MustCompile(`^$`)},
	{"boolean", regexp.MustCompile(`^(true|false)$`)},
	{"commitId", regexp.MustCompile(`^[0-9a-f]{7}$`)},
	{"integer", regexp.MustCompile(`^-?[0-9]+$`)},
	{"databaseId", regexp.MustCompile(`^u[0-9A-F]{40}$`)},
	{"datetime", regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z$`)},
	{"text", regexp.MustCompile(`.`)},
}

func kindOf(v string) string {
	for _, k := range valueKinds {
		if k.re.MatchString(v) {
			return k.name
		}
	}
	return "text"
}

// literalAttributes are compared by value: namespaces, types and encodings
// are what acc-js-sdk compares as strings.
func literal(attr etree.Attr) bool {
	return attr.Space == "xmlns" || (attr.Space == "" && attr.Key == "xmlns") || attr.Key == "type" && attr.Space == "xsi" || attr.Key == "encodingStyle"
}

// collapse returns the child elements with runs of the same tag folded
// into one: the number of rights or packages is the operator's, the order
// of kinds is the protocol's.
func collapse(el *etree.Element) []*etree.Element {
	var out []*etree.Element
	for _, c := range el.ChildElements() {
		if len(out) > 0 && out[len(out)-1].FullTag() == c.FullTag() {
			continue
		}
		out = append(out, c)
	}
	return out
}

// sameShape compares got with want (a capture) below path.
func sameShape(t *testing.T, path string, want, got *etree.Element) {
	t.Helper()
	if want.FullTag() != got.FullTag() {
		t.Errorf("%s: element <%s>, the capture has <%s>", path, got.FullTag(), want.FullTag())
		return
	}
	path += "/" + want.Tag
	short := want.Tag
	wantAttrs := map[string]string{}
	for i, a := range want.Attr {
		wantAttrs[a.FullKey()] = a.Value
		if i >= len(got.Attr) || got.Attr[i].FullKey() != a.FullKey() {
			t.Errorf("%s: attribute %d is %v, the capture has %s (attributes %v)", path, i, keyAt(got, i), a.FullKey(), keys(got))
			continue
		}
		g := got.Attr[i]
		if literal(a) && g.Value != a.Value {
			t.Errorf("%s/@%s = %q, the capture has %q", path, a.FullKey(), g.Value, a.Value)
		}
		if !literal(a) && kindOf(g.Value) != kindOf(a.Value) {
			t.Errorf("%s/@%s = %q is a %s, the capture's %q a %s", path, a.FullKey(), g.Value, kindOf(g.Value), a.Value, kindOf(a.Value))
		}
	}
	for _, a := range got.Attr {
		if _, ok := wantAttrs[a.FullKey()]; !ok && !ourAttributes[short+"/"+a.Key] {
			t.Errorf("%s: attribute %s is not in the capture", path, a.FullKey())
		}
	}
	wc, gc := collapse(want), collapse(got)
	if len(wc) == 0 && len(want.ChildElements()) == 0 && len(got.ChildElements()) == 0 {
		w, g := strings.TrimSpace(want.Text()), strings.TrimSpace(got.Text())
		if kindOf(w) != kindOf(g) && !(kindOf(w) == "text" && kindOf(g) != "empty") {
			t.Errorf("%s: text %q is a %s, the capture's %q a %s", path, g, kindOf(g), w, kindOf(w))
		}
	}
	j := 0
	for _, w := range wc {
		for j < len(gc) && gc[j].FullTag() != w.FullTag() && ourElements[gc[j].Tag] {
			j++
		}
		if j >= len(gc) {
			t.Errorf("%s: no <%s> where the capture has one", path, w.FullTag())
			return
		}
		sameShape(t, path, w, gc[j])
		j++
	}
	for ; j < len(gc); j++ {
		if !ourElements[gc[j].Tag] {
			t.Errorf("%s: <%s> is not in the capture", path, gc[j].FullTag())
		}
	}
}

func keys(el *etree.Element) []string {
	var out []string
	for _, a := range el.Attr {
		out = append(out, a.FullKey())
	}
	return out
}

func keyAt(el *etree.Element, i int) string {
	if i < len(el.Attr) {
		return el.Attr[i].FullKey()
	}
	return "missing"
}

func parseXML(t *testing.T, s string) *etree.Element {
	t.Helper()
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveCData = true
	if err := doc.ReadFromString(s); err != nil {
		t.Fatalf("not XML: %v\n%s", err, s)
	}
	return doc.Root()
}

// TestCapturedShapes replays the calls behind the responses real ACC
// servers sent (testdata/captured, from acc-js-sdk's test mocks) and
// compares the shapes of our answers with them.
func TestCapturedShapes(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "admin", "correct horse", session.RightAdmin)
		token, security := env.Logon(t, "admin", "correct horse")
		tokens := []string{"X-Security-Token", security}
		calls := []struct {
			file, action, body string
		}{
			{"logon.xml", "xtk:session#Logon", servertest.LogonCall("admin", "correct horse")},
			{"get_user_info.xml", "xtk:session#GetUserInfo", `<m:GetUserInfo xmlns:m="urn:xtk:session"><sessiontoken>` + token + `</sessiontoken></m:GetUserInfo>`},
			{"get_option_database_id.xml", "xtk:session#GetOption", `<m:GetOption xmlns:m="urn:xtk:session"><sessiontoken>` + token + `</sessiontoken><name>XtkDatabaseId</name></m:GetOption>`},
			{"get_option_not_found.xml", "xtk:session#GetOption", `<m:GetOption xmlns:m="urn:xtk:session"><sessiontoken>` + token + `</sessiontoken><name>NoSuchOption</name></m:GetOption>`},
			{"logoff.xml", "xtk:session#Logoff", `<m:Logoff xmlns:m="urn:xtk:session"><sessiontoken>` + token + `</sessiontoken></m:Logoff>`},
		}
		for _, c := range calls {
			t.Run(c.file, func(t *testing.T) {
				capture, err := os.ReadFile(filepath.Join("testdata", "captured", c.file))
				if err != nil {
					t.Fatal(err)
				}
				status, body := env.Post(t, c.action, servertest.Envelope("", c.body), tokens...)
				if status != 200 {
					t.Fatalf("status %d: %s", status, body)
				}
				sameShape(t, "", parseXML(t, string(capture)), parseXML(t, body))
			})
		}
	})
}

// TestDatabaseIDEverywhere: serverInfo's databaseId and
// GetOption("XtkDatabaseId") answer the same id, stable across servers on
// one database (a restart, another replica).
func TestDatabaseIDEverywhere(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")))
		id := servertest.Between(body, `databaseId="`, `"`)
		if !regexp.MustCompile(`^u[0-9A-F]{40}$`).MatchString(id) {
			t.Fatalf("databaseId %q", id)
		}
		token := servertest.Between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
		_, opt := env.Post(t, "xtk:session#GetOption", servertest.Envelope("", `<m:GetOption xmlns:m="urn:xtk:session"><sessiontoken>`+token+`</sessiontoken><name>XtkDatabaseId</name></m:GetOption>`))
		mustContain(t, opt, "<pstrValue xsi:type='xsd:string'>"+id+"</pstrValue>", "<pbtType xsi:type='xsd:byte'>6</pbtType>")
		other := servertest.New(t, dialect, servertest.Options{DB: env.DB})
		_, body = other.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")))
		if got := servertest.Between(body, `databaseId="`, `"`); got != id {
			t.Fatalf("second server reports %q, first %q", got, id)
		}
		mustContain(t, body, `releaseName="7.3.4"`, `buildNumber="9364"`, `minClientBuildNumber="8969"`,
			`<login-group id="2"/>`, `<installed-package name="campaign" namespace="nms"/>`)
	})
}
