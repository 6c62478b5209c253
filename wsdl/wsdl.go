// Package wsdl renders the document/literal WSDL 1.1 of an ACC schema from
// the schema registry, in the shape of the WSDLs a real Campaign server
// generates at /nl/jsp/schemawsdl.jsp (acc-protocol.md §1.2): one element per
// method with sessiontoken first, <Method>Response elements, a named complex
// type Element for XML parameters, soapAction "<schema>#<Method>", and a
// soap:address pointing at the caller's own soaprouter URL.
//
// Because dispatch reads the same registry, the contract cannot drift from
// the code. The generated Go client under wsdl/client is regenerated from
// this package's output (see wsdl/client/gen.go).
package wsdl

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// xsdType is the XML Schema type the WSDL declares for an ACC type.
func xsdType(name string) string {
	t := schemas.TypeOf(name)
	if t.IsXML() {
		return "tns:" + t.XSD
	}
	return "s:" + t.XSD
}

// fields returns the WSDL names and XML Schema types of params.
func fields(m *schemas.Method, params []schemas.Param) [][2]string {
	var out [][2]string
	for _, p := range params {
		out = append(out, [2]string{m.WSDLName(p), xsdType(p.Type)})
	}
	return out
}

// Render writes the WSDL of schema s; location is the absolute URL of the
// SOAP router clients must post to.
func Render(w io.Writer, s *schemas.Schema, location string) error {
	tns := "urn:" + s.ID()
	binding := s.Name + "MethodsSoap"
	service := strings.ToUpper(s.Namespace[:1]) + s.Namespace[1:] + strings.ToUpper(s.Name[:1]) + s.Name[1:]
	// Responses are in the namespace the server answers in: the schema's
	// own, except for an interface's WSDL (xtk:persist), whose methods
	// real servers answer in urn:wpp:default. Those response elements go
	// in a second schema of that namespace, prefix wpp.
	respPrefix := func(m *schemas.Method) string {
		if m.ResponseNamespace(s.ID()) == tns {
			return "tns"
		}
		return "wpp"
	}
	wpp := false
	for _, m := range s.Methods {
		wpp = wpp || respPrefix(m) == "wpp"
	}
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<?xml version="1.0" encoding="utf-8"?>`)
	if wpp {
		p(`<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tns="%s" xmlns:wpp="%s" targetNamespace="%s">`, tns, nsWPP, tns)
	} else {
		p(`<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" xmlns:s="http://www.w3.org/2001/XMLSchema" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:tns="%s" targetNamespace="%s">`, tns, tns)
	}
	p(`  <types>`)
	p(`    <s:schema elementFormDefault="qualified" targetNamespace="%s">`, tns)
	p(`      <s:complexType name="Element">`)
	p(`        <s:sequence>`)
	p(`          <s:any minOccurs="0" processContents="lax"/>`)
	p(`        </s:sequence>`)
	p(`      </s:complexType>`)
	element := func(name string, fields [][2]string) {
		if len(fields) == 0 {
			p(`      <s:element name="%s">`, name)
			p(`        <s:complexType/>`)
			p(`      </s:element>`)
			return
		}
		p(`      <s:element name="%s">`, name)
		p(`        <s:complexType>`)
		p(`          <s:sequence>`)
		for _, f := range fields {
			p(`            <s:element maxOccurs="1" minOccurs="1" name="%s" type="%s"/>`, f[0], f[1])
		}
		p(`          </s:sequence>`)
		p(`        </s:complexType>`)
		p(`      </s:element>`)
	}
	for _, m := range s.Methods {
		element(m.Name, fields(m, m.RequestParams()))
		if respPrefix(m) == "tns" {
			element(m.Name+"Response", fields(m, m.ResponseParams()))
		}
	}
	p(`    </s:schema>`)
	if wpp {
		// The responses' XML parameters use an Element type of their own
		// namespace: the answers say xsi:type='ns:Element' with ns bound
		// to urn:wpp:default, and zeep resolves that type there (it also
		// reads a tns: prefix inside a schema as that schema's target
		// namespace).
		p(`    <s:schema elementFormDefault="qualified" targetNamespace="%s">`, nsWPP)
		p(`      <s:complexType name="Element">`)
		p(`        <s:sequence>`)
		p(`          <s:any minOccurs="0" processContents="lax"/>`)
		p(`        </s:sequence>`)
		p(`      </s:complexType>`)
		for _, m := range s.Methods {
			if respPrefix(m) == "wpp" {
				fs := fields(m, m.ResponseParams())
				for i := range fs {
					fs[i][1] = strings.Replace(fs[i][1], "tns:Element", "wpp:Element", 1)
				}
				element(m.Name+"Response", fs)
			}
		}
		p(`    </s:schema>`)
	}
	p(`  </types>`)
	for _, m := range s.Methods {
		p(`  <message name="%sIn">`, m.Name)
		p(`    <part element="tns:%s" name="parameters"/>`, m.Name)
		p(`  </message>`)
		p(`  <message name="%sOut">`, m.Name)
		p(`    <part element="%s:%sResponse" name="parameters"/>`, respPrefix(m), m.Name)
		p(`  </message>`)
	}
	p(`  <portType name="%s">`, binding)
	for _, m := range s.Methods {
		p(`    <operation name="%s">`, m.Name)
		p(`      <input message="tns:%sIn"/>`, m.Name)
		p(`      <output message="tns:%sOut"/>`, m.Name)
		p(`    </operation>`)
	}
	p(`  </portType>`)
	p(`  <binding name="%s" type="tns:%s">`, binding, binding)
	p(`    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>`)
	for _, m := range s.Methods {
		p(`    <operation name="%s">`, m.Name)
		p(`      <soap:operation soapAction="%s#%s" style="document"/>`, s.ID(), m.Name)
		for _, dir := range []string{"input", "output"} {
			ns := tns
			if dir == "output" {
				ns = m.ResponseNamespace(s.ID())
			}
			p(`      <%s>`, dir)
			p(`        <soap:body encodingStyle="http://schemas.xmlsoap.org/soap/encoding/" namespace="%s" use="literal"/>`, ns)
			p(`      </%s>`, dir)
		}
		p(`    </operation>`)
	}
	p(`  </binding>`)
	p(`  <service name="%s">`, service)
	p(`    <port binding="tns:%s" name="%s">`, binding, binding)
	p(`      <soap:address location="%s"/>`, attr(location))
	p(`    </port>`)
	p(`  </service>`)
	p(`</definitions>`)
	_, err := w.Write(b.Bytes())
	return err
}

// nsWPP is the namespace real servers answer interface methods in.
const nsWPP = "urn:wpp:default"

func attr(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), `"`, "&#34;")
}
