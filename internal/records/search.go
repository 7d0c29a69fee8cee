package records

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
)

// Include bounds: _include and _revinclude add at most Limits.Includes
// (DefaultMaxIncluded) resources to a page, following :iterate at most
// maxIterate times; a page cut short says so (IncludesCut).
const (
	DefaultMaxIncluded = 1000
	maxIterate         = 3
)

// Search runs a parsed search: decide for every type it reads (searched
// and included), translate, query, open, and make the audit record naming
// every disclosed resource durable before returning. after is the decoded
// cursor of the previous page, or nil.
func (r *Repo) Search(ctx context.Context, q *query.Query, after []any) (*Page, error) {
	return r.search(ctx, q, Cursor{Keys: after}, "")
}

// SearchAt is Search from a cursor that may page backward.
func (r *Repo) SearchAt(ctx context.Context, q *query.Query, cur Cursor) (*Page, error) {
	return r.search(ctx, q, cur, "")
}

// Cursor is where a search page starts: just after Keys (the sort keys
// and rid of the last hit of the page before it), or, with Before, just
// before Keys (those of the first hit of the page after it). Before with
// no Keys is the last page; no Keys and not Before the first.
type Cursor struct {
	Keys   []any
	Before bool
	// Total is the total counted on an earlier page of the same search
	// by the same caller, carried so that each page need not count
	// again; TotalMAC binds it to both (Repo.totalMAC). A total whose
	// MAC does not check is counted again.
	Total    *int64
	TotalMAC int64
}

// first reports whether c is the first page's.
func (c Cursor) first() bool { return c.Keys == nil && !c.Before }

func hitKeys(h store.Hit) []any { return append(append([]any(nil), h.Keys...), h.RID) }

// SearchCompartment is Search within the compartment of Patient/pid
// (http.html 3.1.0.9.1, GET Patient/pid/Type?params and Patient/pid/*):
// only resources of the Patient compartment's types that refer to the
// patient through one of their compartment parameters, as the official
// CompartmentDefinition draws it (the same condition as $everything),
// and the patient itself. A type outside the compartment is invalid.
func (r *Repo) SearchCompartment(ctx context.Context, pid string, q *query.Query, after []any) (*Page, error) {
	return r.search(ctx, q, Cursor{Keys: after}, pid)
}

// SearchCompartmentAt is SearchCompartment from a cursor that may page
// backward.
func (r *Repo) SearchCompartmentAt(ctx context.Context, pid string, q *query.Query, cur Cursor) (*Page, error) {
	return r.search(ctx, q, cur, pid)
}

