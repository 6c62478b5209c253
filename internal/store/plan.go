package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// A Plan is one read-only query over the data-model tables, as
// internal/querydef compiles an ACC queryDef: which table, which link hops
// (LEFT JOINs), which columns or expressions, a condition tree whose every
// literal is a bound value, grouping, order and paging. The store alone
// turns it into SQL for its dialect (Render): quoting, placeholders, casts
// and functions differ between SQLite and PostgreSQL and are written here
// only.
type Plan struct {
	Table   string // the queried table, aliased t0
	Joins   []Join // aliased l1, l2, … in order
	Columns []Expr // the select list
	Where   *Cond  // nil: every row
	GroupBy []Expr
	Having  *Cond
	OrderBy []Order
	Limit   int64 // 0: none
	Offset  int64 // 0: none
}

// Join is a LEFT JOIN that follows a link of the queried table to the
// primary key of its target.
type Join struct {
	Table  string // the link's target table
	Key    string // its primary key column
	Column string // the link's column in the queried table
}

// Order is one ORDER BY key.
type Order struct {
	Expr Expr
	Desc bool
	// NotNull marks a key that is never NULL (a primary key): it gets no
	// NULLS clause, so SQLite still reads it in its index's order.
	NotNull bool
}

// ExprKind says what an Expr is.
type ExprKind uint8

// Kinds of expressions.
const (
	ExprColumn ExprKind = iota // Column of Source
	ExprValue                  // Value, bound
	ExprFunc                   // Func applied to Args
)

// Func is a function of the fixed table a queryDef may call. The store
// writes each in the dialect's SQL.
type Func uint8

// Functions.
const (
	FuncNone          Func = iota
	FuncCount              // COUNT(*) without argument, COUNT(x) with one
	FuncCountDistinct      // COUNT(DISTINCT x)
	FuncMin
	FuncMax
	FuncSum
	FuncLower
	FuncUpper
	FuncYear  // the year of a date or datetime, an integer
	FuncMonth // 1..12
	FuncDay   // 1..31
	FuncNow   // the current timestamp (ACC's GetDate())
)

// Expr is a column, a bound value or a function call.
type Expr struct {
	Kind   ExprKind
	Source int    // ExprColumn: 0 the queried table, i the i-th join
	Column string // ExprColumn: the column name (a registry identifier)
	Value  any    // ExprValue: the bound value
	// ExprValue: when set, the value is cast to this type's column type,
	// which PostgreSQL needs when nothing else gives the placeholder one.
	Cast *schemas.Type
	// ExprColumn, ExprFunc: the value's type when known; a date is not
	// shifted to UTC as a datetime is.
	Type *schemas.Type
	Func Func   // ExprFunc
	Args []Expr // ExprFunc
}

// Col is a column of the queried table (source 0) or of a join (1, 2, …).
func Col(source int, column string, typ *schemas.Type) Expr {
	return Expr{Kind: ExprColumn, Source: source, Column: column, Type: typ}
}

// Val is a bound value; cast may be nil.
func Val(v any, cast *schemas.Type) Expr { return Expr{Kind: ExprValue, Value: v, Cast: cast} }

// Call applies f to args.
func Call(f Func, args ...Expr) Expr { return Expr{Kind: ExprFunc, Func: f, Args: args} }

// Condition operators.
const (
	OpAnd = "AND"
	OpOr  = "OR"
	OpNot = "NOT"
	// Comparisons: Left Op Right[0].
	OpEq, OpNe, OpLt, OpGt, OpLe, OpGe = "=", "<>", "<", ">", "<=", ">="
	OpLike, OpNotLike                  = "LIKE", "NOT LIKE"
	// Lists: Left Op (Right…).
	OpIn, OpNotIn = "IN", "NOT IN"
	// Left alone.
	OpIsNull, OpIsNotNull = "IS NULL", "IS NOT NULL"
)

// Cond is a node of a condition tree: AND or OR of Sub (one Sub stands for
// itself), NOT of Sub[0], or a predicate on Left and Right.
type Cond struct {
	Op    string
	Sub   []*Cond
	Left  Expr
	Right []Expr
}

