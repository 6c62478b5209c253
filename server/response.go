package server

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// Responses are written from strings, not encoding/xml: acc-js-sdk compares
// qualified names literally, so the prefixes SOAP-ENV, xsi and xsd, the
// unprefixed <Method>Response and the xsi:type values must be exactly these
// (acc-protocol.md §1.5).

const envelopeOpen = `<?xml version='1.0'?>` + "\n" +
	`<SOAP-ENV:Envelope xmlns:xsd='` + nsXSD + `' xmlns:xsi='` + nsXSI + `' xmlns:ns='%s' xmlns:SOAP-ENV='` + nsSOAPEnv + `'>` + "\n" +
	`<SOAP-ENV:Body>` + "\n"

const envelopeClose = `</SOAP-ENV:Body>` + "\n" + `</SOAP-ENV:Envelope>` + "\n"

// envelopeNamespace is the xmlns:ns of the envelope: the response's own
// namespace, except for GetUserInfo, which real servers answer in an
// envelope declaring urn:wpp:default around a response in urn:xtk:session
// (acc-js-sdk's captured GET_USER_INFO_RESPONSE).
func envelopeNamespace(m *schemas.Method, ns string) string {
	if m.Service == "xtk:session" && m.Name == "GetUserInfo" {
		return "urn:wpp:default"
	}
	return ns
}

// writeResponse renders the <Method>Response of m with values in the order
// of m.ResponseParams(). Each value's Go type must fit the declared type.
func writeResponse(m *schemas.Method, called string, values []any) ([]byte, error) {
	outs := m.ResponseParams()
	if len(values) != len(outs) {
		return nil, fmt.Errorf("method %s returned %d values for %d out parameters", m.Name, len(values), len(outs))
	}
	ns := m.ResponseNamespace(called)
	var b bytes.Buffer
	fmt.Fprintf(&b, envelopeOpen, envelopeNamespace(m, ns))
	fmt.Fprintf(&b, `<%sResponse xmlns='%s' SOAP-ENV:encodingStyle='%s'>`+"\n", m.Name, ns, encSOAP)
	for i, p := range outs {
		name := m.WSDLName(p)
		if p.IsXML() {
			fmt.Fprintf(&b, `<%s xsi:type='ns:Element' SOAP-ENV:encodingStyle='%s'>`, name, encLiteral)
			if el, ok := values[i].(*etree.Element); ok && el != nil {
				if err := writeElement(&b, el); err != nil {
					return nil, err
				}
			} else if values[i] != nil {
				return nil, fmt.Errorf("method %s: out %s wants an element", m.Name, p.Name)
			}
			fmt.Fprintf(&b, "</%s>\n", name)
			continue
		}
		text, err := formatScalar(p.Type, values[i])
		if err != nil {
			return nil, fmt.Errorf("method %s: out %s: %w", m.Name, p.Name, err)
		}
		fmt.Fprintf(&b, `<%s xsi:type='%s'>`, name, schemas.TypeOf(p.Type).XSI)
		b.WriteString(schemas.EscapeText(text))
		fmt.Fprintf(&b, "</%s>\n", name)
	}
	fmt.Fprintf(&b, "</%sResponse>\n", m.Name)
	b.WriteString(envelopeClose)
	return b.Bytes(), nil
}

// writeElement serialises an element built by this server (shallow, bounded)
// without resetting the default namespace, so it inherits the response's.
func writeElement(b *bytes.Buffer, el *etree.Element) error {
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	doc.WriteSettings.AttrSingleQuote = false
	// Line breaks in attribute values (the audit memo) must survive parsing.
	doc.WriteSettings.CanonicalAttrVal = true
	_, err := doc.WriteTo(b)
	return err
}

func formatScalar(typ string, v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case time.Time:
		if typ == schemas.TypeDate {
			return schemas.FormatDate(x.UTC()), nil
		}
		return schemas.FormatXSDDateTime(x), nil
	}
	return "", fmt.Errorf("value of type %T cannot be written as %s", v, typ)
}

// fault is one row of the fault table.
type fault struct {
	faultcode string // SOAP-ENV:Client, SOAP-ENV:Server, …
	text      string // faultstring, starting with the ACC code; {method} method, {service} service
	detail    bool   // whether the error's caller-safe message goes into <detail>
}

