package fhirpath

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// Value is one item of a FHIRPath result.
type Value struct {
	// Node is the JSON value as decoded with json.Decoder.UseNumber:
	// map[string]any, string, json.Number or bool. It is nil only for the
	// target of a resolve() that could not be looked up (see the package
	// documentation). Arrays are never values: their elements are.
	Node any
	// Type is the FHIR type name when the evaluator knows it: from a
	// choice-type key (valueQuantity gives "Quantity", effectiveDateTime
	// "dateTime"), the resourceType of the root resource, or the target
	// type of resolve(). It is "" otherwise.
	Type string
}

// Expr is a compiled expression. It is immutable and safe for concurrent use.
type Expr struct {
	src  string
	root node
}

// String returns the source text of the expression.
func (e *Expr) String() string { return e.src }

// EvalError reports a failure while evaluating a valid expression on a
// resource, such as a multi-item collection where the language requires a
// single item. Its message names operators and counts, never values read
// from the resource.
type EvalError struct {
	Msg string
}

func (e *EvalError) Error() string { return "fhirpath: " + e.Msg }

// Eval evaluates the expression with the resource as both the input
// collection and %resource. It returns a new slice; see AppendEval to reuse
// one.
func (e *Expr) Eval(resource map[string]any) ([]Value, error) {
	return e.AppendEval(nil, resource)
}

// AppendEval is Eval appending the result to dst. In a loop that reuses dst,
// evaluation allocates nothing for the expressions search parameters use.
func (e *Expr) AppendEval(dst []Value, resource map[string]any) ([]Value, error) {
	rt, _ := resource["resourceType"].(string)
	return e.AppendEvalAt(dst, resource, Value{Node: resource, Type: rt})
}

// EvalAt evaluates the expression with focus as the input collection (and
// %context) and resource as %resource, as composite search parameter
// components are: relative to each value of the composite's expression.
func (e *Expr) EvalAt(resource map[string]any, focus Value) ([]Value, error) {
	return e.AppendEvalAt(nil, resource, focus)
}

// AppendEvalAt is EvalAt appending the result to dst.
func (e *Expr) AppendEvalAt(dst []Value, resource map[string]any, focus Value) ([]Value, error) {
	ev := evalPool.Get().(*evaluator)
	ev.resource = resource
	ev.buf = append(ev.buf[:0], focus)
	ev.context = focus
	out, err := e.root.eval(ev, span{0, 1})
	if err == nil {
		dst = append(dst, ev.buf[out.lo:out.hi]...)
	}
	ev.release()
	return dst, err
}

var evalPool = sync.Pool{New: func() any { return &evaluator{buf: make([]Value, 0, 64)} }}

// evaluator holds the working storage of one evaluation. All intermediate
// collections live in buf: a node appends its result at the end of buf and
// leaves nothing else behind, so a collection is a span of buf and nested
// evaluation needs no allocation once buf has grown.
type evaluator struct {
	buf      []Value
	resource map[string]any
	context  Value
}

func (ev *evaluator) release() {
	clear(ev.buf) // drop references to the resource
	ev.buf = ev.buf[:0]
	ev.resource = nil
	ev.context = Value{}
	if cap(ev.buf) <= 1<<14 {
		evalPool.Put(ev)
	}
}

type span struct{ lo, hi int }

func (s span) len() int { return s.hi - s.lo }

// from returns the span from mark to the end of buf.
func (ev *evaluator) from(mark int) span { return span{mark, len(ev.buf)} }

// keep moves the collection s down to mark and drops everything after it.
func (ev *evaluator) keep(mark int, s span) span {
	n := s.len()
	if s.lo != mark {
		copy(ev.buf[mark:], ev.buf[s.lo:s.hi])
	}
	clear(ev.buf[mark+n:])
	ev.buf = ev.buf[:mark+n]
	return ev.from(mark)
}

// node is a compiled expression. eval reads its input collection in (a span
// below the end of buf), appends its result to buf and returns its span; it
// leaves nothing else appended.
type node interface {
	eval(ev *evaluator, in span) (span, error)
}

// ---- terms ----

type literalNode struct {
	v     Value
	empty bool // {}
}

func (n *literalNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	if !n.empty {
		ev.buf = append(ev.buf, n.v)
	}
	return ev.from(mark), nil
}

func numberValue(text string) Value { return Value{Node: json.Number(text)} }

type thisNode struct{}

func (thisNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	ev.buf = append(ev.buf, ev.buf[in.lo:in.hi]...)
	return ev.from(mark), nil
}

// envNode is %resource (and %rootResource) or %context.
type envNode struct{ resource bool }

