package fhirxml

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strconv"

	"github.com/wardhealth/ward/internal/fhir"
)

// Namespace is the FHIR XML namespace; XHTMLNamespace is the narrative's.
const (
	Namespace      = "http://hl7.org/fhir"
	XHTMLNamespace = "http://www.w3.org/1999/xhtml"
)

// Error reports why an XML body cannot be converted. Msg names element
// paths, never values read from the body.
type Error struct {
	// Code is a FHIR issue-type code: "structure", "value", "security"
	// (a DTD, entity or processing instruction), "not-supported" or
	// "too-costly" (a limit; Msg names its setting).
	Code string
	Path string // FHIRPath-like location, or ""
	Msg  string
}

func (e *Error) Error() string {
	if e.Path != "" {
		return "fhirxml: " + e.Path + ": " + e.Msg
	}
	return "fhirxml: " + e.Msg
}

func errorf(code, path, msg string) *Error { return &Error{Code: code, Path: path, Msg: msg} }

// unknown names an element or property that the type does not define, by
// its name only when it looks like one (it is the client's text).
func unknown(path, name string) *Error {
	if fhir.IsElementName(name) || len(name) > 1 && name[0] == '_' && fhir.IsElementName(name[1:]) {
		return errorf("structure", path, "unknown element '"+name+"'")
	}
	return errorf("structure", path, "unknown element")
}

// ToJSON converts one FHIR XML resource to FHIR JSON, within lim (its
// Elements bound counts XML elements; depth is bounded by fhir.MaxDepth).
// The JSON still has to pass fhir.ParseLimited and validation: ToJSON
// checks the XML rules and the element names and types, not the profile.
func ToJSON(body []byte, lim fhir.Limits) ([]byte, error) {
	doc, err := Decode(body, lim)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, errorf("structure", "", "the resource cannot be written as JSON")
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Decode converts one FHIR XML resource to the JSON document form of
// fhir.Resource.Doc (numbers as json.Number).
func Decode(body []byte, lim fhir.Limits) (map[string]any, error) {
	r := &reader{body: body, t: loadTable(), lim: lim}
	r.d = xml.NewDecoder(bytes.NewReader(body))
	r.d.Strict = true
	// No Entity map and no CharsetReader: only the five predefined
	// entities and character references are read; any other entity
	// reference or a non-UTF-8 encoding is an error.
	tok, _, err := r.next(true)
	if err == io.EOF {
		return nil, errorf("structure", "", "the body has no root element")
	}
	if err != nil {
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, errorf("structure", "", "the body has no root element")
	}
	if start.Name.Space != Namespace {
		return nil, errorf("structure", "", "the root element is not in the FHIR namespace "+Namespace)
	}
	if !r.t.resources[start.Name.Local] {
		return nil, errorf("not-supported", "", "the root element is not an R4 resource type")
	}
	doc, err := r.object(start, r.t.parts[start.Name.Local], start.Name.Local, true)
	if err != nil {
		return nil, err
	}
	if tok, _, err := r.next(false); err != io.EOF {
		if err != nil {
			return nil, err
		}
		_ = tok
		return nil, errorf("structure", "", "content after the root element")
	}
	return doc, nil
}

type reader struct {
	d        *xml.Decoder
	body     []byte
	t        *table
	lim      fhir.Limits
	depth    int
	elements int
	seenRoot bool
}

// next returns the next element token (start or end) and the offset where
// it begins, skipping comments and whitespace, and refusing DTDs,
// processing instructions other than the XML declaration, and text
// outside the narrative.
func (r *reader) next(prolog bool) (xml.Token, int64, error) {
	for {
		off := r.d.InputOffset()
		tok, err := r.d.Token()
		if err == io.EOF {
			return nil, off, io.EOF
		}
		if err != nil {
			return nil, off, syntaxError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			r.elements++
			if r.lim.Elements > 0 && r.elements > r.lim.Elements {
				return nil, off, errorf("too-costly", "", "the resource has more than "+strconv.Itoa(r.lim.Elements)+" elements ("+fhir.SettingElements+")")
			}
			r.seenRoot = true
			return t, off, nil
		case xml.EndElement:
			return t, off, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, off, errorf("structure", "", "text content outside the narrative (FHIR XML carries values in value attributes)")
			}
		case xml.Comment:
		case xml.ProcInst:
			if !(prolog && t.Target == "xml" && off == 0) {
				return nil, off, errorf("security", "", "processing instructions are not accepted")
			}
		case xml.Directive:
			return nil, off, errorf("security", "", "DTDs and entity declarations (<!DOCTYPE>, <!ENTITY>) are not accepted")
		}
	}
}

