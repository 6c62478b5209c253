package xmlread

import (
	"bytes"
	"unicode"
	"unicode/utf8"
)

// xmlScanner tokenises a request body for Read. It replaces
// encoding/xml's Decoder.RawToken, which cost a fifth of a SOAP call's CPU,
// with a scan over the body slice that copies nothing unless text needs
// decoding.
//
// It must accept exactly what a Strict encoding/xml Decoder without a
// CharsetReader accepts, token for token: Read's limits count and measure
// these tokens, and what it accepted before it must accept now. FuzzReadXML
// holds the two to that. The comments name the encoding/xml behaviour each
// rule copies, quirks included. One difference is deliberate: a character
// reference to a surrogate is refused, where encoding/xml made it U+FFFD.
type xmlScanner struct {
	src []byte // the body
	pos int    // the next byte to read

	// The current token. Slices point into src, or into decoded when
	// text had references or carriage returns; they are valid until
	// the next call to next.
	name  []byte    // element name as written (prefix:local), or the PI target
	attrs []xmlAttr // tokStart
	text  []byte    // tokText: decoded character data; tokProcInst: the instruction

	decoded    []byte // decoding buffer, reused from token to token
	endPending bool   // the last start tag was <x/>: its end comes next

	// maxAttrs, when above 0, stops a start tag's scan at its
	// maxAttrs+1st attribute: the tag is returned with that many, which
	// the reader refuses, so 20,000 attributes cost what 33 do.
	maxAttrs int
}

type xmlAttr struct {
	name  []byte // as written (prefix:local)
	value []byte // decoded
}

// xmlToken is the kind of token next found; its content is in the
// scanner's fields.
type xmlToken uint8

const (
	tokEOF xmlToken = iota
	tokMalformed
	tokStart // name, attrs
	tokEnd   // name
	tokText  // text
	tokComment
	tokProcInst  // name (the target), text
	tokDirective // <!DOCTYPE …> and the like; Read refuses them
)

// next scans the next token. tokMalformed is final: the scanner keeps no
// error state, Read stops there.
func (s *xmlScanner) next() xmlToken {
	if s.endPending {
		// encoding/xml returns <x/> as a start and an end token.
		s.endPending = false
		return tokEnd
	}
	if s.pos >= len(s.src) {
		return tokEOF
	}
	s.decoded = s.decoded[:0]
	if s.src[s.pos] != '<' {
		return s.charData()
	}
	if s.pos+1 >= len(s.src) {
		return tokMalformed
	}
	switch s.src[s.pos+1] {
	case '/':
		s.pos += 2
		return s.endTag()
	case '?':
		s.pos += 2
		return s.procInst()
	case '!':
		s.pos += 2
		return s.markupDecl()
	}
	s.pos++
	return s.startTag()
}

// startTag scans `name (S? attr)* S? (> | />)` after the "<". As in
// encoding/xml, attributes need no space between them, duplicates are
// passed on (etree's CreateAttr keeps the last), and every value is quoted.
func (s *xmlScanner) startTag() xmlToken {
	name, ok := s.qname()
	if !ok {
		return tokMalformed
	}
	s.name, s.attrs = name, s.attrs[:0]
	for {
		s.skipSpace()
		if s.pos >= len(s.src) {
			return tokMalformed
		}
		switch s.src[s.pos] {
		case '>':
			s.pos++
			return tokStart
		case '/':
			if !s.skip("/>") {
				return tokMalformed
			}
			s.endPending = true
			return tokStart
		}
		attr, ok := s.attribute()
		if !ok {
			return tokMalformed
		}
		s.attrs = append(s.attrs, attr)
		if s.maxAttrs > 0 && len(s.attrs) > s.maxAttrs {
			return tokStart
		}
	}
}

// attribute scans `name S? = S? ("…" | '…')`.
func (s *xmlScanner) attribute() (xmlAttr, bool) {
	name, ok := s.qname()
	if !ok {
		return xmlAttr{}, false
	}
	s.skipSpace()
	if !s.skip("=") {
		return xmlAttr{}, false
	}
	s.skipSpace()
	if s.pos >= len(s.src) {
		return xmlAttr{}, false
	}
	quote := s.src[s.pos]
	if quote != '"' && quote != '\'' {
		return xmlAttr{}, false
	}
	s.pos++
	start, plain := s.pos, true
	for i := start; i < len(s.src); i++ {
		c := s.src[i]
		if c == quote {
			s.pos = i + 1
			value, ok := s.decode(s.src[start:i], plain, true)
			return xmlAttr{name: name, value: value}, ok
		}
		if !textPlain[c] {
			if c == '<' {
				return xmlAttr{}, false
			}
			plain = false
		}
	}
	return xmlAttr{}, false // EOF inside the value
}