func (n envNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	if n.resource {
		if ev.resource != nil {
			rt, _ := ev.resource["resourceType"].(string)
			ev.buf = append(ev.buf, Value{Node: ev.resource, Type: rt})
		}
	} else {
		ev.buf = append(ev.buf, ev.context)
	}
	return ev.from(mark), nil
}

// chainNode evaluates step on the result of x (x.step).
type chainNode struct{ x, step node }

func chain(x, step node) node { return &chainNode{x: x, step: step} }

func (n *chainNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	x, err := n.x.eval(ev, in)
	if err != nil {
		return x, err
	}
	s, err := n.step.eval(ev, x)
	if err != nil {
		return s, err
	}
	return ev.keep(mark, s), nil
}

// memberNode navigates to the child elements called name of every input
// item. Arrays are flattened. For an R4 choice element (value[x]) it also
// finds the typed keys (valueQuantity, ...) and records the type.
type memberNode struct {
	name   string
	choice bool // name is an R4 choice element
	// typed is set when the member is filtered by a choice type at compile
	// time (value as Quantity): key is the JSON key to read and typ the type.
	typed    bool
	key, typ string
}

func newMember(name string) *memberNode {
	return &memberNode{name: name, choice: choiceNames[name]}
}

func (n *memberNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	for i := in.lo; i < in.hi; i++ {
		m, ok := ev.buf[i].Node.(map[string]any)
		if !ok {
			continue
		}
		if n.typed {
			if v, ok := m[n.key]; ok {
				ev.appendChildren(v, n.typ)
			}
			continue
		}
		if v, ok := m[n.name]; ok {
			ev.appendChildren(v, "")
			continue
		}
		if n.choice {
			for k, v := range m {
				if len(k) > len(n.name) && strings.HasPrefix(k, n.name) {
					if t, ok := choiceTypes[k[len(n.name):]]; ok {
						ev.appendChildren(v, t)
					}
				}
			}
		}
	}
	return ev.from(mark), nil
}

// appendChildren appends v, or the elements of v if it is an array, leaving
// out JSON nulls (which FHIR uses only as placeholders in primitive arrays).
func (ev *evaluator) appendChildren(v any, typ string) {
	switch v := v.(type) {
	case nil:
	case []any:
		for _, e := range v {
			if e != nil {
				if _, nested := e.([]any); nested {
					continue // not FHIR JSON
				}
				ev.buf = append(ev.buf, Value{Node: e, Type: typ})
			}
		}
	default:
		ev.buf = append(ev.buf, Value{Node: v, Type: typ})
	}
}

// typeOrMemberNode is an upper-case name at the start of a path: the type of
// the input (Patient.name on a Patient, Resource.id on any resource), or a
// member of that name otherwise.
type typeOrMemberNode struct {
	name string
	m    *memberNode
}

func (n *typeOrMemberNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	for i := in.lo; i < in.hi; i++ {
		v := ev.buf[i]
		rt := resourceType(v)
		if rt == "" {
			continue
		}
		if rt == n.name || n.name == "Resource" || n.name == "DomainResource" && isDomainResource(rt) {
			ev.buf = append(ev.buf, v)
		}
	}
	if len(ev.buf) > mark {
		return ev.from(mark), nil
	}
	return n.m.eval(ev, in)
}

func isDomainResource(rt string) bool {
	return rt != "Bundle" && rt != "Binary" && rt != "Parameters"
}

// resourceType returns the resource type of v if v is a resource.
func resourceType(v Value) string {
	m, ok := v.Node.(map[string]any)
	if !ok {
		return ""
	}
	rt, _ := m["resourceType"].(string)
	return rt
}

type indexNode struct {
	x node
	i int
}

func (n *indexNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	x, err := n.x.eval(ev, in)
	if err != nil {
		return x, err
	}
	if n.i >= x.len() {
		return ev.keep(mark, span{x.lo, x.lo}), nil
	}
	return ev.keep(mark, span{x.lo + n.i, x.lo + n.i + 1}), nil
}

// ---- operators ----

type unionNode struct{ l, r node }

// eval appends the items of l and then those of r, dropping duplicates
// (items equal by FHIRPath equality), as | does.
func (n *unionNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	l, err := n.l.eval(ev, in)
	if err != nil {
		return l, err
	}
	r, err := n.r.eval(ev, in)
	if err != nil {
		return r, err
	}
	// Compact l, then append from r the items not seen so far. The output
	// region never overtakes r: it starts at mark and grows by at most one
	// per item read.
	out := mark
	for i := l.lo; i < l.hi; i++ {
		if !ev.contains(mark, out, ev.buf[i]) {
			ev.buf[out] = ev.buf[i]
			out++
		}
	}
	for i := r.lo; i < r.hi; i++ {
		if !ev.contains(mark, out, ev.buf[i]) {
			ev.buf[out] = ev.buf[i]
			out++
		}
	}
	clear(ev.buf[out:])
	ev.buf = ev.buf[:out]
	return ev.from(mark), nil
}

