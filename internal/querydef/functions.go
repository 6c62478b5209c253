package querydef

import (
	"fmt"
	"strings"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// function is one row of the fixed table of functions a queryDef may call,
// as ACC names them (case-insensitive). The store writes each in its
// dialect's SQL; anything else is refused by name.
type function struct {
	name     string // as ACC writes it
	fn       store.Func
	min, max int     // number of arguments
	agg      bool    // an aggregate: <select>, <orderBy> and <having> only
	classes  []class // classes its argument may have; nil: any
	// result is the type of the value, from the argument's (nil without).
	result func(arg *field) *schemas.Type
}

var (
	longType     = schemas.TypeOf(schemas.TypeLong)
	datetimeType = schemas.TypeOf(schemas.TypeDatetime)
)

func same(arg *field) *schemas.Type { return arg.typ }

var functionTable = []*function{
	{name: "count", fn: store.FuncCount, min: 0, max: 1, agg: true, result: func(*field) *schemas.Type { return int64Type }},
	{name: "countDistinct", fn: store.FuncCountDistinct, min: 1, max: 1, agg: true, result: func(*field) *schemas.Type { return int64Type }},
	{name: "min", fn: store.FuncMin, min: 1, max: 1, agg: true, classes: []class{cNumber, cText, cTime}, result: same},
	{name: "max", fn: store.FuncMax, min: 1, max: 1, agg: true, classes: []class{cNumber, cText, cTime}, result: same},
	{name: "sum", fn: store.FuncSum, min: 1, max: 1, agg: true, classes: []class{cNumber}, result: func(arg *field) *schemas.Type {
		if arg.typ.Float() {
			return doubleType
		}
		return int64Type
	}},
	{name: "Lower", fn: store.FuncLower, min: 1, max: 1, classes: []class{cText}, result: func(*field) *schemas.Type { return textType }},
	{name: "Upper", fn: store.FuncUpper, min: 1, max: 1, classes: []class{cText}, result: func(*field) *schemas.Type { return textType }},
	{name: "Year", fn: store.FuncYear, min: 1, max: 1, classes: []class{cTime}, result: func(*field) *schemas.Type { return longType }},
	{name: "Month", fn: store.FuncMonth, min: 1, max: 1, classes: []class{cTime}, result: func(*field) *schemas.Type { return longType }},
	{name: "Day", fn: store.FuncDay, min: 1, max: 1, classes: []class{cTime}, result: func(*field) *schemas.Type { return longType }},
	{name: "GetDate", fn: store.FuncNow, min: 0, max: 0, result: func(*field) *schemas.Type { return datetimeType }},
}

var functions = func() map[string]*function {
	m := make(map[string]*function, len(functionTable))
	for _, f := range functionTable {
		m[strings.ToLower(f.name)] = f
	}
	return m
}()

// functionNames lists the table for a message.
func functionNames() string {
	names := make([]string, len(functionTable))
	for i, f := range functionTable {
		names[i] = f.name + "()"
	}
	return strings.Join(names, ", ")
}

// call checks fn's arguments and returns the value it computes.
func (c *compiler) call(fn *function, args []*field) (*field, error) {
	if len(args) < fn.min || len(args) > fn.max {
		switch {
		case fn.max == 0:
			return nil, fmt.Errorf("%s() takes no argument", fn.name)
		case fn.min == fn.max:
			return nil, fmt.Errorf("%s() takes one argument", fn.name)
		}
		return nil, fmt.Errorf("%s() takes at most one argument", fn.name)
	}
	out := &field{expr: fn.name + "()", class: cNumber}
	exprs := make([]store.Expr, len(args))
	var arg *field
	for i, a := range args {
		arg, exprs[i] = a, a.col
		if fn.agg && a.agg {
			return nil, fmt.Errorf("%s() cannot take an aggregate (%s)", fn.name, a.expr)
		}
		if fn.classes != nil && !classIn(a.class, fn.classes) {
			return nil, fmt.Errorf("%s() cannot take %s, which is %s", fn.name, a.expr, a.class)
		}
		out.agg = out.agg || a.agg
		out.columns = out.columns || a.columns
	}
	if fn.agg {
		if !c.aggOK {
			return nil, fmt.Errorf("%s() is an aggregate: it belongs in <select>, <orderBy> or <having>", fn.name)
		}
		out.agg = true
	}
	out.typ = fn.result(arg)
	out.class = out.typ.Class
	out.col = store.Call(fn.fn, exprs...)
	out.col.Type = out.typ
	return out, nil
}

func classIn(c class, set []class) bool {
	for _, s := range set {
		if s == c {
			return true
		}
	}
	return false
}
