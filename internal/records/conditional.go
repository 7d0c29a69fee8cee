package records

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
)

// Conditional interactions (FHIR R4 http 3.1.0.8, 3.1.0.4.2, 3.1.0.7.1,
// and conditional references in transactions, 3.1.0.11.2).
//
// Guarantee: a condition is searched with the ordinary search machinery
// (the caller must be allowed to search the type; identifying values are
// compared as blind indexes), and the set of matches it found is re-checked
// inside the write transaction as a store.Guard. If anything committed in
// between changed that set, the whole unit fails and is decided again
// from fresh reads. So two concurrent conditional creates of the same
// condition never both create, a conditional update never overwrites a
// resource that stopped matching, and a conditional reference is bound to
// the one resource that matched when the transaction committed.

// DefaultConditionalDeleteMax is how many resources one conditional delete
// may remove unless configured otherwise.
const DefaultConditionalDeleteMax = 100

// maxConditionLen bounds a condition's query string.
const maxConditionLen = 4096

// ParseCondition parses the query of a conditional URL (the part after
// Type?) for resource type typ. Conditions are parsed strictly: a
// parameter this server does not know, or does not support, is an error
// rather than ignored (ignoring it would widen what the condition
// matches), and result parameters (_count, _sort, _include, ...) are
// refused. Messages name parameters, never values.
func ParseCondition(typ, raw string) (*query.Query, error) {
	bad := func(msg string) error {
		return problem.New(problem.ErrInvalid, "invalid", "condition: "+msg)
	}
	if len(raw) > maxConditionLen {
		return nil, bad(fmt.Sprintf("longer than %d bytes", maxConditionLen))
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, bad("not a valid query string")
	}
	for k := range vals {
		switch k {
		case "_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_cursor", "_format", "_type":
			return nil, bad(k + " is not allowed in a condition")
		}
	}
	q, err := query.Parse(typ, vals, query.Options{Strict: true, DefaultCount: 2, MaxCount: 2, Supported: search.Supported})
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, bad(qe.Error())
		}
		return nil, bad("cannot be parsed")
	}
	if len(q.Clauses) == 0 {
		return nil, bad("at least one search parameter is required (an empty condition would match every resource)")
	}
	return q, nil
}

// SplitConditional splits "Type?query" (a conditional reference or a
// conditional request URL). ok is false when s is not of that form.
func SplitConditional(s string) (typ, raw string, ok bool) {
	typ, raw, found := strings.Cut(s, "?")
	if !found || !fhir.IsResourceType(typ) {
		return "", "", false
	}
	return typ, raw, true
}

// match runs a condition for the caller, returning at most limit matches
// and the guard that re-checks them at commit. Searching needs search
// permission on the type; a refusal is audited under rec.
func (r *Repo) match(ctx context.Context, q *query.Query, limit int, rec *audit.Record) ([]store.Hit, store.Guard, error) {
	if d := r.decideType(authz.Search, q.Type); !d.Allow {
		return nil, store.Guard{}, r.decide(authz.Search, r.record(rec.Action, q.Type))
	}
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return nil, store.Guard{}, err
	}
	sq, err := search.Plan(q, r.subj.Tenant, k, r.searchOptions(ctx, k))
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, store.Guard{}, problem.New(problem.ErrInvalid, "invalid", "condition: "+qe.Error())
		}
		return nil, store.Guard{}, err
	}
	sq.Types = []string{q.Type}
	sq.Order, sq.After, sq.Limit = nil, nil, limit
	// A condition sees what a search by the caller sees: a conditional
	// delete or update never reaches, and a conditional create never
	// answers with, a record outside the caller's care or consent.
	where, args, err := r.restriction(ctx, sq.Types, k)
	if err != nil {
		return nil, store.Guard{}, err
	}
	if where != "" {
		sq.Where = append(sq.Where, where)
		sq.Args = append(sq.Args, args...)
	}
	hits, err := r.s.st.Search(ctx, *sq)
	if err != nil {
		return nil, store.Guard{}, store.Problem(err)
	}
	g := store.Guard{Query: *sq}
	for _, h := range hits {
		g.Match = append(g.Match, store.Ref{Type: h.Type, ID: h.ID})
	}
	return hits, g, nil
}

// resolved is what the conditions of one transaction attempt found.
type resolved struct {
	guards []store.Guard
	// existing: conditional creates that matched one resource (no write).
	existing map[int]*store.Version
	// deletes: the resources a conditional delete removes.
	deletes map[int][]store.Ref
	// sameAs: conditional creates whose condition an earlier entry of
	// the same transaction already creates (by position of that entry).
	sameAs map[int]int
}

