package querydef

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
)

// The expression language of <condition expr="…">, a small part of ACC's:
//
//	expr      = and { "OR" and }
//	and       = not { "AND" not }
//	not       = "NOT" not | "(" expr ")" | predicate
//	predicate = operand ( cmp operand
//	                    | ["NOT"] "IN" "(" literal { "," literal } ")"
//	                    | ["NOT"] "LIKE" operand
//	                    | "IS" ["NOT"] "NULL" )
//	cmp       = "=" | "<>" | "!=" | "<" | ">" | "<=" | ">="
//	operand   = value | literal
//	value     = @attr | @link-id | [@attr] | [link/@attr]
//	          | function "(" [ value { "," value } ] ")"
//	literal   = integer | decimal | 'string' ('' is a quote) | #date# | NULL
//
// Keywords and function names (functions.go) are case-insensitive. Every
// literal becomes a bound argument; fields become columns the registry
// validated. Anything else (other functions, ";", comments, double-quoted
// identifiers) is refused with a message naming the problem and its
// position (1-based, in bytes). <select>, <orderBy> and <groupBy> nodes
// hold one value.

type tokKind int

const (
	tEOF     tokKind = iota
	tField           // @name or @link-id; text is "name" / "link-id"
	tPath            // [link/@name] or [@name]; link may be empty
	tInt             // 42, -7
	tDec             // 1.5
	tString          // 'text'; text is the unquoted value
	tDate            // #2024-01-31#; text is inside the #
	tOp              // = <> < > <= >= (!= is read as <>)
	tLParen          // (
	tRParen          // )
	tComma           // ,
	tKeyword         // AND OR NOT IN LIKE IS NULL, upper case
	tFunc            // a function of the table followed by '('; text is its ACC name
)

type token struct {
	kind tokKind
	text string
	link string // tPath only
	pos  int    // 1-based byte offset in the expression
}

// describe names a token in a message without repeating a value the
// caller wrote (it may be personal data).
func (t token) describe() string {
	switch t.kind {
	case tEOF:
		return "the end of the expression"
	case tField:
		return "@" + t.text
	case tPath:
		return pathText(t.link, t.text)
	case tInt, tDec:
		return "a number"
	case tString:
		return "a string"
	case tDate:
		return "a date"
	case tFunc:
		return t.text + "()"
	case tLParen, tRParen, tComma, tOp:
		return "'" + t.text + "'"
	}
	return t.text
}

func pathText(link, name string) string {
	if link == "" {
		return "[@" + name + "]"
	}
	return "[" + link + "/@" + name + "]"
}