func (ev *evaluator) contains(lo, hi int, v Value) bool {
	for i := lo; i < hi; i++ {
		if w := ev.buf[i]; equal(w.Node, v.Node) && (v.Node != nil || w.Type == v.Type) {
			return true
		}
	}
	return false
}

type eqNode struct {
	l, r node
	neg  bool
}

// eval implements = and !=: empty if either side is empty, else whether
// both collections have the same items in the same order.
func (n *eqNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	l, err := n.l.eval(ev, in)
	if err != nil {
		return l, err
	}
	r, err := n.r.eval(ev, in)
	if err != nil {
		return r, err
	}
	if l.len() == 0 || r.len() == 0 {
		return ev.keep(mark, span{mark, mark}), nil
	}
	eq := l.len() == r.len()
	for i := 0; eq && i < l.len(); i++ {
		eq = equal(ev.buf[l.lo+i].Node, ev.buf[r.lo+i].Node)
	}
	return ev.setBool(mark, eq != n.neg), nil
}

// setBool replaces everything from mark with the single boolean b.
func (ev *evaluator) setBool(mark int, b bool) span {
	clear(ev.buf[mark:])
	v := falseValue
	if b {
		v = trueValue
	}
	ev.buf = append(ev.buf[:mark], v)
	return ev.from(mark)
}

// Boxing a bool variable into an interface allocates; these do not.
var trueValue, falseValue = Value{Node: true}, Value{Node: false}

func (ev *evaluator) setEmpty(mark int) span {
	clear(ev.buf[mark:])
	ev.buf = ev.buf[:mark]
	return ev.from(mark)
}

// logicNode is and, or, xor and implies with FHIRPath's three-valued logic;
// an empty operand is unknown.
type logicNode struct {
	op   string
	l, r node
}

const (
	unknown = iota
	isFalse
	isTrue
)

func (n *logicNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	l, err := n.l.eval(ev, in)
	if err != nil {
		return l, err
	}
	a, err := ev.truth(l, n.op)
	if err != nil {
		return l, err
	}
	r, err := n.r.eval(ev, in)
	if err != nil {
		return r, err
	}
	b, err := ev.truth(r, n.op)
	if err != nil {
		return r, err
	}
	res := unknown
	switch n.op {
	case "and":
		switch {
		case a == isFalse || b == isFalse:
			res = isFalse
		case a == isTrue && b == isTrue:
			res = isTrue
		}
	case "or":
		switch {
		case a == isTrue || b == isTrue:
			res = isTrue
		case a == isFalse && b == isFalse:
			res = isFalse
		}
	case "xor":
		if a != unknown && b != unknown {
			res = isFalse
			if a != b {
				res = isTrue
			}
		}
	case "implies":
		switch {
		case a == isFalse || b == isTrue:
			res = isTrue
		case a == isTrue:
			res = b
		}
	}
	if res == unknown {
		return ev.setEmpty(mark), nil
	}
	return ev.setBool(mark, res == isTrue), nil
}

// truth converts a collection to a boolean as FHIRPath's singleton
// evaluation does: empty is unknown, one boolean is itself, one other item
// is true, more than one item is an error.
func (ev *evaluator) truth(s span, op string) (int, error) {
	switch s.len() {
	case 0:
		return unknown, nil
	case 1:
		if b, ok := ev.buf[s.lo].Node.(bool); ok && !b {
			return isFalse, nil
		}
		return isTrue, nil
	}
	return unknown, &EvalError{Msg: fmt.Sprintf("%s: operand has %d items, want at most 1", op, s.len())}
}

// ---- types ----

// typeSpec is a type name as written (FHIR.Quantity, System.String, dateTime).
type typeSpec struct {
	ns   string // "FHIR", "System" or ""
	name string
	// choiceKey is the JSON key suffix for a choice data type ("Quantity",
	// "DateTime"), or "" when name is not one of the R4 choice types.
	choiceKey string
	choiceTyp string // the FHIR type name for choiceKey
}

