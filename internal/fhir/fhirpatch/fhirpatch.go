// Package fhirpatch implements FHIRPath Patch (FHIR R4 fhirpatch.html): a
// Parameters resource whose "operation" parameters add, insert, delete,
// replace or move elements located by a FHIRPath expression.
//
// The FHIRPath accepted is the subset the specification's patch test cases
// use, plus filters: a path starts with the resource type and continues
// with .element steps, [n] indexes, .first(), .last() and
// .where(element = 'literal') (string, boolean or integer literal).
// Anything else is refused with ErrInvalid before the resource is touched.
//
// Guarantees: Parse and Apply never panic (fuzzed); Apply works on a copy
// and returns either the whole patched resource or an error, never a half
// patched one; messages name operations by number and elements by name,
// never echo values.
package fhirpatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/jsonpatch"
)

// Sentinel errors: ErrInvalid for a malformed patch document, ErrFailed for
// a well-formed patch that does not apply to this resource.
var (
	ErrInvalid = errors.New("invalid FHIRPath Patch")
	ErrFailed  = errors.New("FHIRPath Patch does not apply")
	// ErrTooCostly: more operations than allowed, or an operation that
	// would grow the resource past its limit.
	ErrTooCostly = errors.New("FHIRPath Patch too costly")
)

// The settings that configure the limits, named in the errors.
const (
	SettingOps        = "WARD_PATCH_MAX_OPS"
	SettingElements   = "WARD_PATCH_MAX_ELEMENTS"
	SettingArrayItems = "WARD_RESOURCE_MAX_ARRAY_ITEMS"
)

// Limits bound what a patch may do; a zero field is no bound.
type Limits struct {
	// Elements caps the JSON values (objects, arrays, primitives) of the
	// patched resource after each operation.
	Elements int
	// ArrayItems caps the items of a list an operation adds to.
	ArrayItems int
}

func tooCostly(i int, format string, args ...any) error {
	return fmt.Errorf("%w: operation %d: %s", ErrTooCostly, i+1, fmt.Sprintf(format, args...))
}

// Bounds on untrusted input.
const (
	maxOps     = 1000
	maxPathLen = 1000
	maxSteps   = 64
	maxDepth   = 32
)

// Op is one operation.
type Op struct {
	Type        string // add, insert, delete, replace, move
	Path        *Path
	Name        string // add
	Value       any    // add, insert, replace (nil: none given)
	Index       int    // insert
	Source      int    // move
	Destination int    // move
	valueParts  []any  // anonymous value, built once the target is known
}

func invalid(i int, format string, args ...any) error {
	return fmt.Errorf("%w: operation %d: %s", ErrInvalid, i+1, fmt.Sprintf(format, args...))
}

func failed(i int, format string, args ...any) error {
	return fmt.Errorf("%w: operation %d: %s", ErrFailed, i+1, fmt.Sprintf(format, args...))
}

// Parse reads a Parameters resource (decoded as fhir.Parse decodes it) of
// at most 1000 operations.
func Parse(doc map[string]any) ([]Op, error) { return ParseLimited(doc, maxOps) }

