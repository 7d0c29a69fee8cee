// Package jsonpatch applies JSON Patch documents (RFC 6902) to decoded JSON
// (map[string]any / []any / json.Number / string / bool / nil, as
// fhir.Parse produces).
//
// Guarantees: Apply is all or nothing — it works on a deep copy and returns
// the patched copy only if every operation succeeded; the input is never
// modified. Error messages name the operation index, its op and its path,
// never a value (values may be PHI).
package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Op is one operation.
type Op struct {
	Op    string
	Path  string
	From  string
	Value any
	// hasValue distinguishes "value": null from a missing value.
	hasValue bool
}

// Errors. A *Error wraps one of them.
var (
	// ErrInvalid: the patch document is malformed (not an array, unknown
	// op, missing member, bad pointer).
	ErrInvalid = errors.New("invalid JSON Patch document")
	// ErrFailed: a well-formed operation cannot be applied (path missing,
	// index out of range, test not equal).
	ErrFailed = errors.New("JSON Patch operation failed")
	// ErrTooCostly: the document has more operations than allowed, or an
	// operation would grow the patched document past its limit.
	ErrTooCostly = errors.New("JSON Patch too costly")
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
	// patched document after each operation.
	Elements int
	// ArrayItems caps the items of an array an operation adds to.
	ArrayItems int
}

// Error locates a failure in the patch document.
type Error struct {
	Kind  error
	Index int // operation index, -1 for the document as a whole
	Msg   string
}

func (e *Error) Error() string {
	if e.Index < 0 {
		return e.Msg
	}
	return fmt.Sprintf("operation %d: %s", e.Index, e.Msg)
}

func (e *Error) Unwrap() error { return e.Kind }

// MaxOps bounds the operations of one document when Parse is given no
// smaller bound.
const MaxOps = 10000

// Parse reads a patch document of at most MaxOps operations.
func Parse(doc []byte) ([]Op, error) { return ParseLimited(doc, MaxOps) }

