package query

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/search/params"
)

// Guard rails: a search request is untrusted input, and every loop below is
// bounded by one of these.
const (
	maxClauses  = 100 // search parameter occurrences, ignored ones included (Options.MaxParams)
	maxIncludes = 100 // _include and _revinclude occurrences together
	maxValues   = 100 // comma-separated values in one occurrence (Options.MaxValues)
	maxHops     = 10
	maxHasDepth = 4
	maxKeyLen   = 200
	maxValueLen = 2000

	defaultCount = 20
	maxCount     = 1000
)

// unsupported are framework parameters Ward does not implement; like an
// unknown parameter they are an error only in strict mode.
var unsupported = map[string]bool{
	"_contained": true, "_containedType": true, "_query": true, "_text": true,
	"_content": true, "_filter": true,
}

// Parse parses the search query q for resource type rt ("" = system level;
// then _type selects types, and only common parameters (base
// Resource/DomainResource, or parameters shared by every listed type) are
// allowed).
func Parse(rt string, q url.Values, o Options) (*Query, error) {
	if rt != "" && !fhir.IsResourceType(rt) {
		return nil, &Error{Param: "_type", Msg: "the resource type is not an R4 resource type"}
	}
	p := &parser{rt: rt, opt: o, q: &Query{Type: rt}, self: make(map[string][]string)}
	if err := p.parse(q); err != nil {
		return nil, err
	}
	return p.q, nil
}

type parser struct {
	rt   string
	opt  Options
	q    *Query
	self map[string][]string // what was understood, for Query.Self

	clauses, includes int
	countSeen         bool
}

func (p *parser) parse(q url.Values) error {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	// Sorted so that errors, Clauses and Ignored do not depend on map order.
	slices.Sort(keys)
	for _, k := range keys {
		if len(k) > maxKeyLen {
			return &Error{Param: k, Msg: "a parameter name is longer than " + strconv.Itoa(maxKeyLen) + " characters"}
		}
		for _, v := range q[k] {
			if len(v) > maxValueLen {
				return &Error{Param: k, Msg: "value longer than " + strconv.Itoa(maxValueLen) + " characters"}
			}
		}
	}
	// _type decides which parameters exist at system level, so it goes first.
	if vs, ok := q["_type"]; ok {
		if err := p.types(vs); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if k == "_type" {
			continue
		}
		if err := p.key(k, q[k]); err != nil {
			return err
		}
	}
	if !p.countSeen {
		p.q.Count = p.defaultCount()
	}
	p.self["_count"] = []string{strconv.Itoa(p.q.Count)}
	p.q.Self = encodeSelf(p.self)
	return nil
}

func (p *parser) key(k string, vs []string) error {
	base := k
	if i := strings.IndexAny(k, ":."); i >= 0 {
		base = k[:i]
	}
	switch base {
	case "_format", "_pretty":
		return nil
	case "_include", "_revinclude":
		return p.include(k, base, vs)
	case "_count", "_sort", "_total", "_summary", "_elements", "_cursor":
		if k != base {
			return &Error{Param: k, Msg: base + " takes no modifier"}
		}
		if len(vs) > 1 {
			return &Error{Param: k, Msg: "may appear only once"}
		}
		return p.result(k, vs[0])
	}
	p.clauses += len(vs)
	if p.clauses > p.maxParams() {
		return p.tooManyParams(k)
	}
	if unsupported[base] {
		return p.skip(k, base+" is not supported")
	}
	var (
		c    *Clause
		skip string
		err  *Error
	)
	switch base {
	case "_list":
		return p.list(k, vs)
	case "_has":
		c, skip, err = p.resolveHas(k)
	default:
		c, skip, err = p.resolveChain(k)
	}
	if err != nil {
		return err
	}
	if skip != "" {
		return p.skip(k, skip)
	}
	// Each hop of a chain or _has is one more join per value: it costs
	// like one more parameter.
	hops := len(c.Chain)
	for h := c.Has; h != nil; h = h.Next {
		hops++
	}
	p.clauses += hops * len(vs)
	if p.clauses > p.maxParams() {
		return p.tooManyParams(k)
	}
	return p.clause(k, c, vs)
}

func (p *parser) maxParams() int {
	if p.opt.MaxParams > 0 {
		return p.opt.MaxParams
	}
	return maxClauses
}

func (p *parser) maxValues() int {
	if p.opt.MaxValues > 0 {
		return p.opt.MaxValues
	}
	return maxValues
}

func (p *parser) tooManyParams(k string) *Error {
	return &Error{Param: k, Msg: "too many search parameters (at most " + strconv.Itoa(p.maxParams()) +
		", each hop of a chain or _has counting as one more; " + SettingParams + ")"}
}