func (r *Repo) search(ctx context.Context, q *query.Query, cur Cursor, pid string) (*Page, error) {
	action, typ := "search-type", q.Type
	if typ == "" {
		action = "search-system"
	}
	rec := r.record(action, typ)
	types := q.Types
	if typ != "" {
		types = []string{typ}
	}
	if len(types) == 0 {
		types = fhir.ResourceTypes()
		if pid != "" {
			// Patient/pid/*: the compartment's types this caller may
			// search, as $everything leaves out what it may not read.
			types = slices.DeleteFunc(compartment.PatientTypes(), func(t string) bool { return !r.decideType(authz.Search, t).Allow })
			if len(types) == 0 {
				return &Page{}, r.commitAudit(rec)
			}
		}
	}
	if pid != "" {
		rec.Detail = "compartment"
		for _, t := range types {
			if t != "Patient" && !compartment.InPatientCompartment(t) {
				return nil, r.refuse(rec, audit.OutcomeMinor, "invalid-search", problem.New(problem.ErrInvalid, "invalid", t+" is not a type of the Patient compartment"))
			}
		}
	}
	for _, t := range types {
		if d := r.decideType(authz.Search, t); !d.Allow {
			rec.ResourceType = t
			return nil, r.decide(authz.Search, rec)
		}
	}
	rec.Purpose = r.decideType(authz.Search, types[0]).Purpose
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return nil, err
	}
	sq, err := search.Plan(q, r.subj.Tenant, k, r.searchOptions(ctx, k))
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, r.refuse(rec, audit.OutcomeMinor, "invalid-search", problem.New(problem.ErrInvalid, "invalid", qe.Error()))
		}
		return nil, err
	}
	sq.Types = types
	// Restrict in SQL to what the caller may see, so that paging and
	// _total count only that.
	res, err := r.restrict(ctx, types, k, "r")
	if err != nil {
		return nil, err
	}
	if slices.Contains(types, "Binary") {
		// A Binary's access is its security context's or its creator's
		// (readable), which no SQL restriction expresses: decide each.
		res.exact = false
	}
	if res.where != "" {
		sq.Where = append(sq.Where, res.where)
		sq.Args = append(sq.Args, res.args...)
	}
	if pid != "" {
		where, args := search.InCompartmentOf(types, compartmentPIDs, pid, r.subj.Tenant, k)
		sq.Where = append(sq.Where, where)
		sq.Args = append(sq.Args, args...)
	}
	page := &Page{}
	counted := *sq
	total := func() error {
		n, known, err := r.count(ctx, rec, counted, res)
		if err != nil {
			return err
		}
		if known {
			page.Total = &n
		} else {
			page.Notes = append(page.Notes, TotalTooCostly)
		}
		return nil
	}
	// _count=0 asks for the total alone (FHIR search.html#count), as
	// _summary=count does; _total=none leaves even that out.
	countOnly := q.Summary == "count" || q.Count <= 0
	if q.Summary == "count" || q.Total == "accurate" || q.Total == "estimate" || q.Count <= 0 && q.Total != "none" {
		if err := total(); err != nil {
			return nil, err
		}
	}
	if countOnly {
		return page, r.commitAudit(rec)
	}
	// One more than the page, to know whether another page follows (or,
	// reading backward, precedes).
	sq.Limit = q.Count + 1
	sq.After, sq.Backward = cur.Keys, cur.Before
	hits, err := r.s.st.Search(ctx, *sq)
	if err != nil {
		return nil, store.Problem(err)
	}
	more := len(hits) > q.Count
	if cur.Before {
		if more {
			hits = hits[1:] // the extra hit is the earliest
			page.Prev = &Cursor{Keys: hitKeys(hits[0]), Before: true}
		}
		if cur.Keys != nil && len(hits) > 0 {
			// The page this one was reached from follows it.
			page.NextKeys = hitKeys(hits[len(hits)-1])
		}
	} else {
		if more {
			hits = hits[:q.Count]
			page.NextKeys = hitKeys(hits[len(hits)-1])
		}
		switch {
		case cur.Keys == nil:
		case len(hits) > 0:
			page.Prev = &Cursor{Keys: hitKeys(hits[0]), Before: true}
		default:
			// Past the end: what comes before is the last page.
			page.Prev = &Cursor{Before: true}
		}
	}
	// One of several pages carries the total by default (search.html
	// #total: _total=none leaves it out), counted as _total=accurate.
	several := page.NextKeys != nil || page.Prev != nil || cur.Keys != nil
	if several && q.Total == "" && page.Total == nil {
		if cur.Total != nil && cur.TotalMAC == r.totalMAC(k, q, pid, *cur.Total) {
			// Counted on an earlier page: paging through n matches
			// counts them once, not once a page.
			page.Total = cur.Total
		} else if err := total(); err != nil {
			return nil, err
		}
		if page.Total != nil {
			page.TotalMAC = r.totalMAC(k, q, pid, *page.Total)
		}
	}
	// The only page: its total is what it shows, counted after the
	// per-resource decisions (a match they leave out is not counted).
	only := !several && page.Total == nil && q.Total != "none" && q.Summary != "count"
	vs := make([]store.Version, len(hits))
	for i := range hits {
		vs[i] = hits[i].Version
	}
	open := r.openAllowed
	if res.skipsDecision() {
		open = r.openKept
	}
	if err := open(ctx, rec, vs, &page.Resources); err != nil {
		return nil, err
	}
	if only {
		n := int64(len(page.Resources))
		page.Total = &n
		page.Notes = slices.DeleteFunc(page.Notes, func(s string) bool { return s == TotalTooCostly })
	}
	if len(q.Include) > 0 || len(q.RevInclude) > 0 {
		if err := r.includes(ctx, rec, q, k, page); err != nil {
			return nil, err
		}
	}
	return page, r.commitAudit(rec)
}