var keywords = map[string]bool{"AND": true, "OR": true, "NOT": true, "IN": true, "LIKE": true, "IS": true, "NULL": true}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentChar(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanName reads a field name with an optional "-id" suffix (a link's key)
// at s[i:]; it returns "" when none starts there.
func scanName(s string, i int) string {
	if i >= len(s) || !isIdentStart(s[i]) {
		return ""
	}
	j := i + 1
	for j < len(s) && isIdentChar(s[j]) {
		j++
	}
	if strings.HasPrefix(s[j:], "-id") && (j+3 == len(s) || !isIdentChar(s[j+3])) {
		j += 3
	}
	return s[i:j]
}

// lex splits an expression into tokens.
func lex(s string) ([]token, error) {
	var toks []token
	fail := func(pos int, format string, args ...any) ([]token, error) {
		return nil, fmt.Errorf("%s at character %d", fmt.Sprintf(format, args...), pos)
	}
	for i := 0; i < len(s); {
		c, pos := s[i], i+1
		next := byte(0)
		if i+1 < len(s) {
			next = s[i+1]
		}
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '@':
			name := scanName(s, i+1)
			if name == "" {
				return fail(pos, "a field name must follow '@'")
			}
			toks = append(toks, token{kind: tField, text: name, pos: pos})
			i += 1 + len(name)
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return fail(pos, "'[' is not closed")
			}
			inner := s[i+1 : i+end]
			link, field, ok := strings.Cut(inner, "/")
			if !ok {
				link, field = "", inner
			}
			if strings.Contains(field, "/") {
				return fail(pos, "only one link may be followed in a path such as [namespace/@name]")
			}
			name := ""
			if strings.HasPrefix(field, "@") {
				name = scanName(field, 1)
			}
			if name == "" || 1+len(name) != len(field) || (ok && (link == "" || scanName(link, 0) != link || strings.HasSuffix(link, "-id"))) {
				return fail(pos, "a path must be written [@field] or [link/@field]")
			}
			toks = append(toks, token{kind: tPath, link: link, text: name, pos: pos})
			i += end + 1
		case c == '\'':
			var b strings.Builder
			j, closed := i+1, false
			for j < len(s) {
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					closed = true
					j++
					break
				}
				b.WriteByte(s[j])
				j++
			}
			if !closed {
				return fail(pos, "the string is not terminated (a quote inside a string is written '')")
			}
			toks = append(toks, token{kind: tString, text: b.String(), pos: pos})
			i = j
		case c == '#':
			end := strings.IndexByte(s[i+1:], '#')
			if end < 0 {
				return fail(pos, "the date is not terminated (write #2024-01-31# or #2024-01-31 12:00:00Z#)")
			}
			toks = append(toks, token{kind: tDate, text: s[i+1 : i+1+end], pos: pos})
			i += end + 2
		case c == '"':
			return fail(pos, `double-quoted identifiers are not supported (name fields as @field)`)
		case c == ';':
			return fail(pos, "';' is not allowed")
		case c == '-' && next == '-':
			return fail(pos, "comments (--) are not allowed")
		case c == '/' && next == '*':
			return fail(pos, "comments (/* */) are not allowed")
		case isDigit(c) || (c == '-' && isDigit(next)):
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			kind := tInt
			if j+1 < len(s) && s[j] == '.' && isDigit(s[j+1]) {
				kind = tDec
				j++
				for j < len(s) && isDigit(s[j]) {
					j++
				}
			}
			if j < len(s) && (isIdentChar(s[j]) || s[j] == '.') {
				return fail(pos, "malformed number")
			}
			toks = append(toks, token{kind: kind, text: s[i:j], pos: pos})
			i = j
		case c == '=':
			toks = append(toks, token{kind: tOp, text: "=", pos: pos})
			i++
		case c == '<' && (next == '=' || next == '>'):
			toks = append(toks, token{kind: tOp, text: s[i : i+2], pos: pos})
			i += 2
		case c == '>' && next == '=':
			toks = append(toks, token{kind: tOp, text: ">=", pos: pos})
			i += 2
		case c == '<' || c == '>':
			toks = append(toks, token{kind: tOp, text: string(c), pos: pos})
			i++
		case c == '!' && next == '=':
			toks = append(toks, token{kind: tOp, text: "<>", pos: pos})
			i += 2
		case c == '(':
			toks = append(toks, token{kind: tLParen, text: "(", pos: pos})
			i++
		case c == ')':
			toks = append(toks, token{kind: tRParen, text: ")", pos: pos})
			i++
		case c == ',':
			toks = append(toks, token{kind: tComma, text: ",", pos: pos})
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			word := s[i:j]
			if up := strings.ToUpper(word); keywords[up] {
				toks = append(toks, token{kind: tKeyword, text: up, pos: pos})
				i = j
				continue
			}
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t') {
				k++
			}
			if k < len(s) && s[k] == '(' {
				fn, ok := functions[strings.ToLower(word)]
				if !ok {
					return fail(pos, "unknown function '%s' (the functions are %s)", apperr.Quote(word, 32), functionNames())
				}
				toks = append(toks, token{kind: tFunc, text: fn.name, pos: pos})
				i = k
				continue
			}
			return fail(pos, "unknown word '%s' (name fields as @field, quote strings as 'text')", apperr.Quote(word, 32))
		default:
			r := []rune(s[i:])[0]
			return fail(pos, "unexpected character %q", r)
		}
	}
	return append(toks, token{kind: tEOF, pos: len(s) + 1}), nil
}

