package wsdl_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/wsdl"
)

const location = "http://localhost:8080/nl/jsp/soaprouter.jsp"

// TestGoldenMatchesGeneratedClient: the WSDLs the gowsdl clients were
// generated from are exactly what the server renders today. A schema change
// fails here until `go generate ./wsdl/client` is run.
func TestGoldenMatchesGeneratedClient(t *testing.T) {
	reg, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	for id, file := range map[string]string{"xtk:session": "xtk_session.wsdl", "nms:privacyRequest": "nms_privacyRequest.wsdl", "xtk:persist": "xtk_persist.wsdl", "nms:recipient": "nms_recipient.wsdl"} {
		s, ok := reg.Schema(id)
		if !ok {
			s, _ = reg.Interface(id)
		}
		var got bytes.Buffer
		if err := wsdl.Render(&got, s, location); err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("client", "testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: the rendered WSDL differs from client/testdata/%s: run go generate ./wsdl/client", id, file)
		}
	}
}

// TestShape checks the points of acc-protocol.md §1.2 on every schema.
func TestShape(t *testing.T) {
	// Every schema the registry knows, custom ones included, and the
	// xtk:persist interface.
	reg, err := schemas.New(os.DirFS(filepath.Join("..", "examples", "schemas")))
	if err != nil {
		t.Fatal(err)
	}
	persist, ok := reg.Interface("xtk:persist")
	if !ok {
		t.Fatal("no xtk:persist interface")
	}
	for _, s := range append(reg.Schemas(), persist) {
		if len(s.Methods) == 0 {
			t.Errorf("%s has no method: its WSDL would have no operation", s.ID())
			continue
		}
		t.Run(s.ID(), func(t *testing.T) {
			var b bytes.Buffer
			if err := wsdl.Render(&b, s, location); err != nil {
				t.Fatal(err)
			}
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(b.Bytes()); err != nil {
				t.Fatalf("not XML: %v", err)
			}
			root := doc.Root()
			if root.SelectAttrValue("targetNamespace", "") != "urn:"+s.ID() {
				t.Error("targetNamespace")
			}
			for _, m := range s.Methods {
				el := root.FindElement("./types/schema/element[@name='" + m.Name + "']")
				if el == nil {
					t.Fatalf("no element %s", m.Name)
				}
				first := el.FindElement("./complexType/sequence/element")
				if first == nil || first.SelectAttrValue("name", "") != "sessiontoken" {
					t.Errorf("%s: sessiontoken is not first", m.Name)
				}
				if root.FindElement("./types/schema/element[@name='"+m.Name+"Response']") == nil {
					t.Errorf("no %sResponse", m.Name)
				}
				op := root.FindElement("./binding/operation[@name='" + m.Name + "']/operation")
				if op == nil || op.SelectAttrValue("soapAction", "") != s.ID()+"#"+m.Name {
					t.Errorf("%s: soapAction", m.Name)
				}
			}
			binding := s.Name + "MethodsSoap"
			if root.FindElement("./portType[@name='"+binding+"']") == nil || root.FindElement("./binding[@name='"+binding+"']") == nil {
				t.Error("portType and binding must be named " + binding)
			}
			addr := root.FindElement("./service/port/address")
			if addr == nil || addr.SelectAttrValue("location", "") != location {
				t.Error("soap:address")
			}
			if !strings.Contains(b.String(), `<s:complexType name="Element">`) {
				t.Error("no named Element type")
			}
		})
	}
}

func TestSessionWSDLNames(t *testing.T) {
	reg, _ := schemas.Default()
	s, _ := reg.Schema("xtk:session")
	var b bytes.Buffer
	_ = wsdl.Render(&b, s, location)
	for _, want := range []string{`name="strLogin" type="s:string"`, `name="elemParameters" type="tns:Element"`,
		`name="pstrSessionToken"`, `name="pSessionInfo" type="tns:Element"`, `name="pstrSecurityToken"`,
		`name="pdomDoc" type="tns:Element"`, `name="bMustExist" type="s:boolean"`, `name="pbtType" type="s:byte"`,
		`<service name="XtkSession">`, `name="GetEntityIfMoreRecent"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("xtk:session WSDL lacks %s", want)
		}
	}
	p, _ := reg.Schema("nms:privacyRequest")
	b.Reset()
	_ = wsdl.Render(&b, p, location)
	for _, want := range []string{`name="namespaceName" type="s:string"`, `name="type" type="s:int"`,
		`name="confirmDeletePending" type="s:boolean"`, `name="regulation" type="s:int"`, `name="id" type="s:int"`,
		`<service name="NmsPrivacyRequest">`, `soapAction="nms:privacyRequest#CreateRequestByName"`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("nms:privacyRequest WSDL lacks %s", want)
		}
	}
}
