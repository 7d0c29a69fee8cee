package search

import (
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/search/fhirpath"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/value"
	"github.com/wardhealth/ward/internal/store"
)

// Keyer computes one tenant's keyed hashes (seal.Blinder truncated to 64
// bits): the same kind and value give the same hash for the tenant, and
// without the tenant's key a hash reveals nothing but equality.
type Keyer interface {
	Key(kind, value string) int64
}

// Hash kinds. Each kind is a separate domain of the keyed hash, so a code
// never equals a name prefix that happens to be spelt the same.
const (
	kindToken  = "tok"
	kindSystem = "sys"
	kindRef    = "ref"
	kindURL    = "url"
	kindExact  = "exact"
	kindPrefix = "pfx"
	kindDate   = "date"
	kindUnit   = "unit"
	kindOfType = "oftype"
	kindComp   = "comp"
)

// Prefix bounds of blinded strings: a starts-with search needs at least
// MinPrefix characters (one letter would say too much about the name), and
// prefixes longer than MaxPrefix match on their first MaxPrefix characters.
const (
	MinPrefix = 2
	MaxPrefix = 32
)

// PID is the parameter number stored in index rows: a hash of
// "Type.code" (plus a variant suffix for modifier-specific rows), stable
// across versions of Ward and unique over the R4 table (tested).
func PID(resourceType, code string) int32 {
	h := fnv.New32a()
	h.Write([]byte(resourceType))
	h.Write([]byte{'.'})
	h.Write([]byte(code))
	return int32(h.Sum32() & 0x7fffffff)
}

// Variants of a parameter with their own rows.
const (
	variantExact      = ":exact"
	variantIdentifier = ":identifier"
	variantOfType     = ":of-type"
	variantText       = ":text"
)

// blindTypes hold identifying values: every string and birth or death date
// parameter of these types is stored only as blind indexes (issue #4).
var blindTypes = map[string]bool{"Patient": true, "Practitioner": true, "RelatedPerson": true, "Person": true}

// patientTypes are the R4 Patient compartment's resource types (from
// compartmentdefinition-patient.json, FHIR 4.0.1). Their string
// parameters may hold free text about a patient, so they are blinded too.
var patientTypes = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range strings.Fields(`Account AdverseEvent AllergyIntolerance Appointment AppointmentResponse
		AuditEvent Basic BodyStructure CarePlan CareTeam ChargeItem Claim ClaimResponse ClinicalImpression
		Communication CommunicationRequest Composition Condition Consent Coverage CoverageEligibilityRequest
		CoverageEligibilityResponse DetectedIssue DeviceRequest DeviceUseStatement DiagnosticReport
		DocumentManifest DocumentReference Encounter EnrollmentRequest EpisodeOfCare ExplanationOfBenefit
		FamilyMemberHistory Flag Goal Group ImagingStudy Immunization ImmunizationEvaluation
		ImmunizationRecommendation Invoice List MeasureReport Media MedicationAdministration
		MedicationDispense MedicationRequest MedicationStatement MolecularSequence NutritionOrder Observation
		Patient Person Procedure Provenance QuestionnaireResponse RelatedPerson RequestGroup ResearchSubject
		RiskAssessment Schedule ServiceRequest Specimen SupplyDelivery SupplyRequest Task VisionPrescription
		Practitioner PractitionerRole`) {
		m[t] = true
	}
	return m
}()

// Blinded reports whether a parameter's values are stored only as blind
// indexes: strings of patient data and people, and the birth and death
// dates of people.
func Blinded(resourceType string, p *params.Param) bool {
	switch p.Type {
	case "string":
		return patientTypes[resourceType]
	case "date":
		return blindTypes[resourceType] && (strings.Contains(p.Code, "birth") || strings.Contains(p.Code, "death"))
	}
	return false
}

