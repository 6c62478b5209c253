package server

import (
	"testing"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/schemas"
)

var benchEnvelope = []byte(`<SOAP-ENV:Envelope xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:ns="http://xml.apache.org/xml-soap" xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Header><Cookie>__sessiontoken=x</Cookie><X-Security-Token>y</X-Security-Token></SOAP-ENV:Header><SOAP-ENV:Body><m:CreateRequestByName xmlns:m="urn:nms:privacyRequest" SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><sessiontoken xsi:type="xsd:string">eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.e30.x</sessiontoken><namespaceName xsi:type="xsd:string">defaultNamespace1</namespaceName><reconciliationValue xsi:type="xsd:string">john@example.com</reconciliationValue><type xsi:type="xsd:int">1</type><confirmDeletePending xsi:type="xsd:boolean">true</confirmDeletePending><regulation xsi:type="xsd:int">1</regulation></m:CreateRequestByName></SOAP-ENV:Body></SOAP-ENV:Envelope>`)

// BenchmarkParseEnvelope: limits pass plus tree, for a CreateRequestByName.
func BenchmarkParseEnvelope(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchEnvelope)))
	for i := 0; i < b.N; i++ {
		if _, err := DefaultLimits.parseEnvelope(benchEnvelope); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteResponse: a Logon response with its sessionInfo.
func BenchmarkWriteResponse(b *testing.B) {
	reg, err := schemas.Default()
	if err != nil {
		b.Fatal(err)
	}
	m, _ := reg.Method("xtk:session", "Logon")
	info := etree.NewElement("sessionInfo")
	ui := info.CreateElement("userInfo")
	ui.CreateAttr("login", "ana")
	ui.CreateElement("login-right").CreateAttr("right", "privacyRight")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := writeResponse(m, "xtk:session", []any{"token", info, "@security"}); err != nil {
			b.Fatal(err)
		}
	}
}
