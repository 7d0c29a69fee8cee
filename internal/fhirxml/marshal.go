package fhirxml

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/fhir"
)

// FromJSON converts one FHIR JSON resource to FHIR XML.
func FromJSON(body []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil {
		return nil, errorf("structure", "", "the JSON is not a FHIR resource")
	}
	return AppendXML(nil, doc)
}

// AppendXML appends the XML form of doc (decoded with UseNumber) to b.
func AppendXML(b []byte, doc map[string]any) ([]byte, error) {
	w := writer{b: b, t: loadTable()}
	b = append(w.b, `<?xml version="1.0" encoding="UTF-8"?>`...)
	w.b = b
	if err := w.resource(doc, "", true); err != nil {
		return nil, err
	}
	return w.b, nil
}

type writer struct {
	b     []byte
	t     *table
	depth int
}

func (w *writer) resource(doc map[string]any, path string, root bool) error {
	rt, _ := doc["resourceType"].(string)
	if !w.t.resources[rt] {
		return errorf("structure", path, "a nested resource has no known resourceType")
	}
	p := w.t.parts[rt]
	if path == "" {
		path = rt
	}
	w.b = append(w.b, '<')
	w.b = append(w.b, rt...)
	if root {
		w.b = append(w.b, ` xmlns="`+Namespace+`"`...)
	}
	w.b = append(w.b, '>')
	if err := w.children(p, doc, path, true); err != nil {
		return err
	}
	w.b = append(w.b, "</"...)
	w.b = append(w.b, rt...)
	w.b = append(w.b, '>')
	return nil
}

// complex writes a data type or backbone element: its attributes (id,
// Extension.url), then its children in StructureDefinition order.
func (w *writer) complex(name string, p *part, obj map[string]any, path string) error {
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	for i := range p.elems {
		e := &p.elems[i]
		if !e.attr {
			continue
		}
		v, ok := obj[e.name]
		if !ok {
			continue
		}
		s, isStr := v.(string)
		if !isStr {
			return errorf("structure", path+"."+e.name, "must be a JSON string")
		}
		if _, ext := obj["_"+e.name]; ext {
			return errorf("structure", path+"._"+e.name, "this element takes no extensions")
		}
		if err := w.attr(e.name, s, path+"."+e.name); err != nil {
			return err
		}
	}
	start := len(w.b)
	w.b = append(w.b, '>')
	if err := w.children(p, obj, path, false); err != nil {
		return err
	}
	if len(w.b) == start+1 {
		w.b[start] = '/'
		w.b = append(w.b, '>')
		return nil
	}
	w.b = append(w.b, "</"...)
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
	return nil
}