// resolveConditions evaluates the entries' own conditions (ifNoneExist,
// conditional update and delete URLs) and assigns every POST and PUT
// entry its id.
func (r *Repo) resolveConditions(ctx context.Context, order []*Entry) (*resolved, error) {
	out := &resolved{existing: map[int]*store.Version{}, deletes: map[int][]store.Ref{}, sameAs: map[int]int{}}
	creating := map[string]*Entry{} // condition -> the entry that creates its match
	for _, e := range order {
		rec := r.record(entryAuditAction(e.Method), e.Type)
		switch {
		case e.Method == http.MethodPost && e.ifNoneExist != nil && creating[e.ifNoneExist.Type+"?"+e.ifNoneExist.Self] != nil:
			// Two entries create "the" resource matching one condition:
			// the first creates it, the second is answered with it.
			first := creating[e.ifNoneExist.Type+"?"+e.ifNoneExist.Self]
			e.ID = first.ID
			out.sameAs[e.pos] = first.pos
		case e.Method == http.MethodPost && e.ifNoneExist != nil:
			hits, g, err := r.match(ctx, e.ifNoneExist, 2, rec)
			if err != nil {
				return nil, entryError(e, err)
			}
			switch len(hits) {
			case 0:
				e.ID = r.s.newID()
				out.guards = append(out.guards, g)
				creating[e.ifNoneExist.Type+"?"+e.ifNoneExist.Self] = e
			case 1:
				e.ID = hits[0].ID
				out.existing[e.pos] = &hits[0].Version
				out.guards = append(out.guards, g)
			default:
				return nil, entryError(e, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
					problem.New(problem.ErrPreconditionFailed, "duplicate", "the conditional create's condition matches more than one resource")))
			}
		case e.Method == http.MethodPost:
			e.ID = r.s.newID()
		case e.Method == http.MethodPut && e.cond != nil:
			hits, g, err := r.match(ctx, e.cond, 2, rec)
			if err != nil {
				return nil, entryError(e, err)
			}
			bodyID, _ := e.Resource.Doc["id"].(string)
			switch len(hits) {
			case 0:
				e.ID = bodyID
				if e.ID == "" {
					e.ID = r.s.newID()
				} else if !fhir.IsID(e.ID) {
					return nil, entryError(e, problem.At(problem.ErrInvalid, "invalid", e.Type+".id", "the resource id is not a valid FHIR id"))
				}
			case 1:
				if bodyID != "" && bodyID != hits[0].ID {
					return nil, entryError(e, r.refuse(rec, audit.OutcomeMinor, "invalid",
						problem.At(problem.ErrInvalid, "invalid", e.Type+".id", "the resource id does not match the id of the resource the condition matches")))
				}
				e.ID = hits[0].ID
			default:
				return nil, entryError(e, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
					problem.New(problem.ErrPreconditionFailed, "multiple-matches", "the conditional update's condition matches more than one resource")))
			}
			out.guards = append(out.guards, g)
		case e.Method == http.MethodPatch && e.cond != nil:
			hits, g, err := r.match(ctx, e.cond, 2, rec)
			if err != nil {
				return nil, entryError(e, err)
			}
			switch len(hits) {
			case 0:
				return nil, entryError(e, r.refuse(rec, audit.OutcomeMinor, "not-found",
					problem.New(problem.ErrNotFound, "not-found", "the conditional patch's condition matches no resource")))
			case 1:
				e.ID = hits[0].ID
			default:
				return nil, entryError(e, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
					problem.New(problem.ErrPreconditionFailed, "multiple-matches", "the conditional patch's condition matches more than one resource")))
			}
			out.guards = append(out.guards, g)
		case e.Method == http.MethodDelete && e.cond != nil:
			limit := r.s.condDeleteMax
			hits, g, err := r.match(ctx, e.cond, limit+1, rec)
			if err != nil {
				return nil, entryError(e, err)
			}
			if len(hits) > limit {
				return nil, entryError(e, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
					problem.New(problem.ErrPreconditionFailed, "too-costly",
						fmt.Sprintf("the conditional delete's condition matches more than %d resources, the most one conditional delete may remove", limit))))
			}
			for _, h := range hits {
				out.deletes[e.pos] = append(out.deletes[e.pos], store.Ref{Type: h.Type, ID: h.ID})
			}
			sort.Slice(out.deletes[e.pos], func(i, j int) bool { return out.deletes[e.pos][i].ID < out.deletes[e.pos][j].ID })
			out.guards = append(out.guards, g)
		case e.Method == http.MethodPut:
			// e.ID comes from the URL.
		}
		if e.Resource != nil {
			e.Resource.ID = e.ID
		}
	}
	return out, nil
}