func syntaxError(err error) *Error {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return errorf("structure", "", "the XML is not well-formed (line "+strconv.Itoa(se.Line)+")")
	}
	return errorf("structure", "", "the XML is not well-formed")
}

// prim collects a primitive element's values and extension twins.
type prim struct {
	vals, exts []any
	any        bool // some value is non-nil
	anyExt     bool
}

// object reads the content of start (attributes and children) as an
// element of part p.
func (r *reader) object(start xml.StartElement, p *part, path string, isResource bool) (map[string]any, error) {
	r.depth++
	defer func() { r.depth-- }()
	if r.depth > fhir.MaxDepth {
		return nil, errorf("too-costly", path, "the resource nests deeper than "+strconv.Itoa(fhir.MaxDepth)+" levels")
	}
	obj := map[string]any{}
	if isResource {
		obj["resourceType"] = p.name
	}
	for _, a := range start.Attr {
		if isNamespaceDecl(a.Name) {
			continue
		}
		k, ok := p.keys[a.Name.Local]
		if a.Name.Space != "" || !ok || !k.el.attr || isResource {
			return nil, errorf("structure", path, "unknown attribute")
		}
		obj[a.Name.Local] = a.Value
	}
	prims := map[string]*prim{}
	var order []string // primitives in the order first seen, for a stable result
	for {
		tok, off, err := r.next(false)
		if err != nil {
			if err == io.EOF {
				return nil, errorf("structure", path, "the XML ends inside an element")
			}
			return nil, err
		}
		if _, end := tok.(xml.EndElement); end {
			break
		}
		child := tok.(xml.StartElement)
		name := child.Name.Local
		k, ok := p.keys[name]
		if !ok || k.el.attr {
			return nil, unknown(path, name)
		}
		cpath := path + "." + name
		if k.typ == "xhtml" {
			if child.Name.Space != XHTMLNamespace || name != "div" {
				return nil, errorf("structure", cpath, "the narrative must be an XHTML div in the namespace "+XHTMLNamespace)
			}
		} else if child.Name.Space != Namespace {
			return nil, errorf("structure", cpath, "the element is not in the FHIR namespace")
		}
		if k.el.choice {
			for _, typ := range k.el.types {
				other := k.el.name + upperFirst(typ)
				if other == name {
					continue
				}
				if _, dup := obj[other]; dup {
					return nil, errorf("structure", cpath, "two types of one choice element")
				}
				if _, dup := prims[other]; dup {
					return nil, errorf("structure", cpath, "two types of one choice element")
				}
			}
		}
		switch {
		case k.typ == "xhtml":
			if _, dup := obj[name]; dup {
				return nil, errorf("structure", cpath, "the element appears more than once")
			}
			raw, err := r.xhtml(child, off, cpath)
			if err != nil {
				return nil, err
			}
			obj[name] = raw
		case r.t.isPrimitive(k.typ):
			v, x, err := r.primitive(child, k.typ, cpath)
			if err != nil {
				return nil, err
			}
			pr := prims[name]
			if pr == nil {
				pr = &prim{}
				prims[name] = pr
				order = append(order, name)
			} else if !k.el.array {
				return nil, errorf("structure", cpath, "the element appears more than once")
			}
			pr.vals = append(pr.vals, v)
			pr.exts = append(pr.exts, x)
			pr.any = pr.any || v != nil
			pr.anyExt = pr.anyExt || x != nil
		default:
			var v any
			if k.typ == "Resource" {
				v, err = r.nested(child, cpath)
			} else {
				cp := r.t.parts[k.typ]
				if cp == nil {
					return nil, errorf("structure", cpath, "has a type this server does not know")
				}
				v, err = r.object(child, cp, cpath, false)
			}
			if err != nil {
				return nil, err
			}
			if !k.el.array {
				if _, dup := obj[name]; dup {
					return nil, errorf("structure", cpath, "the element appears more than once")
				}
				obj[name] = v
				continue
			}
			arr, _ := obj[name].([]any)
			obj[name] = append(arr, v)
		}
	}
	for _, name := range order {
		pr := prims[name]
		if p.keys[name].el.array {
			if pr.any {
				obj[name] = pr.vals
			}
			if pr.anyExt {
				obj["_"+name] = pr.exts
			}
			continue
		}
		if pr.any {
			obj[name] = pr.vals[0]
		}
		if pr.anyExt {
			obj["_"+name] = pr.exts[0]
		}
	}
	return obj, nil
}

