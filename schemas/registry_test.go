package schemas

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestDefaultRegistry(t *testing.T) {
	r, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"xtk:session", "xtk:queryDef", "nms:privacyRequest", "nms:gdprRequest"} {
		if _, ok := r.Schema(id); !ok {
			t.Errorf("schema %s missing", id)
		}
	}
	tests := []struct {
		service, method, wantService string
	}{
		{"xtk:session", "Logon", "xtk:session"},
		{"xtk:persist", "GetEntityIfMoreRecent", "xtk:persist"},
		{"xtk:persist|xtk:session", "GetEntityIfMoreRecent", "xtk:persist"},
		{"xtk:session", "GetEntityIfMoreRecent", "xtk:persist"}, // through the implementing schema
		{"nms:privacyRequest", "CreateRequestByName", "nms:privacyRequest"},
		{"nms:gdprRequest", "CreateRequestByName", "nms:gdprRequest"},
		{"xtk:queryDef", "ExecuteQuery", "xtk:queryDef"},
	}
	for _, tt := range tests {
		m, ok := r.Method(tt.service, tt.method)
		if !ok || m.Service != tt.wantService {
			t.Errorf("Method(%s, %s) = %v, %v", tt.service, tt.method, m, ok)
		}
	}
	if _, ok := r.Method("xtk:session", "Nothing"); ok {
		t.Error("unknown method found")
	}
	if r.HasService("xyz:nothing") || !r.HasService("xtk:persist") {
		t.Error("HasService")
	}
}

func TestWireNames(t *testing.T) {
	r, _ := Default()
	names := func(m *Method, ps []Param) string {
		var out []string
		for _, p := range ps {
			out = append(out, m.WSDLName(p))
		}
		return strings.Join(out, ",")
	}
	logon, _ := r.Method("xtk:session", "Logon")
	if got := names(logon, logon.RequestParams()); got != "sessiontoken,strLogin,strPassword,elemParameters" {
		t.Errorf("Logon in: %s", got)
	}
	if got := names(logon, logon.ResponseParams()); got != "pstrSessionToken,pSessionInfo,pstrSecurityToken" {
		t.Errorf("Logon out: %s", got)
	}
	q, _ := r.Method("xtk:queryDef", "ExecuteQuery")
	if got := names(q, q.RequestParams()) + "|" + names(q, q.ResponseParams()); got != "sessiontoken,entity|pdomOutput" {
		t.Errorf("ExecuteQuery: %s", got)
	}
	opt, _ := r.Method("xtk:session", "GetOption")
	if got := names(opt, opt.ResponseParams()); got != "pstrValue,pbtType" {
		t.Errorf("GetOption out: %s", got)
	}
	c, _ := r.Method("nms:privacyRequest", "CreateRequestByName")
	if got := names(c, c.RequestParams()) + "|" + names(c, c.ResponseParams()); got != "sessiontoken,namespaceName,reconciliationValue,type,confirmDeletePending,regulation|id" {
		t.Errorf("CreateRequestByName: %s", got)
	}
}

func TestLoadRejectsBadSchemas(t *testing.T) {
	cases := map[string]string{
		"not xml":    `<schema`,
		"wrong root": `<srcSchema namespace="a" name="b"/>`,
		"no name":    `<schema namespace="a"/>`,
		"bad type":   `<schema namespace="a" name="b"><methods><method name="M"><parameters><param name="p" type="blob"/></parameters></method></methods></schema>`,
		"bad inout":  `<schema namespace="a" name="b"><methods><method name="M"><parameters><param name="p" type="string" inout="both"/></parameters></method></methods></schema>`,
		"duplicate":  `<schema namespace="a" name="b"><methods><method name="M"/><method name="M"/></methods></schema>`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := Load(fstest.MapFS{"x.xml": {Data: []byte(doc)}}); err == nil || !strings.Contains(err.Error(), "x.xml") {
				t.Fatalf("err = %v, want one naming the file", err)
			}
		})
	}
}

