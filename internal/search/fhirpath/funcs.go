package fhirpath

import (
	"fmt"
	"strings"
)

type fnKind uint8

const (
	fnWhere fnKind = iota + 1
	fnExists
	fnEmpty
	fnNot
	fnFirst
	fnLast
	fnTail
	fnCount
	fnResolve
	fnOfType
	fnAs
	fnIs
	fnExtension
	fnHasValue
)

type fnSpec struct {
	fn               fnKind
	minArgs, maxArgs int
	typeArg          bool // the argument is a type name, not an expression
}

var functions = map[string]fnSpec{
	"where":     {fn: fnWhere, minArgs: 1, maxArgs: 1},
	"exists":    {fn: fnExists, minArgs: 0, maxArgs: 1},
	"empty":     {fn: fnEmpty},
	"not":       {fn: fnNot},
	"first":     {fn: fnFirst},
	"last":      {fn: fnLast},
	"tail":      {fn: fnTail},
	"count":     {fn: fnCount},
	"resolve":   {fn: fnResolve},
	"hasValue":  {fn: fnHasValue},
	"ofType":    {fn: fnOfType, typeArg: true},
	"as":        {fn: fnAs, typeArg: true},
	"is":        {fn: fnIs, typeArg: true},
	"extension": {fn: fnExtension, minArgs: 1, maxArgs: 1},
}

// callNode is a function invoked on its input collection.
type callNode struct {
	fn   fnKind
	name string
	args []node
	typ  typeSpec // ofType, as, is
	url  string   // extension
}

func (c *callNode) eval(ev *evaluator, in span) (span, error) {
	mark := len(ev.buf)
	switch c.fn {
	case fnWhere:
		for i := in.lo; i < in.hi; i++ {
			ok, err := ev.criterion(c.args[0], i, "where() criterion")
			if err != nil {
				return ev.from(mark), err
			}
			if ok {
				ev.buf = append(ev.buf, ev.buf[i])
			}
		}
		return ev.from(mark), nil
	case fnExists:
		if len(c.args) == 0 {
			return ev.setBool(mark, in.len() > 0), nil
		}
		for i := in.lo; i < in.hi; i++ {
			ok, err := ev.criterion(c.args[0], i, "exists() criterion")
			if err != nil {
				return ev.from(mark), err
			}
			if ok {
				return ev.setBool(mark, true), nil
			}
		}
		return ev.setBool(mark, false), nil
	case fnEmpty:
		return ev.setBool(mark, in.len() == 0), nil
	case fnNot:
		t, err := ev.truth(in, "not()")
		if err != nil || t == unknown {
			return ev.setEmpty(mark), err
		}
		return ev.setBool(mark, t == isFalse), nil
	case fnFirst:
		if in.len() > 0 {
			ev.buf = append(ev.buf, ev.buf[in.lo])
		}
		return ev.from(mark), nil
	case fnLast:
		if in.len() > 0 {
			ev.buf = append(ev.buf, ev.buf[in.hi-1])
		}
		return ev.from(mark), nil
	case fnTail:
		for i := in.lo + 1; i < in.hi; i++ {
			ev.buf = append(ev.buf, ev.buf[i])
		}
		return ev.from(mark), nil
	case fnCount:
		ev.buf = append(ev.buf, numberValue(smallInt(in.len())))
		return ev.from(mark), nil
	case fnHasValue:
		if in.len() != 1 {
			return ev.setBool(mark, false), nil
		}
		switch ev.buf[in.lo].Node.(type) {
		case map[string]any, nil:
			return ev.setBool(mark, false), nil
		}
		return ev.setBool(mark, true), nil
	case fnResolve:
		for i := in.lo; i < in.hi; i++ {
			if v, ok := ev.resolve(ev.buf[i]); ok {
				ev.buf = append(ev.buf, v)
			}
		}
		return ev.from(mark), nil
	case fnOfType, fnAs:
		for i := in.lo; i < in.hi; i++ {
			if c.typ.matches(ev.buf[i]) {
				ev.buf = append(ev.buf, ev.buf[i])
			}
		}
		return ev.from(mark), nil
	case fnIs:
		switch in.len() {
		case 0:
			return ev.from(mark), nil
		case 1:
			return ev.setBool(mark, c.typ.matches(ev.buf[in.lo])), nil
		}
		return ev.from(mark), &EvalError{Msg: fmt.Sprintf("is(): input has %d items, want at most 1", in.len())}
	case fnExtension:
		for i := in.lo; i < in.hi; i++ {
			m, ok := ev.buf[i].Node.(map[string]any)
			if !ok {
				continue
			}
			exts, _ := m["extension"].([]any)
			for _, e := range exts {
				if em, ok := e.(map[string]any); ok && em["url"] == c.url {
					ev.buf = append(ev.buf, Value{Node: em, Type: "Extension"})
				}
			}
		}
		return ev.from(mark), nil
	}
	return ev.from(mark), &EvalError{Msg: "internal: unknown function " + c.name}
}

