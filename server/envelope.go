package server

import (
	"bytes"
	"strings"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
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

// Limits is the one table of XML and HTTP limits (security-bar.md §2).
type Limits struct {
	MaxBodyBytes  int64 // request body, enforced before parsing
	MaxTokens     int   // XML tokens per document
	MaxElements   int   // elements per document
	MaxDepth      int   // element nesting
	MaxChildren   int   // element children of one element
	MaxAttributes int   // attributes per element, xmlns included
	MaxAttrBytes  int   // one attribute value
	MaxTextBytes  int   // one text node
	MaxNameBytes  int   // element or attribute name, prefix included
	MaxInFlight   int   // concurrent SOAP calls; beyond: a fast Busy fault
}

// DefaultLimits are the bars of security-bar.md §2.
var DefaultLimits = Limits{
	MaxBodyBytes:  256 << 10,
	MaxTokens:     30_000,
	MaxElements:   10_000,
	MaxDepth:      32,
	MaxChildren:   1_000,
	MaxAttributes: 32,
	MaxAttrBytes:  8 << 10,
	MaxTextBytes:  64 << 10,
	MaxNameBytes:  256,
	MaxInFlight:   256,
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

var errMalformed = apperr.Errorf(apperr.Malformed, "The XML SOAP message is not well-formed.")

func limitErr(what string) error {
	return apperr.Errorf(apperr.TooLarge, "The XML SOAP message exceeds the %s limit.", what)
}

// readXML walks the tokens of body once, enforcing the limits as it goes —
// no DOCTYPE or processing instruction, UTF-8 only, one root, bounded
// depth, width, counts and sizes — and builds the etree document from the
// same tokens, so a tree only ever holds what passed the limits (etree has
// none of its own, and recursive writers). The tokens come from
// xmlScanner, which reads what encoding/xml's RawToken reads, faster.
func (l Limits) readXML(body []byte) (*etree.Document, error) {
	// Allocation-free upper bound on the token count (gosaml2's check).
	if 3*bytes.Count(body, []byte("<"))+1 > 3*l.MaxTokens {
		return nil, limitErr("token count")
	}
	doc := etree.NewDocument()
	type frame struct {
		el       *etree.Element
		name     []byte // as written, for the end tag to match
		children int
	}
	fail := func(err error) (*etree.Document, error) { return nil, err }
	var (
		// Sized for a usual envelope, so neither grows (and the stack
		// stays off the heap).
		sc       = xmlScanner{src: body, attrs: make([]xmlAttr, 0, 8)}
		stack    = make([]frame, 0, 16) // the elements being built
		tokens   int
		elements int
		roots    int
		textRun  int
		seenDecl bool
	)
	for {
		tok := sc.next()
		if tok == tokEOF {
			break
		}
		if tok == tokMalformed {
			return fail(errMalformed)
		}
		tokens++
		if tokens > l.MaxTokens {
			return fail(limitErr("token count"))
		}
		if tok != tokText {
			textRun = 0
		}
		switch tok {
		case tokStart:
			if len(stack) == 0 {
				roots++
				if roots > 1 {
					return fail(apperr.Errorf(apperr.Malformed, "The XML SOAP message has more than one root element."))
				}
			} else {
				stack[len(stack)-1].children++
				if stack[len(stack)-1].children > l.MaxChildren {
					return fail(limitErr("children per element"))
				}
			}
			elements++
			if elements > l.MaxElements {
				return fail(limitErr("element count"))
			}
			if len(stack)+1 > l.MaxDepth {
				return fail(limitErr("nesting depth"))
			}
			if qnameLen(sc.name) > l.MaxNameBytes {
				return fail(limitErr("name length"))
			}
			if len(sc.attrs) > l.MaxAttributes {
				return fail(limitErr("attribute count"))
			}
			for _, a := range sc.attrs {
				if qnameLen(a.name) > l.MaxNameBytes {
					return fail(limitErr("name length"))
				}
				if len(a.value) > l.MaxAttrBytes {
					return fail(limitErr("attribute size"))
				}
			}
			parent := &doc.Element
			if len(stack) > 0 {
				parent = stack[len(stack)-1].el
			}
			el := parent.CreateElement(string(sc.name))
			if len(sc.attrs) > 1 {
				el.Attr = make([]etree.Attr, 0, len(sc.attrs)) // grown once, not by doubling
			}
			for _, a := range sc.attrs {
				el.CreateAttr(string(a.name), string(a.value))
			}
			stack = append(stack, frame{el: el, name: sc.name})
		case tokEnd:
			if len(stack) == 0 || !bytes.Equal(stack[len(stack)-1].name, sc.name) {
				return fail(errMalformed)
			}
			stack = stack[:len(stack)-1]
		case tokText:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(sc.text)) > 0 {
					return fail(apperr.Errorf(apperr.Malformed, "The XML SOAP message has text outside its root element."))
				}
				continue
			}
			textRun += len(sc.text)
			if textRun > l.MaxTextBytes {
				return fail(limitErr("text size"))
			}
			stack[len(stack)-1].el.CreateText(string(sc.text))
		case tokDirective:
			return fail(apperr.Errorf(apperr.Malformed, "DOCTYPE and entity declarations are not allowed in a SOAP message."))
		case tokProcInst:
			if string(sc.name) != "xml" || seenDecl || roots > 0 || tokens != 1 {
				return fail(apperr.Errorf(apperr.Malformed, "Processing instructions are not allowed in a SOAP message."))
			}
			seenDecl = true
			if enc := declaredEncoding(string(sc.text)); enc != "" && !strings.EqualFold(enc, "utf-8") {
				return fail(apperr.Errorf(apperr.Malformed, "Only UTF-8 SOAP messages are accepted."))
			}
		case tokComment:
		}
	}
	if len(stack) != 0 || roots != 1 {
		return fail(errMalformed)
	}
	return doc, nil
}

// declaredEncoding extracts encoding="…" from an XML declaration.
func declaredEncoding(inst string) string {
	i := strings.Index(inst, "encoding")
	if i < 0 {
		return ""
	}
	rest := strings.TrimLeft(inst[i+len("encoding"):], " \t\r\n=")
	if rest == "" {
		return ""
	}
	q := rest[0]
	if q != '"' && q != '\'' {
		return ""
	}
	end := strings.IndexByte(rest[1:], q)
	if end < 0 {
		return ""
	}
	return rest[1 : 1+end]
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
	doc, err := l.readXML(body)
	if err != nil {
		return nil, err
	}
	root := doc.Root()
	if root == nil {
		return nil, errMalformed
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
