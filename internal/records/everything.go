package records

import (
	"context"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/store"
)

// EverythingQuery selects Patient/$everything: one patient's compartment
// (PatientID set) or every patient's (PatientID empty, the type-level
// operation).
type EverythingQuery struct {
	PatientID string
	// Since keeps resources last updated at or after it (zero: all).
	Since time.Time
	// Types limits the result to these compartment types (empty: all).
	Types []string
	Count int
	// After is the decoded cursor of the previous page, or nil.
	After []any
}

// Everything returns the Patient compartment as the official
// CompartmentDefinition draws it (package compartment): the patient
// itself and every current resource of a compartment type that refers to
// the patient through one of the type's compartment parameters, in a
// stable order, paged. Access is decided per type: types the caller may
// not read are left out (the patient's own type must be readable, or the
// operation is refused). The audit record names every resource disclosed.
func (r *Repo) Everything(ctx context.Context, q EverythingQuery) (*Page, error) {
	action := "everything-instance"
	if q.PatientID == "" {
		action = "everything-type"
	}
	rec := r.record(action, "Patient")
	if err := r.decide(authz.Read, rec); err != nil {
		return nil, err
	}
	types := compartment.PatientTypes()
	if len(q.Types) > 0 {
		for _, t := range q.Types {
			if !compartment.InPatientCompartment(t) && t != "Patient" {
				return nil, r.refuse(rec, audit.OutcomeMinor, "invalid", problem.New(problem.ErrInvalid, "invalid",
					"_type: "+t+" is not a type of the Patient compartment"))
			}
		}
		types = slices.DeleteFunc(slices.Clone(types), func(t string) bool { return !slices.Contains(q.Types, t) })
	}
	types = slices.DeleteFunc(types, func(t string) bool {
		return !r.decideType(authz.Read, t).Allow
	})
	if q.PatientID != "" && r.hidesExistence("Patient") {
		// Answer as a read of the Patient does: an unknown, deleted or
		// unreadable patient alike is a refusal (no existence oracle).
		if err := r.guardInstance(ctx, rec, authz.Read, "Patient", q.PatientID, false); err != nil {
			return nil, err
		}
		rec.Entities = nil
	} else if q.PatientID != "" {
		v, err := r.instance(ctx, rec, "Patient", q.PatientID, 0)
		switch {
		case err != nil:
			return nil, err
		case v.Deleted:
			rec.Entities = []string{ref("Patient", q.PatientID, v.Version)}
			return nil, r.refuse(rec, audit.OutcomeMinor, "deleted",
				problem.New(problem.ErrGone, "deleted", "Patient/"+q.PatientID+" was deleted"))
		}
	}
	page := &Page{}
	if len(types) == 0 {
		return page, r.commitAudit(rec)
	}
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return nil, err
	}
	where, args := search.InCompartmentOf(types, compartmentPIDs, q.PatientID, r.subj.Tenant, k)
	sq := store.SearchQuery{Tenant: r.subj.Tenant, Types: types, Where: []string{where}, Args: args, Limit: q.Count + 1, After: q.After}
	// The same restriction as a search: only patients, labels and
	// categories the caller may see, in SQL, so that paging never leaks.
	res, err := r.restrict(ctx, types, k, "r")
	if err != nil {
		return nil, err
	}
	if res.where != "" {
		sq.Where = append(sq.Where, res.where)
		sq.Args = append(sq.Args, res.args...)
	}
	if !q.Since.IsZero() {
		sq.Where = append(sq.Where, "r.last_updated >= ?")
		sq.Args = append(sq.Args, q.Since.UnixMicro())
	}
	if q.After != nil && len(q.After) != 1 {
		return nil, r.refuse(rec, audit.OutcomeMinor, "invalid", problem.New(problem.ErrInvalid, "invalid", "_cursor: not a cursor of this operation"))
	}
	// Every page carries the total of the operation's result, counted
	// (and bounded) as a search's.
	counted := sq
	counted.Limit, counted.After = 0, nil
	n, known, err := r.count(ctx, rec, counted, res)
	if err != nil {
		return nil, err
	}
	if known {
		page.Total = &n
	} else {
		page.Notes = append(page.Notes, TotalTooCostly)
	}
	hits, err := r.s.st.Search(ctx, sq)
	if err != nil {
		return nil, store.Problem(err)
	}
	if len(hits) > q.Count {
		hits = hits[:max(q.Count, 0)]
		if len(hits) > 0 {
			page.NextKeys = []any{hits[len(hits)-1].RID}
		}
	}
	vs := make([]store.Version, len(hits))
	for i := range hits {
		vs[i] = hits[i].Version
	}
	if err := r.openAllowed(ctx, rec, vs, &page.Resources); err != nil {
		return nil, err
	}
	return page, r.commitAudit(rec)
}

// compartmentPIDs are the index parameters of typ's patient compartment
// references.
func compartmentPIDs(typ string) []int32 {
	var pids []int32
	for _, code := range compartment.PatientParams(typ) {
		if p, ok := params.Lookup(typ, code); ok {
			pids = append(pids, search.RefPIDs(typ, p)...)
		}
	}
	return pids
}
