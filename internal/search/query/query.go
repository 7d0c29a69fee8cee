// Package query parses the query string of a FHIR R4 search into a typed
// Query, checked against the R4 SearchParameter table: which parameters
// exist for the type, what their values mean, which modifiers and prefixes
// apply. It does no I/O and never sees the database; the SQL lives in the
// search package.
//
// Guarantees: Parse never panics (fuzzed); a malformed value (bad date,
// bad prefix, bad token, bad modifier for the type) is always an *Error
// naming the parameter; an unknown or unsupported parameter is an *Error in
// strict mode and is listed in Query.Ignored otherwise.
package query

import (
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/value"
)

// Query is a parsed search.
type Query struct {
	// Type is the resource type searched; "" for a system-level search,
	// where Types (from _type) lists the types, empty meaning all.
	Type  string
	Types []string
	// Clauses are ANDed; the values within one clause are ORed.
	Clauses []Clause
	// Include and RevInclude are _include and _revinclude.
	Include    []Include
	RevInclude []Include
	// Sort keys in order of precedence.
	Sort []SortKey
	// Count is _count (defaulted and capped per Options); 0 is a valid
	// count (only the total is wanted).
	Count int
	// Total is _total: "" (server's choice), "none", "estimate", "accurate".
	Total string
	// Summary is _summary: "", "true", "false", "text", "data", "count".
	Summary string
	// Elements is _elements (bare element names).
	Elements []string
	// Cursor is Ward's own opaque paging parameter (_cursor), passed back
	// untouched.
	Cursor string
	// Ignored names the parameters left out (unknown, unsupported), in the
	// order met; empty in strict mode, where they are errors instead.
	Ignored []string
	// Self is the canonical query string of what was understood (sorted,
	// without ignored parameters and without _cursor), for the self link.
	Self string
}

// Clause is one parameter occurrence (name[:modifier]=v1,v2,...).
type Clause struct {
	// Param is the searched parameter: for a chain, the last one (the
	// parameter of the final target type); for _has, the parameter on the
	// referring type.
	Param *params.Param
	// Modifier is the modifier as written ("exact", "contains", "not",
	// "text", "of-type", "missing", "below", "above", "identifier", or a
	// resource type for a reference), "" if none.
	Modifier string
	// Chain lists the reference hops before Param, outermost first:
	// subject:Patient.organization.name is two hops.
	Chain []Hop
	// Has is set for _has (reverse chaining), possibly nested.
	Has *Has
	// Values are ORed. For :missing, Missing is set and Values is empty.
	Values  []Value
	Missing *bool
}

// Hop is one step of a chain: the reference parameter followed and the
// type it must point to (from the :Type modifier, or the parameter's only
// target, or "" when several targets are possible).
//
// With Type "", the next parameter has the same code and type on every
// possible target, and the Param that follows (next Hop's or the Clause's)
// is the definition on the first of them: match it by Code. The same holds
// at system level with several _type types.
type Hop struct {
	Param *params.Param
	Type  string
}

// Has is _has:Type:ref:param — resources of Type whose ref parameter points
// at the searched resource. Nested _has chains go in Next; the innermost
// Has's clause is the Clause it belongs to.
type Has struct {
	Type string
	Ref  *params.Param
	Next *Has
}

// Value is one search value, decoded according to the parameter type.
type Value struct {
	// Raw is this value as written: prefix and backslash escapes included.
	Raw    string
	Prefix value.Prefix // date, number, quantity; EQ when none

	// Date: the range the value covers.
	Date value.Range
	// Number and quantity value.
	Number value.Number
	// Token: System/Code with HasSystem telling "code" (false) from
	// "|code" (true, System "") and "system|code". SystemOnly is
	// "system|". For :of-type, System|Code is the type and Text the
	// identifier value.
	System, Code string
	HasSystem    bool
	SystemOnly   bool
	// Quantity unit: value|system|code.
	UnitSystem, UnitCode string
	// Reference: a local reference Type/ID (Type is the :Type modifier or
	// "" for a bare id), or an absolute URL (URL set; Type/ID too when it
	// ends in Type/id, since it may name a local resource by full URL).
	// _id values are in both ID and Code.
	Type, ID, URL string
	// String, uri and :text values, as written (unescaped).
	Text string
	// Composite components, in the parameter's component order.
	Components []Value
}

// Include is _include=Source:param[:Target] (or _revinclude), with
// :iterate.
type Include struct {
	Source  string
	Param   *params.Param // nil for the wildcard "*"
	Target  string
	Iterate bool
}

// SortKey is one _sort key; Param nil means _id or _lastUpdated given in
// Name.
type SortKey struct {
	Name       string
	Param      *params.Param
	Descending bool
}

// Options bound a parse.
type Options struct {
	// Strict is Prefer: handling=strict.
	Strict bool
	// DefaultCount and MaxCount bound _count (defaults 20 and 1000).
	DefaultCount, MaxCount int
	// MaxParams bounds the parameters of one search, each hop of a chain
	// or _has counting as one more (default 100); MaxValues the
	// comma-separated values of one parameter, _type, _elements and
	// _sort (default 100).
	MaxParams, MaxValues int
	// Supported reports whether a parameter can be searched at all (the
	// search package's tables); nil means every parameter is.
	Supported func(p *params.Param, modifier string) bool
}

// The settings that configure MaxParams and MaxValues, named in errors.
const (
	SettingParams = "WARD_SEARCH_MAX_PARAMS"
	SettingValues = "WARD_SEARCH_MAX_VALUES"
)

// Error is a search request error: 400 with an OperationOutcome naming
// Param.
type Error struct {
	Param string
	Msg   string
}

// Error names the parameter only when every part of its name (codes,
// modifiers, types, separated by ':' and '.') is a name FHIR or Ward
// defines: a name the client made up may carry what it typed (a patient's
// name), so it is not echoed. Messages never quote values.
func (e *Error) Error() string { return "search parameter " + DisplayName(e.Param) + ": " + e.Msg }

// DisplayName returns name when each of its parts is a known search
// parameter code, modifier, resource type or framework parameter, else
// "(a name that is not a known search parameter)".
func DisplayName(name string) string {
	if name == "" || len(name) > maxKeyLen {
		return "(a name that is not a known search parameter)"
	}
	for part := range strings.FieldsFuncSeq(name, func(r rune) bool { return r == ':' || r == '.' }) {
		if !knownNames()[part] && !fhir.IsResourceType(part) {
			return "(a name that is not a known search parameter)"
		}
	}
	return name
}

var knownNames = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, p := range params.All() {
		m[p.Code] = true
	}
	for _, n := range []string{"_count", "_sort", "_total", "_summary", "_elements", "_cursor", "_include", "_revinclude",
		"_type", "_has", "_list", "_format", "_pretty", "iterate", "recurse",
		"missing", "exact", "contains", "text", "not", "above", "below", "in", "not-in", "of-type", "identifier", "type"} {
		m[n] = true
	}
	for n := range unsupported {
		m[n] = true
	}
	return m
})
