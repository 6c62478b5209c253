package server

import (
	"bytes"
	"strings"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/xmlread"
)

// Namespace URIs matched by the envelope reader. Prefixes are never trusted:
// clients send SOAP-ENV:, soapenv:, soap-env: or S:.
const (
	nsSOAPEnv  = "http://schemas.xmlsoap.org/soap/envelope/"
	nsSOAP12   = "http://www.w3.org/2003/05/soap-envelope"
	nsXSI      = "http://www.w3.org/2001/XMLSchema-instance"
	nsXSD      = "http://www.w3.org/2001/XMLSchema"
	encSOAP    = "http://schemas.xmlsoap.org/soap/encoding/"
	encLiteral = "http://xml.apache.org/xml-soap/literalxml"
)

// Limits is the one table of XML and HTTP limits (security-bar.md §2): the
// document limits of internal/xmlread, and those of the HTTP exchange.
type Limits struct {
	xmlread.Limits
	MaxBodyBytes int64 // request body, enforced before parsing
	MaxInFlight  int   // concurrent SOAP calls; beyond: a fast Busy fault
}

// DefaultLimits are the bars of security-bar.md §2.
var DefaultLimits = Limits{
	Limits:       xmlread.DefaultLimits,
	MaxBodyBytes: 256 << 10,
	MaxInFlight:  256,
}

// envelope is a SOAP 1.1 request that passed every structural check.
type envelope struct {
	header *etree.Element // may be nil
	op     *etree.Element // the single child of Body: the call
}

// soapHeaderValue returns the text of a SOAP header entry by local name
// (acc-js-sdk sends <Cookie> and <X-Security-Token> there).
func (e *envelope) soapHeaderValue(local string) string {
	if e.header == nil {
		return ""
	}
	for _, c := range e.header.ChildElements() {
		if c.Tag == local {
			return strings.TrimSpace(c.Text())
		}
	}
	return ""
}

// headersWeUnderstand are the SOAP header entries acc-js-sdk sends; any
// other entry with mustUnderstand="1" is refused with a MustUnderstand fault.
var headersWeUnderstand = map[string]bool{"Cookie": true, "X-Security-Token": true}

// parseEnvelope checks body against the limits, builds the tree and checks
// the SOAP 1.1 structure: Envelope, optional Header, exactly one Body with
// exactly one element, the call.
func (l Limits) parseEnvelope(body []byte) (*envelope, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a UTF-8 BOM is allowed
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, apperr.Errorf(apperr.Malformed, "The SOAP message is empty.")
	}
	doc, err := xmlread.Read(body, l.Limits)
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	if root == nil {
		return nil, xmlread.ErrMalformed
	}
	if root.Tag != "Envelope" || root.NamespaceURI() != nsSOAPEnv {
		return nil, apperr.Errorf(apperr.VersionMismatch, "The message is not a SOAP 1.1 envelope.")
	}
	env := &envelope{}
	var body0 *etree.Element
	for i, c := range root.ChildElements() {
		if c.NamespaceURI() != nsSOAPEnv {
			return nil, apperr.Errorf(apperr.Malformed, "Unexpected element <%s> in the SOAP envelope.", c.Tag)
		}
		switch {
		case c.Tag == "Header" && i == 0:
			env.header = c
		case c.Tag == "Body" && body0 == nil:
			body0 = c
		default:
			return nil, apperr.Errorf(apperr.Malformed, "The SOAP envelope must hold an optional Header and exactly one Body.")
		}
	}
	if body0 == nil {
		return nil, apperr.Errorf(apperr.Malformed, "The SOAP envelope has no Body.")
	}
	if env.header != nil {
		for _, h := range env.header.ChildElements() {
			mu := ""
			for _, a := range h.Attr {
				if a.Key == "mustUnderstand" && a.NamespaceURI() == nsSOAPEnv {
					mu = a.Value
				}
			}
			if (mu == "1" || mu == "true") && !headersWeUnderstand[h.Tag] {
				return nil, apperr.Errorf(apperr.MustUnderstand, "The SOAP header <%s> is not understood.", h.Tag)
			}
		}
	}
	calls := body0.ChildElements()
	if len(calls) != 1 {
		return nil, apperr.Errorf(apperr.Malformed, "The SOAP Body must hold exactly one method element.")
	}
	env.op = calls[0]
	return env, nil
}