// TestCustomSchemaOnATakenTableRefused: a custom schema that maps a table
// another schema has (cus:contact on nms_recipient) used to load: a Write
// through it skipped the namespaces' canonical forms (their rules are
// keyed by schema) and its delete left the rows the recipient owns. A
// database's own names (pg_stats) are refused too.
func TestCustomSchemaOnATakenTableRefused(t *testing.T) {
	for name, c := range map[string]struct{ table, want string }{
		"data model": {"nms_recipient", `cus_contact.xml:1: sqltable nms_recipient is already nms:recipient's: extend that schema (extendedSchema) instead`},
		"catalogue":  {"pg_stats", `cus_contact.xml:1: sqltable pg_stats is a database's own name`},
	} {
		t.Run(name, func(t *testing.T) {
			doc := `<schema namespace="cus" name="contact">
  <element name="contact" sqltable="` + c.table + `" autopk="true">
    <attribute name="email" type="string" length="128"/>
  </element>
</schema>`
			if _, err := New(fstest.MapFS{"cus_contact.xml": {Data: []byte(doc)}}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant %s", err, c.want)
			}
		})
	}
	two := fstest.MapFS{}
	for _, n := range []string{"a", "b"} {
		two["cus_"+n+".xml"] = &fstest.MapFile{Data: []byte(`<schema namespace="cus" name="` + n + `">
  <element name="` + n + `" sqltable="cus_shared" autopk="true"><attribute name="v" type="string"/></element>
</schema>`)}
	}
	if _, err := New(two); err == nil || !strings.Contains(err.Error(), "sqltable cus_shared is already") {
		t.Fatalf("two custom schemas on one table: %v", err)
	}
}

func TestDocumentIsACopy(t *testing.T) {
	r, _ := Default()
	s, _ := r.Schema("nms:privacyRequest")
	d := s.Document()
	d.CreateAttr("name", "changed")
	if s.Document().SelectAttrValue("name", "") != "privacyRequest" {
		t.Fatal("Document must return a copy")
	}
}

func TestOwnedBy(t *testing.T) {
	custom := fstest.MapFS{
		"t.xml": {Data: []byte(`<schema namespace="cus" name="transaction"><element name="transaction" autopk="true">
  <attribute name="amount" type="double"/><element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/></element></schema>`)},
		"d.xml": {Data: []byte(`<schema namespace="cus" name="transactionDetail"><element name="transactionDetail" autopk="true">
  <attribute name="product" type="string"/><element name="transaction" type="link" target="cus:transaction" revIntegrity="own"/></element></schema>`)},
		"n.xml": {Data: []byte(`<schema namespace="cus" name="note"><element name="note" autopk="true">
  <element name="recipient" type="link" target="nms:recipient"/></element></schema>`)},
	}
	r, err := New(custom)
	if err != nil {
		t.Fatal(err)
	}
	owned, err := r.OwnedBy("nms:recipient")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range owned.Order {
		ids = append(ids, s.ID())
	}
	want := "nms:recipient,nms:broadLogRcp,nms:trackingLogRcp,nms:broadLogEventHisto,nms:rcpGrpRel,nms:visitor,nms:propositionVisitor,nms:subHisto,nms:subscription,nms:propositionRcp,cus:transaction,cus:transactionDetail"
	if got := strings.Join(ids, ","); got != want {
		t.Fatalf("order\n got %s\nwant %s", got, want)
	}
	tr, _ := r.Schema("nms:trackingLogRcp")
	if len(owned.Parents[tr]) != 2 {
		t.Fatalf("trackingLogRcp is owned through recipient and broadLog: %v", owned.Parents[tr])
	}
	for _, s := range owned.Order {
		if s.ID() == "cus:note" || s.ID() == "nms:delivery" || s.ID() == "nms:group" {
			t.Fatalf("%s is not owned by the recipient", s.ID())
		}
	}
	cyc := fstest.MapFS{
		"a.xml": {Data: []byte(`<schema namespace="cus" name="a"><element name="a" autopk="true"><element name="r" type="link" target="nms:recipient" revIntegrity="own"/><element name="b" type="link" target="cus:b" revIntegrity="own"/></element></schema>`)},
		"b.xml": {Data: []byte(`<schema namespace="cus" name="b"><element name="b" autopk="true"><element name="a" type="link" target="cus:a" revIntegrity="own"/></element></schema>`)},
	}
	r2, err := New(cyc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.OwnedBy("nms:recipient"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle not reported: %v", err)
	}
}

// TestExtensionRedefiningALinkRefused: an extension may add fields, not
// redefine one. An extension of nms:broadLogRcp declaring its own link
// "delivery" was merged beside the schema's: every delivery log was then
// written to the access file with two delivery-id attributes (not
// well-formed XML), and which delivery the log points at was ambiguous.
// A link whose name or column is taken is refused at start, with the
// file, as an attribute whose name is; so is an attribute whose column
// is.
func TestExtensionRedefiningALinkRefused(t *testing.T) {
	ext := func(file, body string) fstest.MapFS {
		return fstest.MapFS{file: {Data: []byte(`<schema namespace="cus" name="broadLogRcp" extendedSchema="nms:broadLogRcp">
  <element name="broadLogRcp">` + body + `</element>
</schema>`)}}
	}
	cases := map[string]struct {
		custom fstest.MapFS
		want   string
	}{
		"link name": {ext("cus_broadLogRcp.xml", `<element name="delivery" type="link" target="nms:delivery" sqlname="archived_delivery_id"/>`),
			`cus_broadLogRcp.xml:1: nms:broadLogRcp already has a link "delivery" (@delivery-id)`},
		"link column": {ext("cus_broadLogRcp.xml", `<element name="archivedDelivery" type="link" target="nms:delivery" sqlname="delivery_id"/>`),
			`cus_broadLogRcp.xml:1: nms:broadLogRcp already has a column "delivery_id" (link archivedDelivery)`},
		"attribute column": {ext("cus_broadLogRcp.xml", `<attribute name="deliveryRef" type="long" sqlname="delivery_id"/>`),
			`cus_broadLogRcp.xml:1: nms:broadLogRcp already has a column "delivery_id" (attribute deliveryRef)`},
		"two extensions": {
			fstest.MapFS{
				"a.xml": ext("a.xml", `<element name="archive" type="link" target="nms:delivery"/>`)["a.xml"],
				"b.xml": ext("b.xml", `<element name="archive" type="link" target="nms:delivery" sqlname="archive2_id"/>`)["b.xml"],
			},
			`b.xml:1: nms:broadLogRcp already has a link "archive" (@archive-id)`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := New(c.custom); err == nil || err.Error() != c.want {
				t.Fatalf("err = %v\nwant %s", err, c.want)
			}
		})
	}
	// A new link on a column of its own is an extension's business.
	r, err := New(ext("cus_broadLogRcp.xml", `<element name="archivedDelivery" type="link" target="nms:delivery"/>`))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema("nms:broadLogRcp")
	if l, ok := s.Data.Link("archivedDelivery"); !ok || l.SQLName != "archived_delivery_id" || l.Schema != s {
		t.Fatalf("the extension's link: %+v", l)
	}
	// The served document (acc-js-sdk's getSchema) shows it too, as it
	// shows an extension's attributes.
	var served bool
	for _, el := range s.Document().FindElements("//element[@name='archivedDelivery']") {
		served = served || el.SelectAttrValue("type", "") == "link" && el.SelectAttrValue("target", "") == "nms:delivery"
	}
	if !served {
		t.Error("the extension's link is not in the schema's served document")
	}
}

