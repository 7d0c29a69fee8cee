package records

import (
	"context"
	"errors"

	"github.com/wardhealth/ward/internal/fhir/fhirpatch"
	"github.com/wardhealth/ward/internal/problem"
)

// PatchFHIRPath applies a FHIRPath Patch (a parsed Parameters resource) to
// the current version and stores the result as a new version, validated
// like any write, exactly as Patch does for JSON Patch: read and update
// permission, If-Match, audit of refusals.
func (r *Repo) PatchFHIRPath(ctx context.Context, typ, id string, ops []fhirpatch.Op, ifMatch *int64) (*Resource, error) {
	return r.patchWith(ctx, typ, id, ifMatch, func(doc map[string]any) (map[string]any, error) {
		out, err := fhirpatch.ApplyLimited(doc, ops, fhirpatch.Limits{Elements: r.s.limits.PatchElements, ArrayItems: r.s.limits.ArrayItems})
		if err != nil {
			class, code := problem.ErrUnprocessable, "processing"
			switch {
			case errors.Is(err, fhirpatch.ErrInvalid):
				class = problem.ErrInvalid
			case errors.Is(err, fhirpatch.ErrTooCostly):
				class, code = problem.ErrTooLarge, "too-costly"
			}
			return nil, problem.New(class, code, err.Error())
		}
		return out, nil
	})
}
