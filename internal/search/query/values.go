package query

import (
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/value"
)

// isEscapable lists what a backslash escapes in a search value. A backslash
// before anything else is an ordinary character, so a stray one (a Windows
// path, say) survives rather than failing the search.
func isEscapable(c byte) bool { return c == ',' || c == '|' || c == '$' || c == '\\' }

// splitEscaped splits s at sep where sep is not escaped, leaving the pieces
// escaped: the separators of inner levels (| inside $ inside ,) must still
// be told apart.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && isEscapable(s[i+1]):
			i++
		case s[i] == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && isEscapable(s[i+1]) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// parseValue decodes one OR-ed value raw (still escaped) of parameter pr. A
// non-empty msg says why it is malformed.
func parseValue(pr *params.Param, mod, raw string) (v Value, msg string) {
	v.Raw = raw
	if raw == "" {
		return v, "empty value"
	}
	if mod == "text" {
		v.Text = unescape(raw)
		return v, ""
	}
	switch pr.Type {
	case "number", "date", "quantity":
		return parseOrdered(pr.Type, v)
	case "string", "uri":
		v.Text = unescape(raw)
	case "token":
		switch {
		case pr.Code == "_id":
			v.Code = unescape(raw)
			v.ID = v.Code
			if !isID(v.ID) {
				return v, "a value is not a valid id (1-64 of A-Z a-z 0-9 - .)"
			}
		case mod == "of-type":
			return parseOfType(v)
		default:
			return parseToken(v)
		}
	case "reference":
		if mod == "identifier" {
			return parseToken(v)
		}
		return parseReference(pr, mod, v)
	case "composite":
		return parseComposite(pr, v)
	default:
		return v, "cannot search a " + pr.Type + " parameter"
	}
	return v, ""
}

func parseOrdered(typ string, v Value) (Value, string) {
	prefix, rest, err := value.SplitPrefix(v.Raw)
	if err != nil {
		return v, err.Error()
	}
	v.Prefix = prefix
	if rest == "" {
		return v, "no value after the prefix " + string(prefix)
	}
	switch typ {
	case "date":
		if v.Date, err = value.ParseDate(rest); err != nil {
			return v, "a value is not a valid date: " + dateWhy(err)
		}
	case "number":
		if v.Number, err = value.ParseNumber(rest); err != nil {
			return v, "a value is not a valid number"
		}
	case "quantity":
		parts := splitEscaped(rest, '|')
		switch len(parts) {
		case 1:
		case 3:
			v.UnitSystem, v.UnitCode = unescape(parts[1]), unescape(parts[2])
			if v.UnitCode == "" && v.UnitSystem != "" {
				return v, "a unit system needs a unit code (number|system|code)"
			}
		default:
			return v, "expected number, number|system|code or number||code"
		}
		if v.Number, err = value.ParseNumber(parts[0]); err != nil {
			return v, "a value is not a valid number (number, number|system|code or number||code)"
		}
	}
	return v, ""
}

// dateWhy keeps the reason ParseDate gives, which never quotes its input,
// and drops the generic lead-in the message already says.
func dateWhy(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '('); i >= 0 && strings.HasSuffix(s, ")") {
		return s[i+1 : len(s)-1]
	}
	return s
}

func parseToken(v Value) (Value, string) {
	parts := splitEscaped(v.Raw, '|')
	switch len(parts) {
	case 1:
		v.Code = unescape(parts[0])
	case 2:
		v.System, v.Code, v.HasSystem = unescape(parts[0]), unescape(parts[1]), true
		switch {
		case v.System == "" && v.Code == "":
			return v, "a token needs a system or a code, not just |"
		case v.Code == "":
			v.SystemOnly = true
		}
	default:
		return v, "a token is code, system|code, |code or system| (escape a literal | as \\|)"
	}
	return v, ""
}

func parseOfType(v Value) (Value, string) {
	parts := splitEscaped(v.Raw, '|')
	if len(parts) != 3 {
		return v, ":of-type takes system|code|value"
	}
	v.System, v.Code, v.Text, v.HasSystem = unescape(parts[0]), unescape(parts[1]), unescape(parts[2]), true
	if v.Code == "" || v.Text == "" {
		return v, ":of-type needs a type code and an identifier value (system|code|value)"
	}
	return v, ""
}

func isID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '-' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// parseReference reads Type/id, id, Type/id/_history/v or an absolute
// reference. mod is "" or a resource type (checkModifier has vetted it).
func parseReference(pr *params.Param, mod string, v Value) (Value, string) {
	s := unescape(v.Raw)
	allowed := func(t string) bool { return len(pr.Target) == 0 || slices.Contains(pr.Target, t) }
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "urn:") {
		v.URL = s
		// A URL ending in Type/id (or Type/id/_history/v) may be one of ours
		// under our base URL; the search package decides.
		segs := strings.Split(s, "/")
		if n := len(segs); n >= 7 && segs[n-2] == "_history" {
			segs = segs[:n-2]
		}
		if n := len(segs); n >= 5 && fhir.IsResourceType(segs[n-2]) && isID(segs[n-1]) {
			t := segs[n-2]
			if !allowed(t) || mod != "" && t != mod {
				return v, pr.Code + " cannot refer to " + t
			}
			v.Type, v.ID = t, segs[n-1]
		}
		return v, ""
	}
	segs := strings.Split(s, "/")
	switch len(segs) {
	case 1:
		v.Type, v.ID = mod, segs[0]
	case 4:
		if segs[2] != "_history" || !isID(segs[3]) {
			return v, "a value is not a reference: expected Type/id, id, Type/id/_history/version or an absolute URL"
		}
		fallthrough
	case 2:
		v.Type, v.ID = segs[0], segs[1]
		if !fhir.IsResourceType(v.Type) {
			return v, "the type of a reference value is not an R4 resource type"
		}
		if !allowed(v.Type) || mod != "" && v.Type != mod {
			return v, pr.Code + " cannot refer to " + v.Type
		}
	default:
		return v, "a value is not a reference: expected Type/id, id, Type/id/_history/version or an absolute URL"
	}
	if !isID(v.ID) {
		return v, "the id of a reference value is not a valid id (1-64 of A-Z a-z 0-9 - .)"
	}
	return v, ""
}

var paramByURL = sync.OnceValue(func() map[string]*params.Param {
	m := make(map[string]*params.Param)
	for _, p := range params.All() {
		m[p.URL] = p
	}
	return m
})

func parseComposite(pr *params.Param, v Value) (Value, string) {
	parts := splitEscaped(v.Raw, '$')
	if len(parts) != len(pr.Components) {
		return v, pr.Code + " takes " + strconv.Itoa(len(pr.Components)) + " $-separated components, not " + strconv.Itoa(len(parts))
	}
	v.Components = make([]Value, len(parts))
	for i, part := range parts {
		cp, ok := paramByURL()[pr.Components[i].Definition]
		if !ok || cp.Type == "composite" {
			// The table's tests guarantee every definition resolves; a
			// composite of composites would loop.
			return v, pr.Code + " has an unusable component definition"
		}
		c, msg := parseValue(cp, "", part)
		if msg != "" {
			return v, "component " + strconv.Itoa(i+1) + " (" + cp.Code + "): " + msg
		}
		v.Components[i] = c
	}
	return v, ""
}