// householdSchemas make a cycle of own links through nms:recipient: a
// household is owned by its head (a recipient), and a recipient by its
// household.
var householdSchemas = fstest.MapFS{
	"cus_household.xml": {Data: []byte(`<schema namespace="cus" name="household">
  <element name="household" autopk="true">
    <attribute name="label" type="string" length="64"/>
    <element name="head" type="link" target="nms:recipient" revIntegrity="own"/>
  </element>
</schema>`)},
	"cus_recipient.xml": {Data: []byte(`<schema namespace="cus" name="recipient" extendedSchema="nms:recipient">
  <element name="recipient">
    <element name="household" type="link" target="cus:household" revIntegrity="own"/>
  </element>
</schema>`)},
}

// TestOwnCycleThroughRootRefused: OwnedBy refused a cycle of own links
// between other tables, but not one through the root: the root starts
// done, so the recipient's own link to the household it owns was neither
// refused nor followed, and the access file and the delete left out the
// recipients the subject's household owns, with no error. Such a cycle is
// refused as the others are; the root's links to itself are still
// followed.
func TestOwnCycleThroughRootRefused(t *testing.T) {
	r, err := New(householdSchemas)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.OwnedBy("nms:recipient")
	if err == nil || !strings.Contains(err.Error(), "cycle") || !strings.Contains(err.Error(), `"household"`) {
		t.Fatalf("cycle through the root not reported: %v", err)
	}
	self := fstest.MapFS{"cus_recipient.xml": {Data: []byte(`<schema namespace="cus" name="recipient" extendedSchema="nms:recipient">
  <element name="recipient">
    <element name="guardian" type="link" target="nms:recipient" revIntegrity="own"/>
  </element>
</schema>`)}}
	r, err = New(self)
	if err != nil {
		t.Fatal(err)
	}
	owned, err := r.OwnedBy("nms:recipient")
	if err != nil {
		t.Fatalf("the root's self link: %v", err)
	}
	root := owned.Order[0]
	if ls := owned.Parents[root]; root.ID() != "nms:recipient" || len(ls) != 1 || ls[0].Name != "guardian" {
		t.Fatalf("the root's self link is not followed: %s %v", root.ID(), ls)
	}
}