func isNamespaceDecl(n xml.Name) bool {
	return n.Space == "xmlns" || n.Space == "" && n.Local == "xmlns"
}

// nested reads <resource><Patient>...</Patient></resource>.
func (r *reader) nested(wrapper xml.StartElement, path string) (map[string]any, error) {
	for _, a := range wrapper.Attr {
		if !isNamespaceDecl(a.Name) {
			return nil, errorf("structure", path, "unknown attribute")
		}
	}
	tok, _, err := r.next(false)
	if err != nil {
		if err == io.EOF {
			return nil, errorf("structure", path, "the XML ends inside an element")
		}
		return nil, err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return nil, errorf("structure", path, "must hold one resource")
	}
	if start.Name.Space != Namespace || !r.t.resources[start.Name.Local] {
		return nil, errorf("not-supported", path, "the nested element is not an R4 resource type")
	}
	doc, err := r.object(start, r.t.parts[start.Name.Local], start.Name.Local, true)
	if err != nil {
		return nil, err
	}
	tok, _, err = r.next(false)
	if err != nil {
		if err == io.EOF {
			return nil, errorf("structure", path, "the XML ends inside an element")
		}
		return nil, err
	}
	if _, end := tok.(xml.EndElement); !end {
		return nil, errorf("structure", path, "must hold exactly one resource")
	}
	return doc, nil
}

// primitive reads <name id=".." value=".."> with optional extension
// children, typing the value as JSON does (json.html).
func (r *reader) primitive(start xml.StartElement, typ, path string) (v any, x any, err error) {
	var ext map[string]any
	for _, a := range start.Attr {
		if isNamespaceDecl(a.Name) {
			continue
		}
		if a.Name.Space != "" {
			return nil, nil, errorf("structure", path, "unknown attribute")
		}
		switch a.Name.Local {
		case "value":
			if v != nil {
				return nil, nil, errorf("structure", path, "two value attributes")
			}
			v, err = typed(a.Value, typ, path)
			if err != nil {
				return nil, nil, err
			}
		case "id":
			if ext == nil {
				ext = map[string]any{}
			}
			ext["id"] = a.Value
		default:
			return nil, nil, errorf("structure", path, "unknown attribute")
		}
	}
	var exts []any
	ep := r.t.parts["Extension"]
	for {
		tok, _, err := r.next(false)
		if err != nil {
			if err == io.EOF {
				return nil, nil, errorf("structure", path, "the XML ends inside an element")
			}
			return nil, nil, err
		}
		if _, end := tok.(xml.EndElement); end {
			break
		}
		child := tok.(xml.StartElement)
		if child.Name.Space != Namespace || child.Name.Local != "extension" {
			return nil, nil, unknown(path, child.Name.Local)
		}
		e, err := r.object(child, ep, path+".extension", false)
		if err != nil {
			return nil, nil, err
		}
		exts = append(exts, e)
	}
	if exts != nil {
		if ext == nil {
			ext = map[string]any{}
		}
		ext["extension"] = exts
	}
	if v == nil && ext == nil {
		return nil, nil, errorf("structure", path, "a primitive element must have a value attribute or an extension")
	}
	if ext != nil {
		x = ext
	}
	return v, x, nil
}

