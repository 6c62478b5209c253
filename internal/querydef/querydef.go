// Package querydef implements xtk:queryDef#ExecuteQuery over the data
// schemas of the registry: it compiles an ACC queryDef document into a
// store.Plan (the store renders it to one parameterised SQL statement for
// its dialect) and builds the result document ACC returns
// (acc-protocol.md §5).
//
// Supported: operations get, getIfExists, select and count; lineCount and
// startLine; <select> nodes @attr, @link-id and one link hop
// [link/@attr] (a LEFT JOIN on the target's primary key), with or without
// alias, and the functions of functions.go; <where> conditions with
// bool-operator and nested groups, in the expression language described
// in expr.go; <orderBy> with sortDesc; <groupBy> and <having>.
// Tables and columns come only from the registry (validated identifiers);
// every value the caller writes is a bound value of the plan, never SQL
// text. This package writes no SQL.
//
// Deliberate choices where ACC is unclear or unsafe:
//   - A select returns at most MaxRows (10,000) rows: the 3P notes measured
//     10,000 on ACC 7.4.3 (the SDK docs say 200). lineCount above it is
//     lowered to it; lineCount 0 or absent means MaxRows.
//   - Rows come in primary-key order unless <orderBy> says otherwise, and
//     the primary key breaks ties, so that startLine pages are stable.
//   - get and getIfExists read the first row in that order (LIMIT 1); a
//     query matching several rows is not an error, as on ACC.
//   - Conditions joined by bool-operator follow SQL precedence (AND before
//     OR), each condition being a parenthesised unit.
//   - Without <select> (or with an empty one), every attribute and link key
//     of the schema is returned.
//   - LIKE follows the database: case-sensitive on PostgreSQL, ASCII
//     case-insensitive on SQLite; on PostgreSQL a backslash escapes the
//     character after it, and a pattern ending with one is an Invalid
//     fault.
//   - A function node without alias comes back as attribute expr<N>, N
//     its 0-based position in <select>. A grouped query is ordered by its
//     <orderBy>, then by its groups; every value that is not an aggregate
//     must be one of the groups.
package querydef

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// Limits of one queryDef. The SOAP envelope limits bound the document
// itself; these bound the SQL it turns into.
const (
	MaxRows        = 10_000 // rows of a select
	MaxExprBytes   = 4 << 10
	MaxDepth       = 32 // nested parentheses, NOTs and <condition> groups
	MaxSelectNodes = 256
	MaxOrderNodes  = 16
	MaxConditions  = 256
	MaxArgs        = 1_000 // bound values of one statement
)

// Operations of a queryDef.
const (
	OpGet         = "get"
	OpGetIfExists = "getIfExists"
	OpSelect      = "select"
	OpCount       = "count"
)

// Service runs queryDefs for the SOAP front end.
type Service struct {
	DB       *store.DB
	Registry *schemas.Registry
}

// ExecuteQuery compiles and runs the queryDef q and returns the result
// document. Errors are *apperr.Error: Invalid for a query this package
// does not accept, NotFound for a get without a row.
func (s *Service) ExecuteQuery(ctx context.Context, q *etree.Element) (*etree.Element, error) {
	query, err := Compile(s.Registry, q)
	if err != nil {
		return nil, err
	}
	return Execute(ctx, s.DB, query)
}

// Query is a compiled queryDef: the plan the store renders to SQL, and
// where each selected value goes in the result.
type Query struct {
	Schema    *schemas.Schema
	Operation string
	Plan      *store.Plan
	columns   []column
}

// column says where one selected value goes in a result row.
type column struct {
	typ  *schemas.Type // for formatting
	name string        // attribute name in the output ("id", or the alias)
	link string        // child element it goes into, for [link/@attr] without alias
}

// field is an attribute or link key reachable from the queried schema.
type field struct {
	expr  string     // as the caller wrote it, for messages
	col   store.Expr // the column
	typ   *schemas.Type
	class class
	key   bool   // a primary or foreign key (BIGINT)
	link  string // the link followed, "" for the schema's own fields
	name  string // wire name: "email", "namespace-id"; "" for a function
	// Functions: agg when an aggregate is computed; columns when the
	// value depends on a row (GetDate() does not).
	agg     bool
	columns bool
}