// joinConds joins conditions with AND or OR; one condition stands for
// itself. The store encloses a group of several in parentheses, so that
// the tree's grouping survives SQL's precedence.
func joinConds(cs []*store.Cond, op string) *store.Cond {
	if len(cs) == 1 {
		return cs[0]
	}
	return &store.Cond{Op: op, Sub: cs}
}

// operand is a field or a literal on one side of a predicate.
type operand struct {
	field *field // nil for a literal
	lit   token  // the literal token when field is nil
	null  bool   // the NULL keyword
}

func (o operand) describe() string {
	if o.field != nil {
		return o.field.expr
	}
	if o.null {
		return "NULL"
	}
	return o.lit.describe()
}

// parser reads one expression; c holds the compiler state (fields, joins,
// depth and argument budgets) shared by every expression of a queryDef.
type parser struct {
	toks []token
	i    int
	c    *compiler
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isKeyword(word string) bool {
	t := p.peek()
	return t.kind == tKeyword && t.text == word
}

func (p *parser) errorf(t token, format string, args ...any) error {
	return fmt.Errorf("%s at character %d", fmt.Sprintf(format, args...), t.pos)
}

// parseExpr compiles a whole expression.
func (c *compiler) parseExpr(expr string) (*store.Cond, error) {
	if len(expr) > MaxExprBytes {
		return nil, fmt.Errorf("the expression is longer than %d bytes", MaxExprBytes)
	}
	if strings.TrimSpace(expr) == "" {
		return nil, fmt.Errorf("the expression is empty")
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, c: c}
	f, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errorf(t, "unexpected %s", t.describe())
	}
	return f, nil
}

func (p *parser) parseOr() (*store.Cond, error) {
	var parts []*store.Cond
	for {
		f, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		parts = append(parts, f)
		if !p.isKeyword("OR") {
			return joinConds(parts, store.OpOr), nil
		}
		p.next()
	}
}

func (p *parser) parseAnd() (*store.Cond, error) {
	var parts []*store.Cond
	for {
		f, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		parts = append(parts, f)
		if !p.isKeyword("AND") {
			return joinConds(parts, store.OpAnd), nil
		}
		p.next()
	}
}

func (p *parser) parseNot() (*store.Cond, error) {
	t := p.peek()
	if t.kind == tKeyword && t.text == "NOT" {
		p.next()
		if err := p.c.enter(); err != nil {
			return nil, err
		}
		defer p.c.leave()
		f, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &store.Cond{Op: store.OpNot, Sub: []*store.Cond{f}}, nil
	}
	if t.kind == tLParen {
		p.next()
		if err := p.c.enter(); err != nil {
			return nil, err
		}
		defer p.c.leave()
		f, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if r := p.next(); r.kind != tRParen {
			return nil, p.errorf(r, "expected ')' but found %s", r.describe())
		}
		return f, nil
	}
	return p.parsePredicate()
}

func (p *parser) parseOperand() (operand, error) {
	o, err := p.parseOperand1()
	if err == nil && o.field != nil && p.c.operands != nil {
		*p.c.operands = append(*p.c.operands, o.field)
	}
	return o, err
}

func (p *parser) parseOperand1() (operand, error) {
	t := p.next()
	switch t.kind {
	case tField:
		f, err := p.c.field("", t.text)
		if err != nil {
			return operand{}, p.errorf(t, "%v", err)
		}
		return operand{field: f}, nil
	case tPath:
		f, err := p.c.field(t.link, t.text)
		if err != nil {
			return operand{}, p.errorf(t, "%v", err)
		}
		return operand{field: f}, nil
	case tFunc:
		f, err := p.parseCall(t)
		if err != nil {
			return operand{}, err
		}
		return operand{field: f}, nil
	case tInt, tDec, tString, tDate:
		return operand{lit: t}, nil
	case tKeyword:
		if t.text == "NULL" {
			return operand{lit: t, null: true}, nil
		}
	}
	return operand{}, p.errorf(t, "expected a field or a value but found %s", t.describe())
}