// faults is the one table from apperr codes to ACC faults. The ACC codes and
// texts are those seen on real servers (acc-protocol.md §3.3); SOP-330001 for
// an unusable message is our choice (real ACC sends that text without a code).
var faults = map[apperr.Code]fault{
	apperr.Malformed:       {"SOAP-ENV:Client", "SOP-330001 The XML SOAP message is invalid (service '{service}', method '{method}').", true},
	apperr.TooLarge:        {"SOAP-ENV:Client", "SOP-330001 The XML SOAP message is invalid (service '{service}', method '{method}').", true},
	apperr.VersionMismatch: {"SOAP-ENV:VersionMismatch", "SOP-330001 The XML SOAP message is invalid (service '{service}', method '{method}').", true},
	apperr.MustUnderstand:  {"SOAP-ENV:MustUnderstand", "SOP-330001 The XML SOAP message is invalid (service '{service}', method '{method}').", true},
	apperr.UnknownMethod:   {"SOAP-ENV:Client", "SOP-330006 The method '{method}' is not defined in SOAP service '{service}'.", false},
	apperr.BadLogon:        {"SOAP-ENV:Client", "XSV-350012 Invalid login or password.", false},
	apperr.BadSession:      {"SOAP-ENV:Client", "XSV-350008 Session has expired or is invalid. Please reconnect.", false},
	apperr.Invalid:         {"SOAP-ENV:Server", "SOP-330011 Error while executing the method '{method}' of service '{service}'.", true},
	apperr.Forbidden:       {"SOAP-ENV:Server", "SOP-330011 Error while executing the method '{method}' of service '{service}'.", true},
	apperr.NotFound:        {"SOAP-ENV:Server", "SOP-330011 Error while executing the method '{method}' of service '{service}'.", true},
	apperr.Conflict:        {"SOAP-ENV:Server", "SOP-330011 Error while executing the method '{method}' of service '{service}'.", true},
	apperr.Busy:            {"SOAP-ENV:Server", "SOP-330011 Error while executing the method '{method}' of service '{service}'.", true},
	apperr.Internal:        {"SOAP-ENV:Server", "SOP-330011 Error while executing the method '{method}' of service '{service}'.", true},
}

// faultCodes are the ACC codes the faults start with (the outcome label of
// the call metrics), read from the table above.
var faultCodes = func() map[apperr.Code]string {
	out := make(map[apperr.Code]string, len(faults))
	for code, f := range faults {
		out[code], _, _ = strings.Cut(f.text, " ")
	}
	return out
}()

// writeFault renders err as an ACC fault. ref is the correlation id that the
// log line carries too; it is the only detail of an internal error.
func writeFault(err error, method, service, ref string) []byte {
	code := apperr.CodeOf(err)
	f, ok := faults[code]
	if !ok {
		f = faults[apperr.Internal]
	}
	// The names may come from the SOAPAction header, whose bytes need not
	// be UTF-8; the answer must be.
	method, service = apperr.Quote(method, 128), apperr.Quote(service, 128)
	if method == "" {
		method = "?"
	}
	if service == "" {
		service = "?"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, envelopeOpen, "http://xml.apache.org/xml-soap")
	b.WriteString("<SOAP-ENV:Fault>\n<faultcode>" + f.faultcode + "</faultcode>\n<faultstring xsi:type='xsd:string'>")
	b.WriteString(schemas.EscapeText(strings.NewReplacer("{method}", method, "{service}", service).Replace(f.text)))
	b.WriteString("</faultstring>\n")
	if f.detail {
		detail := apperr.MessageOf(err)
		if code == apperr.Internal || !ok {
			detail = "Internal error (reference " + ref + ")."
		}
		b.WriteString("<detail xsi:type='xsd:string'>")
		b.WriteString(schemas.EscapeText(apperr.Quote(detail, 1<<16)))
		b.WriteString("</detail>\n")
	}
	b.WriteString("</SOAP-ENV:Fault>\n")
	b.WriteString(envelopeClose)
	return b.Bytes()
}

// writeXML sends an XML body with the headers every SOAP answer carries.
func writeXML(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// textEscaper escapes element content. Quotes stay literal, as ACC writes
// them ("the method 'Logon'"); carriage returns are kept as references so
// they survive parsing.

// accTime formats a timestamp the way ACC writes them inside documents.