func (p *parser) tooManyValues(k, what string) *Error {
	return &Error{Param: k, Msg: "too many " + what + " (at most " + strconv.Itoa(p.maxValues()) + "; " + SettingValues + ")"}
}

// skip handles a parameter Ward cannot honour: an error if the client asked
// for strict handling, else noted so the response can say what was left out.
func (p *parser) skip(k, msg string) error {
	if p.opt.Strict {
		return &Error{Param: k, Msg: msg}
	}
	p.q.Ignored = append(p.q.Ignored, k)
	return nil
}

func (p *parser) clause(k string, c *Clause, vs []string) error {
	pr := c.Param
	if pr.Type == "special" && pr.Code == "near" {
		return p.skip(k, NearUnsupported)
	}
	if unsupported[pr.Code] || pr.Type == "special" {
		return p.skip(k, pr.Code+" is not supported")
	}
	if bad, unsup := checkModifier(pr, c.Modifier); bad != "" {
		return &Error{Param: k, Msg: bad}
	} else if unsup {
		return p.skip(k, "modifier :"+c.Modifier+" is not supported (it needs terminology services)")
	}
	if s := p.opt.Supported; s != nil {
		ok := s(pr, c.Modifier)
		for _, h := range c.Chain {
			ok = ok && s(h.Param, h.Type)
		}
		for h := c.Has; h != nil; h = h.Next {
			ok = ok && s(h.Ref, "")
		}
		if !ok {
			return p.skip(k, "this search parameter (or a parameter of its chain) is not supported")
		}
	}
	for _, v := range vs {
		cl := *c
		cl.Chain = slices.Clone(c.Chain)
		if c.Modifier == "missing" {
			if v != "true" && v != "false" {
				return &Error{Param: k, Msg: ":missing takes true or false"}
			}
			b := v == "true"
			cl.Missing = &b
		} else {
			pieces := splitEscaped(v, ',')
			if len(pieces) > p.maxValues() {
				return p.tooManyValues(k, "values")
			}
			cl.Values = make([]Value, 0, len(pieces))
			for _, piece := range pieces {
				val, msg := parseValue(pr, c.Modifier, piece)
				if msg != "" {
					return &Error{Param: k, Msg: msg}
				}
				cl.Values = append(cl.Values, val)
			}
		}
		p.q.Clauses = append(p.q.Clauses, cl)
		p.self[k] = append(p.self[k], v)
	}
	return nil
}

// lookupScope finds code among the parameters of the searched scope: the
// type, or at system level the common parameters or those every _type has.
// At system level with several types the definitions differ per type (they
// share a code and a type); the first listed type's is returned and defs has
// one per type.
func (p *parser) lookupScope(code string) (defs []*params.Param) {
	if p.rt != "" {
		if d, ok := params.Lookup(p.rt, code); ok {
			return []*params.Param{d}
		}
		return nil
	}
	if len(p.q.Types) == 0 {
		if d, ok := commonParams()[code]; ok {
			return []*params.Param{d}
		}
		return nil
	}
	for _, t := range p.q.Types {
		d, ok := params.Lookup(t, code)
		if !ok || len(defs) > 0 && d.Type != defs[0].Type {
			return nil
		}
		defs = append(defs, d)
	}
	return defs
}

func (p *parser) scopeName() string {
	if p.rt != "" {
		return p.rt
	}
	if len(p.q.Types) > 0 {
		return strings.Join(p.q.Types, ",")
	}
	return "a system-level search"
}

var commonParams = sync.OnceValue(func() map[string]*params.Param {
	m := make(map[string]*params.Param)
	for _, p := range params.All() {
		if slices.Contains(p.Base, "Resource") || slices.Contains(p.Base, "DomainResource") {
			m[p.Code] = p
		}
	}
	return m
})