// criterion evaluates a where() or exists() criterion with buf[i] as $this
// and reports whether it is true; the criterion's storage is released.
func (ev *evaluator) criterion(crit node, i int, what string) (bool, error) {
	mark := len(ev.buf)
	ev.buf = append(ev.buf, ev.buf[i])
	r, err := crit.eval(ev, span{mark, mark + 1})
	if err != nil {
		return false, err
	}
	t, err := ev.truth(r, what)
	ev.setEmpty(mark)
	return t == isTrue, err
}

var smallInts = func() []string {
	s := make([]string, 256)
	for i := range s {
		s[i] = fmt.Sprint(i)
	}
	return s
}()

func smallInt(n int) string {
	if n < len(smallInts) {
		return smallInts[n]
	}
	return fmt.Sprint(n)
}

// resolve decides the target of a Reference (or a reference string) without
// I/O: a contained reference (#id) yields the contained resource; any other
// reference yields a Value with a nil Node and the target's type, read from
// the reference (Patient/1, https://x/fhir/Patient/1/_history/2,
// Patient?identifier=...) or else from Reference.type. A reference whose
// type cannot be read (urn:uuid:..., a bare id) resolves to nothing.
func (ev *evaluator) resolve(v Value) (Value, bool) {
	var ref, typ string
	switch n := v.Node.(type) {
	case string:
		ref = n
	case map[string]any:
		ref, _ = n["reference"].(string)
		typ, _ = n["type"].(string)
	default:
		return Value{}, false
	}
	if strings.HasPrefix(ref, "#") {
		return ev.contained(ref[1:])
	}
	if t := refType(ref); t != "" {
		return Value{Type: t}, true
	}
	if typ != "" {
		// Reference.type is a type name or, as R4 allows, its
		// StructureDefinition URL.
		typ = typ[strings.LastIndexByte(typ, '/')+1:]
		if isTypeName(typ) {
			return Value{Type: typ}, true
		}
	}
	return Value{}, false
}

// contained looks up a contained resource of %resource by id; "" is the
// container itself.
func (ev *evaluator) contained(id string) (Value, bool) {
	if ev.resource == nil {
		return Value{}, false
	}
	if id == "" {
		rt, _ := ev.resource["resourceType"].(string)
		return Value{Node: ev.resource, Type: rt}, rt != ""
	}
	list, _ := ev.resource["contained"].([]any)
	for _, c := range list {
		m, ok := c.(map[string]any)
		if !ok || m["id"] != id {
			continue
		}
		rt, _ := m["resourceType"].(string)
		if rt == "" {
			return Value{}, false
		}
		return Value{Node: m, Type: rt}, true
	}
	return Value{}, false
}

// refType returns the resource type a literal reference names: the segment
// before the id in Type/id, [base]/Type/id and [base]/Type/id/_history/v, or
// the part before ? in a conditional reference Type?query.
func refType(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "urn:") {
		return ""
	}
	if q := strings.IndexByte(ref, '?'); q >= 0 {
		if t := ref[:q]; isTypeName(t) {
			return t
		}
		return ""
	}
	if h := strings.Index(ref, "/_history/"); h >= 0 {
		ref = ref[:h]
	}
	slash := strings.LastIndexByte(ref, '/')
	if slash <= 0 || slash == len(ref)-1 {
		return ""
	}
	head := ref[:slash]
	t := head[strings.LastIndexByte(head, '/')+1:]
	if isTypeName(t) {
		return t
	}
	return ""
}

// isTypeName reports whether s looks like a resource type name: an upper
// case ASCII letter followed by letters.
func isTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
