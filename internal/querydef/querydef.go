// Package querydef implements xtk:queryDef#ExecuteQuery over the data
// schemas of the registry: it compiles an ACC queryDef document into one
// parameterised SQL statement and builds the result document ACC returns
// (acc-protocol.md §5).
//
// Supported: operations get, getIfExists, select and count; lineCount and
// startLine; <select> nodes @attr, @link-id and one link hop
// [link/@attr] (a LEFT JOIN on the target's primary key), with or without
// alias; <where> conditions with bool-operator and nested groups, in the
// expression language described in expr.go; <orderBy> with sortDesc.
// Tables and columns come only from the registry (validated identifiers);
// every value the caller writes is a bound argument, never SQL text.
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
//     case-insensitive on SQLite.
package querydef

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

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
	query, err := Compile(s.Registry, q, s.DB.Dialect())
	if err != nil {
		return nil, err
	}
	return Execute(ctx, s.DB, query)
}

// Query is a compiled queryDef.
type Query struct {
	Schema    *schemas.Schema
	Operation string
	SQL       string // "?" placeholders
	Args      []any
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
	expr  string // as the caller wrote it, for messages
	sql   string // qualified, quoted column
	typ   *schemas.Type
	class class
	key   bool   // a primary or foreign key (BIGINT)
	link  string // the link followed, "" for the schema's own fields
	name  string // wire name: "email", "namespace-id"
}

var int64Type = schemas.TypeOf(schemas.TypeInt64)

type join struct {
	link   *schemas.Link
	target *schemas.Schema
	alias  string
}

// compiler holds the state of one Compile.
type compiler struct {
	reg     *schemas.Registry
	schema  *schemas.Schema
	dialect string
	joins   []join
	depth   int
	nargs   int
	nconds  int
}

func quote(ident string) string { return `"` + ident + `"` }

func invalid(format string, args ...any) error {
	return apperr.Errorf(apperr.Invalid, "Invalid queryDef: "+format+".", args...)
}

