package records

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/store"
)

// Optional referential integrity (Options.ReferentialIntegrity,
// WARD_REFERENTIAL_INTEGRITY=on). A reference is local when it is
// relative ("Type/id", optionally "/_history/v") or absolute with this
// server's FHIR base (Repo.Based, or Options.BaseURL); contained ("#x"),
// urn: and other servers' references are not checked. A write is refused
// (409, the OperationOutcome naming the element, never the reference)
// when a local reference names no current resource (a deleted one is
// none); in a transaction a reference may name a resource the same
// transaction writes, and may not name one it deletes. A delete is
// refused when a current resource still refers to the resource, as the
// search index's reference rows say: only references that a search
// parameter indexes hold a resource in place.

// localRef is a local reference found in a resource: its element path
// and the resource it names.
type localRef struct {
	path string
	ref  store.Ref
}

// Based names the FHIR base URL the request came to, so that absolute
// references to this server count as local.
func (r *Repo) Based(base string) *Repo {
	r.base = strings.TrimSuffix(base, "/")
	return r
}

// localRefs lists the local references of doc, with their element paths
// (FHIRPath-like, "Observation.performer[1].reference").
func (r *Repo) localRefs(typ string, doc map[string]any) []localRef {
	var out []localRef
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if k == "reference" {
					if s, ok := c.(string); ok {
						if ref, ok := r.local(s); ok {
							out = append(out, localRef{path: path + ".reference", ref: ref})
						}
					}
					continue
				}
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(path+"["+strconv.Itoa(i)+"]", c)
			}
		}
	}
	walk(typ, doc)
	slices.SortFunc(out, func(a, b localRef) int { return strings.Compare(a.path, b.path) })
	return out
}

// local resolves a reference to the resource it names on this server.
func (r *Repo) local(s string) (store.Ref, bool) {
	for _, base := range []string{r.base, r.s.baseURL} {
		if base != "" {
			if rest, ok := strings.CutPrefix(s, base+"/"); ok {
				s = rest
				break
			}
		}
	}
	if strings.Contains(s, ":") || strings.ContainsAny(s, "?#") {
		return store.Ref{}, false
	}
	parts := strings.Split(s, "/")
	if (len(parts) != 2 && !(len(parts) == 4 && parts[2] == "_history")) || !fhir.IsResourceType(parts[0]) || !fhir.IsID(parts[1]) {
		return store.Ref{}, false
	}
	return store.Ref{Type: parts[0], ID: parts[1]}, true
}

// checkReferences refuses (audited, 409) a write of docs whose local
// references do not resolve: to a resource in written (the same
// transaction's writes, and the resource itself), or else a current one
// stored, unless it is in deleted (the same transaction's deletes).
func (r *Repo) checkReferences(ctx context.Context, rec *audit.Record, docs []*fhir.Resource, written, deleted map[store.Ref]bool) error {
	if !r.s.integrity {
		return nil
	}
	var refs []localRef
	var ask []store.Ref
	seen := map[store.Ref]bool{}
	for _, res := range docs {
		for _, l := range r.localRefs(res.Type, res.Doc) {
			if l.ref == (store.Ref{Type: res.Type, ID: res.ID}) || written[l.ref] && !deleted[l.ref] {
				continue
			}
			refs = append(refs, l)
			if !deleted[l.ref] && !seen[l.ref] {
				seen[l.ref] = true
				ask = append(ask, l.ref)
			}
		}
	}
	found := map[store.Ref]bool{}
	const page = 500
	for start := 0; start < len(ask); start += page {
		vs, err := r.s.st.Refs(ctx, r.subj.Tenant, ask[start:min(len(ask), start+page)])
		if err != nil {
			return store.Problem(err)
		}
		for _, v := range vs {
			found[store.Ref{Type: v.Type, ID: v.ID}] = true
		}
	}
	for _, l := range refs {
		if !found[l.ref] {
			return r.refuse(rec, audit.OutcomeMinor, "unresolved-reference", problem.At(problem.ErrConflict, "conflict", l.path,
				"referential integrity: "+l.path+" refers to a resource of this server that does not exist or was deleted"))
		}
	}
	return nil
}