// endTag scans `name S? >` after the "</".
func (s *xmlScanner) endTag() xmlToken {
	name, ok := s.qname()
	if !ok {
		return tokMalformed
	}
	s.skipSpace()
	if !s.skip(">") {
		return tokMalformed
	}
	s.name = name
	return tokEnd
}

// charData scans text up to the next "<" or the end of the body.
func (s *xmlScanner) charData() xmlToken {
	start, plain := s.pos, true
	i := start
	for ; i < len(s.src); i++ {
		if c := s.src[i]; !textPlain[c] {
			if c == '<' {
				break
			}
			plain = false
		}
	}
	raw := s.src[start:i]
	s.pos = i
	// encoding/xml refuses "]]>" outside CDATA (allowed in attribute values).
	if !plain && bytes.Contains(raw, []byte("]]>")) {
		return tokMalformed
	}
	text, ok := s.decode(raw, plain, true)
	if !ok {
		return tokMalformed
	}
	s.text = text
	return tokText
}

// procInst scans `target S? … ?>` after the "<?". Like encoding/xml, it
// refuses an XML declaration (target "xml") naming a version other than
// 1.0 or an encoding other than UTF-8: that decoder fails there rather than
// return the token. Read refuses every other processing instruction.
func (s *xmlScanner) procInst() xmlToken {
	target, ok := s.readName()
	if !ok {
		return tokMalformed
	}
	s.skipSpace()
	end := bytes.Index(s.src[s.pos:], []byte("?>"))
	if end < 0 {
		return tokMalformed
	}
	inst := s.src[s.pos : s.pos+end]
	s.pos += end + len("?>")
	if string(target) == "xml" {
		if v := procInstParam("version=", inst); len(v) > 0 && string(v) != "1.0" {
			return tokMalformed
		}
		if e := procInstParam("encoding=", inst); len(e) > 0 && !bytes.EqualFold(e, []byte("utf-8")) {
			return tokMalformed
		}
	}
	s.name, s.text = target, inst
	return tokProcInst
}

// markupDecl scans what follows "<!": a comment, a CDATA section, or a
// directive.
func (s *xmlScanner) markupDecl() xmlToken {
	switch {
	case s.skip("--"):
		return s.comment()
	case s.skip("[CDATA["):
		return s.cdata()
	case s.pos >= len(s.src), s.src[s.pos] == '-', s.src[s.pos] == '[':
		return tokMalformed // "<!-x", "<![x", or the end of the body
	}
	return s.directive()
}

// comment skips a comment after "<!--". The first "--" must close it, as
// XML (and encoding/xml) requires.
func (s *xmlScanner) comment() xmlToken {
	end := bytes.Index(s.src[s.pos:], []byte("--"))
	if end < 0 {
		return tokMalformed
	}
	s.pos += end + len("--")
	if !s.skip(">") {
		return tokMalformed
	}
	return tokComment
}

// cdata scans a CDATA section after "<![CDATA[" up to the first "]]>".
// An empty section is still a (empty) text token, as in encoding/xml.
func (s *xmlScanner) cdata() xmlToken {
	end := bytes.Index(s.src[s.pos:], []byte("]]>"))
	if end < 0 {
		return tokMalformed
	}
	raw := s.src[s.pos : s.pos+end]
	s.pos += end + len("]]>")
	text, ok := s.decode(raw, false, false)
	if !ok {
		return tokMalformed
	}
	s.text = text
	return tokText
}

