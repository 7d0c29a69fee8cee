package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of JSON objects and arrays Parse accepts;
// the resource itself is depth 1. Real resources stay far below it
// (Questionnaire items nest a handful of levels).
const MaxDepth = 100

// Resource is a parsed FHIR resource. Doc holds the JSON document as decoded
// with json.Decoder.UseNumber: map[string]any, []any, string, json.Number,
// bool and nil.
type Resource struct {
	Type string // Doc["resourceType"], a known R4 resource type
	ID   string // Doc["id"], or "" when absent
	Doc  map[string]any
}

// ParseError reports why a body is not an acceptable FHIR resource. Msg names
// byte offsets and element paths, never input values.
type ParseError struct {
	// Code is the FHIR issue-type code that best describes the failure:
	// "structure" (not well-formed JSON, wrong shape, duplicate key),
	// "required" (missing resourceType), "not-supported" (unknown
	// resourceType), "value" (bad resourceType or id value) or "too-costly"
	// (nesting deeper than MaxDepth).
	Code string
	// Msg is the human-readable reason, safe to show and log.
	Msg string
	// Offset is the byte offset in the body the error refers to, or -1.
	Offset int
}

func (e *ParseError) Error() string { return "fhir: " + e.Msg }

// Issue converts the error into an OperationOutcome issue.
func (e *ParseError) Issue() Issue {
	return Issue{Severity: SeverityError, Code: e.Code, Diagnostics: e.Msg}
}

func parseErr(code string, offset int, msg string) *ParseError {
	if offset >= 0 {
		msg += " at byte offset " + strconv.Itoa(offset)
	}
	return &ParseError{Code: code, Msg: msg, Offset: offset}
}

// Parse reads one FHIR resource from an untrusted body. It returns a
// *ParseError when the body is not acceptable (see the package doc for the
// rules); it does not check the resource against the schema (see Validator).
// Callers bound the body size before calling.
func Parse(body []byte) (*Resource, error) {
	return ParseLimited(body, Limits{})
}

// Limits bound what ParseLimited accepts, so that a body that would cost
// too much to decode is refused by the allocation-free scan, before it is
// decoded. A zero field is no bound. Stored resources are parsed without
// limits (a limit lowered later must not make them unreadable).
type Limits struct {
	// ArrayItems caps the items of any one array, except a Bundle's
	// entry (bounded by BundleEntries).
	ArrayItems int
	// Elements caps the JSON values of the whole body (every object,
	// array and primitive, a Bundle's entries included).
	Elements int
	// BundleEntries caps Bundle.entry.
	BundleEntries int
}

// The settings that configure Limits, named in the errors so that a
// client or operator knows which limit was met (internal/config declares
// them).
const (
	SettingArrayItems    = "WARD_RESOURCE_MAX_ARRAY_ITEMS"
	SettingElements      = "WARD_RESOURCE_MAX_ELEMENTS"
	SettingBundleEntries = "WARD_BUNDLE_MAX_ENTRIES"
)

// ParseLimited is Parse for a body from a client: beyond Parse's rules it
// refuses, with a ParseError of code "too-costly", a body over lim.
func ParseLimited(body []byte, lim Limits) (*Resource, error) {
	// Pass 1: a token-level scan for what json.Decoder does not report
	// (duplicate keys, depth, exact offsets without echoing input) and
	// the limits, without allocating per value.
	if err := scanResource(body, lim); err != nil {
		return nil, err
	}
	// Pass 2: decode. The scan accepted exactly one valid JSON object, so an
	// error here means the two disagree; report it without detail.
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		off := -1
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = int(se.Offset)
		}
		return nil, parseErr("structure", off, "invalid JSON")
	}
	if doc == nil {
		return nil, parseErr("structure", -1, "resource must be a JSON object")
	}
	rt, ok := doc["resourceType"]
	if !ok {
		return nil, parseErr("required", -1, "missing resourceType")
	}
	typ, ok := rt.(string)
	if !ok {
		return nil, parseErr("value", -1, "resourceType must be a string")
	}
	if !IsResourceType(typ) {
		return nil, parseErr("not-supported", -1, "unknown resourceType")
	}
	r := &Resource{Type: typ, Doc: doc}
	if v, ok := doc["id"]; ok {
		id, ok := v.(string)
		if !ok {
			return nil, parseErr("value", -1, "id must be a string")
		}
		if !IsID(id) {
			return nil, parseErr("value", -1, `id does not match the FHIR id format [A-Za-z0-9\-\.]{1,64}`)
		}
		r.ID = id
	}
	return r, nil
}