// Render writes p as one SQL statement for dialect (SQLite or Postgres)
// with "?" placeholders, and returns the bound values in their order.
// Identifiers are checked again (registry identifiers only), and any
// operator or function outside the fixed tables is an error.
func Render(dialect string, p *Plan) (string, []any, error) {
	r := renderer{pg: dialect == Postgres}
	r.b.Grow(256)
	if len(p.Columns) == 0 {
		return "", nil, fmt.Errorf("a plan selects nothing")
	}
	r.b.WriteString("SELECT ")
	for i, e := range p.Columns {
		if i > 0 {
			r.b.WriteString(", ")
		}
		r.expr(e)
	}
	r.b.WriteString(" FROM ")
	r.ident(p.Table)
	r.b.WriteString(" AS t0")
	for i, j := range p.Joins {
		a := "l" + strconv.Itoa(i+1)
		r.b.WriteString(" LEFT JOIN ")
		r.ident(j.Table)
		r.b.WriteString(" AS " + a + " ON " + a + ".")
		r.ident(j.Key)
		r.b.WriteString(" = t0.")
		r.ident(j.Column)
	}
	if p.Where != nil {
		r.b.WriteString(" WHERE ")
		r.cond(p.Where)
	}
	for i, e := range p.GroupBy {
		if i == 0 {
			r.b.WriteString(" GROUP BY ")
		} else {
			r.b.WriteString(", ")
		}
		r.expr(e)
	}
	if p.Having != nil {
		r.b.WriteString(" HAVING ")
		r.cond(p.Having)
	}
	for i, o := range p.OrderBy {
		if i == 0 {
			r.b.WriteString(" ORDER BY ")
		} else {
			r.b.WriteString(", ")
		}
		r.expr(o.Expr)
		// Empty values last going up, first going down, on both stores:
		// PostgreSQL's default, where SQLite's is the reverse (the same
		// call answered other people on each store).
		switch {
		case o.Desc && o.NotNull:
			r.b.WriteString(" DESC")
		case o.Desc:
			r.b.WriteString(" DESC NULLS FIRST")
		case !o.NotNull:
			r.b.WriteString(" NULLS LAST")
		}
	}
	if p.Limit > 0 {
		r.b.WriteString(" LIMIT ?")
		r.args = append(r.args, p.Limit)
	}
	if p.Offset > 0 {
		r.b.WriteString(" OFFSET ?")
		r.args = append(r.args, p.Offset)
	}
	if r.err != nil {
		return "", nil, r.err
	}
	return r.b.String(), r.args, nil
}

type renderer struct {
	b    strings.Builder
	args []any
	pg   bool
	err  error
}

func (r *renderer) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// ident writes a quoted identifier; only the registry's identifiers
// (lower-case letters, digits, underscores) are accepted.
func (r *renderer) ident(s string) {
	if s == "" {
		r.fail("empty identifier")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			r.fail("identifier %q is not a registry identifier", s)
			return
		}
	}
	r.b.WriteByte('"')
	r.b.WriteString(s)
	r.b.WriteByte('"')
}

func (r *renderer) expr(e Expr) {
	switch e.Kind {
	case ExprColumn:
		if e.Source == 0 {
			r.b.WriteString("t0.")
		} else {
			r.b.WriteString("l" + strconv.Itoa(e.Source) + ".")
		}
		r.ident(e.Column)
	case ExprValue:
		r.args = append(r.args, e.Value)
		if e.Cast == nil {
			r.b.WriteByte('?')
			return
		}
		typ := e.Cast.SQLite
		if r.pg {
			typ = e.Cast.Postgres
		}
		if typ == "" {
			r.fail("no cast to %s", e.Cast.Name)
		}
		r.b.WriteString("CAST(? AS " + typ + ")")
	case ExprFunc:
		r.call(e)
	default:
		r.fail("unknown expression kind %d", e.Kind)
	}
}