// totalMAC binds a carried total to the search (type, compartment and
// every parameter understood) and to everything about the caller that
// decides what it may see, under the tenant's index key: a total
// counted for one caller is never shown to another, nor for another
// search.
func (r *Repo) totalMAC(k search.Keyer, q *query.Query, pid string, n int64) int64 {
	s := r.subj
	return k.Key("search-total", fmt.Sprintf("%q %q %q %q %q %q %q %v %q %q %q %d",
		s.Tenant, s.ID, s.Role, strings.Join(s.Scopes, " "), s.Practitioner, s.Patient, s.Purpose, s.BreakGlass != "",
		q.Type, pid, q.Self, n))
}

// openAllowed opens versions into out and names them in rec, leaving out
// any the caller may not read (the SQL restriction already left out what
// it can; this is the resource-level decision on what remains: label- and
// data-specific consent provisions).
func (r *Repo) openAllowed(ctx context.Context, rec *audit.Record, vs []store.Version, out *[]Resource) error {
	r.s.precheck(ctx, vs)
	for i := range vs {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %w", problem.ErrUnavailable, err)
		}
		v := &vs[i]
		plain, ok, err := r.openDecided(ctx, rec, v)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		*out = append(*out, Resource{Type: v.Type, ID: v.ID, Version: v.Version, LastUpdated: v.LastUpdated, JSON: plain})
		rec.Entities = append(rec.Entities, ref(v.Type, v.ID, v.Version))
	}
	return nil
}

// openDecided opens v and decides whether the caller may read it.
func (r *Repo) openDecided(ctx context.Context, rec *audit.Record, v *store.Version) ([]byte, bool, error) {
	plain, err := r.open(ctx, v)
	if err != nil {
		return nil, false, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
	}
	doc, err := fhir.Parse(plain)
	if err != nil {
		return nil, false, fmt.Errorf("stored %s/%s does not parse: %w", v.Type, v.ID, err)
	}
	return plain, r.readable(ctx, rec, v.Type, v.ID, doc.Doc), nil
}

// openKept opens versions into out and names them in rec, for a search
// whose restriction is exact: the SQL kept only what the caller may see.
func (r *Repo) openKept(ctx context.Context, rec *audit.Record, vs []store.Version, out *[]Resource) error {
	r.s.precheck(ctx, vs)
	for i := range vs {
		v := &vs[i]
		plain, err := r.open(ctx, v)
		if err != nil {
			return r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
		}
		*out = append(*out, Resource{Type: v.Type, ID: v.ID, Version: v.Version, LastUpdated: v.LastUpdated, JSON: plain})
		rec.Entities = append(rec.Entities, ref(v.Type, v.ID, v.Version))
		notePatients(rec, patientsOf(v.Type, v.ID, plain))
	}
	return nil
}

// DefaultMaxDecidedCount bounds how many matches a count decides one by
// one (Options.MaxDecidedCount): those in the compartments of patients
// whose consents decide per resource, or all of them when the restriction
// is not exact. They are read and decided decideChunk at a time.
const DefaultMaxDecidedCount = 100000

var decideChunk = 1000 // a variable for the test of chunking

// TotalTooCostly is the note of a search whose total was left out.
const TotalTooCostly = "the total is left out: counting what this caller may see would decide too many matches one by one (WARD_SEARCH_MAX_DECIDED); narrow the search"