func newTypeSpec(ns, name string) typeSpec {
	ts := typeSpec{ns: ns, name: name}
	if ns != "System" && name != "" {
		key := strings.ToUpper(name[:1]) + name[1:]
		if t, ok := choiceTypes[key]; ok {
			ts.choiceKey, ts.choiceTyp = key, t
		}
	}
	return ts
}

// matches reports whether v is of the type. A value's type is known from a
// choice key, a resourceType or resolve(); otherwise strings, booleans and
// numbers match the matching primitive and System types and an untyped
// object matches nothing. The first letter is compared case-insensitively,
// so dateTime and System.DateTime both match a valueDateTime.
func (ts typeSpec) matches(v Value) bool {
	t := v.Type
	if t == "" {
		t = resourceType(v)
	}
	if t != "" {
		if ts.name == "Resource" || ts.name == "DomainResource" {
			return ts.ns != "System" && isResourceName(t) && (ts.name == "Resource" || isDomainResource(t))
		}
		return sameType(t, ts.name)
	}
	switch v.Node.(type) {
	case string:
		return sameType(ts.name, "string")
	case bool:
		return sameType(ts.name, "boolean")
	case json.Number:
		return sameType(ts.name, "decimal") || sameType(ts.name, "integer")
	}
	return false
}

// isResourceName reports whether t looks like a resource type rather than
// a data type: resource types are not choice data types.
func isResourceName(t string) bool {
	_, dataType := choiceTypes[strings.ToUpper(t[:1])+t[1:]]
	return !dataType && t[0] >= 'A' && t[0] <= 'Z'
}

func sameType(a, b string) bool {
	if len(a) != len(b) || len(a) == 0 {
		return false
	}
	return a[1:] == b[1:] && (a[0] == b[0] || a[0]^0x20 == b[0] && (a[0]|0x20) >= 'a' && (a[0]|0x20) <= 'z')
}

// typeOpNode is the is and as operators.
type typeOpNode struct {
	x  node
	as bool
	ts typeSpec
}

// newTypeOp builds x is T or x as T. For x.name as T where T is a choice
// type, it reads the key nameT directly instead of filtering x.name.
func newTypeOp(x node, op string, ts typeSpec) node {
	if op == "as" {
		if t := typedMember(x, ts); t != nil {
			return t
		}
	}
	return &typeOpNode{x: x, as: op == "as", ts: ts}
}

// typedMember rewrites a path ending in a choice member into a direct read
// of the typed key, or returns nil when x is not such a path.
func typedMember(x node, ts typeSpec) node {
	if ts.choiceKey == "" {
		return nil
	}
	switch x := x.(type) {
	case *memberNode:
		if x.choice && !x.typed {
			return &memberNode{name: x.name, typed: true, key: x.name + ts.choiceKey, typ: ts.choiceTyp}
		}
	case *chainNode:
		if s := typedMember(x.step, ts); s != nil {
			return &chainNode{x: x.x, step: s}
		}
	}
	return nil
}

func (n *typeOpNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	x, err := n.x.eval(ev, in)
	if err != nil {
		return x, err
	}
	if n.as {
		return ev.filterType(mark, x, n.ts), nil
	}
	switch x.len() {
	case 0:
		return ev.setEmpty(mark), nil
	case 1:
		return ev.setBool(mark, n.ts.matches(ev.buf[x.lo])), nil
	}
	return x, &EvalError{Msg: fmt.Sprintf("is: operand has %d items, want at most 1", x.len())}
}

// filterType keeps the items of x that are of type ts, moved down to mark.
func (ev *evaluator) filterType(mark int, x span, ts typeSpec) span {
	out := mark
	for i := x.lo; i < x.hi; i++ {
		if ts.matches(ev.buf[i]) {
			ev.buf[out] = ev.buf[i]
			out++
		}
	}
	clear(ev.buf[out:])
	ev.buf = ev.buf[:out]
	return ev.from(mark)
}

// ---- equality ----

// equal is FHIRPath equality of two items: primitives by value (numbers
// numerically), objects by their elements.
func equal(a, b any) bool {
	switch a := a.(type) {
	case string:
		b, ok := b.(string)
		return ok && a == b
	case bool:
		b, ok := b.(bool)
		return ok && a == b
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		if a == b {
			return true
		}
		x, err1 := strconv.ParseFloat(string(a), 64)
		y, err2 := strconv.ParseFloat(string(b), 64)
		return err1 == nil && err2 == nil && x == y
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		if reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer() {
			return true
		}
		for k, av := range a {
			bv, ok := b[k]
			if !ok || !equal(av, bv) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equal(a[i], b[i]) {
				return false
			}
		}
		return true
	case nil:
		return b == nil
	}
	return false
}