// typed converts a value attribute to its JSON type: XML values are
// strings, JSON's booleans and numbers are literals.
func typed(s, typ, path string) (any, error) {
	switch jsonKind(typ) {
	case 'b':
		switch s {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, errorf("value", path, "a boolean must be true or false")
	case 'i':
		if !isJSONNumber(s) || bytes.ContainsAny([]byte(s), ".eE") {
			return nil, errorf("value", path, "not a valid "+typ)
		}
		return json.Number(s), nil
	case 'd':
		if !isJSONNumber(s) {
			return nil, errorf("value", path, "not a valid decimal")
		}
		return json.Number(s), nil
	}
	return s, nil
}

// isJSONNumber reports whether s is a number in JSON's grammar (which is
// also FHIR's decimal grammar), so it can be written as a JSON literal
// exactly as sent.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(s)
}

// xhtml reads the narrative div and returns it as written in the body, so
// that it round-trips byte for byte; its content is checked as it is read.
func (r *reader) xhtml(start xml.StartElement, off int64, path string) (string, error) {
	declared := false
	for _, a := range start.Attr {
		if a.Name.Space == "" && a.Name.Local == "xmlns" && a.Value == XHTMLNamespace {
			declared = true
		}
	}
	if !declared || !bytes.HasPrefix(r.body[off:], []byte("<div")) {
		return "", errorf("structure", path, `the narrative div must declare xmlns="`+XHTMLNamespace+`" itself`)
	}
	depth := 1
	for depth > 0 {
		tok, err := r.d.Token()
		if err != nil {
			if err == io.EOF {
				return "", errorf("structure", path, "the XML ends inside the narrative")
			}
			return "", syntaxError(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			r.elements++
			if r.lim.Elements > 0 && r.elements > r.lim.Elements {
				return "", errorf("too-costly", "", "the resource has more than "+strconv.Itoa(r.lim.Elements)+" elements ("+fhir.SettingElements+")")
			}
			if t.Name.Space != XHTMLNamespace {
				return "", errorf("structure", path, "the narrative holds an element outside the XHTML namespace")
			}
			depth++
			if r.depth+depth > fhir.MaxDepth {
				return "", errorf("too-costly", path, "the resource nests deeper than "+strconv.Itoa(fhir.MaxDepth)+" levels")
			}
		case xml.EndElement:
			depth--
		case xml.ProcInst:
			return "", errorf("security", path, "processing instructions are not accepted")
		case xml.Directive:
			return "", errorf("security", path, "DTDs and entity declarations are not accepted")
		}
	}
	return string(r.body[off:r.d.InputOffset()]), nil
}

// checkXHTML checks that a JSON narrative can be embedded in XML as it is:
// one well-formed div that declares the XHTML namespace, nothing else.
func checkXHTML(div []byte, path string) error {
	r := &reader{body: div, t: loadTable()}
	r.d = xml.NewDecoder(bytes.NewReader(div))
	r.d.Strict = true
	off := r.d.InputOffset()
	tok, err := r.d.Token()
	if err != nil {
		return errorf("value", path, "the narrative is not well-formed XHTML")
	}
	start, ok := tok.(xml.StartElement)
	if !ok || start.Name.Space != XHTMLNamespace || start.Name.Local != "div" {
		return errorf("value", path, "the narrative must be one XHTML div")
	}
	if _, err := r.xhtml(start, off, path); err != nil {
		return err
	}
	if r.d.InputOffset() != int64(len(div)) {
		return errorf("value", path, "the narrative must be one XHTML div and nothing after it")
	}
	return nil
}