// referencePIDs are the index parameters of every reference search
// parameter of every type.
var referencePIDs = sync.OnceValue(func() []int32 { return refPIDsOf(fhir.ResourceTypes()) })

// refPIDsOf are the index parameters of the reference search parameters
// of types, sorted and without repeats.
func refPIDsOf(types []string) []int32 {
	var out []int32
	for _, typ := range types {
		for _, p := range params.ForType(typ) {
			if p.Type == "reference" && p.ExpressionFor(typ) != "" {
				out = append(out, search.RefPIDs(typ, p)...)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkReferrers refuses (audited, 409) the delete of targets while a
// current resource other than those in except refers to one of them.
func (r *Repo) checkReferrers(ctx context.Context, rec *audit.Record, targets []store.Ref, except []store.Ref) error {
	if !r.s.integrity || len(targets) == 0 {
		return nil
	}
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return err
	}
	for _, t := range targets {
		q := store.SearchQuery{Tenant: r.subj.Tenant, Types: fhir.ResourceTypes(),
			Where: []string{search.ReferringTo(referencePIDs(), 1)}, Args: []any{search.RefHash(k, t.Type, t.ID)}}
		for _, x := range append([]store.Ref{t}, except...) {
			q.Where = append(q.Where, search.NotResource("r"))
			q.Args = append(q.Args, x.Type, x.ID)
		}
		ok, err := r.s.st.Exists(ctx, []store.SearchQuery{q})
		if err != nil {
			return store.Problem(err)
		}
		if ok[0] {
			return r.refuse(rec, audit.OutcomeMinor, "referenced", problem.New(problem.ErrConflict, "conflict",
				fmt.Sprintf("referential integrity: other resources refer to this %s; delete or change them first", t.Type)))
		}
	}
	return nil
}

// checkTransactionReferences checks a transaction's writes and deletes
// together: references may name what the transaction writes, not what it
// deletes, and a delete may leave references only from resources the
// transaction itself deletes or rewrites (whose new references are
// checked as writes).
func (r *Repo) checkTransactionReferences(ctx context.Context, order []*Entry, res *resolved) error {
	if !r.s.integrity {
		return nil
	}
	written, deleted := map[store.Ref]bool{}, map[store.Ref]bool{}
	var touched []store.Ref
	// targets are what a DELETE entry deletes: its id, or its condition's
	// matches.
	targets := func(e *Entry) []store.Ref {
		if e.ID != "" {
			return []store.Ref{{Type: e.Type, ID: e.ID}}
		}
		return res.deletes[e.pos]
	}
	for _, e := range order {
		ref := store.Ref{Type: e.Type, ID: e.ID}
		switch {
		case e.Method == http.MethodDelete:
			for _, t := range targets(e) {
				deleted[t] = true
				touched = append(touched, t)
			}
		case e.Method != http.MethodGet && e.ID != "":
			written[ref] = true
			touched = append(touched, ref)
		}
	}
	for _, e := range order {
		if e.Resource == nil || e.Method == http.MethodGet || e.Method == http.MethodDelete {
			continue
		}
		if _, exists := res.existing[e.pos]; exists {
			continue
		}
		if _, alias := res.sameAs[e.pos]; alias {
			continue
		}
		if err := r.checkReferences(ctx, r.record(entryAuditAction(e.Method), e.Type), []*fhir.Resource{e.Resource}, written, deleted); err != nil {
			return entryError(e, err)
		}
	}
	for _, e := range order {
		if e.Method == http.MethodDelete {
			if err := r.checkReferrers(ctx, r.record("delete", e.Type), targets(e), touched); err != nil {
				return entryError(e, err)
			}
		}
	}
	return nil
}