// ParseLimited is Parse with at most limit operations (0: 1000), counted
// before any is read.
func ParseLimited(doc map[string]any, limit int) ([]Op, error) {
	if limit <= 0 {
		limit = maxOps
	}
	if rt, _ := doc["resourceType"].(string); rt != "Parameters" {
		return nil, fmt.Errorf("%w: the body must be a Parameters resource", ErrInvalid)
	}
	raw, _ := doc["parameter"].([]any)
	if _, has := doc["parameter"]; has && raw == nil {
		return nil, fmt.Errorf("%w: Parameters.parameter must be an array", ErrInvalid)
	}
	if len(raw) > limit {
		return nil, fmt.Errorf("%w: the FHIRPath Patch has more than %d operations (%s)", ErrTooCostly, limit, SettingOps)
	}
	ops := make([]Op, 0, len(raw))
	for i, p := range raw {
		pm, ok := p.(map[string]any)
		if !ok {
			return nil, invalid(i, "a parameter must be an object")
		}
		if n, _ := pm["name"].(string); n != "operation" {
			return nil, invalid(i, `every parameter must be named "operation"`)
		}
		parts, _ := pm["part"].([]any)
		var op Op
		seen := map[string]bool{}
		for _, pt := range parts {
			m, ok := pt.(map[string]any)
			if !ok {
				return nil, invalid(i, "a part must be an object")
			}
			name, _ := m["name"].(string)
			if seen[name] {
				return nil, invalid(i, "part %s is given twice", safeName(name))
			}
			seen[name] = true
			switch name {
			case "type":
				op.Type, ok = m["valueCode"].(string)
				if !ok {
					return nil, invalid(i, "type must be a valueCode")
				}
			case "path":
				s, ok := m["valueString"].(string)
				if !ok {
					return nil, invalid(i, "path must be a valueString")
				}
				path, err := ParsePath(s)
				if err != nil {
					return nil, invalid(i, "path: %v", err)
				}
				op.Path = path
			case "name":
				if op.Name, ok = m["valueString"].(string); !ok || !fhir.IsElementName(op.Name) {
					return nil, invalid(i, "name must be a valueString holding an element name")
				}
			case "value":
				v, anon, err := partValue(m, 0)
				if err != nil {
					return nil, invalid(i, "value: %v", err)
				}
				op.Value, op.valueParts = v, anon
			case "index", "source", "destination":
				n, err := integer(m["valueInteger"])
				if err != nil {
					return nil, invalid(i, "%s must be a non-negative valueInteger", name)
				}
				switch name {
				case "index":
					op.Index = n
				case "source":
					op.Source = n
				default:
					op.Destination = n
				}
			default:
				return nil, invalid(i, "unknown part %s", safeName(name))
			}
		}
		need := map[string][]string{
			"add":     {"path", "name", "value"},
			"insert":  {"path", "index", "value"},
			"delete":  {"path"},
			"replace": {"path", "value"},
			"move":    {"path", "source", "destination"},
		}
		req, known := need[op.Type]
		if !known {
			return nil, invalid(i, "type must be add, insert, delete, replace or move")
		}
		for _, r := range req {
			if !seen[r] {
				return nil, invalid(i, "%s needs a %s part", op.Type, r)
			}
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func safeName(s string) string {
	if fhir.IsElementName(s) {
		return s
	}
	return "(unprintable)"
}

func integer(v any) (int, error) {
	var n int64
	var err error
	switch x := v.(type) {
	case json.Number:
		n, err = x.Int64()
	case float64:
		n = int64(x)
		if float64(n) != x {
			err = errors.New("not an integer")
		}
	default:
		err = errors.New("not a number")
	}
	if err != nil || n < 0 || n > 1<<31 {
		return 0, errors.New("not a non-negative integer")
	}
	return int(n), nil
}

// partValue returns a part's value[x], or its anonymous parts.
func partValue(m map[string]any, depth int) (any, []any, error) {
	if depth > maxDepth {
		return nil, nil, errors.New("nested too deeply")
	}
	var val any
	n := 0
	for k, v := range m {
		if strings.HasPrefix(k, "value") && len(k) > 5 {
			val = v
			n++
		}
	}
	parts, hasParts := m["part"].([]any)
	switch {
	case n == 1 && !hasParts:
		return val, nil, nil
	case n == 0 && hasParts && len(parts) > 0:
		return nil, parts, nil
	default:
		return nil, nil, errors.New("needs exactly one value[x], or parts")
	}
}

// anonymous builds an element from named parts, making repeating elements
// (per the R4 definitions of typ at path) arrays.
func anonymous(parts []any, typ string, path []string, depth int) (map[string]any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	out := map[string]any{}
	for _, p := range parts {
		m, ok := p.(map[string]any)
		if !ok {
			return nil, errors.New("a part must be an object")
		}
		name, _ := m["name"].(string)
		if !fhir.IsElementName(name) {
			return nil, errors.New("a part's name must be an element name")
		}
		v, sub, err := partValue(m, depth+1)
		if err != nil {
			return nil, err
		}
		sp := append(append([]string(nil), path...), name)
		if sub != nil {
			if v, err = anonymous(sub, typ, sp, depth+1); err != nil {
				return nil, err
			}
		}
		if list, _ := fhir.ElementIsList(typ, sp); list {
			arr, _ := out[name].([]any)
			out[name] = append(arr, v)
		} else if _, dup := out[name]; dup {
			return nil, errors.New("element " + name + " given twice but does not repeat")
		} else {
			out[name] = v
		}
	}
	return out, nil
}

// Apply applies ops to a copy of resource, in order, and returns the copy.
func Apply(resource map[string]any, ops []Op) (map[string]any, error) {
	return ApplyLimited(resource, ops, Limits{})
}

// ApplyLimited is Apply within lim: the resource's size is tracked as
// operations add and remove values, and an operation that would grow it
// past lim is refused before its value is copied in.
func ApplyLimited(resource map[string]any, ops []Op, lim Limits) (map[string]any, error) {
	typ, _ := resource["resourceType"].(string)
	doc := jsonpatch.DeepCopy(resource).(map[string]any)
	sz := &sizer{lim: lim, size: jsonpatch.CountValues(doc, -1)}
	for i := range ops {
		if err := apply(doc, typ, i, &ops[i], sz); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// sizer keeps the size of the document being patched within lim.
type sizer struct {
	lim  Limits
	size int
}

// grow admits an operation at index i that adds the value v (or the
// anonymous parts of one) and removes one of removed values, to a list
// that then has items values (0: not a list; 1: a list it creates, one
// more value).
func (z *sizer) grow(i int, v any, removed, items int) error {
	if z.lim.ArrayItems > 0 && items > z.lim.ArrayItems {
		return tooCostly(i, "a list would have more than %d items (%s)", z.lim.ArrayItems, SettingArrayItems)
	}
	if items == 1 {
		removed-- // the new list itself
	}
	budget := -1
	if z.lim.Elements > 0 {
		budget = max(z.lim.Elements-z.size+removed, 0)
	}
	n := jsonpatch.CountValues(v, budget)
	if budget >= 0 && n > budget {
		return tooCostly(i, "the patched resource would have more than %d elements (%s)", z.lim.Elements, SettingElements)
	}
	z.size += n - removed
	return nil
}

func (op *Op) sized() any {
	if op.valueParts != nil {
		return op.valueParts
	}
	return op.Value
}

func apply(doc map[string]any, typ string, i int, op *Op, sz *sizer) error {
	if op.Path == nil {
		return invalid(i, "no path")
	}
	if op.Path.Root != typ {
		return failed(i, "the path does not start with the resource type")
	}
	value := func(elemPath []string) (any, error) {
		if op.valueParts != nil {
			v, err := anonymous(op.valueParts, typ, elemPath, 0)
			if err != nil {
				return nil, invalid(i, "value: %v", err)
			}
			return v, nil
		}
		return jsonpatch.DeepCopy(op.Value), nil
	}
	switch op.Type {
	case "add":
		locs, err := op.Path.eval(doc)
		if err != nil {
			return failed(i, "%v", err)
		}
		if len(locs) != 1 {
			return failed(i, "add needs a path to exactly one element; it matches %d", len(locs))
		}
		parent, ok := locs[0].get().(map[string]any)
		if !ok {
			return failed(i, "add needs a path to an element that has children")
		}
		elem := append(op.Path.elements(), op.Name)
		list, known := fhir.ElementIsList(typ, elem)
		if !known {
			return failed(i, "%s has no element %s", strings.Join(op.Path.elements(), "."), op.Name)
		}
		items := 0
		if list {
			arr, _ := parent[op.Name].([]any)
			items = len(arr) + 1
		} else if _, exists := parent[op.Name]; exists {
			return failed(i, "add: element %s already has a value (use replace)", op.Name)
		}
		if err := sz.grow(i, op.sized(), 0, items); err != nil {
			return err
		}
		v, err := value(elem)
		if err != nil {
			return err
		}
		if list {
			arr, _ := parent[op.Name].([]any)
			parent[op.Name] = append(arr, v)
			return nil
		}
		parent[op.Name] = v
	case "insert", "move":
		parent, name, err := op.Path.list(doc)
		if err != nil {
			return failed(i, "%v", err)
		}
		arr, _ := parent[name].([]any)
		if _, has := parent[name]; has && arr == nil {
			return failed(i, "%s is not a list", name)
		}
		if op.Type == "insert" {
			if op.Index > len(arr) {
				return failed(i, "index %d is past the end of a list of %d", op.Index, len(arr))
			}
			if err := sz.grow(i, op.sized(), 0, len(arr)+1); err != nil {
				return err
			}
			v, err := value(op.Path.elements())
			if err != nil {
				return err
			}
			arr = append(arr[:op.Index], append([]any{v}, arr[op.Index:]...)...)
		} else {
			if op.Source >= len(arr) || op.Destination >= len(arr) {
				return failed(i, "source and destination must be within the list of %d", len(arr))
			}
			v := arr[op.Source]
			arr = append(arr[:op.Source], arr[op.Source+1:]...)
			arr = append(arr[:op.Destination], append([]any{v}, arr[op.Destination:]...)...)
		}
		parent[name] = arr
	case "delete":
		locs, err := op.Path.eval(doc)
		if err != nil {
			return failed(i, "%v", err)
		}
		switch len(locs) {
		case 0:
			return nil // deleting nothing is not an error
		case 1:
			if locs[0].parent == nil {
				return failed(i, "the resource itself cannot be deleted")
			}
			sz.size -= jsonpatch.CountValues(locs[0].get(), -1)
			locs[0].remove()
		default:
			return failed(i, "delete needs a path to at most one element; it matches %d", len(locs))
		}
	case "replace":
		locs, err := op.Path.eval(doc)
		if err != nil {
			return failed(i, "%v", err)
		}
		if len(locs) != 1 || locs[0].parent == nil {
			return failed(i, "replace needs a path to exactly one element; it matches %d", len(locs))
		}
		if err := sz.grow(i, op.sized(), jsonpatch.CountValues(locs[0].get(), -1), 0); err != nil {
			return err
		}
		v, err := value(op.Path.elements())
		if err != nil {
			return err
		}
		locs[0].set(v)
	}
	return nil
}

// loc is where an element sits: parent[key], or parent[key][idx].
type loc struct {
	parent map[string]any
	key    string
	idx    int // -1: not in a list
	root   map[string]any
}

func (l loc) get() any {
	if l.parent == nil {
		return l.root
	}
	if l.idx < 0 {
		return l.parent[l.key]
	}
	return l.parent[l.key].([]any)[l.idx]
}

func (l loc) set(v any) {
	if l.idx < 0 {
		l.parent[l.key] = v
		return
	}
	l.parent[l.key].([]any)[l.idx] = v
}

func (l loc) remove() {
	if l.idx < 0 {
		delete(l.parent, l.key)
		delete(l.parent, "_"+l.key) // a primitive's id and extensions go with it
		return
	}
	arr := l.parent[l.key].([]any)
	arr = append(arr[:l.idx:l.idx], arr[l.idx+1:]...)
	if len(arr) == 0 {
		delete(l.parent, l.key)
	} else {
		l.parent[l.key] = arr
	}
}

// Path is a parsed FHIRPath Patch path.
type Path struct {
	Root  string
	Steps []Step
}

// Step is one step after the root.
type Step struct {
	Kind  string // "child", "index", "first", "last", "where"
	Name  string // child: element; where: compared element
	Index int    // index
	Lit   any    // where: string, bool or int64
}

// ParsePath parses the supported FHIRPath subset.
func ParsePath(s string) (*Path, error) {
	if len(s) == 0 || len(s) > maxPathLen {
		return nil, errors.New("empty or too long")
	}
	p := &Path{}
	i := 0
	ident := func() string {
		j := i
		for i < len(s) && (s[i] == '_' || s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' && i > j) {
			i++
		}
		return s[j:i]
	}
	p.Root = ident()
	if !fhir.IsResourceType(p.Root) {
		return nil, errors.New("must start with a resource type")
	}
	for i < len(s) {
		if len(p.Steps) >= maxSteps {
			return nil, errors.New("too many steps")
		}
		switch s[i] {
		case '.':
			i++
			name := ident()
			if name == "" {
				return nil, fmt.Errorf("expected an element name at offset %d", i)
			}
			if i < len(s) && s[i] == '(' {
				switch name {
				case "first", "last":
					if !strings.HasPrefix(s[i:], "()") {
						return nil, fmt.Errorf("%s() takes no arguments", name)
					}
					i += 2
					p.Steps = append(p.Steps, Step{Kind: name})
				case "where":
					i++
					for i < len(s) && s[i] == ' ' {
						i++
					}
					field := ident()
					if field == "" {
						return nil, errors.New("where() needs element = literal")
					}
					for i < len(s) && s[i] == ' ' {
						i++
					}
					if i >= len(s) || s[i] != '=' {
						return nil, errors.New("where() supports only element = literal")
					}
					i++
					for i < len(s) && s[i] == ' ' {
						i++
					}
					lit, n, err := literal(s[i:])
					if err != nil {
						return nil, err
					}
					i += n
					for i < len(s) && s[i] == ' ' {
						i++
					}
					if i >= len(s) || s[i] != ')' {
						return nil, errors.New("where() is not closed")
					}
					i++
					p.Steps = append(p.Steps, Step{Kind: "where", Name: field, Lit: lit})
				default:
					return nil, fmt.Errorf("function %s() is not supported", safeName(name))
				}
				continue
			}
			p.Steps = append(p.Steps, Step{Kind: "child", Name: name})
		case '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, errors.New("[ is not closed")
			}
			n, err := strconv.Atoi(s[i+1 : i+j])
			if err != nil || n < 0 || n > 1<<20 {
				return nil, errors.New("an index must be a non-negative integer")
			}
			p.Steps = append(p.Steps, Step{Kind: "index", Index: n})
			i += j + 1
		default:
			return nil, fmt.Errorf("unexpected character at offset %d", i)
		}
	}
	return p, nil
}

func literal(s string) (any, int, error) {
	switch {
	case strings.HasPrefix(s, "'"):
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				if i+1 >= len(s) {
					return nil, 0, errors.New("unterminated string")
				}
				i++
				b.WriteByte(s[i])
			case '\'':
				return b.String(), i + 1, nil
			default:
				b.WriteByte(s[i])
			}
		}
		return nil, 0, errors.New("unterminated string")
	case strings.HasPrefix(s, "true"):
		return true, 4, nil
	case strings.HasPrefix(s, "false"):
		return false, 5, nil
	default:
		j := 0
		for j < len(s) && (s[j] >= '0' && s[j] <= '9' || j == 0 && s[j] == '-') {
			j++
		}
		n, err := strconv.ParseInt(s[:j], 10, 64)
		if err != nil {
			return nil, 0, errors.New("where() literal must be a 'string', true, false or an integer")
		}
		return n, j, nil
	}
}

// elements is the path's element names (indexes and filters dropped).
func (p *Path) elements() []string {
	var out []string
	for _, s := range p.Steps {
		if s.Kind == "child" {
			out = append(out, s.Name)
		}
	}
	return out
}

// eval returns the locations the path selects, in document order.
func (p *Path) eval(doc map[string]any) ([]loc, error) {
	cur := []loc{{root: doc, idx: -1}}
	for _, s := range p.Steps {
		var next []loc
		switch s.Kind {
		case "child":
			for _, l := range cur {
				m, ok := l.get().(map[string]any)
				if !ok {
					continue
				}
				switch v := m[s.Name].(type) {
				case nil:
				case []any:
					for j := range v {
						next = append(next, loc{parent: m, key: s.Name, idx: j})
					}
				default:
					next = append(next, loc{parent: m, key: s.Name, idx: -1})
				}
			}
		case "index":
			if s.Index < len(cur) {
				next = []loc{cur[s.Index]}
			}
		case "first":
			if len(cur) > 0 {
				next = cur[:1]
			}
		case "last":
			if len(cur) > 0 {
				next = cur[len(cur)-1:]
			}
		case "where":
			for _, l := range cur {
				m, ok := l.get().(map[string]any)
				if ok && equalLiteral(m[s.Name], s.Lit) {
					next = append(next, l)
				}
			}
		}
		cur = next
	}
	return cur, nil
}

func equalLiteral(v, lit any) bool {
	switch x := lit.(type) {
	case string:
		s, ok := v.(string)
		return ok && s == x
	case bool:
		b, ok := v.(bool)
		return ok && b == x
	case int64:
		switch n := v.(type) {
		case json.Number:
			m, err := n.Int64()
			return err == nil && m == x
		case float64:
			return n == float64(x)
		}
	}
	return false
}

// list resolves a path naming a repeating element (ending in .name) to
// its parent element and name, for insert and move.
func (p *Path) list(doc map[string]any) (map[string]any, string, error) {
	if len(p.Steps) == 0 || p.Steps[len(p.Steps)-1].Kind != "child" {
		return nil, "", errors.New("insert and move need a path ending in a repeating element's name")
	}
	last := p.Steps[len(p.Steps)-1].Name
	if list, known := fhir.ElementIsList(p.Root, p.elements()); !known || !list {
		return nil, "", fmt.Errorf("%s is not a repeating element", safeName(last))
	}
	prefix := &Path{Root: p.Root, Steps: p.Steps[:len(p.Steps)-1]}
	locs, err := prefix.eval(doc)
	if err != nil {
		return nil, "", err
	}
	if len(locs) != 1 {
		return nil, "", fmt.Errorf("the list's parent must be exactly one element; the path matches %d", len(locs))
	}
	m, ok := locs[0].get().(map[string]any)
	if !ok {
		return nil, "", errors.New("the list's parent is not an element with children")
	}
	return m, last, nil
}