// children writes obj's elements in order, refusing any property the
// part does not define: what cannot be written cannot round-trip.
func (w *writer) children(p *part, obj map[string]any, path string, isResource bool) error {
	w.depth++
	defer func() { w.depth-- }()
	if w.depth > fhir.MaxDepth {
		return errorf("too-costly", path, "the resource nests deeper than "+strconv.Itoa(fhir.MaxDepth)+" levels")
	}
	for k := range obj {
		if isResource && k == "resourceType" {
			continue
		}
		name := k
		if len(k) > 1 && k[0] == '_' {
			name = k[1:]
		}
		kk, ok := p.keys[name]
		if !ok || name != k && !w.t.primitives[kk.typ] {
			return unknown(path, k)
		}
	}
	for i := range p.elems {
		e := &p.elems[i]
		if e.attr {
			continue
		}
		variants := 0
		for ti, typ := range e.types {
			k := e.jsonKeys[ti]
			v, hasV := obj[k]
			x, hasX := obj[e.extKeys[ti]]
			if !hasV && !hasX {
				continue
			}
			if variants++; variants > 1 {
				return errorf("structure", path+"."+k, "two types of one choice element")
			}
			if hasV && v == nil || hasX && x == nil {
				// XML has no null: it would come back absent.
				return errorf("structure", path+"."+k, "null is not a value (leave the property out)")
			}
			if err := w.element(k, typ, e.array, v, x, path+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *writer) element(name, typ string, array bool, v, x any, path string) error {
	if !array {
		if _, isArr := v.([]any); isArr {
			return errorf("structure", path, "must not be an array")
		}
		if _, isArr := x.([]any); isArr {
			return errorf("structure", path, "must not be an array")
		}
		return w.one(name, typ, v, x, path)
	}
	va, okV := v.([]any)
	xa, okX := x.([]any)
	if v != nil && !okV || x != nil && !okX {
		return errorf("structure", path, "must be an array")
	}
	n := max(len(va), len(xa))
	if n == 0 {
		return errorf("structure", path, "an array must not be empty")
	}
	if okV && okX && len(va) != len(xa) {
		return errorf("structure", path, "a primitive array and its \"_\" twin must have the same length")
	}
	if okV && allNil(va) || okX && allNil(xa) {
		// XML would carry no such array: it would come back absent.
		return errorf("structure", path, "an array of nulls only")
	}
	for i := 0; i < n; i++ {
		var vi, xi any
		if i < len(va) {
			vi = va[i]
		}
		if i < len(xa) {
			xi = xa[i]
		}
		if err := w.one(name, typ, vi, xi, path+"["+strconv.Itoa(i)+"]"); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) one(name, typ string, v, x any, path string) error {
	switch {
	case typ == "Resource":
		if x != nil {
			return errorf("structure", path, "a resource takes no extensions")
		}
		m, ok := v.(map[string]any)
		if !ok {
			return errorf("structure", path, "must be a resource (a JSON object)")
		}
		w.b = append(w.b, '<')
		w.b = append(w.b, name...)
		w.b = append(w.b, '>')
		if err := w.resource(m, path, false); err != nil {
			return err
		}
		w.b = append(w.b, "</"...)
		w.b = append(w.b, name...)
		w.b = append(w.b, '>')
		return nil
	case typ == "xhtml":
		s, ok := v.(string)
		if !ok || x != nil {
			return errorf("structure", path, "must be a JSON string of XHTML")
		}
		if err := checkXHTML([]byte(s), path); err != nil {
			return err
		}
		w.b = append(w.b, s...)
		return nil
	case w.t.isPrimitive(typ):
		return w.primitive(name, typ, v, x, path)
	}
	p := w.t.parts[typ]
	if p == nil {
		return errorf("structure", path, "has a type this server does not know")
	}
	m, ok := v.(map[string]any)
	if !ok || x != nil {
		return errorf("structure", path, "must be a JSON object")
	}
	return w.complex(name, p, m, path)
}

// primitive writes <name id=".." value=".."> and the extensions of its
// "_name" twin.
func (w *writer) primitive(name, typ string, v, x any, path string) error {
	if v == nil && x == nil {
		return errorf("structure", path, "a primitive must have a value or an extension (null on both sides)")
	}
	var ext map[string]any
	if x != nil {
		m, ok := x.(map[string]any)
		if !ok {
			return errorf("structure", "_"+path, "must be a JSON object (id, extension)")
		}
		ext = m
		for k := range m {
			if k != "id" && k != "extension" {
				return unknown("_"+path, k)
			}
		}
	}
	w.b = append(w.b, '<')
	w.b = append(w.b, name...)
	if id, ok := ext["id"]; ok {
		s, isStr := id.(string)
		if !isStr {
			return errorf("structure", path+".id", "must be a JSON string")
		}
		if err := w.attr("id", s, path+".id"); err != nil {
			return err
		}
	}
	if v != nil {
		var s string
		switch kind := jsonKind(typ); val := v.(type) {
		case string:
			if kind != 's' {
				return errorf("value", path, "a "+typ+" must be a JSON "+kindName(kind))
			}
			s = val
		case json.Number:
			if kind != 'i' && kind != 'd' {
				return errorf("value", path, "a "+typ+" must be a JSON "+kindName(kind))
			}
			s = val.String()
			if kind == 'i' && strings.ContainsAny(s, ".eE") {
				return errorf("value", path, "a "+typ+" must be a whole number without a fraction or exponent")
			}
		case bool:
			if kind != 'b' {
				return errorf("value", path, "a "+typ+" must be a JSON "+kindName(kind))
			}
			s = strconv.FormatBool(val)
		default:
			return errorf("value", path, "a "+typ+" must be a JSON "+kindName(kind))
		}
		if err := w.attr("value", s, path); err != nil {
			return err
		}
	}
	exts, hasExt := ext["extension"]
	if !hasExt {
		w.b = append(w.b, "/>"...)
		return nil
	}
	w.b = append(w.b, '>')
	if err := w.element("extension", "Extension", true, exts, nil, path+".extension"); err != nil {
		return err
	}
	w.b = append(w.b, "</"...)
	w.b = append(w.b, name...)
	w.b = append(w.b, '>')
	return nil
}

func kindName(k byte) string {
	switch k {
	case 'b':
		return "boolean"
	case 'i', 'd':
		return "number"
	}
	return "string"
}

// attr writes ` name="value"`, escaping what attribute-value
// normalisation would otherwise change (tab, CR, LF) and refusing
// characters XML 1.0 cannot carry.
func (w *writer) attr(name, s, path string) error {
	w.b = append(w.b, ' ')
	w.b = append(w.b, name...)
	w.b = append(w.b, `="`...)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || !isXMLChar(r) {
			return errorf("value", path, "holds a character XML 1.0 cannot represent")
		}
		switch r {
		case '&':
			w.b = append(w.b, "&amp;"...)
		case '<':
			w.b = append(w.b, "&lt;"...)
		case '>':
			w.b = append(w.b, "&gt;"...)
		case '"':
			w.b = append(w.b, "&quot;"...)
		case '\t':
			w.b = append(w.b, "&#x9;"...)
		case '\n':
			w.b = append(w.b, "&#xA;"...)
		case '\r':
			w.b = append(w.b, "&#xD;"...)
		default:
			w.b = append(w.b, s[i:i+size]...)
		}
		i += size
	}
	w.b = append(w.b, '"')
	return nil
}

func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

func allNil(a []any) bool {
	for _, v := range a {
		if v != nil {
			return false
		}
	}
	return true
}