// count counts the matches of sq the caller would be shown. Under an exact
// restriction SQL counts them, except in the compartments of partial
// patients, whose matches are decided one by one. known is false when
// more than the bound would have to be decided: a count of what the
// caller may not see is never given in its place.
func (r *Repo) count(ctx context.Context, rec *audit.Record, sq store.SearchQuery, res restricted) (n int64, known bool, err error) {
	if res.skipsDecision() {
		n, err := r.s.st.Count(ctx, sq)
		if err != nil {
			return 0, false, store.Problem(err)
		}
		return n, true, nil
	}
	var base int64
	decided := sq
	if res.exact {
		outside := sq
		outside.Where = append(slices.Clip(sq.Where), search.Not(res.partial))
		outside.Args = append(slices.Clip(sq.Args), res.partialArgs...)
		n, err := r.s.st.Count(ctx, outside)
		if err != nil {
			return 0, false, store.Problem(err)
		}
		base = n
		decided.Where = append(slices.Clip(sq.Where), search.Paren(res.partial))
		decided.Args = append(slices.Clip(sq.Args), res.partialArgs...)
	}
	// In rid order, a chunk at a time, deciding as the page would; a
	// break-the-glass override counted marks the record as an emergency,
	// though no resource is disclosed.
	decided.Order, decided.After, decided.Limit = nil, nil, decideChunk
	seen := 0
	for {
		hits, err := r.s.st.Search(ctx, decided)
		if err != nil {
			return 0, false, store.Problem(err)
		}
		if seen += len(hits); seen > r.s.maxDecided {
			return 0, false, nil
		}
		for i := range hits {
			_, ok, err := r.openDecided(ctx, rec, &hits[i].Version)
			if err != nil {
				return 0, false, err
			}
			if ok {
				base++
			}
		}
		if len(hits) < decideChunk {
			return base, true, nil
		}
		decided.After = []any{hits[len(hits)-1].RID}
	}
}

// includes adds _include and _revinclude resources. A type the caller may
// not read is left out rather than failing the search: the match itself
// was allowed.
func (r *Repo) includes(ctx context.Context, rec *audit.Record, q *query.Query, k search.Keyer, page *Page) error {
	seen := map[store.Ref]bool{}
	for _, res := range page.Resources {
		seen[store.Ref{Type: res.Type, ID: res.ID}] = true
	}
	allowed := func(t string) bool {
		return r.decideType(authz.Read, t).Allow
	}
	maxIncluded := r.s.limits.Includes
	cut := false
	frontier := page.Resources
	for round := 0; round <= maxIterate && len(frontier) > 0; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if cut {
			// Never a page with some of its includes quietly missing:
			// the search fails, naming the limit (the resources opened
			// so far were touched, and stay named in the record).
			return r.refuse(rec, audit.OutcomeMinor, "too-many-includes",
				problem.New(problem.ErrInvalid, "too-costly", IncludesCut(maxIncluded, len(page.Resources))))
		}
		var next []Resource
		// _include: references found in the frontier's own documents.
		var want []store.Ref
		for _, inc := range q.Include {
			if round > 0 && !inc.Iterate {
				continue
			}
			for _, res := range frontier {
				if res.Type != inc.Source {
					continue
				}
				refs, err := referencesOf(res, inc)
				if err != nil {
					return err
				}
				for _, rf := range refs {
					if !seen[rf] && allowed(rf.Type) {
						seen[rf] = true
						want = append(want, rf)
					}
				}
			}
		}
		if room := maxIncluded - len(page.Included) - len(next); len(want) > room {
			want, cut = want[:max(room, 0)], true
		}
		if len(want) > 0 {
			vs, err := r.s.st.Refs(ctx, r.subj.Tenant, want)
			if err != nil {
				return store.Problem(err)
			}
			var got []Resource
			if err := r.openAllowed(ctx, rec, vs, &got); err != nil {
				return err
			}
			next = append(next, got...)
		}
		// _revinclude: resources whose reference parameter points at the
		// frontier.
		for _, inc := range q.RevInclude {
			if (round > 0 && !inc.Iterate) || inc.Param == nil || !allowed(inc.Source) {
				continue
			}
			var hs []any
			for _, res := range frontier {
				hs = append(hs, search.RefHash(k, res.Type, res.ID))
			}
			if len(hs) == 0 {
				continue
			}
			// At the limit still one row: is there anything left out?
			room := max(maxIncluded-len(page.Included)-len(next), 0)
			pids := search.RefPIDs(inc.Source, inc.Param)
			where := search.ReferringTo(pids, len(hs))
			args := hs
			hits, err := r.s.st.Search(ctx, store.SearchQuery{Tenant: r.subj.Tenant, Types: []string{inc.Source},
				Where: []string{where}, Args: args, Limit: room + 1})
			if err != nil {
				return store.Problem(err)
			}
			if len(hits) > room {
				hits, cut = hits[:room], true
			}
			var vs []store.Version
			for _, h := range hits {
				rf := store.Ref{Type: h.Type, ID: h.ID}
				if !seen[rf] {
					seen[rf] = true
					vs = append(vs, h.Version)
				}
			}
			var got []Resource
			if err := r.openAllowed(ctx, rec, vs, &got); err != nil {
				return err
			}
			next = append(next, got...)
		}
		page.Included = append(page.Included, next...)
		frontier = next
	}
	if cut {
		return r.refuse(rec, audit.OutcomeMinor, "too-many-includes",
			problem.New(problem.ErrInvalid, "too-costly", IncludesCut(maxIncluded, len(page.Resources))))
	}
	if len(frontier) > 0 && iterates(q) {
		// Stopped by the depth bound with resources still to follow.
		page.Notes = append(page.Notes, IterateCut)
	}
	return nil
}

