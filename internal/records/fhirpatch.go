package records

import (
	"context"

	"github.com/wardhealth/ward/internal/fhir/fhirpatch"
)

// PatchFHIRPath applies a FHIRPath Patch (a parsed Parameters resource) to
// the current version and stores the result as a new version, validated
// like any write, exactly as Patch does for JSON Patch: read and update
// permission, If-Match, audit of refusals.
func (r *Repo) PatchFHIRPath(ctx context.Context, typ, id string, ops []fhirpatch.Op, ifMatch *int64) (*Resource, error) {
	return r.patchWith(ctx, typ, id, ifMatch, r.patcher(patchDoc{path: ops}))
}
