package records

import (
	"context"
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/fhirpatch"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// PatchFHIRPath applies a FHIRPath Patch (a parsed Parameters resource) to
// the current version and stores the result as a new version, validated
// like any write, exactly as Patch does for JSON Patch: read and update
// permission, If-Match, audit of refusals.
func (r *Repo) PatchFHIRPath(ctx context.Context, typ, id string, ops []fhirpatch.Op, ifMatch *int64) (*Resource, error) {
	return r.patchWith(ctx, typ, id, ifMatch, func(doc map[string]any) (map[string]any, error) {
		out, err := fhirpatch.Apply(doc, ops)
		if err != nil {
			class := problem.ErrUnprocessable
			if errors.Is(err, fhirpatch.ErrInvalid) {
				class = problem.ErrInvalid
			}
			return nil, problem.New(class, "processing", err.Error())
		}
		return out, nil
	})
}

// patchWith is the patch interaction with the patch format left to apply,
// which returns the patched document or a *problem.Error.
func (r *Repo) patchWith(ctx context.Context, typ, id string, ifMatch *int64, apply func(map[string]any) (map[string]any, error)) (*Resource, error) {
	rec := r.record("patch", typ)
	if err := r.decide(authz.Read, rec); err != nil {
		return nil, err
	}
	if err := r.decide(authz.Update, rec); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		v, err := r.s.st.Current(ctx, r.subj.Tenant, typ, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return nil, r.refuse(rec, audit.OutcomeMinor, "not-found",
				problem.New(problem.ErrNotFound, "not-found", fmt.Sprintf("%s/%s is not known", typ, id)))
		case err != nil:
			return nil, fmt.Errorf("%w: %v", problem.ErrUnavailable, err)
		}
		rec.Entities = []string{ref(typ, id, v.Version)}
		if v.Deleted {
			return nil, r.refuse(rec, audit.OutcomeMinor, "deleted",
				problem.New(problem.ErrGone, "deleted", fmt.Sprintf("%s/%s was deleted", typ, id)))
		}
		if ifMatch != nil && *ifMatch != v.Version {
			return nil, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
				problem.New(problem.ErrPreconditionFailed, "conflict", fmt.Sprintf("If-Match names version %d but the current version is %d", *ifMatch, v.Version)))
		}
		plain, err := r.open(v)
		if err != nil {
			return nil, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
		}
		cur, err := fhir.Parse(plain)
		if err != nil {
			return nil, fmt.Errorf("stored %s/%s does not parse: %w", typ, id, err)
		}
		doc, err := apply(cur.Doc)
		if err != nil {
			return nil, r.refuse(rec, audit.OutcomeMinor, "patch-failed", err)
		}
		if doc["resourceType"] != typ || doc["id"] != id {
			return nil, r.refuse(rec, audit.OutcomeMinor, "patch-failed", problem.New(problem.ErrUnprocessable, "processing",
				"the patched document must stay a "+typ+" with id "+id))
		}
		res := &fhir.Resource{Type: typ, ID: id, Doc: doc}
		if issues := r.s.val.Validate(res); hasErrors(issues) {
			return nil, r.refuse(rec, audit.OutcomeMinor, "invalid", &problem.Error{Class: problem.ErrUnprocessable, Issues: issues})
		}
		now := r.s.now().UTC()
		out, sealed, ix, err := r.seal(ctx, res, v.Version+1, now)
		if err != nil {
			return nil, err
		}
		rec.Time = now
		w := store.Write{Tenant: r.subj.Tenant, Type: typ, ID: id, Version: v.Version + 1, LastUpdated: now, Body: sealed, Index: ix}
		err = r.commitWrite(ctx, w, rec)
		if retry, err := lostRace(err, ifMatch, attempt); retry {
			rec = r.record("patch", typ)
			continue
		} else if err != nil {
			return nil, err
		}
		return &Resource{Type: typ, ID: id, Version: w.Version, LastUpdated: now, JSON: out}, nil
	}
}