var aliasPattern = regexp.MustCompile(`^@?[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// Compile turns the queryDef element q into one SQL statement for dialect
// (store.SQLite or store.Postgres).
func Compile(reg *schemas.Registry, q *etree.Element, dialect string) (*Query, error) {
	if q == nil || q.Tag != "queryDef" {
		return nil, invalid("the parameter must be a <queryDef> element")
	}
	id := q.SelectAttrValue("schema", "")
	s, ok := reg.Schema(id)
	if id == "" || !ok || s.Data == nil || s.Data.Table == "" {
		return nil, invalid("unknown schema '%s'", short(id))
	}
	query := &Query{Schema: s, Operation: q.SelectAttrValue("operation", OpSelect)}
	switch query.Operation {
	case OpGet, OpGetIfExists, OpSelect, OpCount:
	default:
		return nil, invalid("unknown operation '%s' (use get, getIfExists, select or count)", short(query.Operation))
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
	var sel, where, order *etree.Element
	for _, el := range q.ChildElements() {
		var slot **etree.Element
		switch el.Tag {
		case "select":
			slot = &sel
		case "where":
			slot = &where
		case "orderBy":
			slot = &order
		default:
			return nil, invalid("<%s> is not supported", short(el.Tag))
		}
		if *slot != nil {
			return nil, invalid("<%s> is given twice", el.Tag)
		}
		*slot = el
	}

	c := &compiler{reg: reg, schema: s, dialect: dialect}
	var cols []string
	if query.Operation != OpCount {
		if cols, err = c.selectList(sel, query); err != nil {
			return nil, err
		}
	}
	var cond frag
	if where != nil {
		if cond, _, err = c.conditions(where); err != nil {
			return nil, err
		}
	}
	var orderBy []string
	if query.Operation != OpCount {
		if orderBy, err = c.orderBy(order); err != nil {
			return nil, err
		}
	}

	var b strings.Builder
	if query.Operation == OpCount {
		b.WriteString("SELECT COUNT(*)")
	} else {
		b.WriteString("SELECT " + strings.Join(cols, ", "))
	}
	b.WriteString(" FROM " + quote(s.Data.Table) + " AS t0")
	for _, j := range c.joins {
		fmt.Fprintf(&b, " LEFT JOIN %s AS %s ON %s.%s = t0.%s", quote(j.target.Data.Table), j.alias,
			j.alias, quote(j.target.Data.PrimaryKey().SQLName), quote(j.link.SQLName))
	}
	if cond.sql != "" {
		b.WriteString(" WHERE " + cond.sql)
		query.Args = append(query.Args, cond.args...)
	}
	if query.Operation != OpCount {
		if len(orderBy) > 0 {
			b.WriteString(" ORDER BY " + strings.Join(orderBy, ", "))
		}
		if query.Operation != OpSelect {
			limit, offset = 1, 0
		}
		b.WriteString(" LIMIT ?")
		query.Args = append(query.Args, int64(limit))
		if offset > 0 {
			b.WriteString(" OFFSET ?")
			query.Args = append(query.Args, int64(offset))
		}
	}
	query.SQL = b.String()
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
	j := join{link: l, target: t, alias: "l" + strconv.Itoa(len(c.joins)+1)}
	c.joins = append(c.joins, j)
	return j, nil
}

// field resolves @name (link "") or [link/@name]; name may be a link key
// "namespace-id".
func (c *compiler) field(link, name string) (*field, error) {
	owner, alias := c.schema, "t0"
	f := &field{expr: "@" + name, name: name}
	if link != "" {
		l, ok := c.schema.Data.Link(link)
		if !ok {
			return nil, fmt.Errorf("unknown link '%s' in %s", link, c.schema.ID())
		}
		j, err := c.join(l)
		if err != nil {
			return nil, err
		}
		owner, alias = j.target, j.alias
		f.expr, f.link = pathText(link, name), link
	}
	if base, ok := strings.CutSuffix(name, "-id"); ok {
		l, ok := owner.Data.Link(base)
		if !ok {
			return nil, fmt.Errorf("unknown link '%s' in %s", base, owner.ID())
		}
		f.sql, f.typ, f.class, f.key = alias+"."+quote(l.SQLName), int64Type, cNumber, true
		return f, nil
	}
	a, ok := owner.Data.Attribute(name)
	if !ok {
		return nil, fmt.Errorf("unknown field @%s in %s", name, owner.ID())
	}
	f.typ = schemas.TypeOf(a.Type)
	f.sql, f.class, f.key = alias+"."+quote(a.SQLName), f.typ.Class, a.PK
	return f, nil
}

// nodeField reads the expr of a <select> or <orderBy> node: one field.
func (c *compiler) nodeField(expr string) (*field, error) {
	if len(expr) > MaxExprBytes {
		return nil, fmt.Errorf("the expression is longer than %d bytes", MaxExprBytes)
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	if len(toks) != 2 || (toks[0].kind != tField && toks[0].kind != tPath) {
		return nil, fmt.Errorf("expr must be a field: @field, @link-id or [link/@field]")
	}
	return c.field(toks[0].link, toks[0].text)
}

// selectList compiles <select> into SQL columns and output columns.
func (c *compiler) selectList(sel *etree.Element, q *Query) ([]string, error) {
	var nodes []*etree.Element
	if sel != nil {
		for _, n := range sel.ChildElements() {
			if n.Tag != "node" {
				return nil, invalid("<%s> is not supported in <select>", short(n.Tag))
			}
			nodes = append(nodes, n)
		}
	}
	if len(nodes) > MaxSelectNodes {
		return nil, invalid("<select> has more than %d nodes", MaxSelectNodes)
	}
	var cols []string
	add := func(f *field, alias string) {
		col := column{typ: f.typ, name: f.name, link: f.link}
		if alias != "" {
			col.name, col.link = strings.TrimPrefix(alias, "@"), ""
		}
		q.columns = append(q.columns, col)
		cols = append(cols, f.sql)
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
		return cols, nil
	}
	for i, n := range nodes {
		f, err := c.nodeField(n.SelectAttrValue("expr", ""))
		if err != nil {
			return nil, invalid("<select> node %d: %v", i+1, err)
		}
		alias := n.SelectAttrValue("alias", "")
		if alias != "" && !aliasPattern.MatchString(alias) {
			return nil, invalid("<select> node %d: alias must be written @name", i+1)
		}
		add(f, alias)
	}
	return cols, nil
}

// orderBy compiles <orderBy>, adding the primary key as the last key so
// that the order (and so startLine) is deterministic.
func (c *compiler) orderBy(order *etree.Element) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	if order != nil {
		nodes := order.ChildElements()
		if len(nodes) > MaxOrderNodes {
			return nil, invalid("<orderBy> has more than %d nodes", MaxOrderNodes)
		}
		for i, n := range nodes {
			if n.Tag != "node" {
				return nil, invalid("<%s> is not supported in <orderBy>", short(n.Tag))
			}
			f, err := c.nodeField(n.SelectAttrValue("expr", ""))
			if err != nil {
				return nil, invalid("<orderBy> node %d: %v", i+1, err)
			}
			dir := ""
			switch n.SelectAttrValue("sortDesc", "false") {
			case "true", "1":
				dir = " DESC"
			case "false", "0", "":
			default:
				return nil, invalid("<orderBy> node %d: sortDesc must be true or false", i+1)
			}
			out = append(out, f.sql+dir)
			seen[f.sql] = true
		}
	}
	if pk := c.schema.Data.PrimaryKey(); pk != nil {
		if sql := "t0." + quote(pk.SQLName); !seen[sql] {
			out = append(out, sql)
		}
	}
	return out, nil
}

// conditions compiles the <condition> children of parent (<where> or a
// group). Each joins the previous ones with its bool-operator (AND by
// default); SQL precedence applies between them. present is false when
// parent has no condition.
func (c *compiler) conditions(parent *etree.Element) (f frag, present bool, err error) {
	var groups [][]frag // OR of ANDs
	for _, cond := range parent.ChildElements() {
		if cond.Tag != "condition" {
			return frag{}, false, invalid("<%s> is not supported in <%s>", short(cond.Tag), parent.Tag)
		}
		c.nconds++
		n := c.nconds
		if n > MaxConditions {
			return frag{}, false, invalid("more than %d conditions", MaxConditions)
		}
		for _, attr := range []string{"enabledIf", "setOperator"} {
			if cond.SelectAttr(attr) != nil {
				return frag{}, false, invalid("condition %d: %s is not supported", n, attr)
			}
		}
		var parts []frag
		if expr := cond.SelectAttrValue("expr", ""); expr != "" || len(cond.ChildElements()) == 0 {
			p, err := c.parseExpr(expr)
			if err != nil {
				return frag{}, false, invalid("condition %d: %v", n, err)
			}
			parts = append(parts, p)
		}
		if len(cond.ChildElements()) > 0 {
			if err := c.enter(); err != nil {
				return frag{}, false, invalid("condition %d: %v", n, err)
			}
			sub, ok, err := c.conditions(cond)
			c.leave()
			if err != nil {
				return frag{}, false, err
			}
			if ok {
				parts = append(parts, sub)
			}
		}
		p := joinFrags(parts, "AND")
		switch op := strings.ToUpper(cond.SelectAttrValue("bool-operator", "AND")); {
		case op == "OR" && len(groups) > 0:
			groups = append(groups, []frag{p})
		case op == "AND" || op == "OR":
			if len(groups) == 0 {
				groups = append(groups, nil)
			}
			groups[len(groups)-1] = append(groups[len(groups)-1], p)
		default:
			return frag{}, false, invalid("condition %d: bool-operator must be AND or OR", n)
		}
	}
	if len(groups) == 0 {
		return frag{}, false, nil
	}
	ors := make([]frag, len(groups))
	for i, g := range groups {
		ors[i] = joinFrags(g, "AND")
	}
	return joinFrags(ors, "OR"), true, nil
}

// literalSQL renders a literal compared with another literal: a bound
// value with an explicit type, since PostgreSQL cannot infer one.
func (c *compiler) literalSQL(t token) (frag, error) {
	if err := c.arg(); err != nil {
		return frag{}, err
	}
	switch t.kind {
	case tInt:
		v, err := parseInt(t.text)
		if err != nil {
			return frag{}, fmt.Errorf("the number is out of range")
		}
		return frag{"CAST(? AS BIGINT)", []any{v}}, nil
	case tDec:
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return frag{}, fmt.Errorf("the number is out of range")
		}
		typ := "DOUBLE PRECISION"
		if c.dialect == store.SQLite {
			typ = "REAL"
		}
		return frag{"CAST(? AS " + typ + ")", []any{v}}, nil
	case tString:
		return frag{"CAST(? AS TEXT)", []any{t.text}}, nil
	}
	return frag{}, fmt.Errorf("%s must be compared with a field", t.describe())
}

// operandSQL renders an operand on its own (IS NULL).
func (c *compiler) operandSQL(o operand) (frag, error) {
	if o.field != nil {
		return frag{sql: o.field.sql}, nil
	}
	return c.literalSQL(o.lit)
}

// side renders operand o of a comparison whose other side is other: a
// field as its column, a literal as a value of the other side's type.
func (c *compiler) side(o, other operand) (frag, error) {
	if o.field != nil {
		return frag{sql: o.field.sql}, nil
	}
	if other.field == nil {
		return c.literalSQL(o.lit)
	}
	if err := c.arg(); err != nil {
		return frag{}, err
	}
	v, err := bind(o.lit, other.field)
	if err != nil {
		return frag{}, err
	}
	return frag{"?", []any{v}}, nil
}

func (c *compiler) compare(l operand, op string, r operand) (frag, error) {
	if l.null || r.null {
		other := l
		if l.null {
			other = r
		}
		if other.null {
			return frag{}, fmt.Errorf("NULL cannot be compared with NULL")
		}
		not := ""
		switch op {
		case "=":
		case "<>":
			not = "NOT "
		default:
			return frag{}, fmt.Errorf("NULL can only be compared with =, <> or IS")
		}
		f, err := c.operandSQL(other)
		if err != nil {
			return frag{}, err
		}
		return frag{f.sql + " IS " + not + "NULL", f.args}, nil
	}
	switch {
	case l.field != nil && r.field != nil && l.field.class != r.field.class:
		return frag{}, fmt.Errorf("%s is %s and %s is %s: they cannot be compared", l.field.expr, l.field.class, r.field.expr, r.field.class)
	case l.field == nil && r.field == nil && literalClass(l.lit) != literalClass(r.lit):
		return frag{}, fmt.Errorf("%s cannot be compared with %s", l.lit.describe(), r.lit.describe())
	}
	lf, err := c.side(l, r)
	if err != nil {
		return frag{}, err
	}
	rf, err := c.side(r, l)
	if err != nil {
		return frag{}, err
	}
	return frag{lf.sql + " " + op + " " + rf.sql, append(lf.args, rf.args...)}, nil
}

func (c *compiler) like(l operand, op string, r operand) (frag, error) {
	for _, o := range []operand{l, r} {
		if o.field != nil && o.field.class != cText {
			return frag{}, fmt.Errorf("%s needs text: %s is %s", op, o.field.expr, o.field.class)
		}
		if o.field == nil && (o.null || o.lit.kind != tString) {
			return frag{}, fmt.Errorf("%s compares text with a quoted pattern such as '%%@example.com'", op)
		}
	}
	lf, err := c.side(l, r)
	if err != nil {
		return frag{}, err
	}
	rf, err := c.side(r, l)
	if err != nil {
		return frag{}, err
	}
	return frag{lf.sql + " " + op + " " + rf.sql, append(lf.args, rf.args...)}, nil
}

func (c *compiler) in(l operand, op string, items []token) (frag, error) {
	if l.null {
		return frag{}, fmt.Errorf("NULL cannot be compared with %s", op)
	}
	lf, err := c.operandSQL(l)
	if err != nil {
		return frag{}, err
	}
	out := frag{args: lf.args}
	marks := make([]string, len(items))
	for i, it := range items {
		if l.field != nil {
			if err := c.arg(); err != nil {
				return frag{}, err
			}
			v, err := bind(it, l.field)
			if err != nil {
				return frag{}, err
			}
			marks[i] = "?"
			out.args = append(out.args, v)
			continue
		}
		if literalClass(it) != literalClass(l.lit) {
			return frag{}, fmt.Errorf("%s cannot be compared with %s", l.lit.describe(), it.describe())
		}
		f, err := c.literalSQL(it)
		if err != nil {
			return frag{}, err
		}
		marks[i] = f.sql
		out.args = append(out.args, f.args...)
	}
	out.sql = lf.sql + " " + op + " (" + strings.Join(marks, ", ") + ")"
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
		err := db.Query(ctx, q.SQL, q.Args, func(v []any) error {
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
	var rows []*etree.Element
	err := db.Query(ctx, q.SQL, q.Args, func(v []any) error {
		rows = append(rows, q.row(v))
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

// row builds one result element; a value of a followed link without alias
// goes into a child element named after the link, as ACC nests it.
func (q *Query) row(values []any) *etree.Element {
	el := etree.NewElement(q.Schema.Name)
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
	}
	return el
}