// IsID reports whether s matches the FHIR id format [A-Za-z0-9\-\.]{1,64}.
func IsID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// scanner validates JSON syntax (RFC 8259) over a byte slice, tracking depth
// and the path to the current value so errors can name a position.
type scanner struct {
	b    []byte
	i    int
	path []pathSeg

	lim      Limits
	elements int // values seen so far
	// rootType is the top-level resourceType once seen (raw, unescaped
	// only if it had no escapes); entries the items of the top-level
	// entry array, judged at the end when the type is known.
	rootType []byte
	entries  int
}

// pathSeg is one step to the current value: an object key (decoded) or an
// array index.
type pathSeg struct {
	key   []byte
	index int // -1 for object members
}

// smallObject is the member count up to which duplicate keys are found by
// comparing with every earlier key; larger objects use a map.
const smallObject = 32

func scanResource(body []byte, lim Limits) error {
	if len(body) == 0 {
		return parseErr("structure", -1, "empty body")
	}
	if !utf8.Valid(body) {
		return parseErr("structure", invalidUTF8Offset(body), "invalid UTF-8")
	}
	if bytes.HasPrefix(body, []byte("\xef\xbb\xbf")) {
		return parseErr("structure", 0, "invalid JSON: byte order mark")
	}
	var pathBuf [32]pathSeg // enough for real resources without allocating
	s := scanner{b: body, path: pathBuf[:0], lim: lim}
	s.skipSpace()
	if s.i == len(body) {
		return parseErr("structure", -1, "empty body")
	}
	if body[s.i] != '{' {
		start := s.i
		if err := s.value(1); err != nil {
			return err
		}
		return parseErr("structure", start, "resource must be a JSON object, not "+jsonKind(body[start]))
	}
	if err := s.object(1); err != nil {
		return err
	}
	s.skipSpace()
	if s.i != len(body) {
		return parseErr("structure", s.i, "trailing data after the resource")
	}
	if string(s.rootType) == "Bundle" {
		if lim.BundleEntries > 0 && s.entries > lim.BundleEntries {
			return parseErr("too-costly", -1, "the Bundle has more than "+strconv.Itoa(lim.BundleEntries)+" entries ("+SettingBundleEntries+")")
		}
	} else if lim.ArrayItems > 0 && s.entries > lim.ArrayItems {
		return parseErr("too-costly", -1, "more than "+strconv.Itoa(lim.ArrayItems)+" items in one array at entry ("+SettingArrayItems+")")
	}
	return nil
}

func invalidUTF8Offset(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	default:
		return "a number"
	}
}

func (s *scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) syntax(msg string) error {
	if s.i >= len(s.b) {
		return parseErr("structure", len(s.b), "invalid JSON: unexpected end of input")
	}
	return parseErr("structure", s.i, "invalid JSON: "+msg)
}

func (s *scanner) value(depth int) error {
	s.elements++
	if s.lim.Elements > 0 && s.elements > s.lim.Elements {
		return parseErr("too-costly", -1, "more than "+strconv.Itoa(s.lim.Elements)+" elements in the body ("+SettingElements+")")
	}
	s.skipSpace()
	if s.i >= len(s.b) {
		return s.syntax("")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, _, err := s.str()
		return err
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.syntax("expected a value")
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) {
		s.i = len(s.b)
		return s.syntax("")
	}
	for j := 0; j < len(lit); j++ {
		if s.b[s.i] != lit[j] {
			return s.syntax("invalid literal")
		}
		s.i++
	}
	return nil
}

func (s *scanner) number() error {
	b := s.b
	if b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case s.i < len(b) && b[s.i] >= '1' && b[s.i] <= '9':
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	default:
		return s.syntax("invalid number")
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		if s.i >= len(b) || b[s.i] < '0' || b[s.i] > '9' {
			return s.syntax("invalid number")
		}
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if s.i >= len(b) || b[s.i] < '0' || b[s.i] > '9' {
			return s.syntax("invalid number")
		}
		for s.i < len(b) && b[s.i] >= '0' && b[s.i] <= '9' {
			s.i++
		}
	}
	return nil
}

// str scans a string starting at the opening quote. It returns the raw bytes
// between the quotes and whether they contain escapes.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	b := s.b
	s.i++ // opening quote
	start := s.i
	for s.i < len(b) {
		c := b[s.i]
		switch {
		case c == '"':
			raw = b[start:s.i]
			s.i++
			return raw, escaped, nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(b) {
				return nil, false, s.syntax("")
			}
			switch b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				s.i++
				for k := 0; k < 4; k++ {
					if s.i >= len(b) {
						return nil, false, s.syntax("")
					}
					if !isHex(b[s.i]) {
						return nil, false, s.syntax("invalid escape in string")
					}
					s.i++
				}
			default:
				return nil, false, s.syntax("invalid escape in string")
			}
		case c < 0x20:
			return nil, false, s.syntax("control character in string")
		default:
			s.i++
		}
	}
	return nil, false, s.syntax("")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func (s *scanner) tooDeep() error {
	return parseErr("too-costly", s.i, "nesting deeper than "+strconv.Itoa(MaxDepth)+" levels at "+s.pathString())
}