// resolveChain resolves name[:modifier] and chains ref[:Type].….name[:modifier].
// A non-empty skip means the first parameter is unknown; anything wrong
// further along is an error, since the client evidently meant a chain.
func (p *parser) resolveChain(k string) (c *Clause, skip string, err *Error) {
	segs := strings.Split(k, ".")
	if len(segs)-1 > maxHops {
		return nil, "", &Error{Param: k, Msg: "chain longer than " + strconv.Itoa(maxHops) + " references"}
	}
	code, mod, _ := strings.Cut(segs[0], ":")
	defs := p.lookupScope(code)
	if defs == nil {
		return nil, "unknown search parameter for " + p.scopeName(), nil
	}
	c = &Clause{}
	for i := 0; i < len(segs)-1; i++ {
		for _, d := range defs {
			if d.Type != "reference" {
				return nil, "", &Error{Param: k, Msg: code + " is not a reference parameter, so it cannot be chained"}
			}
		}
		targets := unionTargets(defs)
		if mod != "" {
			if !fhir.IsResourceType(mod) || !slices.Contains(targets, mod) {
				return nil, "", &Error{Param: k, Msg: code + " cannot refer to the type after ':' (not an R4 resource type among its targets: " + strings.Join(targets, ", ") + ")"}
			}
			targets = []string{mod}
		}
		next, nextMod, _ := strings.Cut(segs[i+1], ":")
		if next == "" {
			return nil, "", &Error{Param: k, Msg: "empty parameter name in chain"}
		}
		var hits []string
		var hitDefs []*params.Param
		for _, t := range targets {
			if d, ok := params.Lookup(t, next); ok {
				hits = append(hits, t)
				hitDefs = append(hitDefs, d)
			}
		}
		hop := Hop{Param: defs[0]}
		switch {
		case len(hits) == 0:
			return nil, "", &Error{Param: k, Msg: "a name in the chain is not a search parameter of " + describeTargets(targets)}
		case len(targets) == 1 || len(hits) == 1:
			hop.Type = hits[0]
			hitDefs = hitDefs[:1]
		case len(hits) == len(targets) && sameType(hitDefs):
			// Every possible target has it, so the type need not be known.
		default:
			return nil, "", &Error{Param: k, Msg: code + " may refer to several types: specify the type with :Type"}
		}
		c.Chain = append(c.Chain, hop)
		defs, code, mod = hitDefs, next, nextMod
	}
	c.Param = defs[0]
	c.Modifier = mod
	return c, "", nil
}