// IterateCut is the note of a search page whose :iterate includes were
// followed to the depth bound with resources still to follow from.
var IterateCut = fmt.Sprintf("_include:iterate and _revinclude:iterate were followed %d levels deep; resources further along, if any, are not on this page", maxIterate+1)

func iterates(q *query.Query) bool {
	for _, inc := range q.Include {
		if inc.Iterate {
			return true
		}
	}
	for _, inc := range q.RevInclude {
		if inc.Iterate {
			return true
		}
	}
	return false
}

// IncludesCut is the error of a search page whose _include and
// _revinclude resources would be more than max, for a page of matches
// matches.
func IncludesCut(max, matches int) string {
	return fmt.Sprintf("_include and _revinclude would add more than %d resources to this page of %d matches (WARD_SEARCH_MAX_INCLUDES); rather than leave some out, the search is refused: page with a smaller _count, or narrow the includes", max, matches)
}

// referencesOf evaluates an _include's parameter on a resource (or every
// reference parameter of the type for *), keeping local references to the
// target type when one is given.
func referencesOf(res Resource, inc query.Include) ([]store.Ref, error) {
	doc, err := fhir.Parse(res.JSON)
	if err != nil {
		return nil, err
	}
	var ps []*params.Param
	if inc.Param != nil {
		ps = []*params.Param{inc.Param}
	} else {
		for _, p := range params.ForType(res.Type) {
			if p.Type == "reference" {
				ps = append(ps, p)
			}
		}
	}
	var out []store.Ref
	for _, p := range ps {
		refs, err := search.References(doc.Doc, p)
		if err != nil {
			return nil, err
		}
		for _, rf := range refs {
			if inc.Target == "" || rf.Type == inc.Target {
				out = append(out, rf)
			}
		}
	}
	return out, nil
}

// EncodeCursor and DecodeCursor turn a page's next keys into the opaque
// _cursor value and back. Values keep their SQL type (integer, real,
// text) so that the keyset comparison is exact.
func EncodeCursor(keys []any) (string, error) {
	enc, err := encodeKeys(keys)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(enc)
	return base64.RawURLEncoding.EncodeToString(b), err
}

