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