// Options tune indexing and search.
type Options struct {
	// Leaky also stores identifying strings and dates in clear (normalized)
	// so that :contains and full-precision date ranges work on them. Off
	// by default; docs/security.md explains the trade-off.
	Leaky bool
	// Now is the clock for the birth-year cap (90+).
	Now func() time.Time
	// Restrict, when set, is asked by Plan for the condition that keeps
	// each resource row a chain hop or a _has subquery joins (alias, of
	// type typ) to what the caller may see, with its arguments; "" means
	// no restriction. Without it, chains and _has match over every
	// resource of the tenant. Its errors end the planning unchanged.
	Restrict func(typ, alias string) (string, []any, error)
	// ProbeByRID writes every per-candidate probe (a clause that does not
	// drive, a sort key) so that only the index on rid can answer it. For
	// a planner that may plan a statement once without its values and
	// reuse the plan (PostgreSQL's generic plans), which would otherwise
	// seek a probe through the value index and filter by rid.
	ProbeByRID bool
	// IDsByKey writes a driving _id clause as r.id IN (...), for a
	// planner that seeks it by the resources key itself (PostgreSQL);
	// without it, the clause lists the rids of the ids (see ids), which
	// SQLite's planner needs and which cost PostgreSQL a join more.
	IDsByKey bool
}

// Indexer computes index rows.
type Indexer struct {
	opts Options
	pool sync.Pool
}

// NewIndexer returns an Indexer.
func NewIndexer(o Options) *Indexer {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Indexer{opts: o}
}

// rows accumulates one resource's rows without duplicates.
type rows struct {
	ix    store.Index
	tok   map[store.TokenRow]struct{}
	date  map[store.DateRow]struct{}
	num   map[store.NumberRow]struct{}
	str   map[store.StringRow]struct{}
	pfx   map[store.PrefixRow]struct{}
	k     Keyer
	rt    string
	opts  *Options
	comps []fhirpath.Value
}

func (r *rows) token(p int32, s int32, h int64) {
	t := store.TokenRow{P: p, S: s, H: h}
	if _, ok := r.tok[t]; !ok {
		r.tok[t] = struct{}{}
		r.ix.Tokens = append(r.ix.Tokens, t)
	}
}

func (r *rows) dateRow(p int32, k int64, rg value.Range) {
	d := store.DateRow{P: p, K: k, Lo: rg.Lo, Hi: rg.Hi}
	if _, ok := r.date[d]; !ok {
		r.date[d] = struct{}{}
		r.ix.Dates = append(r.ix.Dates, d)
	}
}

func (r *rows) number(p int32, k int64, lo, hi float64, u int32) {
	n := store.NumberRow{P: p, K: k, Lo: lo, Hi: hi, U: u}
	if _, ok := r.num[n]; !ok {
		r.num[n] = struct{}{}
		r.ix.Numbers = append(r.ix.Numbers, n)
	}
}

