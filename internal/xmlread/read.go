// Package xmlread reads a SOAP request body into an etree document under
// limits: one pass over the bytes that counts and measures every token as
// it goes (no DOCTYPE, no processing instruction but the XML declaration,
// UTF-8 only, one root, bounded depth, width, counts and sizes), so a tree
// only ever holds what passed. The scanner (scan.go) reads exactly what
// encoding/xml's RawToken reads, five times faster; FuzzRead holds it to
// encoding/xml, kept as the oracle in the tests.
package xmlread

import (
	"bytes"
	"strings"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// Limits bound one XML document (security-bar.md §2).
type Limits struct {
	MaxTokens     int // XML tokens per document
	MaxElements   int // elements per document
	MaxDepth      int // element nesting
	MaxChildren   int // element children of one element
	MaxAttributes int // attributes per element, xmlns included
	MaxAttrBytes  int // one attribute value
	MaxTextBytes  int // one text node
	MaxNameBytes  int // element or attribute name, prefix included
}

// DefaultLimits are the bars of security-bar.md §2.
var DefaultLimits = Limits{
	MaxTokens:     30_000,
	MaxElements:   10_000,
	MaxDepth:      32,
	MaxChildren:   1_000,
	MaxAttributes: 32,
	MaxAttrBytes:  8 << 10,
	MaxTextBytes:  64 << 10,
	MaxNameBytes:  256,
}

// ErrMalformed is the fault of a body that is not well-formed XML.
var ErrMalformed = apperr.Errorf(apperr.Malformed, "The XML SOAP message is not well-formed.")

func limitErr(what string) error {
	return apperr.Errorf(apperr.TooLarge, "The XML SOAP message exceeds the %s limit.", what)
}

// Read walks the tokens of body once, enforcing the limits as it goes —
// no DOCTYPE or processing instruction, UTF-8 only, one root, bounded
// depth, width, counts and sizes — and builds the etree document from the
// same tokens, so a tree only ever holds what passed the limits (etree has
// none of its own, and recursive writers). The tokens come from
// xmlScanner, which reads what encoding/xml's RawToken reads, faster.
func Read(body []byte, l Limits) (*etree.Document, error) {
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
		sc       = xmlScanner{src: body, attrs: make([]xmlAttr, 0, 8), maxAttrs: l.MaxAttributes}
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
			return fail(ErrMalformed)
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
				return fail(ErrMalformed)
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
		return fail(ErrMalformed)
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