// call writes a function of the fixed table in the dialect's SQL.
func (r *renderer) call(e Expr) {
	arity := 1
	switch e.Func {
	case FuncNow:
		arity = 0
	case FuncCount:
		if len(e.Args) == 0 {
			r.b.WriteString("COUNT(*)")
			return
		}
	}
	if len(e.Args) != arity {
		r.fail("function %d takes %d arguments", e.Func, arity)
		return
	}
	wrap := func(open, close string) {
		r.b.WriteString(open)
		r.expr(e.Args[0])
		r.b.WriteString(close)
	}
	switch e.Func {
	case FuncCount:
		wrap("COUNT(", ")")
	case FuncCountDistinct:
		wrap("COUNT(DISTINCT ", ")")
	case FuncMin:
		wrap("MIN(", ")")
	case FuncMax:
		wrap("MAX(", ")")
	case FuncSum:
		wrap("SUM(", ")")
	case FuncLower:
		wrap("LOWER(", ")")
	case FuncUpper:
		wrap("UPPER(", ")")
	case FuncYear, FuncMonth, FuncDay:
		part := map[Func][2]string{FuncYear: {"YEAR", "%Y"}, FuncMonth: {"MONTH", "%m"}, FuncDay: {"DAY", "%d"}}[e.Func]
		if r.pg {
			// Datetimes are TIMESTAMPTZ: the parts of their UTC time, as
			// ACC writes datetimes (and SQLite's strftime reads them).
			if t := e.Args[0].Type; t != nil && t.Name == schemas.TypeDate {
				wrap("CAST(EXTRACT("+part[0]+" FROM ", ") AS INTEGER)")
				return
			}
			wrap("CAST(EXTRACT("+part[0]+" FROM ", " AT TIME ZONE 'UTC') AS INTEGER)")
			return
		}
		wrap("CAST(strftime('"+part[1]+"', ", ") AS INTEGER)")
	case FuncNow:
		if r.pg {
			r.b.WriteString("CURRENT_TIMESTAMP")
			return
		}
		r.b.WriteString("strftime('%Y-%m-%d %H:%M:%fZ', 'now')")
	default:
		r.fail("unknown function %d", e.Func)
	}
}

func (r *renderer) cond(c *Cond) {
	switch c.Op {
	case OpAnd, OpOr:
		if len(c.Sub) == 0 {
			r.fail("empty %s", c.Op)
			return
		}
		if len(c.Sub) == 1 {
			r.cond(c.Sub[0])
			return
		}
		r.b.WriteByte('(')
		for i, s := range c.Sub {
			if i > 0 {
				r.b.WriteString(" " + c.Op + " ")
			}
			r.cond(s)
		}
		r.b.WriteByte(')')
	case OpNot:
		if len(c.Sub) != 1 {
			r.fail("NOT takes one condition")
			return
		}
		r.b.WriteString("NOT ")
		if s := c.Sub[0]; (s.Op == OpAnd || s.Op == OpOr) && len(s.Sub) > 1 {
			r.cond(s) // a group, already enclosed
			return
		}
		r.b.WriteByte('(')
		r.cond(c.Sub[0])
		r.b.WriteByte(')')
	case OpEq, OpNe, OpLt, OpGt, OpLe, OpGe, OpLike, OpNotLike:
		if len(c.Right) != 1 {
			r.fail("%s compares two values", c.Op)
			return
		}
		r.expr(c.Left)
		r.b.WriteString(" " + c.Op + " ")
		r.expr(c.Right[0])
	case OpIn, OpNotIn:
		if len(c.Right) == 0 {
			r.fail("%s needs a list", c.Op)
			return
		}
		r.expr(c.Left)
		r.b.WriteString(" " + c.Op + " (")
		for i, e := range c.Right {
			if i > 0 {
				r.b.WriteString(", ")
			}
			r.expr(e)
		}
		r.b.WriteByte(')')
	case OpIsNull, OpIsNotNull:
		r.expr(c.Left)
		r.b.WriteString(" " + c.Op)
	default:
		r.fail("unknown operator %q", c.Op)
	}
}

// Select renders p for this database and runs it, calling row once per
// result row as Query does.
func (d *DB) Select(ctx context.Context, p *Plan, row func(values []any) error) error {
	sql, args, err := Render(d.dialect, p)
	if err != nil {
		return apperr.Errorf(apperr.Internal, "Invalid plan: %v.", err)
	}
	return d.query(ctx, sql, args, row)
}