func (r *rows) str1(p int32, v string) {
	if len(v) > 512 {
		v = truncate(v, 512)
	}
	s := store.StringRow{P: p, V: v}
	if _, ok := r.str[s]; !ok {
		r.str[s] = struct{}{}
		r.ix.Strings = append(r.ix.Strings, s)
	}
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// RefHash is the keyed hash a reference to Type/id carries.
func RefHash(k Keyer, typ, id string) int64 { return k.Key(kindRef, typ+"/"+id) }

// Index computes the search index of a resource (decoded as fhir.Parse
// decodes it) for one tenant.
func (ix *Indexer) Index(resource map[string]any, k Keyer) (*store.Index, error) {
	rt, _ := resource["resourceType"].(string)
	id, _ := resource["id"].(string)
	x, err := ExtractorFor(rt)
	if err != nil {
		return nil, err
	}
	r := &rows{k: k, rt: rt, opts: &ix.opts,
		tok: map[store.TokenRow]struct{}{}, date: map[store.DateRow]struct{}{},
		num: map[store.NumberRow]struct{}{}, str: map[store.StringRow]struct{}{}, pfx: map[store.PrefixRow]struct{}{}}
	r.ix.RefHash = RefHash(k, rt, id)
	err = x.Extract(resource, func(c *Compiled, vals []fhirpath.Value) error {
		p := c.Param
		if !Indexed(rt, p) || (r.blind(p) && partOf(rt, p) != nil) || contactOf(rt, p) != nil {
			return nil // a part: its parent's rows carry it
		}
		pid := PID(rt, p.Code)
		if p.Type == "composite" {
			return r.composite(resource, c, pid, vals)
		}
		for _, v := range vals {
			r.add(p, pid, v.Node, v.Type)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r.ix, nil
}

// Indexed reports whether Ward keeps rows for a parameter. _id and
// _lastUpdated are columns of the resource row; _text, _content, _query and
// _list have no expression; aliases (alias.go) use other parameters' rows;
// composites are indexed when they have two
// components, the first a token or reference (the R4 composites except
// MolecularSequence's three-part coordinates).
func Indexed(rt string, p *params.Param) bool {
	switch p.Code {
	case "_id", "_lastUpdated":
		return false
	}
	if p.ExpressionFor(rt) == "" || aliasOf(rt, p) != nil {
		return false
	}
	if p.Type == "composite" {
		if len(p.Components) != 2 {
			return false
		}
		first := byURL(p.Components[0].Definition)
		second := byURL(p.Components[1].Definition)
		return first != nil && second != nil && (first.Type == "token" || first.Type == "reference") &&
			second.Type != "composite" && second.Type != "special"
	}
	return p.Type != "special"
}

var urlIndex = sync.OnceValue(func() map[string]*params.Param {
	m := map[string]*params.Param{}
	for _, p := range params.All() {
		m[p.URL] = p
	}
	return m
})

// byURL finds a parameter by its canonical URL (composite components).
func byURL(url string) *params.Param { return urlIndex()[url] }

// add indexes one value of a non-composite parameter.
func (r *rows) add(p *params.Param, pid int32, node any, typ string) {
	switch p.Type {
	case "token":
		r.tokens(pid, p, node, func(s int32, h int64) { r.token(pid, s, h) })
	case "reference":
		r.reference(pid, p, node)
	case "string":
		r.strings(pid, p, node)
	case "date":
		r.dates(pid, p, node, typ)
	case "number", "quantity":
		r.numbers(pid, node)
	case "uri":
		if s, ok := node.(string); ok && s != "" {
			r.token(pid, 0, r.k.Key(kindURL, s))
			if !r.blind(p) {
				r.str1(pid, s)
			}
		}
	}
}

func (r *rows) blind(p *params.Param) bool { return !r.opts.Leaky && Blinded(r.rt, p) }

// tokens calls emit for each code of a token value: Coding, CodeableConcept,
// Identifier, ContactPoint, or a primitive (code, string, boolean, id, uri).
// It also writes the :text and :of-type rows.
func (r *rows) tokens(pid int32, p *params.Param, node any, emit func(s int32, h int64)) {
	r.tokensSide(pid, p, node, emit, true)
}

// tokensSide is tokens; side false skips the :text and :of-type rows (for
// composite components, which have none).
func (r *rows) tokensSide(pid int32, p *params.Param, node any, emit func(s int32, h int64), side bool) {
	switch n := node.(type) {
	case string:
		emit(0, r.k.Key(kindToken, n))
	case bool:
		emit(0, r.k.Key(kindToken, strconv.FormatBool(n)))
	case json.Number:
		emit(0, r.k.Key(kindToken, n.String()))
	case map[string]any:
		if cs, ok := n["coding"].([]any); ok || n["text"] != nil {
			for _, c := range cs {
				if cm, ok := c.(map[string]any); ok {
					r.coding(pid, cm, emit, side)
				}
			}
			if t, ok := n["text"].(string); ok && t != "" && side {
				r.text(pid, t)
			}
			return
		}
		if v, ok := n["value"].(string); ok { // Identifier or ContactPoint
			sys, _ := n["system"].(string)
			if tag := contactTag(sys); tag > 0 { // a ContactPoint: its system is a kind, not a namespace
				emit(tag, r.k.Key(kindToken, v))
				return
			}
			emit(r.system(sys), r.k.Key(kindToken, v))
			if t, ok := n["type"].(map[string]any); ok && side {
				cs, _ := t["coding"].([]any)
				for _, c := range cs {
					cm, _ := c.(map[string]any)
					ts, _ := cm["system"].(string)
					tc, _ := cm["code"].(string)
					if tc != "" {
						r.token(PID(r.rt, p.Code+variantOfType), 0, r.k.Key(kindOfType, ts+"|"+tc+"|"+v))
					}
				}
			}
			return
		}
		r.coding(pid, n, emit, side)
	}
}

func (r *rows) coding(pid int32, c map[string]any, emit func(s int32, h int64), side bool) {
	code, _ := c["code"].(string)
	if code != "" {
		sys, _ := c["system"].(string)
		emit(r.system(sys), r.k.Key(kindToken, code))
	}
	if d, ok := c["display"].(string); ok && d != "" && side {
		r.text(pid, d)
	}
}

// text writes the :text row of a display or text: the keyed hash of its
// normalized form, so :text matches it whole, ignoring case and accents.
func (r *rows) text(pid int32, t string) {
	if n := value.Normalize(t); n != "" {
		r.token(TextPID(pid), 0, r.k.Key(kindExact, n))
	}
}

// TextPID is the parameter number of a token parameter's :text rows
// (derived without a second hash per value).
func TextPID(pid int32) int32 { return pid ^ 0x5a5a5a5a }

// system is the 32-bit keyed hash of a token's system, 0 for none.
func (r *rows) system(sys string) int32 {
	if sys == "" {
		return 0
	}
	s := int32(r.k.Key(kindSystem, sys))
	if s == 0 {
		s = 1
	}
	return s
}

// SystemHash is system for the query side.
func SystemHash(k Keyer, sys string) int32 {
	r := rows{k: k}
	return r.system(sys)
}

func (r *rows) reference(pid int32, p *params.Param, node any) {
	switch n := node.(type) {
	case string: // canonical
		if n != "" {
			r.token(pid, 0, r.k.Key(kindURL, n))
			// url|version also matches a search by the url alone
			// (search.html: a canonical without a version matches every
			// version); url|version itself matches only that version.
			if u, _, ok := strings.Cut(n, "|"); ok && u != "" {
				r.token(pid, 0, r.k.Key(kindURL, u))
			}
		}
	case map[string]any:
		if ref, ok := n["reference"].(string); ok && ref != "" {
			if h, ok := RefValueHash(r.k, ref); ok {
				r.token(pid, 0, h)
			}
		}
		if id, ok := n["identifier"].(map[string]any); ok {
			r.tokens(pid, p, id, func(s int32, h int64) { r.token(PID(r.rt, p.Code+variantIdentifier), s, h) })
		}
	}
}

// RefValueHash hashes a reference as written in a resource: a relative
// Type/id (with or without _history) hashes as the target's RefHash; an
// absolute URL hashes as a URL, unless it ends in a Type/id, which then
// counts as local (Ward cannot tell its own base from another server's at
// write time, and references between servers of one deployment are the
// common case). Contained (#id) and conditional references are not
// indexed.
func RefValueHash(k Keyer, ref string) (int64, bool) {
	if strings.HasPrefix(ref, "#") || strings.Contains(ref, "?") {
		return 0, false
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if n := len(parts); n >= 2 && params.ForType(parts[n-2]) != nil && parts[n-1] != "" {
		return RefHash(k, parts[n-2], parts[n-1]), true
	}
	if strings.Contains(ref, ":") {
		return k.Key(kindURL, ref), true
	}
	return 0, false
}

// strings indexes a string parameter value: a string, or the string parts
// of a HumanName or Address.
func (r *rows) strings(pid int32, p *params.Param, node any) {
	switch n := node.(type) {
	case string:
		r.string1(pid, p, n, 0)
	case map[string]any:
		for i, key := range partKeys {
			tag := int32(i + 1)
			switch v := n[key].(type) {
			case string:
				r.string1(pid, p, v, tag)
			case []any:
				for _, e := range v {
					if s, ok := e.(string); ok {
						r.string1(pid, p, s, tag)
					}
				}
			}
		}
	}
}

// partKeys are the string parts of a HumanName and an Address; a part's
// tag (its position plus one) is stored with a blinded value, so that
// family or address-city is answered from the name or address rows.
var partKeys = []string{"family", "given", "prefix", "suffix", "text", "line", "city", "district", "state", "postalCode", "country"}

func (r *rows) string1(pid int32, p *params.Param, s string, tag int32) {
	if s == "" {
		return
	}
	n := value.Normalize(s)
	if r.blind(p) {
		r.prefixes(pid, tag, s, n)
		return
	}
	r.token(PID(r.rt, p.Code+variantExact), 0, r.k.Key(kindExact, s))
	if n != "" {
		r.str1(pid, n)
	}
}

// Blinded strings. A value is stored in at most two rows of search_prefix
// instead of one row per prefix length (issue #24):
//
//   - the short row, found by the keyed hash of the first MinPrefix
//     characters (or the whole value if shorter), holds the first 4 bytes
//     of the keyed hash of the exact value as written (:exact), then of
//     the prefixes of 3 to LongAnchor-1 characters;
//   - from LongAnchor characters on, the long row, found by the keyed hash
//     of the first LongAnchor characters, holds the first 3 bytes of the
//     keyed hash of each longer prefix up to MaxPrefix characters.
//
// A search of k characters seeks the row by its anchor prefix and, unless
// k is the anchor's length, compares the bytes of length k. The anchor
// hashes are kept to 48 bits (SQLite stores them in 6 bytes instead of 8;
// a false match needs a tenant to hold one of 2⁴⁸ values twice and the
// prefix bytes to agree too). Each stored
// byte string is a truncation of the keyed hash a prefix row of the old
// layout held, so a dump shows no more than before: which values share a
// prefix of each length, and a value's length (docs/security.md).
const (
	LongAnchor = 7
	shortFP    = 4 // bytes per exact and short-row prefix hash
	longFP     = 3 // bytes per long-row prefix hash
)

func (r *rows) prefixes(pid, tag int32, raw, n string) {
	var ends [MaxPrefix]int // ends[k-1]: byte length of the first k characters
	l := 0
	for i, c := range n {
		if l == MaxPrefix {
			break
		}
		ends[l] = i + utf8.RuneLen(c)
		l++
	}
	pre := func(k int) string { return n[:ends[k-1]] }
	short := n
	if l > MinPrefix {
		short = pre(MinPrefix)
	}
	var buf [shortFP * (LongAnchor - MinPrefix)]byte
	f := appendFP(buf[:0], r.k.Key(kindExact, raw), shortFP)
	for k := MinPrefix + 1; k <= min(l, LongAnchor-1); k++ {
		f = appendFP(f, r.k.Key(kindPrefix, pre(k)), shortFP)
	}
	r.prefixRow(store.PrefixRow{P: pid, T: tag, H: anchor(r.k, short), F: string(f)})
	if l < LongAnchor {
		return
	}
	var lbuf [longFP * (MaxPrefix - LongAnchor)]byte
	f = lbuf[:0]
	for k := LongAnchor + 1; k <= l; k++ {
		f = appendFP(f, r.k.Key(kindPrefix, pre(k)), longFP)
	}
	r.prefixRow(store.PrefixRow{P: pid, T: tag | LongRow, H: anchor(r.k, pre(LongAnchor)), F: string(f)})
}

// LongRow is added to a long row's part number (T), so that a short row,
// whose F starts with the exact value's bytes, is told from a long one.
const LongRow = 16

// ExactFPLen is the byte length of the exact value's hash at the start
// of a short row's F.
const ExactFPLen = shortFP

// ShortRowExact is the SQL expression of the exact value's bytes of a
// short search_prefix row x (T < LongRow).
func ShortRowExact(x string) string {
	return `substr(` + x + `.f, 1, ` + strconv.Itoa(shortFP) + `)`
}

// anchor is the 48-bit keyed hash a search_prefix row is found by.
func anchor(k Keyer, prefix string) int64 { return k.Key(kindPrefix, prefix) >> 16 }

func (r *rows) prefixRow(x store.PrefixRow) {
	if _, ok := r.pfx[x]; !ok {
		r.pfx[x] = struct{}{}
		r.ix.Prefixes = append(r.ix.Prefixes, x)
	}
}

// appendFP appends the first n bytes of a keyed hash.
func appendFP(b []byte, h int64, n int) []byte {
	var x [8]byte
	binary.BigEndian.PutUint64(x[:], uint64(h))
	return append(b, x[:n]...)
}

// PrefixCond is the condition on a search_prefix row (alias x) that a
// blinded string search of normalized n (MinPrefix to MaxPrefix
// characters) matches, and its arguments.
func PrefixCond(k Keyer, x, n string) (cond string, args []any, long bool) {
	var ends [MaxPrefix]int
	l := 0
	for i, c := range n {
		if l == MaxPrefix {
			break
		}
		ends[l] = i + utf8.RuneLen(c)
		l++
	}
	pre := func(k int) string { return n[:ends[k-1]] }
	switch {
	case l < LongAnchor:
		h := anchor(k, pre(min(l, MinPrefix)))
		if l <= MinPrefix {
			return x + `.h = ?`, []any{h}, false
		}
		off := 1 + shortFP*(l-MinPrefix)
		return x + `.h = ? AND substr(` + x + `.f, ` + strconv.Itoa(off) + `, ` + strconv.Itoa(shortFP) + `) = ?`,
			[]any{h, appendFP(nil, k.Key(kindPrefix, pre(l)), shortFP)}, false
	case l == LongAnchor:
		return x + `.h = ?`, []any{anchor(k, pre(l))}, true
	}
	off := 1 + longFP*(l-LongAnchor-1)
	return x + `.h = ? AND substr(` + x + `.f, ` + strconv.Itoa(off) + `, ` + strconv.Itoa(longFP) + `) = ?`,
		[]any{anchor(k, pre(LongAnchor)), appendFP(nil, k.Key(kindPrefix, pre(l)), longFP)}, true
}

// BlindDateCond is the condition on a search_prefix row (alias x) that
// a blinded date equal to s (YYYY, YYYY-MM or YYYY-MM-DD) matches.
func BlindDateCond(k Keyer, x, s string) (string, []any) {
	h := k.Key(kindDate, s[:4]) >> 16
	switch len(s) {
	case 4:
		return x + `.h = ?`, []any{h}
	case 7:
		return x + `.h = ? AND substr(` + x + `.f, 1, 4) = ?`, []any{h, appendFP(nil, k.Key(kindDate, s), shortFP)}
	}
	return x + `.h = ? AND substr(` + x + `.f, 5, 4) = ?`, []any{h, appendFP(nil, k.Key(kindDate, s), shortFP)}
}

// ExactCond is the condition on a search_prefix row (alias x) that a
// blinded string :exact search of raw matches, and its arguments.
func ExactCond(k Keyer, x, raw string) (string, []any) {
	n := value.Normalize(raw)
	short := n
	l := 0
	for i := range n {
		if l == MinPrefix {
			short = n[:i]
			break
		}
		l++
	}
	return x + `.h = ? AND substr(` + x + `.f, 1, ` + strconv.Itoa(shortFP) + `) = ?`,
		[]any{anchor(k, short), appendFP(nil, k.Key(kindExact, raw), shortFP)}
}

// dates indexes a date, dateTime, instant, Period or Timing.
func (r *rows) dates(pid int32, p *params.Param, node any, typ string) {
	each := func(rg value.Range, raw string) {
		if r.blind(p) {
			r.blindDate(pid, raw, rg)
			return
		}
		r.dateRow(pid, 0, rg)
	}
	switch n := node.(type) {
	case string:
		if rg, err := value.ParseDate(n); err == nil {
			each(rg, n)
		}
	case map[string]any:
		if ev, ok := n["event"].([]any); ok { // Timing
			for _, e := range ev {
				if s, ok := e.(string); ok {
					if rg, err := value.ParseDate(s); err == nil {
						each(rg, s)
					}
				}
			}
			return
		}
		rg, ok := periodRange(n)
		if ok {
			r.dateRow(pid, 0, rg)
		}
	}
}

// periodRange is the range of a Period: an open end is unbounded.
func periodRange(n map[string]any) (value.Range, bool) {
	s, _ := n["start"].(string)
	e, _ := n["end"].(string)
	if s == "" && e == "" {
		return value.Range{}, false
	}
	rg := value.Range{Lo: value.Min, Hi: value.Max}
	if s != "" {
		sr, err := value.ParseDate(s)
		if err != nil {
			return rg, false
		}
		rg.Lo = sr.Lo
	}
	if e != "" {
		er, err := value.ParseDate(e)
		if err != nil {
			return rg, false
		}
		rg.Hi = er.Hi
	}
	return rg, true
}

// blindDate stores an identifying date as blind hashes of its year,
// year-month and full date (equality at each precision), plus the year in
// clear, capped: a year more than 90 years ago is stored as "90 or more
// years ago" (HIPAA Safe Harbor), which still answers ge/le at year
// precision.
func (r *rows) blindDate(pid int32, raw string, rg value.Range) {
	// One search_prefix row: found by the year's hash, holding the first
	// bytes of the year-month's and the date's (see BlindDateCond).
	if len(raw) >= 4 {
		var buf [2 * shortFP]byte
		f := buf[:0]
		if len(raw) >= 7 {
			f = appendFP(f, r.k.Key(kindDate, raw[:7]), shortFP)
		}
		if len(raw) >= 10 {
			f = appendFP(f, r.k.Key(kindDate, raw[:10]), shortFP)
		}
		r.prefixRow(store.PrefixRow{P: pid, H: r.k.Key(kindDate, raw[:4]) >> 16, F: string(f)})
	}
	year := time.UnixMicro(rg.Lo).UTC().Year()
	r.dateRow(pid, 0, YearRange(year, r.opts.Now()))
}

// YearRange is the clear range stored for a blinded date's year: the
// whole year, or everything up to the end of the cap year when the year is
// 90 or more years before now.
func YearRange(year int, now time.Time) value.Range {
	capYear := now.UTC().Year() - 90
	lo := time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	if year <= capYear {
		year = capYear
		lo = value.Min
	}
	hi := time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro() - 1
	return value.Range{Lo: lo, Hi: hi, Precision: value.Year}
}

// numbers indexes a decimal, integer, Quantity (with its unit) or Range.
func (r *rows) numbers(pid int32, node any) {
	r.numberK(pid, 0, node)
}

func (r *rows) numberK(pid int32, k int64, node any) {
	switch n := node.(type) {
	case json.Number:
		if f, err := n.Float64(); err == nil && !math.IsInf(f, 0) {
			r.number(pid, k, f, f, 0)
		}
	case float64:
		r.number(pid, k, n, n, 0)
	case map[string]any:
		if v, ok := n["value"].(json.Number); ok {
			f, err := v.Float64()
			if err != nil || math.IsInf(f, 0) {
				return
			}
			r.number(pid, k, f, f, r.unit(n))
			return
		}
		lo, lok := n["low"].(map[string]any) // Range
		hi, hok := n["high"].(map[string]any)
		if lok || hok {
			l, h := math.Inf(-1), math.Inf(1)
			var u int32
			if lok {
				if v, ok := lo["value"].(json.Number); ok {
					l, _ = v.Float64()
				}
				u = r.unit(lo)
			}
			if hok {
				if v, ok := hi["value"].(json.Number); ok {
					h, _ = v.Float64()
				}
				if u == 0 {
					u = r.unit(hi)
				}
			}
			r.number(pid, k, l, h, u)
		}
	}
}

// unit is the hash of a Quantity's unit code (or, without a code, its
// unit text). The system is not stored: UCUM codes do not collide with
// other unit systems' codes in practice, and one row per quantity keeps
// the index small.
func (r *rows) unit(q map[string]any) int32 {
	c, _ := q["code"].(string)
	if c == "" {
		c, _ = q["unit"].(string)
	}
	return UnitHash(r.k, c)
}

// UnitHash is the stored hash of a unit code, 0 for none.
func UnitHash(k Keyer, code string) int32 {
	if code == "" {
		return 0
	}
	u := int32(k.Key(kindUnit, code))
	if u == 0 {
		u = 1
	}
	return u
}

// composite indexes a two-part composite: the first component (token or
// reference, by its code only) becomes the key k, and the second is
// stored as its own type would be, with k.
func (r *rows) composite(resource map[string]any, c *Compiled, pid int32, vals []fhirpath.Value) error {
	second := byURL(c.Param.Components[1].Definition)
	for _, v := range vals {
		var err error
		r.comps, err = c.Components[0].AppendEvalAt(r.comps[:0], resource, v)
		if err != nil {
			return err
		}
		var keys []int64
		for _, cv := range r.comps {
			r.tokensSide(pid, c.Param, cv.Node, func(_ int32, h int64) { keys = append(keys, h) }, false)
			if m, ok := cv.Node.(map[string]any); ok {
				if ref, ok := m["reference"].(string); ok {
					if h, ok := RefValueHash(r.k, ref); ok {
						keys = append(keys, h)
					}
				}
			}
		}
		if len(keys) == 0 {
			continue
		}
		seconds, err := c.Components[1].EvalAt(resource, v)
		if err != nil {
			return err
		}
		for _, k := range keys {
			for _, sv := range seconds {
				r.compositeSecond(pid, second, k, sv)
			}
		}
	}
	return nil
}

func (r *rows) compositeSecond(pid int32, second *params.Param, k int64, sv fhirpath.Value) {
	switch second.Type {
	case "token":
		r.tokensSide(pid, second, sv.Node, func(_ int32, h int64) { r.token(pid, 0, CompositeHash(k, h)) }, false)
	case "reference":
		if m, ok := sv.Node.(map[string]any); ok {
			if ref, ok := m["reference"].(string); ok {
				if h, ok := RefValueHash(r.k, ref); ok {
					r.token(pid, 0, CompositeHash(k, h))
				}
			}
		}
	case "string":
		if s, ok := sv.Node.(string); ok {
			if n := value.Normalize(s); n != "" {
				r.token(pid, 0, CompositeHash(k, r.k.Key(kindExact, n)))
			}
		}
	case "date":
		switch n := sv.Node.(type) {
		case string:
			if rg, err := value.ParseDate(n); err == nil {
				r.dateRow(pid, k, rg)
			}
		case map[string]any:
			if rg, ok := periodRange(n); ok {
				r.dateRow(pid, k, rg)
			}
		}
	case "number", "quantity":
		r.numberK(pid, k, sv.Node)
	}
}

// CompositeHash combines a composite's first-component hash with the
// second's (both keyed already, so a plain mix suffices).
func CompositeHash(k, h int64) int64 {
	x := uint64(k)*0x9E3779B97F4A7C15 ^ uint64(h)
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	return int64(x)
}

// TokenHash is the keyed hash a token code is stored under (any system),
// for conditions built outside the planner (access restrictions on
// security labels and categories).
func TokenHash(k Keyer, code string) int64 { return k.Key(kindToken, code) }