func (s *scanner) object(depth int) error {
	if depth > MaxDepth {
		return s.tooDeep()
	}
	s.i++ // '{'
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	var (
		small [smallObject][]byte // decoded keys while the object is small
		n     int
		large map[string]struct{}
	)
	s.path = append(s.path, pathSeg{index: -1})
	for {
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.syntax("expected a string key")
		}
		keyOff := s.i
		raw, escaped, err := s.str()
		if err != nil {
			return err
		}
		key := raw
		if escaped {
			key = unescapeKey(raw)
		}
		s.path[len(s.path)-1].key = key
		// Duplicate check on the decoded key, as json.Decoder would see it.
		dup := false
		if large == nil && n < smallObject {
			for _, k := range small[:n] {
				if bytes.Equal(k, key) {
					dup = true
					break
				}
			}
			if !dup {
				small[n] = key
				n++
			}
		} else {
			if large == nil {
				large = make(map[string]struct{}, 2*smallObject)
				for _, k := range small[:n] {
					large[string(k)] = struct{}{}
				}
			}
			if _, dup = large[string(key)]; !dup {
				large[string(key)] = struct{}{}
			}
		}
		if dup {
			return parseErr("structure", keyOff, "duplicate key at "+s.pathString())
		}
		s.skipSpace()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.syntax("expected ':' after key")
		}
		s.i++
		valueOff := s.i
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if depth == 1 && string(key) == "resourceType" {
			s.rootType = rootTypeOf(s.b[valueOff:s.i])
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.syntax("")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.path = s.path[:len(s.path)-1]
			return nil
		default:
			return s.syntax("expected ',' or '}' in object")
		}
	}
}

func (s *scanner) array(depth int) error {
	if depth > MaxDepth {
		return s.tooDeep()
	}
	s.i++ // '['
	s.skipSpace()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	// The top-level entry array is a Bundle's entries (bounded by
	// BundleEntries) or, in any other resource, an array like any other;
	// which one is known only once resourceType is seen, so its items
	// are counted and judged at the end.
	topEntry := depth == 2 && len(s.path) == 1 && string(s.path[0].key) == "entry"
	s.path = append(s.path, pathSeg{index: 0})
	items := 0
	for {
		items++
		if topEntry {
			s.entries = items
		} else if s.lim.ArrayItems > 0 && items > s.lim.ArrayItems {
			s.path = s.path[:len(s.path)-1]
			return parseErr("too-costly", -1, "more than "+strconv.Itoa(s.lim.ArrayItems)+" items in one array at "+s.pathString()+" ("+SettingArrayItems+")")
		}
		if err := s.value(depth + 1); err != nil {
			return err
		}
		s.skipSpace()
		if s.i >= len(s.b) {
			return s.syntax("")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
			s.path[len(s.path)-1].index++
		case ']':
			s.i++
			s.path = s.path[:len(s.path)-1]
			return nil
		default:
			return s.syntax("expected ',' or ']' in array")
		}
	}
}

// rootTypeOf is the resourceType value v as scanned, decoded (nil when
// it is not a string; Parse refuses it later).
func rootTypeOf(v []byte) []byte {
	v = bytes.TrimLeft(v, " \t\r\n")
	if len(v) < 2 || v[0] != '"' {
		return nil
	}
	if raw := v[1 : len(v)-1]; bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	var t string
	if json.Unmarshal(v, &t) != nil {
		return nil
	}
	return []byte(t)
}

// unescapeKey decodes a key that contains escapes exactly as encoding/json
// does (invalid surrogates become U+FFFD), so duplicates are judged on the
// keys the decoder will produce.
func unescapeKey(raw []byte) []byte {
	q := make([]byte, 0, len(raw)+2)
	q = append(q, '"')
	q = append(q, raw...)
	q = append(q, '"')
	var k string
	if err := json.Unmarshal(q, &k); err != nil {
		// The scanner accepted the string, so this does not happen; keep
		// the raw form so the duplicate check stays conservative.
		return raw
	}
	return []byte(k)
}

// pathString renders the current path as an element path such as
// "name[0].given". Keys that do not look like element names are shown as "?".
func (s *scanner) pathString() string {
	if len(s.path) == 0 {
		return "(top level)"
	}
	var b strings.Builder
	for i, seg := range s.path {
		if seg.index >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(seg.index))
			b.WriteByte(']')
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		if k := string(seg.key); IsElementName(k) {
			b.WriteString(k)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}