// resolveReferences rewrites every conditional reference (Type?query) in
// the entries' resources to the one resource it matches; none or several
// fail the transaction, naming the entry and the element.
func (r *Repo) resolveReferences(ctx context.Context, order []*Entry, res *resolved) error {
	cache := map[string]string{}
	for _, e := range order {
		if e.Resource == nil {
			continue
		}
		if _, exists := res.existing[e.pos]; exists {
			continue // nothing is written for it
		}
		if _, alias := res.sameAs[e.pos]; alias {
			continue
		}
		var failure error
		walkReferences(e.Resource.Doc, e.Type, func(path, s string) (string, bool) {
			if failure != nil {
				return "", false
			}
			typ, raw, ok := SplitConditional(s)
			if !ok {
				return "", false
			}
			if to, ok := cache[s]; ok {
				return to, true
			}
			q, err := ParseCondition(typ, raw)
			if err != nil {
				failure = entryError(e, problem.At(problem.ErrInvalid, "invalid", path, "conditional reference at "+path+": "+problemText(err)))
				return "", false
			}
			hits, g, err := r.match(ctx, q, 2, r.record(entryAuditAction(e.Method), e.Type))
			if err != nil {
				failure = entryError(e, err)
				return "", false
			}
			if len(hits) != 1 {
				what := "no resource"
				if len(hits) > 1 {
					what = "more than one resource"
				}
				rec := r.record(entryAuditAction(e.Method), e.Type)
				failure = entryError(e, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
					problem.New(problem.ErrPreconditionFailed, "not-found",
						fmt.Sprintf("the conditional reference at %s matches %s; it must match exactly one", path, what))))
				return "", false
			}
			to := typ + "/" + hits[0].ID
			cache[s] = to
			res.guards = append(res.guards, g)
			return to, true
		})
		if failure != nil {
			return failure
		}
	}
	return nil
}

func problemText(err error) string {
	var pe *problem.Error
	if errors.As(err, &pe) && len(pe.Issues) > 0 {
		return pe.Issues[0].Diagnostics
	}
	return "invalid"
}

// walkReferences calls fn on every Reference.reference string in v, with
// its element path (no values); fn returns a replacement when ok.
func walkReferences(v any, path string, fn func(path, s string) (string, bool)) {
	switch c := v.(type) {
	case map[string]any:
		for k, x := range c {
			if k == "reference" {
				if s, ok := x.(string); ok {
					if to, ok := fn(path+".reference", s); ok {
						c[k] = to
					}
					continue
				}
			}
			if k == "contained" {
				// Contained resources are their own roots.
				if arr, ok := x.([]any); ok {
					for _, item := range arr {
						if m, ok := item.(map[string]any); ok {
							rt, _ := m["resourceType"].(string)
							walkReferences(m, path+".contained."+rt, fn)
						}
					}
					continue
				}
			}
			walkReferences(x, path+"."+k, fn)
		}
	case []any:
		for _, x := range c {
			walkReferences(x, path, fn)
		}
	}
}

func cloneDoc(v any) any {
	switch c := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(c))
		for k, x := range c {
			m[k] = cloneDoc(x)
		}
		return m
	case []any:
		s := make([]any, len(c))
		for i, x := range c {
			s[i] = cloneDoc(x)
		}
		return s
	default:
		return v
	}
}

// ConditionalCreate is create with If-None-Exist: no match creates, one
// match returns it without writing (created false), several are
// ErrPreconditionFailed.
func (r *Repo) ConditionalCreate(ctx context.Context, res *fhir.Resource, condition string) (*Resource, bool, error) {
	e := Entry{Index: -1, Method: http.MethodPost, Type: res.Type, Resource: res}
	// The header is the query part; Type?query and ?query are accepted too.
	q, err := ParseCondition(res.Type, strings.TrimPrefix(strings.TrimPrefix(condition, res.Type), "?"))
	if err != nil {
		return nil, false, err
	}
	e.ifNoneExist = q
	out, err := r.Transaction(ctx, []Entry{e})
	if err != nil {
		return nil, false, err
	}
	return out[0].Resource, out[0].Status == http.StatusCreated, nil
}

// ConditionalUpdate is PUT Type?condition: no match creates (with the
// body's id, or a new one), one match is updated, several are
// ErrPreconditionFailed.
func (r *Repo) ConditionalUpdate(ctx context.Context, res *fhir.Resource, condition string, ifMatch *int64) (*Resource, bool, error) {
	q, err := ParseCondition(res.Type, condition)
	if err != nil {
		return nil, false, err
	}
	out, err := r.Transaction(ctx, []Entry{{Index: -1, Method: http.MethodPut, Type: res.Type, Resource: res, IfMatch: ifMatch, cond: q}})
	if err != nil {
		return nil, false, err
	}
	return out[0].Resource, out[0].Status == http.StatusCreated, nil
}

// ConditionalDelete deletes every resource of typ that matches condition,
// in one transaction, and returns how many it deleted. More matches than
// the configured cap are ErrPreconditionFailed and delete nothing.
func (r *Repo) ConditionalDelete(ctx context.Context, typ, condition string) (int, error) {
	q, err := ParseCondition(typ, condition)
	if err != nil {
		return 0, err
	}
	out, err := r.Transaction(ctx, []Entry{{Index: -1, Method: http.MethodDelete, Type: typ, cond: q}})
	if err != nil {
		return 0, err
	}
	return out[0].Deleted, nil
}