// directive skips <!DOCTYPE …> and the like the way encoding/xml finds
// their end — quotes hide '>', nested '<' … '>' pairs and <!-- comments -->
// are skipped — so that a directive Read refuses by name is told apart
// from an unterminated one, which is malformed. As in encoding/xml, the
// byte right after "<!" is taken as is.
func (s *xmlScanner) directive() xmlToken {
	src, i := s.src, s.pos+1
	var quote byte
	depth := 0
	for {
		if i >= len(src) {
			return tokMalformed
		}
		b := src[i]
		i++
		if quote == 0 && b == '>' && depth == 0 {
			s.pos = i
			return tokDirective
		}
	handle:
		switch {
		case b == quote:
			quote = 0
		case quote != 0:
		case b == '\'' || b == '"':
			quote = b
		case b == '>':
			depth--
		case b == '<':
			// "<!--" opens a comment; anything else opens a nested
			// markup, and the byte that differed is looked at again.
			for _, want := range []byte("!--") {
				if i >= len(src) {
					return tokMalformed
				}
				b = src[i]
				i++
				if b != want {
					depth++
					goto handle
				}
			}
			end := bytes.Index(src[i:], []byte("-->"))
			if end < 0 {
				return tokMalformed
			}
			i += end + len("-->")
		}
	}
}

// decode returns raw as character data: references replaced (refs: not in
// CDATA), "\r\n" and a lone "\r" turned into "\n", and checked to be UTF-8
// made of XML characters — all as encoding/xml's Decoder.text does. plain
// says the caller saw only bytes that need none of this (see textPlain);
// raw is then returned as is.
func (s *xmlScanner) decode(raw []byte, plain, refs bool) ([]byte, bool) {
	if plain {
		return raw, true
	}
	out := raw
	if bytes.IndexByte(raw, '\r') >= 0 || refs && bytes.IndexByte(raw, '&') >= 0 {
		start := len(s.decoded)
		afterCR := false
		for i := 0; i < len(raw); {
			c := raw[i]
			switch {
			case c == '&' && refs:
				r, n, ok := reference(raw[i:])
				if !ok {
					return nil, false
				}
				s.decoded = utf8.AppendRune(s.decoded, r)
				i += n
				afterCR = false
				continue
			case c == '\r':
				s.decoded = append(s.decoded, '\n')
				afterCR = true
			case c == '\n' && afterCR:
				afterCR = false // the "\n" of "\r\n" is already written
			default:
				s.decoded = append(s.decoded, c)
				afterCR = false
			}
			i++
		}
		out = s.decoded[start:len(s.decoded):len(s.decoded)]
	}
	// Checked after decoding: "&#0;" is refused (as "&#xD800;" was above).
	return out, validChars(out)
}

// predefined are the only entities a document without DTD may use.
var predefined = [...]struct {
	name string // with its ';'
	r    rune
}{{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"apos;", '\''}, {"quot;", '"'}}

// reference decodes the entity or character reference that b starts with
// ("&…;") and says how many bytes it took. As in encoding/xml: a predefined
// entity, or "&#" decimal or "&#x" (lower-case x) hex digits up to
// U+10FFFF — the value is checked to be an XML character later.
func reference(b []byte) (r rune, n int, ok bool) {
	if len(b) < 2 || b[1] != '#' {
		for _, e := range predefined {
			if bytes.HasPrefix(b[1:], []byte(e.name)) {
				return e.r, 1 + len(e.name), true
			}
		}
		return 0, 0, false
	}
	i, base := 2, rune(10)
	if i < len(b) && b[i] == 'x' {
		i, base = i+1, 16
	}
	start := i
	for ; i < len(b); i++ {
		d := digitValue(b[i])
		if d >= base {
			break
		}
		r = r*base + d
		if r > unicode.MaxRune {
			return 0, 0, false
		}
	}
	if i == start || i >= len(b) || b[i] != ';' {
		return 0, 0, false
	}
	if 0xD800 <= r && r <= 0xDFFF {
		// A surrogate is no character. encoding/xml turns it into U+FFFD;
		// the security bar (#28) and XML 1.0 refuse it.
		return 0, 0, false
	}
	return r, i + 1, true
}

// digitValue is a hex digit's value, or 16 for any other byte.
func digitValue(c byte) rune {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0')
	case 'a' <= c && c <= 'f':
		return rune(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return rune(c-'A') + 10
	}
	return 16
}

