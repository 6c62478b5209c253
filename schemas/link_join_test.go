package schemas

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestLinkWithJoinRefused: ACC declares a link's key with <join> (on the
// target's id or on any other field); the registry read neither, gave
// the link a column of its own (<name>_id, empty on every row) and loaded
// the schema without a word: the newsletter log joined to its recipient
// on @email was neither collected nor deleted with the recipient. A link
// with a <join> is refused at start, naming the file, the link and what
// to declare instead. So is an unbound link (ACC's collection side of a
// link, declared on the parent), which became a bogus <name>_id column of
// the parent table.
func TestLinkWithJoinRefused(t *testing.T) {
	schema := func(body string) fstest.MapFS {
		return fstest.MapFS{"cus_newsletterLog.xml": {Data: []byte(`<schema namespace="cus" name="newsletterLog">
  <element name="newsletterLog" autopk="true">
    <attribute name="email" type="string" length="128"/>
    <attribute name="customerId" type="long"/>
    ` + body + `
  </element>
</schema>`)}}
	}
	cases := map[string]struct {
		custom fstest.MapFS
		want   []string
	}{
		"join on a field": {schema(`<element name="recipient" type="link" target="nms:recipient" revIntegrity="own">
      <join xpath-dst="@email" xpath-src="@email"/>
    </element>`), []string{"cus_newsletterLog.xml:5:", `link "recipient"`, "<join>", "not supported", "target's id"}},
		"join on the id": {schema(`<element name="recipient" type="link" target="nms:recipient" revIntegrity="own">
      <join xpath-dst="@id" xpath-src="@customerId"/>
    </element>`), []string{"cus_newsletterLog.xml:5:", `link "recipient"`, "<join>", "sqlname"}},
		"unbound": {fstest.MapFS{"cus_newsletterLog.xml": schema(`<element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/>`)["cus_newsletterLog.xml"],
			"cus_recipient.xml": {Data: []byte(`<schema namespace="cus" name="recipient" extendedSchema="nms:recipient">
  <element name="recipient">
    <element name="newsletterLogs" type="link" target="cus:newsletterLog" unbound="true"/>
  </element>
</schema>`)}}, []string{"cus_recipient.xml:3:", `link "newsletterLogs"`, `unbound="true"`, "not supported"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := New(c.custom)
			if err == nil {
				t.Fatal("the schema loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nlacks %s", err, w)
				}
			}
		})
	}
	// A link keyed on the target's id through its own column still loads.
	r, err := New(schema(`<element name="recipient" type="link" target="nms:recipient" revIntegrity="own" sqlname="customer_ref"/>`))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Schema("cus:newsletterLog")
	if l, ok := s.Data.Link("recipient"); !ok || l.SQLName != "customer_ref" {
		t.Fatalf("the link: %+v", l)
	}
}
