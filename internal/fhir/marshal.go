package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// maxMarshalDepth bounds recursion in Marshal; documents from Parse are at
// most MaxDepth deep, so only a cyclic or hand-built document reaches it.
const maxMarshalDepth = 1000

// Marshal writes doc as compact JSON: "resourceType" first, then "id", then
// "meta", then the remaining keys sorted; nested objects have their keys
// sorted. json.Number is written verbatim (after checking it is a JSON
// number), strings are escaped as encoding/json does without HTML escaping.
// Values of types other than those Parse produces are encoded with
// encoding/json.
func Marshal(doc map[string]any) ([]byte, error) {
	if doc == nil {
		return nil, errors.New("fhir: marshal: nil document")
	}
	e := encoder{buf: make([]byte, 0, 1024)}
	if err := e.resource(doc); err != nil {
		return nil, err
	}
	return e.buf, nil
}

type encoder struct {
	buf   []byte
	keys  []string // scratch stack of sorted keys, shared by nesting levels
	depth int
}

// leadingKeys are written first, in this order, at the top level.
var leadingKeys = [...]string{"resourceType", "id", "meta"}

func (e *encoder) resource(doc map[string]any) error {
	e.buf = append(e.buf, '{')
	first := true
	for _, k := range leadingKeys {
		v, ok := doc[k]
		if !ok {
			continue
		}
		if !first {
			e.buf = append(e.buf, ',')
		}
		first = false
		e.buf = appendString(e.buf, k)
		e.buf = append(e.buf, ':')
		if err := e.value(v); err != nil {
			return err
		}
	}
	start := len(e.keys)
	for k := range doc {
		if k != "resourceType" && k != "id" && k != "meta" {
			e.keys = append(e.keys, k)
		}
	}
	return e.members(doc, start, first)
}

// members writes doc's members whose keys are e.keys[start:], sorted, and
// closes the object.
func (e *encoder) members(doc map[string]any, start int, first bool) error {
	end := len(e.keys)
	keys := e.keys[start:end]
	slices.Sort(keys)
	for _, k := range keys {
		if !first {
			e.buf = append(e.buf, ',')
		}
		first = false
		e.buf = appendString(e.buf, k)
		e.buf = append(e.buf, ':')
		if err := e.value(doc[k]); err != nil {
			return err
		}
	}
	e.keys = e.keys[:start]
	e.buf = append(e.buf, '}')
	return nil
}

func (e *encoder) value(v any) error {
	switch v := v.(type) {
	case string:
		e.buf = appendString(e.buf, v)
	case json.Number:
		if !isJSONNumber(string(v)) {
			return errors.New("fhir: marshal: json.Number is not a valid JSON number")
		}
		e.buf = append(e.buf, v...)
	case bool:
		e.buf = strconv.AppendBool(e.buf, v)
	case nil:
		e.buf = append(e.buf, "null"...)
	case map[string]any:
		if e.depth++; e.depth > maxMarshalDepth {
			return errors.New("fhir: marshal: document nested too deeply (cyclic?)")
		}
		e.buf = append(e.buf, '{')
		start := len(e.keys)
		for k := range v {
			e.keys = append(e.keys, k)
		}
		if err := e.members(v, start, true); err != nil {
			return err
		}
		e.depth--
	case []any:
		if e.depth++; e.depth > maxMarshalDepth {
			return errors.New("fhir: marshal: document nested too deeply (cyclic?)")
		}
		e.buf = append(e.buf, '[')
		for i, item := range v {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			if err := e.value(item); err != nil {
				return err
			}
		}
		e.buf = append(e.buf, ']')
		e.depth--
	case int:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case int64:
		e.buf = strconv.AppendInt(e.buf, v, 10)
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return errors.New("fhir: marshal: NaN or infinite number")
		}
		return e.fallback(v)
	default:
		return e.fallback(v)
	}
	return nil
}

// fallback encodes a value of a type Parse never produces with
// encoding/json (no HTML escaping).
func (e *encoder) fallback(v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("fhir: marshal: %T: %w", v, err)
	}
	e.buf = append(e.buf, bytes.TrimRight(b.Bytes(), "\n")...)
	return nil
}

// isJSONNumber reports whether s is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if i >= len(s) || s[i] < '1' || s[i] > '9' || digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does with
// SetEscapeHTML(false): quote, backslash and control characters escaped,
// U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// instantLayout is the FHIR instant format Ward writes: UTC with exactly six
// fractional digits (microseconds, what PostgreSQL and SQLite timestamps
// keep), e.g. 2026-11-23T12:00:00.123456Z.
const instantLayout = "2006-01-02T15:04:05.000000Z07:00"

// FormatInstant formats t as a FHIR instant in UTC with microsecond
// precision (t is truncated, not rounded).
func FormatInstant(t time.Time) string {
	return t.UTC().Format(instantLayout)
}

// SetMeta sets meta.versionId and meta.lastUpdated on doc, keeping the other
// meta elements (profile, security, tag, source, extension). The meta object
// is copied rather than modified in place, so a document that shares its
// meta with another is not changed behind its back. A meta that is not an
// object is replaced.
func SetMeta(doc map[string]any, versionID string, lastUpdated time.Time) {
	old, _ := doc["meta"].(map[string]any)
	meta := make(map[string]any, len(old)+2)
	for k, v := range old {
		meta[k] = v
	}
	meta["versionId"] = versionID
	meta["lastUpdated"] = FormatInstant(lastUpdated)
	// Extensions on the replaced primitives describe the old values.
	delete(meta, "_versionId")
	delete(meta, "_lastUpdated")
	doc["meta"] = meta
}