// validChars reports whether b is UTF-8 made of characters XML allows
// (encoding/xml's isInCharacterRange).
func validChars(b []byte) bool {
	for i := 0; i < len(b); {
		if c := b[i]; c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return false
		}
		if !(r <= 0xD7FF || 0xE000 <= r && r <= 0xFFFD || 0x10000 <= r && r <= 0x10FFFF) {
			return false
		}
		i += size
	}
	return true
}

// textPlain marks the bytes text and attribute values may hold with
// nothing to check or decode: printable ASCII, tab and newline, except '<'
// (markup), '&' (references) and ']' (which may start "]]>"). A '\r', other
// control bytes and non-ASCII bytes send the text through decode.
var textPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	t['<'], t['&'], t[']'] = false, false, false
	t['\t'], t['\n'] = true, true
	return t
}()

// nameByte marks the bytes encoding/xml reads as part of a name: ASCII
// letters, digits, "_:.-", and every non-ASCII byte (checked afterwards).
var nameByte = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '_' || c == ':' || c == '.' || c == '-' || c >= utf8.RuneSelf
	}
	return t
}()

// readName scans a name as encoding/xml's Decoder.name does: the longest run
// of name bytes, which must be a Letter, '_' or ':' followed by NameChars
// (XML 1.0 Appendix B). A name running into the end of the body is
// malformed: nothing that starts with one can end there.
func (s *xmlScanner) readName() ([]byte, bool) {
	start, ascii := s.pos, true
	i := start
	for ; i < len(s.src) && nameByte[s.src[i]]; i++ {
		if s.src[i] >= utf8.RuneSelf {
			ascii = false
		}
	}
	if i == start || i == len(s.src) {
		return nil, false
	}
	name := s.src[start:i]
	if ascii {
		// Every ASCII name byte is a NameChar; only the first is special.
		if c := name[0]; !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '_' || c == ':') {
			return nil, false
		}
	} else if !isXMLName(name) {
		return nil, false
	}
	s.pos = i
	return name, true
}

// qname scans an element or attribute name. Like encoding/xml's nsname it
// refuses a second colon; "a:", ":a" and "a:b" are all fine.
func (s *xmlScanner) qname() ([]byte, bool) {
	name, ok := s.readName()
	if !ok || bytes.Count(name, []byte(":")) > 1 {
		return nil, false
	}
	return name, true
}

// qnameLen is the length encoding/xml's Name (Space, Local) of a qname
// has: the colon between a prefix and a local name is not counted, a
// leading or trailing one is (the name then has no prefix).
func qnameLen(name []byte) int {
	if i := bytes.IndexByte(name, ':'); i > 0 && i < len(name)-1 {
		return len(name) - 1
	}
	return len(name)
}

// isXMLName is encoding/xml's isName.
func isXMLName(s []byte) bool {
	c, n := utf8.DecodeRune(s)
	if c == utf8.RuneError && n == 1 || !unicode.Is(xmlNameFirst, c) {
		return false
	}
	for n < len(s) {
		s = s[n:]
		c, n = utf8.DecodeRune(s)
		if c == utf8.RuneError && n == 1 {
			return false
		}
		if !unicode.Is(xmlNameFirst, c) && !unicode.Is(xmlNameSecond, c) {
			return false
		}
	}
	return true
}

// skipSpace skips the white space encoding/xml skips inside markup.
func (s *xmlScanner) skipSpace() {
	for s.pos < len(s.src) {
		switch s.src[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

// skip consumes lit if the body continues with it.
func (s *xmlScanner) skip(lit string) bool {
	if !bytes.HasPrefix(s.src[s.pos:], []byte(lit)) {
		return false
	}
	s.pos += len(lit)
	return true
}

// procInstParam is encoding/xml's procInst: the value of param (given
// with its '=') in an XML declaration, nil if there is none. It is a loose
// parse; it is copied so that the same declarations are refused.
func procInstParam(param string, s []byte) []byte {
	lenp := len(param)
	i := 0
	var sep byte
	for i < len(s) {
		sub := s[i:]
		k := bytes.Index(sub, []byte(param))
		if k < 0 || lenp+k >= len(sub) {
			return nil
		}
		i += lenp + k + 1
		if c := sub[lenp+k]; c == '\'' || c == '"' {
			sep = c
			break
		}
	}
	if sep == 0 {
		return nil
	}
	j := bytes.IndexByte(s[i:], sep)
	if j < 0 {
		return nil
	}
	return s[i : i+j]
}
