package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// withoutPrivacyRight are the methods an operator without the Privacy Data
// Right may call: its session's own business, and nothing that reads or
// writes personal data or privacy requests.
var withoutPrivacyRight = []string{
	"xtk:session#Logon", "xtk:session#BearerTokenLogon", "xtk:session#Logoff",
	"xtk:session#GetServerTime", "xtk:session#GetUserInfo", "xtk:session#GetOption",
	"xtk:persist#GetEntityIfMoreRecent",
}

// TestRightsMatrix calls every method the schemas declare, through its own
// service, with parameters of the declared types: without a session, with
// an operator holding no right, and with one holding the Privacy Data Right
// but not admin. Each refusal names what is missing, and a refused call
// writes nothing. A method added later without its check fails here until
// it is listed above on purpose.
func TestRightsMatrix(t *testing.T) {
	env := servertest.New(t, "sqlite", servertest.Options{})
	env.Operator(t, "nobody", "correct horse")
	env.Operator(t, "dpo", "correct horse", session.RightPrivacy)
	ctx := context.Background()
	if err := env.DB.InsertRows(ctx, "nms_recipient", []string{"id", "email"}, [][]any{{int64(1), "ana@example.com"}}); err != nil {
		t.Fatal(err)
	}
	sql := storetest.SQLOf(t, env.DB)
	counts := func() string {
		var parts []string
		for _, table := range []string{"nms_recipient", "privacy_requests", "operators", "instance_options", "sessions"} {
			n, err := sql.Int(ctx, "SELECT count(*) FROM "+table)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, fmt.Sprintf("%s=%d", table, n))
		}
		return strings.Join(parts, " ")
	}
	var methods []*schemas.Method
	seen := map[string]bool{}
	for _, s := range env.Registry.Schemas() {
		for _, m := range s.Methods {
			if key := m.Service + "#" + m.Name; !seen[key] {
				seen[key] = true
				methods = append(methods, m)
			}
		}
	}
	if len(methods) < 15 {
		t.Fatalf("the registry declares %d methods: the matrix would prove little", len(methods))
	}
	nobody, _ := env.Logon(t, "nobody", "correct horse")
	dpo, _ := env.Logon(t, "dpo", "correct horse")
	before := counts()
	for _, m := range methods {
		key := m.Service + "#" + m.Name
		if m.Anonymous() {
			continue
		}
		call := func(token string) string {
			_, body := env.Post(t, key, servertest.Envelope("", callOf(m, token)))
			return body
		}
		if body := call(""); !strings.Contains(body, "XSV-350008") {
			t.Errorf("%s without a session: want the invalid-session fault XSV-350008, got %.300s", key, body)
		}
		if !slices.Contains(withoutPrivacyRight, key) {
			body := call(nobody)
			if !strings.Contains(body, "Fault>") || !(strings.Contains(body, "privacyRight") || strings.Contains(body, "admin right") || strings.Contains(body, "does not implement")) {
				t.Errorf("%s by an operator without the Privacy Data Right: want a fault naming the right (or the method not implemented), got %.300s", key, body)
			}
		}
		if m.Service == "xtk:workflow" {
			if body := call(dpo); !strings.Contains(body, "admin right") {
				t.Errorf("%s by an operator with the Privacy Data Right but not admin: want a fault naming the admin right, got %.300s", key, body)
			}
		}
	}
	if after := counts(); after != before {
		t.Errorf("refused calls changed the database: before %s, after %s", before, after)
	}
}

// callOf is m's method element with every parameter present and of its
// declared type, so that the call gets past the parameters' binding to the
// rights check.
func callOf(m *schemas.Method, token string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<m:%s xmlns:m="urn:%s">`, m.Name, m.Service)
	for _, p := range m.RequestParams() {
		switch {
		case p.Name == "sessiontoken":
			fmt.Fprintf(&b, `<sessiontoken xsi:type="xsd:string">%s</sessiontoken>`, token)
		case p.IsXML():
			fmt.Fprintf(&b, `<%s xsi:type="ns:Element"><%s xtkschema="nms:recipient" email="ana@example.com" _operation="insert"/></%s>`, p.Name, p.Name, p.Name)
		case p.Type == schemas.TypeBoolean:
			fmt.Fprintf(&b, `<%s xsi:type="xsd:boolean">false</%s>`, p.Name, p.Name)
		case p.Type == schemas.TypeString:
			fmt.Fprintf(&b, `<%s xsi:type="xsd:string">collectPrivacyRequests</%s>`, p.Name, p.Name)
		default:
			fmt.Fprintf(&b, `<%s xsi:type="xsd:%s">1</%s>`, p.Name, p.Type, p.Name)
		}
	}
	fmt.Fprintf(&b, `</m:%s>`, m.Name)
	return b.String()
}