func encodeKeys(keys []any) ([]any, error) {
	enc := make([]any, len(keys))
	for i, k := range keys {
		switch v := k.(type) {
		case int64:
			enc[i] = []any{"i", fmt.Sprint(v)}
		case float64:
			enc[i] = []any{"f", v}
		case string:
			enc[i] = []any{"s", v}
		case []byte:
			enc[i] = []any{"s", string(v)}
		default:
			return nil, fmt.Errorf("cursor: unsupported key %T", k)
		}
	}
	return enc, nil
}

// ErrCursor is returned for a cursor this server did not issue.
var ErrCursor = errors.New("not a cursor this server issued")

// DecodeCursor is the inverse of EncodeCursor.
func DecodeCursor(s string) ([]any, error) {
	raw, err := cursorPairs(s)
	if err != nil {
		return nil, err
	}
	return decodeKeys(raw)
}

func cursorPairs(s string) ([][2]any, error) {
	if len(s) > 4096 {
		return nil, ErrCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, ErrCursor
	}
	var raw [][2]any
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) == 0 || len(raw) > 18 {
		return nil, ErrCursor
	}
	return raw, nil
}

func decodeKeys(raw [][2]any) ([]any, error) {
	if len(raw) == 0 || len(raw) > 16 {
		return nil, ErrCursor
	}
	out := make([]any, len(raw))
	for i, kv := range raw {
		tag, _ := kv[0].(string)
		switch tag {
		case "i":
			str, _ := kv[1].(string)
			n, err := strconv.ParseInt(str, 10, 64)
			if err != nil {
				return nil, ErrCursor
			}
			out[i] = n
		case "f":
			f, ok := kv[1].(float64)
			if !ok {
				return nil, ErrCursor
			}
			out[i] = f
		case "s":
			str, ok := kv[1].(string)
			if !ok {
				return nil, ErrCursor
			}
			out[i] = str
		default:
			return nil, ErrCursor
		}
	}
	if _, ok := out[len(out)-1].(int64); !ok {
		return nil, ErrCursor // the last key is always the rid
	}
	return out, nil
}

// EncodePageCursor turns a page cursor into the opaque _cursor value: a
// forward one without a total as EncodeCursor; a backward one behind a
// "b" mark, a carried total behind a "t" mark.
func EncodePageCursor(c Cursor) (string, error) {
	var enc []any
	if c.Before {
		enc = append(enc, []any{"b", ""})
	}
	if c.Total != nil {
		enc = append(enc, []any{"t", strconv.FormatInt(*c.Total, 10) + "." + strconv.FormatInt(c.TotalMAC, 10)})
	}
	keys, err := encodeKeys(c.Keys)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(append(enc, keys...))
	return base64.RawURLEncoding.EncodeToString(b), err
}

// DecodePageCursor is the inverse of EncodePageCursor. It does not check
// a carried total: the search does (Cursor.TotalMAC).
func DecodePageCursor(s string) (Cursor, error) {
	raw, err := cursorPairs(s)
	if err != nil {
		return Cursor{}, err
	}
	var c Cursor
	if tag, _ := raw[0][0].(string); tag == "b" {
		if v, _ := raw[0][1].(string); v != "" {
			return Cursor{}, ErrCursor
		}
		c.Before, raw = true, raw[1:]
	}
	if len(raw) > 0 {
		if tag, _ := raw[0][0].(string); tag == "t" {
			v, _ := raw[0][1].(string)
			n, mac, ok := strings.Cut(v, ".")
			total, err1 := strconv.ParseInt(n, 10, 64)
			m, err2 := strconv.ParseInt(mac, 10, 64)
			if !ok || err1 != nil || err2 != nil || total < 0 {
				return Cursor{}, ErrCursor
			}
			c.Total, c.TotalMAC, raw = &total, m, raw[1:]
		}
	}
	if len(raw) == 0 {
		if !c.Before {
			return Cursor{}, ErrCursor // a forward cursor has keys
		}
		return c, nil
	}
	if c.Keys, err = decodeKeys(raw); err != nil {
		return Cursor{}, err
	}
	return c, nil
}