var int64Type = schemas.TypeOf(schemas.TypeInt64)

type join struct {
	link   *schemas.Link
	target *schemas.Schema
	source int // 1-based index in the plan's joins
}

// compiler holds the state of one Compile.
type compiler struct {
	reg    *schemas.Registry
	schema *schemas.Schema
	joins  []join
	depth  int
	nargs  int
	nconds int
	aggOK  bool // aggregates allowed in the expression being read
	// operands collects the values compared in <having>, which must be
	// aggregates or groups; nil elsewhere.
	operands *[]*field
}

func invalid(format string, args ...any) error {
	return apperr.Errorf(apperr.Invalid, "Invalid queryDef: "+format+".", args...)
}

var aliasPattern = regexp.MustCompile(`^@?[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// Compile turns the queryDef element q into a plan for one statement.
func Compile(reg *schemas.Registry, q *etree.Element) (*Query, error) {
	if q == nil || q.Tag != "queryDef" {
		return nil, invalid("the parameter must be a <queryDef> element")
	}
	id := q.SelectAttrValue("schema", "")
	s, ok := reg.Schema(id)
	if id == "" || !ok || s.Data == nil || s.Data.Table == "" {
		return nil, invalid("unknown schema '%s'", apperr.Quote(id, 32))
	}
	query := &Query{Schema: s, Operation: q.SelectAttrValue("operation", OpSelect)}
	switch query.Operation {
	case OpGet, OpGetIfExists, OpSelect, OpCount:
	default:
		return nil, invalid("unknown operation '%s' (use get, getIfExists, select or count)", apperr.Quote(query.Operation, 32))
	}
	limit, err := intAttr(q, "lineCount")
	if err != nil {
		return nil, err
	}
	if limit == 0 || limit > MaxRows {
		limit = MaxRows
	}
	offset, err := intAttr(q, "startLine")
	if err != nil {
		return nil, err
	}
	var sel, where, order, group, having *etree.Element
	for _, el := range q.ChildElements() {
		var slot **etree.Element
		switch el.Tag {
		case "select":
			slot = &sel
		case "where":
			slot = &where
		case "orderBy":
			slot = &order
		case "groupBy":
			slot = &group
		case "having":
			slot = &having
		default:
			return nil, invalid("<%s> is not supported", apperr.Quote(el.Tag, 32))
		}
		if *slot != nil {
			return nil, invalid("<%s> is given twice", el.Tag)
		}
		*slot = el
	}

	c := &compiler{reg: reg, schema: s}
	plan := &store.Plan{Table: s.Data.Table}
	var selected []*field
	if query.Operation != OpCount {
		c.aggOK = true
		if plan.Columns, selected, err = c.selectList(sel, query); err != nil {
			return nil, err
		}
		c.aggOK = false
	} else {
		if group != nil || having != nil {
			return nil, invalid("<groupBy> and <having> need operation select, get or getIfExists")
		}
		plan.Columns = []store.Expr{store.Call(store.FuncCount)}
	}
	if where != nil {
		if plan.Where, _, err = c.conditions(where); err != nil {
			return nil, err
		}
	}
	var groups []*field
	if group != nil {
		if groups, err = c.groupBy(group); err != nil {
			return nil, err
		}
		for _, g := range groups {
			plan.GroupBy = append(plan.GroupBy, g.col)
		}
	}
	if having != nil {
		if group == nil {
			return nil, invalid("<having> needs <groupBy>")
		}
		var operands []*field
		c.aggOK, c.operands = true, &operands
		if plan.Having, _, err = c.conditions(having); err != nil {
			return nil, err
		}
		c.aggOK, c.operands = false, nil
		if err := grouped(groups, "<having>", operands); err != nil {
			return nil, err
		}
	}
	if query.Operation != OpCount {
		c.aggOK = true
		var ordered []*field
		if plan.OrderBy, ordered, err = c.orderBy(order, group != nil || anyAgg(selected)); err != nil {
			return nil, err
		}
		c.aggOK = false
		if group != nil || anyAgg(selected) || anyAgg(ordered) {
			if err := grouped(groups, "<select>", selected); err != nil {
				return nil, err
			}
			if err := grouped(groups, "<orderBy>", ordered); err != nil {
				return nil, err
			}
			// Ties are broken by the groups, in order, for stable pages.
			for _, g := range groups {
				plan.OrderBy = append(plan.OrderBy, store.Order{Expr: g.col})
			}
		}
		if query.Operation != OpSelect {
			limit, offset = 1, 0
		}
		plan.Limit, plan.Offset = int64(limit), int64(offset)
	}
	for _, j := range c.joins {
		plan.Joins = append(plan.Joins, store.Join{Table: j.target.Data.Table, Key: j.target.Data.PrimaryKey().SQLName, Column: j.link.SQLName})
	}
	query.Plan = plan
	return query, nil
}

// intAttr reads a non-negative integer root attribute; absent is 0.
func intAttr(q *etree.Element, name string) (int, error) {
	v := q.SelectAttrValue(name, "")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > math.MaxInt32 {
		return 0, invalid("%s must be a non-negative integer", name)
	}
	return n, nil
}

func (c *compiler) enter() error {
	c.depth++
	if c.depth > MaxDepth {
		return fmt.Errorf("the conditions are nested deeper than %d levels", MaxDepth)
	}
	return nil
}

func (c *compiler) leave() { c.depth-- }

// arg counts one bound value against MaxArgs.
func (c *compiler) arg() error {
	c.nargs++
	if c.nargs > MaxArgs {
		return fmt.Errorf("the query has more than %d values", MaxArgs)
	}
	return nil
}

// join returns the LEFT JOIN that follows link, adding it on first use.
func (c *compiler) join(l *schemas.Link) (join, error) {
	for _, j := range c.joins {
		if j.link == l {
			return j, nil
		}
	}
	t, ok := c.reg.Schema(l.Target)
	if !ok || t.Data == nil || t.Data.Table == "" || t.Data.PrimaryKey() == nil {
		return join{}, fmt.Errorf("the link '%s' cannot be followed", l.Name)
	}
	j := join{link: l, target: t, source: len(c.joins) + 1}
	c.joins = append(c.joins, j)
	return j, nil
}

// field resolves @name (link "") or [link/@name]; name may be a link key
// "namespace-id".
func (c *compiler) field(link, name string) (*field, error) {
	owner, source := c.schema, 0
	f := &field{expr: "@" + name, name: name, columns: true}
	if link != "" {
		l, ok := c.schema.Data.Link(link)
		if !ok {
			return nil, fmt.Errorf("unknown link '%s' in %s", link, c.schema.ID())
		}
		j, err := c.join(l)
		if err != nil {
			return nil, err
		}
		owner, source = j.target, j.source
		f.expr, f.link = pathText(link, name), link
	}
	if base, ok := strings.CutSuffix(name, "-id"); ok {
		l, ok := owner.Data.Link(base)
		if !ok {
			return nil, fmt.Errorf("unknown link '%s' in %s", base, owner.ID())
		}
		f.typ, f.class, f.key = int64Type, cNumber, true
		f.col = store.Col(source, l.SQLName, f.typ)
		return f, nil
	}
	a, ok := owner.Data.Attribute(name)
	if !ok {
		return nil, fmt.Errorf("unknown field @%s in %s", name, owner.ID())
	}
	f.typ = schemas.TypeOf(a.Type)
	f.col, f.class, f.key = store.Col(source, a.SQLName, f.typ), f.typ.Class, a.PK
	return f, nil
}

// nodeExpr reads the expr of a <select>, <orderBy> or <groupBy> node: a
// field or a function of fields.
func (c *compiler) nodeExpr(expr string) (*field, error) {
	if len(expr) > MaxExprBytes {
		return nil, fmt.Errorf("the expression is longer than %d bytes", MaxExprBytes)
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	const want = "expr must be a field or a function: @field, @link-id, [link/@field] or count()"
	if k := toks[0].kind; k != tField && k != tPath && k != tFunc {
		return nil, errors.New(want)
	}
	p := &parser{toks: toks, c: c}
	f, err := p.parseValue()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tEOF {
		return nil, errors.New(want)
	}
	return f, nil
}

// selectList compiles <select> into the plan's columns and the output
// columns.
func (c *compiler) selectList(sel *etree.Element, q *Query) ([]store.Expr, []*field, error) {
	var nodes []*etree.Element
	if sel != nil {
		for _, n := range sel.ChildElements() {
			if n.Tag != "node" {
				return nil, nil, invalid("<%s> is not supported in <select>", apperr.Quote(n.Tag, 32))
			}
			nodes = append(nodes, n)
		}
	}
	if len(nodes) > MaxSelectNodes {
		return nil, nil, invalid("<select> has more than %d nodes", MaxSelectNodes)
	}
	var cols []store.Expr
	var fields []*field
	add := func(f *field, alias string) {
		col := column{typ: f.typ, name: f.name, link: f.link}
		if col.name == "" { // a function without alias
			col.name = "expr" + strconv.Itoa(len(cols))
		}
		if alias != "" {
			col.name, col.link = strings.TrimPrefix(alias, "@"), ""
		}
		q.columns = append(q.columns, col)
		cols = append(cols, f.col)
		fields = append(fields, f)
	}
	if len(nodes) == 0 {
		data := c.schema.Data
		for _, a := range data.Attributes {
			f, _ := c.field("", a.Name)
			add(f, "")
		}
		for _, l := range data.Links {
			f, _ := c.field("", l.WireName())
			add(f, "")
		}
		return cols, fields, nil
	}
	for i, n := range nodes {
		f, err := c.nodeExpr(n.SelectAttrValue("expr", ""))
		if err != nil {
			return nil, nil, invalid("<select> node %d: %v", i+1, err)
		}
		alias := n.SelectAttrValue("alias", "")
		if alias != "" && !aliasPattern.MatchString(alias) {
			return nil, nil, invalid("<select> node %d: alias must be written @name", i+1)
		}
		add(f, alias)
	}
	return cols, fields, nil
}

// groupBy compiles <groupBy>: values that are not aggregates.
func (c *compiler) groupBy(group *etree.Element) ([]*field, error) {
	nodes := group.ChildElements()
	if len(nodes) == 0 {
		return nil, invalid("<groupBy> has no node")
	}
	if len(nodes) > MaxOrderNodes {
		return nil, invalid("<groupBy> has more than %d nodes", MaxOrderNodes)
	}
	var out []*field
	for i, n := range nodes {
		if n.Tag != "node" {
			return nil, invalid("<%s> is not supported in <groupBy>", apperr.Quote(n.Tag, 32))
		}
		f, err := c.nodeExpr(n.SelectAttrValue("expr", ""))
		if err != nil {
			return nil, invalid("<groupBy> node %d: %v", i+1, err)
		}
		out = append(out, f)
	}
	return out, nil
}

func anyAgg(fs []*field) bool {
	for _, f := range fs {
		if f.agg {
			return true
		}
	}
	return false
}

// grouped checks that in a grouped query every value of fs that is not an
// aggregate is one of the groups (or depends on no row), so that both
// stores accept the statement and mean the same by it.
func grouped(groups []*field, where string, fs []*field) error {
	for i, f := range fs {
		if f.agg || !f.columns {
			continue
		}
		found := false
		for _, g := range groups {
			if reflect.DeepEqual(g.col, f.col) {
				found = true
				break
			}
		}
		if !found {
			return invalid("%s node %d: %s is neither an aggregate nor in <groupBy>", where, i+1, f.expr)
		}
	}
	return nil
}

// orderBy compiles <orderBy>, adding the primary key as the last key so
// that the order (and so startLine) is deterministic.
// In a grouped query (grouped), the groups are the tie-breakers instead.
func (c *compiler) orderBy(order *etree.Element, grouped bool) ([]store.Order, []*field, error) {
	var out []store.Order
	var fields []*field
	type key struct {
		source int
		column string
	}
	seen := map[key]bool{}
	pk := c.schema.Data.PrimaryKey()
	if order != nil {
		nodes := order.ChildElements()
		if len(nodes) > MaxOrderNodes {
			return nil, nil, invalid("<orderBy> has more than %d nodes", MaxOrderNodes)
		}
		for i, n := range nodes {
			if n.Tag != "node" {
				return nil, nil, invalid("<%s> is not supported in <orderBy>", apperr.Quote(n.Tag, 32))
			}
			f, err := c.nodeExpr(n.SelectAttrValue("expr", ""))
			if err != nil {
				return nil, nil, invalid("<orderBy> node %d: %v", i+1, err)
			}
			fields = append(fields, f)
			desc := false
			switch n.SelectAttrValue("sortDesc", "false") {
			case "true", "1":
				desc = true
			case "false", "0", "":
			default:
				return nil, nil, invalid("<orderBy> node %d: sortDesc must be true or false", i+1)
			}
			out = append(out, store.Order{Expr: f.col, Desc: desc, NotNull: f.col.Source == 0 && pk != nil && f.col.Column == pk.SQLName})
			seen[key{f.col.Source, f.col.Column}] = true
		}
	}
	if pk != nil && !grouped {
		if !seen[key{0, pk.SQLName}] {
			out = append(out, store.Order{Expr: store.Col(0, pk.SQLName, schemas.TypeOf(pk.Type)), NotNull: true})
		}
	}
	return out, fields, nil
}

// conditions compiles the <condition> children of parent (<where> or a
// group). Each joins the previous ones with its bool-operator (AND by
// default); SQL precedence applies between them. present is false when
// parent has no condition.
func (c *compiler) conditions(parent *etree.Element) (f *store.Cond, present bool, err error) {
	var groups [][]*store.Cond // OR of ANDs
	for _, cond := range parent.ChildElements() {
		if cond.Tag != "condition" {
			return nil, false, invalid("<%s> is not supported in <%s>", apperr.Quote(cond.Tag, 32), parent.Tag)
		}
		c.nconds++
		n := c.nconds
		if n > MaxConditions {
			return nil, false, invalid("more than %d conditions", MaxConditions)
		}
		for _, attr := range []string{"enabledIf", "setOperator"} {
			if cond.SelectAttr(attr) != nil {
				return nil, false, invalid("condition %d: %s is not supported", n, attr)
			}
		}
		var parts []*store.Cond
		if expr := cond.SelectAttrValue("expr", ""); expr != "" || len(cond.ChildElements()) == 0 {
			p, err := c.parseExpr(expr)
			if err != nil {
				return nil, false, invalid("condition %d: %v", n, err)
			}
			parts = append(parts, p)
		}
		if len(cond.ChildElements()) > 0 {
			if err := c.enter(); err != nil {
				return nil, false, invalid("condition %d: %v", n, err)
			}
			sub, ok, err := c.conditions(cond)
			c.leave()
			if err != nil {
				return nil, false, err
			}
			if ok {
				parts = append(parts, sub)
			}
		}
		p := joinConds(parts, store.OpAnd)
		switch op := strings.ToUpper(cond.SelectAttrValue("bool-operator", "AND")); {
		case op == "OR" && len(groups) > 0:
			groups = append(groups, []*store.Cond{p})
		case op == "AND" || op == "OR":
			if len(groups) == 0 {
				groups = append(groups, nil)
			}
			groups[len(groups)-1] = append(groups[len(groups)-1], p)
		default:
			return nil, false, invalid("condition %d: bool-operator must be AND or OR", n)
		}
	}
	if len(groups) == 0 {
		return nil, false, nil
	}
	ors := make([]*store.Cond, len(groups))
	for i, g := range groups {
		ors[i] = joinConds(g, store.OpAnd)
	}
	return joinConds(ors, store.OpOr), true, nil
}

// Cast types of a literal compared with another literal: a bound value
// with an explicit type, since PostgreSQL cannot infer one.
var (
	doubleType = schemas.TypeOf(schemas.TypeDouble)
	textType   = schemas.TypeOf(schemas.TypeString)
)

// literal makes a literal compared with another literal a typed value.
func (c *compiler) literal(t token) (store.Expr, error) {
	if err := c.arg(); err != nil {
		return store.Expr{}, err
	}
	switch t.kind {
	case tInt:
		v, err := parseInt(t.text)
		if err != nil {
			return store.Expr{}, fmt.Errorf("the number is out of range")
		}
		return store.Val(v, int64Type), nil
	case tDec:
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return store.Expr{}, fmt.Errorf("the number is out of range")
		}
		return store.Val(v, doubleType), nil
	case tString:
		return store.Val(t.text, textType), nil
	}
	return store.Expr{}, fmt.Errorf("%s must be compared with a field", t.describe())
}

// operandExpr makes operand o on its own (IS NULL) an expression.
func (c *compiler) operandExpr(o operand) (store.Expr, error) {
	if o.field != nil {
		return o.field.col, nil
	}
	return c.literal(o.lit)
}

// side makes operand o of a comparison whose other side is other an
// expression: a field as its column, a literal as a value of the other
// side's type.
func (c *compiler) side(o, other operand) (store.Expr, error) {
	if o.field != nil {
		return o.field.col, nil
	}
	if other.field == nil {
		return c.literal(o.lit)
	}
	if err := c.arg(); err != nil {
		return store.Expr{}, err
	}
	v, err := bind(o.lit, other.field)
	if err != nil {
		return store.Expr{}, err
	}
	return store.Val(v, nil), nil
}

// predicate is the condition l op r.
func (c *compiler) predicate(l operand, op string, r operand) (*store.Cond, error) {
	lf, err := c.side(l, r)
	if err != nil {
		return nil, err
	}
	rf, err := c.side(r, l)
	if err != nil {
		return nil, err
	}
	return &store.Cond{Op: op, Left: lf, Right: []store.Expr{rf}}, nil
}

func (c *compiler) compare(l operand, op string, r operand) (*store.Cond, error) {
	if l.null || r.null {
		other := l
		if l.null {
			other = r
		}
		if other.null {
			return nil, fmt.Errorf("NULL cannot be compared with NULL")
		}
		is := store.OpIsNull
		switch op {
		case "=":
		case "<>":
			is = store.OpIsNotNull
		default:
			return nil, fmt.Errorf("NULL can only be compared with =, <> or IS")
		}
		e, err := c.operandExpr(other)
		if err != nil {
			return nil, err
		}
		return &store.Cond{Op: is, Left: e}, nil
	}
	switch {
	case l.field != nil && r.field != nil && l.field.class != r.field.class:
		return nil, fmt.Errorf("%s is %s and %s is %s: they cannot be compared", l.field.expr, l.field.class, r.field.expr, r.field.class)
	case l.field == nil && r.field == nil && literalClass(l.lit) != literalClass(r.lit):
		return nil, fmt.Errorf("%s cannot be compared with %s", l.lit.describe(), r.lit.describe())
	}
	return c.predicate(l, op, r)
}

func (c *compiler) like(l operand, op string, r operand) (*store.Cond, error) {
	for _, o := range []operand{l, r} {
		if o.field != nil && o.field.class != cText {
			return nil, fmt.Errorf("%s needs text: %s is %s", op, o.field.expr, o.field.class)
		}
		if o.field == nil && (o.null || o.lit.kind != tString) {
			return nil, fmt.Errorf("%s compares text with a quoted pattern such as '%%@example.com'", op)
		}
	}
	return c.predicate(l, op, r)
}

func (c *compiler) in(l operand, op string, items []token) (*store.Cond, error) {
	if l.null {
		return nil, fmt.Errorf("NULL cannot be compared with %s", op)
	}
	le, err := c.operandExpr(l)
	if err != nil {
		return nil, err
	}
	out := &store.Cond{Op: op, Left: le, Right: make([]store.Expr, len(items))}
	for i, it := range items {
		if l.field != nil {
			if err := c.arg(); err != nil {
				return nil, err
			}
			v, err := bind(it, l.field)
			if err != nil {
				return nil, err
			}
			out.Right[i] = store.Val(v, nil)
			continue
		}
		if literalClass(it) != literalClass(l.lit) {
			return nil, fmt.Errorf("%s cannot be compared with %s", l.lit.describe(), it.describe())
		}
		if out.Right[i], err = c.literal(it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Execute runs a compiled query and builds ACC's result document:
// <name …/> for get and getIfExists (empty when getIfExists finds no row),
// <name-collection><name …/>…</name-collection> for select, and
// <name count="N"/> for count, name being the schema's short name.
func Execute(ctx context.Context, db *store.DB, q *Query) (*etree.Element, error) {
	name := q.Schema.Name
	if q.Operation == OpCount {
		var n int64
		err := db.Select(ctx, q.Plan, func(v []any) error {
			switch x := v[0].(type) {
			case int64:
				n = x
			default:
				return apperr.Errorf(apperr.Internal, "COUNT returned %T", v[0])
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		el := etree.NewElement(name)
		el.CreateAttr("count", strconv.FormatInt(n, 10))
		return el, nil
	}
	var (
		rows []*etree.Element
		size int
	)
	err := db.Select(ctx, q.Plan, func(v []any) error {
		row, n := q.row(v)
		// The answer is built whole in memory: bounded, as its rows are.
		if size += n; size > MaxResultBytes {
			return apperr.Errorf(apperr.Invalid, "The result is larger than %d MiB: ask for fewer rows (lineCount) or fewer columns.", MaxResultBytes>>20)
		}
		if err := ctx.Err(); err != nil {
			return apperr.Wrap(apperr.Busy, err, "The request was cancelled or took too long.")
		}
		rows = append(rows, row)
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch q.Operation {
	case OpGet, OpGetIfExists:
		if len(rows) > 0 {
			return rows[0], nil
		}
		if q.Operation == OpGet {
			return nil, apperr.Errorf(apperr.NotFound, "The query returned no row.")
		}
		return etree.NewElement(name), nil
	}
	coll := etree.NewElement(name + "-collection")
	for _, r := range rows {
		coll.AddChild(r)
	}
	return coll, nil
}

// MaxResultBytes bounds the text of one ExecuteQuery's rows (names and
// values, as escaped in the answer): 256 columns of 255 characters over 10,000 rows would otherwise
// build an answer of 641 MiB in memory.
const MaxResultBytes = 32 << 20

// row builds one result element, and tells about how many bytes of text it
// holds; a value of a followed link without alias goes into a child
// element named after the link, as ACC nests it.
func (q *Query) row(values []any) (*etree.Element, int) {
	el := etree.NewElement(q.Schema.Name)
	n := len(q.Schema.Name)
	for i, col := range q.columns {
		s, ok := col.typ.Format(values[i])
		if !ok {
			continue
		}
		target := el
		if col.link != "" {
			if target = el.SelectElement(col.link); target == nil {
				target = el.CreateElement(col.link)
			}
		}
		target.CreateAttr(col.name, s)
		n += len(col.name) + escapedLen(s) + 4
	}
	return el, n
}

// escapedLen is about the length of s written as an attribute's value:
// each character XML escapes counts as its reference (up to 6 bytes,
// &quot;), and a byte that is not UTF-8 or a control character XML may
// not hold as the U+FFFD written for it (3 bytes), or text of quotes
// or of control bytes would pass the bound several times over.
func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '&' || r == '<' || r == '>' || r == '"' || r == '\'' || r == '\t' || r == '\n' || r == '\r':
			n += 5
		case r == utf8.RuneError && size == 1, r < 0x20:
			n += 2
		}
		i += size
	}
	return n
}