// ParseLimited reads a patch document of at most maxOps operations
// (0: MaxOps). The operations are counted before any of them is decoded.
func ParseLimited(doc []byte, maxOps int) ([]Op, error) {
	if maxOps <= 0 {
		maxOps = MaxOps
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var elems []json.RawMessage
	if err := dec.Decode(&elems); err != nil {
		return nil, &Error{Kind: ErrInvalid, Index: -1, Msg: "a JSON Patch document must be a JSON array of operation objects"}
	}
	if dec.More() {
		return nil, &Error{Kind: ErrInvalid, Index: -1, Msg: "trailing data after the JSON Patch array"}
	}
	if len(elems) > maxOps {
		return nil, &Error{Kind: ErrTooCostly, Index: -1, Msg: fmt.Sprintf("the JSON Patch has more than %d operations (%s)", maxOps, SettingOps)}
	}
	raw := make([]map[string]json.RawMessage, len(elems))
	for i, e := range elems {
		if err := json.Unmarshal(e, &raw[i]); err != nil || raw[i] == nil {
			return nil, &Error{Kind: ErrInvalid, Index: -1, Msg: "a JSON Patch document must be a JSON array of operation objects"}
		}
	}
	ops := make([]Op, 0, len(raw))
	for i, m := range raw {
		str := func(name string) (string, bool, error) {
			v, ok := m[name]
			if !ok {
				return "", false, nil
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return "", true, &Error{Kind: ErrInvalid, Index: i, Msg: fmt.Sprintf("%q must be a string", name)}
			}
			return s, true, nil
		}
		var op Op
		var ok bool
		var err error
		if op.Op, ok, err = str("op"); err != nil {
			return nil, err
		} else if !ok {
			return nil, &Error{Kind: ErrInvalid, Index: i, Msg: `missing "op"`}
		}
		if op.Path, ok, err = str("path"); err != nil {
			return nil, err
		} else if !ok {
			return nil, &Error{Kind: ErrInvalid, Index: i, Msg: `missing "path"`}
		}
		if _, err := splitPointer(op.Path); err != nil {
			return nil, &Error{Kind: ErrInvalid, Index: i, Msg: "path: " + err.Error()}
		}
		switch op.Op {
		case "add", "replace", "test":
			v, has := m["value"]
			if !has {
				return nil, &Error{Kind: ErrInvalid, Index: i, Msg: fmt.Sprintf(`%s needs "value"`, op.Op)}
			}
			d := json.NewDecoder(bytes.NewReader(v))
			d.UseNumber()
			if err := d.Decode(&op.Value); err != nil {
				return nil, &Error{Kind: ErrInvalid, Index: i, Msg: `"value" is not valid JSON`}
			}
			op.hasValue = true
		case "move", "copy":
			if op.From, ok, err = str("from"); err != nil {
				return nil, err
			} else if !ok {
				return nil, &Error{Kind: ErrInvalid, Index: i, Msg: fmt.Sprintf(`%s needs "from"`, op.Op)}
			}
			if _, err := splitPointer(op.From); err != nil {
				return nil, &Error{Kind: ErrInvalid, Index: i, Msg: "from: " + err.Error()}
			}
		case "remove":
		default:
			return nil, &Error{Kind: ErrInvalid, Index: i, Msg: "unknown op (add, remove, replace, move, copy, test)"}
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// splitPointer parses a JSON Pointer (RFC 6901).
func splitPointer(p string) ([]string, error) {
	if p == "" {
		return nil, nil
	}
	if p[0] != '/' {
		return nil, errors.New("a JSON Pointer starts with '/'")
	}
	parts := strings.Split(p[1:], "/")
	for i, s := range parts {
		if strings.Contains(s, "~") {
			for j := 0; j < len(s); j++ {
				if s[j] == '~' && (j+1 == len(s) || s[j+1] != '0' && s[j+1] != '1') {
					return nil, errors.New("'~' must be followed by 0 or 1")
				}
			}
			s = strings.ReplaceAll(s, "~1", "/")
			s = strings.ReplaceAll(s, "~0", "~")
		}
		parts[i] = s
	}
	return parts, nil
}

// Apply returns a patched deep copy of doc.
func Apply(doc any, ops []Op) (any, error) { return ApplyLimited(doc, ops, Limits{}) }

// ApplyLimited is Apply within lim. The document's size is tracked as
// operations add and remove values, and a value is measured (counting,
// without copying, up to what the limit still allows) before it is
// copied in, so an operation that would grow the document past the
// limit is refused before it allocates: a chain of copies that doubles
// the document costs at most the limit, not 2^n.
func ApplyLimited(doc any, ops []Op, lim Limits) (any, error) {
	out := DeepCopy(doc)
	size := CountValues(out, -1)
	for i, op := range ops {
		var err error
		out, err = applySized(out, op, lim, &size)
		if err != nil {
			kind := ErrFailed
			var le *limitError
			if errors.As(err, &le) {
				kind = ErrTooCostly
			}
			return nil, &Error{Kind: kind, Index: i, Msg: fmt.Sprintf("%s at %s: %v", op.Op, printable(op.Path), err)}
		}
	}
	return out, nil
}

// limitError is an operation refused by a limit.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

// CountValues is the number of JSON values (objects, arrays, primitives)
// in v; counting stops once it exceeds max (max < 0: no bound), so a huge
// value costs no more than the bound to measure. FHIRPath Patch shares it.
func CountValues(v any, max int) int {
	n := 0
	var walk func(v any) bool
	walk = func(v any) bool {
		n++
		if max >= 0 && n > max {
			return false
		}
		switch c := v.(type) {
		case map[string]any:
			for _, x := range c {
				if !walk(x) {
					return false
				}
			}
		case []any:
			for _, x := range c {
				if !walk(x) {
					return false
				}
			}
		}
		return true
	}
	walk(v)
	return n
}

// applySized applies op, keeping *size (the values of doc) and refusing
// an operation that would make it exceed lim.
func applySized(doc any, op Op, lim Limits, size *int) (any, error) {
	path, _ := splitPointer(op.Path)
	var added any // the value op puts at path (nil: none)
	switch op.Op {
	case "add", "replace":
		added = op.Value
	case "copy":
		from, _ := splitPointer(op.From)
		v, err := get(doc, from)
		if err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		added = v
	default:
		// remove, move and test never grow the document.
		before := 0
		if op.Op == "remove" {
			if v, err := get(doc, path); err == nil {
				before = CountValues(v, -1)
			}
		}
		out, err := apply(doc, op)
		if err == nil {
			*size -= before
		}
		return out, err
	}
	// What the value at path replaces (a member or the root), if any.
	replaced := 0
	if old, ok := replacedAt(doc, path, op.Op == "replace"); ok {
		replaced = CountValues(old, -1)
	}
	if lim.Elements > 0 {
		budget := lim.Elements - *size + replaced
		if n := CountValues(added, max(budget, 0)); n > budget {
			return nil, &limitError{fmt.Sprintf("the patched resource would have more than %d elements (%s)", lim.Elements, SettingElements)}
		}
	}
	if lim.ArrayItems > 0 && op.Op != "replace" && len(path) > 0 {
		if parent, err := get(doc, path[:len(path)-1]); err == nil {
			if a, ok := parent.([]any); ok && len(a) >= lim.ArrayItems {
				return nil, &limitError{fmt.Sprintf("an array would have more than %d items (%s)", lim.ArrayItems, SettingArrayItems)}
			}
		}
	}
	out, err := apply(doc, op)
	if err != nil {
		return nil, err
	}
	*size += CountValues(added, -1) - replaced
	return out, nil
}

// replacedAt is the value an add or replace at path overwrites: the
// whole document for the root, an existing object member; never an
// array item unless replacing (add inserts).
func replacedAt(doc any, path []string, replace bool) (any, bool) {
	if len(path) == 0 {
		return doc, true
	}
	parent, err := get(doc, path[:len(path)-1])
	if err != nil {
		return nil, false
	}
	switch c := parent.(type) {
	case map[string]any:
		v, ok := c[path[len(path)-1]]
		return v, ok
	case []any:
		if i, err := index(path[len(path)-1], len(c), false); replace && err == nil {
			return c[i], true
		}
	}
	return nil, false
}

// printable keeps a pointer in an error only if it looks like element
// names and indexes (client pointers could carry anything).
func printable(p string) string {
	if len(p) > 200 {
		return "(path)"
	}
	for _, c := range p {
		if !(c == '/' || c == '-' || c == '_' || c == '~' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return "(path)"
		}
	}
	if p == "" {
		return "the root"
	}
	return p
}

func apply(doc any, op Op) (any, error) {
	path, _ := splitPointer(op.Path)
	switch op.Op {
	case "add":
		return add(doc, path, DeepCopy(op.Value))
	case "remove":
		out, _, err := remove(doc, path)
		return out, err
	case "replace":
		if _, err := get(doc, path); err != nil {
			return nil, err
		}
		if len(path) == 0 {
			return DeepCopy(op.Value), nil
		}
		out, _, err := remove(doc, path)
		if err != nil {
			return nil, err
		}
		return add(out, path, DeepCopy(op.Value))
	case "move":
		from, _ := splitPointer(op.From)
		if op.From == op.Path {
			_, err := get(doc, from)
			return doc, err
		}
		if isPrefix(from, path) {
			return nil, errors.New("cannot move a value into itself")
		}
		out, v, err := remove(doc, from)
		if err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		return add(out, path, v)
	case "copy":
		from, _ := splitPointer(op.From)
		v, err := get(doc, from)
		if err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		return add(doc, path, DeepCopy(v))
	case "test":
		v, err := get(doc, path)
		if err != nil {
			return nil, err
		}
		if !equal(v, op.Value) {
			return nil, errors.New("the value is not the one tested for")
		}
		return doc, nil
	}
	return nil, errors.New("unknown op")
}

func isPrefix(a, b []string) bool {
	if len(a) >= len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func index(s string, n int, allowEnd bool) (int, error) {
	if s == "-" && allowEnd {
		return n, nil
	}
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, errors.New("not an array index")
	}
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 {
		return 0, errors.New("not an array index")
	}
	limit := n - 1
	if allowEnd {
		limit = n
	}
	if i > limit {
		return 0, errors.New("array index out of range")
	}
	return i, nil
}

func get(doc any, path []string) (any, error) {
	cur := doc
	for _, p := range path {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[p]
			if !ok {
				return nil, errors.New("no such member")
			}
			cur = v
		case []any:
			i, err := index(p, len(c), false)
			if err != nil {
				return nil, err
			}
			cur = c[i]
		default:
			return nil, errors.New("path goes through a primitive value")
		}
	}
	return cur, nil
}

// add sets path to v and returns the (possibly new) root.
func add(doc any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	parent, err := get(doc, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	last := path[len(path)-1]
	switch c := parent.(type) {
	case map[string]any:
		c[last] = v
		return doc, nil
	case []any:
		i, err := index(last, len(c), true)
		if err != nil {
			return nil, err
		}
		c = append(c, nil)
		copy(c[i+1:], c[i:])
		c[i] = v
		return set(doc, path[:len(path)-1], c)
	default:
		return nil, errors.New("the parent is a primitive value")
	}
}

// set replaces the value at path (which exists) with v.
func set(doc any, path []string, v any) (any, error) {
	if len(path) == 0 {
		return v, nil
	}
	parent, err := get(doc, path[:len(path)-1])
	if err != nil {
		return nil, err
	}
	last := path[len(path)-1]
	switch c := parent.(type) {
	case map[string]any:
		c[last] = v
	case []any:
		i, err := index(last, len(c), false)
		if err != nil {
			return nil, err
		}
		c[i] = v
	}
	return doc, nil
}

func remove(doc any, path []string) (any, any, error) {
	if len(path) == 0 {
		return nil, nil, errors.New("cannot remove the whole document")
	}
	parent, err := get(doc, path[:len(path)-1])
	if err != nil {
		return nil, nil, err
	}
	last := path[len(path)-1]
	switch c := parent.(type) {
	case map[string]any:
		v, ok := c[last]
		if !ok {
			return nil, nil, errors.New("no such member")
		}
		delete(c, last)
		return doc, v, nil
	case []any:
		i, err := index(last, len(c), false)
		if err != nil {
			return nil, nil, err
		}
		v := c[i]
		c = append(c[:i:i], c[i+1:]...)
		out, err := set(doc, path[:len(path)-1], c)
		return out, v, err
	default:
		return nil, nil, errors.New("the parent is a primitive value")
	}
}

// DeepCopy copies a decoded JSON value (maps and slices all the way
// down; strings, numbers, booleans and nil are immutable and shared).
func DeepCopy(v any) any {
	switch c := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(c))
		for k, x := range c {
			m[k] = DeepCopy(x)
		}
		return m
	case []any:
		s := make([]any, len(c))
		for i, x := range c {
			s[i] = DeepCopy(x)
		}
		return s
	default:
		return v
	}
}

// equal compares JSON values; numbers compare by value (1 equals 1.0).
func equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		fx, err1 := x.Float64()
		fy, err2 := y.Float64()
		return err1 == nil && err2 == nil && fx == fy
	default:
		return a == b
	}
}