func (p *parser) parsePredicate() (*store.Cond, error) {
	left, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	t := p.next()
	switch {
	case t.kind == tOp:
		right, err := p.parseOperand()
		if err != nil {
			return nil, err
		}
		f, err := p.c.compare(left, t.text, right)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return f, nil
	case t.kind == tKeyword && t.text == "IS":
		is := store.OpIsNull
		if p.isKeyword("NOT") {
			p.next()
			is = store.OpIsNotNull
		}
		if n := p.next(); n.kind != tKeyword || n.text != "NULL" {
			return nil, p.errorf(n, "expected NULL after IS but found %s", n.describe())
		}
		if left.null {
			return nil, p.errorf(t, "NULL IS NULL is not a useful condition")
		}
		l, err := p.c.operandExpr(left)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return &store.Cond{Op: is, Left: l}, nil
	case t.kind == tKeyword && (t.text == "NOT" || t.text == "IN" || t.text == "LIKE"):
		op := t.text
		if op == "NOT" {
			n := p.next()
			if n.kind != tKeyword || (n.text != "IN" && n.text != "LIKE") {
				return nil, p.errorf(n, "expected IN or LIKE after NOT but found %s", n.describe())
			}
			op = "NOT " + n.text
		}
		if strings.HasSuffix(op, "LIKE") {
			right, err := p.parseOperand()
			if err != nil {
				return nil, err
			}
			f, err := p.c.like(left, op, right)
			if err != nil {
				return nil, p.errorf(t, "%v", err)
			}
			return f, nil
		}
		if l := p.next(); l.kind != tLParen {
			return nil, p.errorf(l, "expected '(' after %s but found %s", op, l.describe())
		}
		var items []token
		for {
			v := p.next()
			switch v.kind {
			case tInt, tDec, tString, tDate:
				items = append(items, v)
			default:
				return nil, p.errorf(v, "%s takes a list of values; found %s", op, v.describe())
			}
			sep := p.next()
			if sep.kind == tRParen {
				break
			}
			if sep.kind != tComma {
				return nil, p.errorf(sep, "expected ',' or ')' but found %s", sep.describe())
			}
		}
		f, err := p.c.in(left, op, items)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return f, nil
	}
	return nil, p.errorf(t, "expected an operator after %s but found %s", left.describe(), t.describe())
}

// parseInt reads a decimal integer literal.
func parseInt(text string) (int64, error) {
	return strconv.ParseInt(text, 10, 64)
}

// parseValue reads a field, a path or a function call: the argument of a
// function, or the whole expr of a <select>, <orderBy> or <groupBy> node.
func (p *parser) parseValue() (*field, error) {
	t := p.next()
	switch t.kind {
	case tField, tPath:
		f, err := p.c.field(t.link, t.text)
		if err != nil {
			return nil, p.errorf(t, "%v", err)
		}
		return f, nil
	case tFunc:
		return p.parseCall(t)
	}
	return nil, p.errorf(t, "expected a field or a function but found %s", t.describe())
}

// parseCall reads the arguments of the function named by t.
func (p *parser) parseCall(t token) (*field, error) {
	fn := functions[strings.ToLower(t.text)]
	if l := p.next(); l.kind != tLParen {
		return nil, p.errorf(l, "expected '(' after %s", t.text)
	}
	if err := p.c.enter(); err != nil {
		return nil, err
	}
	defer p.c.leave()
	var args []*field
	if p.peek().kind == tRParen {
		p.next()
	} else {
		for {
			a, err := p.parseValue()
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			sep := p.next()
			if sep.kind == tRParen {
				break
			}
			if sep.kind != tComma {
				return nil, p.errorf(sep, "expected ',' or ')' but found %s", sep.describe())
			}
		}
	}
	f, err := p.c.call(fn, args)
	if err != nil {
		return nil, p.errorf(t, "%v", err)
	}
	return f, nil
}