func unionTargets(defs []*params.Param) []string {
	var out []string
	for _, d := range defs {
		if len(d.Target) == 0 {
			return fhir.ResourceTypes()
		}
		for _, t := range d.Target {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

func sameType(defs []*params.Param) bool {
	for _, d := range defs {
		if d.Type != defs[0].Type {
			return false
		}
	}
	return true
}

func describeTargets(ts []string) string {
	if len(ts) == 1 {
		return ts[0]
	}
	if len(ts) > 5 {
		return "any of its " + strconv.Itoa(len(ts)) + " target types"
	}
	return "any of " + strings.Join(ts, ", ")
}

// resolveHas resolves _has:Type:ref:[_has:…:]name[:modifier].
func (p *parser) resolveHas(k string) (*Clause, string, *Error) {
	rest, cur := k, p.rt
	var head, tail *Has
	for depth := 1; strings.HasPrefix(rest, "_has:"); depth++ {
		if depth > maxHasDepth {
			return nil, "", &Error{Param: k, Msg: "_has nested deeper than " + strconv.Itoa(maxHasDepth)}
		}
		parts := strings.SplitN(rest[len("_has:"):], ":", 3)
		if len(parts) < 3 {
			return nil, "", &Error{Param: k, Msg: "expected _has:Type:reference:parameter"}
		}
		t, refCode := parts[0], parts[1]
		if !fhir.IsResourceType(t) {
			return nil, "", &Error{Param: k, Msg: "the type in _has is not an R4 resource type"}
		}
		ref, ok := params.Lookup(t, refCode)
		if !ok || ref.Type != "reference" {
			return nil, "", &Error{Param: k, Msg: "the reference parameter in _has is not a reference parameter of " + t}
		}
		if len(ref.Target) > 0 && !p.canRefer(ref.Target, cur, depth) {
			return nil, "", &Error{Param: k, Msg: t + "." + refCode + " cannot refer to " + p.hasScope(cur, depth)}
		}
		h := &Has{Type: t, Ref: ref}
		if head == nil {
			head = h
		} else {
			tail.Next = h
		}
		tail, cur, rest = h, t, parts[2]
	}
	if strings.Contains(rest, ".") {
		return nil, "", &Error{Param: k, Msg: "chaining inside _has is not supported"}
	}
	code, mod, _ := strings.Cut(rest, ":")
	pr, ok := params.Lookup(cur, code)
	if !ok {
		return nil, "", &Error{Param: k, Msg: "the parameter at the end of _has is not a search parameter of " + cur}
	}
	return &Clause{Param: pr, Modifier: mod, Has: head}, "", nil
}

// NearUnsupported says why near (Location.position) is not searchable:
// a position can be a patient's home, an address by another name, and
// Ward stores no address in the clear (docs/security.md).
const NearUnsupported = "near is not supported: Location.position is stored only sealed, since a position can be a home address (docs/security.md); search by address-city, address-postalcode or partof"

// canRefer reports whether a _has reference parameter with targets may
// point at cur, the type searched at depth 1: at system level (cur "")
// at one of the _type types, or at any type without _type.
func (p *parser) canRefer(targets []string, cur string, depth int) bool {
	if cur != "" || depth > 1 {
		return slices.Contains(targets, cur)
	}
	if len(p.q.Types) == 0 {
		return true
	}
	for _, t := range p.q.Types {
		if slices.Contains(targets, t) {
			return true
		}
	}
	return false
}

func (p *parser) hasScope(cur string, depth int) string {
	if cur != "" || depth > 1 {
		return cur
	}
	return p.scopeName()
}

// list resolves _list=id (search.html#list): the resources a List names
// in its entries, which is _has:List:item:_id=id. Functional lists
// ($current-problems and the like) are not supported.
func (p *parser) list(k string, vs []string) error {
	if k != "_list" {
		return &Error{Param: k, Msg: "_list takes no modifier"}
	}
	for _, v := range vs {
		if strings.HasPrefix(v, "$") {
			return p.skip(k, "functional lists ($...) are not supported")
		}
		if !isID(v) {
			return &Error{Param: k, Msg: "expected the id of a List"}
		}
	}
	item, ok := params.Lookup("List", "item")
	id, ok2 := params.Lookup("List", "_id")
	if !ok || !ok2 {
		return p.skip(k, "_list is not supported")
	}
	p.clauses += len(vs) // the hop to the List
	if p.clauses > p.maxParams() {
		return p.tooManyParams(k)
	}
	for _, v := range vs {
		p.q.Clauses = append(p.q.Clauses, Clause{Param: id, Has: &Has{Type: "List", Ref: item},
			Values: []Value{{Raw: v, Code: v, Text: v}}})
		p.self[k] = append(p.self[k], v)
	}
	return nil
}

// checkModifier returns why mod is invalid for pr, or whether it is valid
// FHIR that Ward leaves alone.
func checkModifier(pr *params.Param, mod string) (bad string, unsupported bool) {
	if mod == "" || mod == "missing" {
		return "", false
	}
	ok := false
	switch pr.Type {
	case "string":
		ok = mod == "exact" || mod == "contains"
	case "token":
		switch {
		case pr.Code == "_id":
			ok = mod == "not"
		case mod == "in" || mod == "not-in" || mod == "above" || mod == "below":
			return "", true
		case mod == "of-type":
			ok = isIdentifierParam(pr)
		default:
			ok = mod == "not" || mod == "text"
		}
	case "reference":
		ok = mod == "identifier" || fhir.IsResourceType(mod) && (len(pr.Target) == 0 || slices.Contains(pr.Target, mod))
	case "uri":
		ok = mod == "below" || mod == "above"
	}
	if !ok {
		return "the modifier is not valid for " + pr.Code + " (a " + pr.Type + " parameter)", false
	}
	return "", false
}

// isIdentifierParam reports whether a token parameter searches Identifiers,
// the only place :of-type means anything.
func isIdentifierParam(pr *params.Param) bool {
	return strings.HasSuffix(pr.Code, "identifier")
}

func (p *parser) types(vs []string) error {
	if p.rt != "" {
		return p.skip("_type", "_type is only allowed in a system-level search")
	}
	if len(vs) > 1 {
		return &Error{Param: "_type", Msg: "may appear only once"}
	}
	names := strings.Split(vs[0], ",")
	if len(names) > p.maxValues() {
		return p.tooManyValues("_type", "types")
	}
	for _, t := range names {
		if !fhir.IsResourceType(t) {
			return &Error{Param: "_type", Msg: "a value is not an R4 resource type"}
		}
		if !slices.Contains(p.q.Types, t) {
			p.q.Types = append(p.q.Types, t)
		}
	}
	p.self["_type"] = vs
	return nil
}

func (p *parser) defaultCount() int {
	d := p.opt.DefaultCount
	if d <= 0 {
		d = defaultCount
	}
	return min(d, p.maxCount())
}

func (p *parser) maxCount() int {
	if p.opt.MaxCount > 0 {
		return p.opt.MaxCount
	}
	return maxCount
}

// result handles the single-valued result parameters.
func (p *parser) result(k, v string) error {
	bad := func(msg string) error { return &Error{Param: k, Msg: msg} }
	switch k {
	case "_count":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || strings.HasPrefix(v, "+") {
			return bad("expected a non-negative integer")
		}
		p.q.Count, p.countSeen = min(n, p.maxCount()), true
		return nil // Self always carries _count; parse adds it.
	case "_cursor":
		p.q.Cursor = v
		return nil // opaque and per page: not part of Self
	case "_total":
		switch v {
		case "none", "estimate", "accurate":
			p.q.Total = v
		default:
			return bad("expected none, estimate or accurate")
		}
	case "_summary":
		switch v {
		case "true", "false", "text", "data", "count":
			p.q.Summary = v
		default:
			return bad("expected true, false, text, data or count")
		}
	case "_elements":
		names := strings.Split(v, ",")
		if len(names) > p.maxValues() {
			return p.tooManyValues(k, "elements")
		}
		for _, n := range names {
			if !isElementPath(n) {
				return bad("a value is not an element name")
			}
		}
		p.q.Elements = names
	case "_sort":
		keys := strings.Split(v, ",")
		if len(keys) > p.maxValues() {
			return p.tooManyValues(k, "sort keys")
		}
		for _, s := range keys {
			sk := SortKey{Name: s}
			if name, ok := strings.CutPrefix(s, "-"); ok {
				sk.Name, sk.Descending = name, true
			}
			switch sk.Name {
			case "":
				return bad("empty sort key")
			case "_id", "_lastUpdated":
			default:
				defs := p.lookupScope(sk.Name)
				if defs == nil {
					return bad("a value is not a search parameter of " + p.scopeName())
				}
				switch defs[0].Type {
				case "string", "date", "number", "quantity", "token", "reference", "uri":
				default:
					return bad("cannot sort by " + sk.Name + " (a " + defs[0].Type + " parameter)")
				}
				sk.Param = defs[0]
			}
			p.q.Sort = append(p.q.Sort, sk)
		}
	}
	p.self[k] = []string{v}
	return nil
}

// isElementPath accepts an element name, optionally qualified by a type
// (Patient.name), without trying to know the element exists.
func isElementPath(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (p *parser) include(k, base string, vs []string) error {
	mod := k[len(base):]
	iterate := false
	switch mod {
	case "":
	case ":iterate":
		iterate = true
	default:
		return &Error{Param: k, Msg: base + " takes only the :iterate modifier"}
	}
	p.includes += len(vs)
	if p.includes > maxIncludes {
		return &Error{Param: k, Msg: "too many _include and _revinclude parameters (at most " + strconv.Itoa(maxIncludes) + ")"}
	}
	for _, v := range vs {
		inc, msg := p.parseInclude(base == "_include", iterate, v)
		if msg != "" {
			return &Error{Param: k, Msg: msg}
		}
		if base == "_include" {
			p.q.Include = append(p.q.Include, inc)
		} else {
			p.q.RevInclude = append(p.q.RevInclude, inc)
		}
		p.self[k] = append(p.self[k], v)
	}
	return nil
}

func (p *parser) parseInclude(forward, iterate bool, v string) (Include, string) {
	inc := Include{Iterate: iterate}
	if v == "*" {
		return inc, ""
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return inc, "expected Source:parameter or Source:parameter:Target"
	}
	inc.Source = parts[0]
	if !fhir.IsResourceType(inc.Source) {
		return inc, "the source type is not an R4 resource type"
	}
	if forward && !iterate {
		switch {
		case p.rt != "" && inc.Source != p.rt:
			return inc, "source type " + inc.Source + " is not the type searched (" + p.rt + "); use :iterate to include from included resources"
		case p.rt == "" && len(p.q.Types) > 0 && !slices.Contains(p.q.Types, inc.Source):
			return inc, "source type " + inc.Source + " is not among _type; use :iterate to include from included resources"
		}
	}
	if parts[1] == "*" && len(parts) == 2 {
		return inc, ""
	}
	ref, ok := params.Lookup(inc.Source, parts[1])
	if !ok || ref.Type != "reference" {
		return inc, "the parameter is not a reference parameter of " + inc.Source
	}
	inc.Param = ref
	if len(parts) == 3 {
		inc.Target = parts[2]
		if !fhir.IsResourceType(inc.Target) || len(ref.Target) > 0 && !slices.Contains(ref.Target, inc.Target) {
			return inc, inc.Source + "." + ref.Code + " cannot refer to the target type given"
		}
	}
	return inc, ""
}

// encodeSelf writes the understood parameters sorted by name, values in the
// order given. It escapes less than url.Values.Encode so that the link stays
// readable (":" "/" "$" "," stay as they are) while '&', '=', '+', ';', '%',
// '|' and the like are escaped as RFC 3986 and Go's query parser require.
func encodeSelf(m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range m[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			escapeTo(&b, k)
			b.WriteByte('=')
			escapeTo(&b, v)
		}
	}
	return b.String()
}

func escapeTo(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~:/@!$'()*,", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
}
