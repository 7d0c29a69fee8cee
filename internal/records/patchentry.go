package records

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/fhirpatch"
	"github.com/wardhealth/ward/internal/fhir/jsonpatch"
	"github.com/wardhealth/ward/internal/problem"
)

// patchDoc is a parsed patch in one of the two formats FHIR R4 allows:
// JSON Patch (RFC 6902) or FHIRPath Patch (a Parameters resource).
type patchDoc struct {
	json []jsonpatch.Op
	path []fhirpatch.Op
}

// patcher returns the function that applies p to a resource, within the
// configured patch limits; its errors are *problem.Error (400 for a
// malformed patch, 422 for one that does not apply, 413 over a limit).
func (r *Repo) patcher(p patchDoc) func(map[string]any) (map[string]any, error) {
	return func(doc map[string]any) (map[string]any, error) {
		var out any
		var err error
		var invalid, costly error
		if p.path != nil {
			invalid, costly = fhirpatch.ErrInvalid, fhirpatch.ErrTooCostly
			out, err = fhirpatch.ApplyLimited(doc, p.path, fhirpatch.Limits{Elements: r.s.limits.PatchElements, ArrayItems: r.s.limits.ArrayItems})
		} else {
			invalid, costly = jsonpatch.ErrInvalid, jsonpatch.ErrTooCostly
			out, err = jsonpatch.ApplyLimited(doc, p.json, jsonpatch.Limits{Elements: r.s.limits.PatchElements, ArrayItems: r.s.limits.ArrayItems})
		}
		if err != nil {
			class, code := problem.ErrUnprocessable, "processing"
			switch {
			case errors.Is(err, invalid):
				class = problem.ErrInvalid
			case errors.Is(err, costly):
				class, code = problem.ErrTooLarge, "too-costly"
			}
			return nil, problem.New(class, code, err.Error())
		}
		m, ok := out.(map[string]any)
		if !ok {
			return nil, problem.New(problem.ErrUnprocessable, "processing", "the patched document must stay a JSON object")
		}
		return m, nil
	}
}

// parsePatchEntry reads the patch a PATCH entry carries in
// entry.resource, as http.html 3.1.0.11 says: a Binary whose contentType
// is application/json-patch+json and whose data is the JSON Patch
// document, or a Parameters resource (FHIRPath Patch). maxOps bounds the
// operations (0: the patch packages' default).
func parsePatchEntry(i int, doc map[string]any, maxOps int) (*patchDoc, error) {
	at := func(path, msg string) error {
		return problem.At(problem.ErrInvalid, "invalid", fmt.Sprintf("Bundle.entry[%d].%s", i, path), msg)
	}
	big := func(path, msg string) error {
		return problem.At(problem.ErrTooLarge, "too-costly", fmt.Sprintf("Bundle.entry[%d].%s", i, path), msg)
	}
	switch rt, _ := doc["resourceType"].(string); rt {
	case "Parameters":
		ops, err := fhirpatch.ParseLimited(doc, maxOps)
		if errors.Is(err, fhirpatch.ErrTooCostly) {
			return nil, big("resource", err.Error())
		} else if err != nil {
			return nil, at("resource", "FHIRPath Patch: "+err.Error())
		}
		return &patchDoc{path: ops}, nil
	case "Binary":
		ct, _ := doc["contentType"].(string)
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json-patch+json" {
			return nil, at("resource.contentType", "a PATCH entry's Binary must have contentType application/json-patch+json")
		}
		data, _ := doc["data"].(string)
		raw, err := base64.StdEncoding.DecodeString(data)
		if err != nil || len(raw) == 0 {
			return nil, at("resource.data", "a PATCH entry's Binary.data must be the base64 of a JSON Patch document")
		}
		ops, err := jsonpatch.ParseLimited(raw, maxOps)
		if errors.Is(err, jsonpatch.ErrTooCostly) {
			return nil, big("resource.data", err.Error())
		} else if err != nil {
			return nil, at("resource.data", "JSON Patch: "+err.Error())
		}
		return &patchDoc{json: ops}, nil
	default:
		return nil, at("resource", "a PATCH entry's resource must be a Binary holding a JSON Patch (contentType application/json-patch+json) or a FHIRPath Patch Parameters resource")
	}
}

// applyPatches turns every PATCH entry of a transaction attempt into the
// write of its patched resource: the current version is read, decided
// (read and update, as a PATCH request is), checked against ifMatch and
// patched. The version it was patched from is kept (patchBase), so a
// change committed by someone else before the unit makes the attempt run
// again from fresh reads.
func (r *Repo) applyPatches(ctx context.Context, order []*Entry) error {
	writes := map[string]int{} // Type/id -> write entries on it
	for _, e := range order {
		if e.Method != http.MethodGet && e.ID != "" {
			writes[e.Type+"/"+e.ID]++
		}
	}
	for _, e := range order {
		if e.Method != http.MethodPatch {
			continue
		}
		if writes[e.Type+"/"+e.ID] > 1 {
			return entryError(e, problem.New(problem.ErrInvalid, "invalid", "another entry of the Bundle also changes the resource this PATCH entry patches"))
		}
		rec := r.record("patch", e.Type)
		v, err := r.instance(ctx, rec, e.Type, e.ID, 0)
		if err != nil {
			return entryError(e, err)
		}
		rec.Entities = []string{ref(e.Type, e.ID, v.Version)}
		if v.Deleted {
			if r.hidesExistence(e.Type) {
				return entryError(e, r.hidden(rec, "deleted"))
			}
			return entryError(e, r.refuse(rec, audit.OutcomeMinor, "deleted",
				problem.New(problem.ErrGone, "deleted", fmt.Sprintf("%s/%s was deleted", e.Type, e.ID))))
		}
		plain, err := r.decideVersion(ctx, authz.Update, rec, v)
		if err != nil {
			return entryError(e, err)
		}
		if e.IfMatch != nil && *e.IfMatch != v.Version {
			return entryError(e, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
				problem.New(problem.ErrPreconditionFailed, "conflict", fmt.Sprintf("If-Match names version %d but the current version is %d", *e.IfMatch, v.Version))))
		}
		cur, err := fhir.Parse(plain)
		if err != nil {
			return fmt.Errorf("stored %s/%s does not parse: %w", e.Type, e.ID, err)
		}
		doc, err := r.patcher(*e.patch)(cur.Doc)
		if err != nil {
			return entryError(e, r.refuse(rec, audit.OutcomeMinor, "patch-failed", err))
		}
		if doc["resourceType"] != e.Type || doc["id"] != e.ID {
			return entryError(e, r.refuse(rec, audit.OutcomeMinor, "patch-failed", problem.New(problem.ErrUnprocessable, "processing",
				"the patched document must stay a "+e.Type+" with id "+e.ID)))
		}
		e.Resource = &fhir.Resource{Type: e.Type, ID: e.ID, Doc: doc}
		e.patchBase = v.Version
	}
	return nil
}

// checkPatchBase fails a PATCH entry whose resource changed after it was
// patched: by another entry of the same Bundle (a conditional delete that
// matched it; FHIR forbids two entries on one resource), or by another
// writer (a conflict: the attempt is run again).
func checkPatchBase(e *Entry, cur int64, inUnit bool) error {
	if e.Method != http.MethodPatch || cur == e.patchBase {
		return nil
	}
	if inUnit {
		return entryError(e, problem.New(problem.ErrInvalid, "invalid", "another entry of the Bundle also changes the resource this PATCH entry patches"))
	}
	return fmt.Errorf("%w: %s/%s changed while patching", problem.ErrConflict, e.Type, e.ID)
}

// PatchDoc is a parsed patch document for ConditionalPatch.
type PatchDoc struct{ p patchDoc }

// JSONPatchDoc wraps JSON Patch operations.
func JSONPatchDoc(ops []jsonpatch.Op) PatchDoc { return PatchDoc{patchDoc{json: ops}} }

// FHIRPathPatchDoc wraps FHIRPath Patch operations.
func FHIRPathPatchDoc(ops []fhirpatch.Op) PatchDoc { return PatchDoc{patchDoc{path: ops}} }

// ConditionalPatch is PATCH Type?condition: the one resource the
// condition matches is patched (ifMatch, when set, is its expected
// version); no match is ErrNotFound, several ErrPreconditionFailed. The
// match is guarded like a conditional update's.
func (r *Repo) ConditionalPatch(ctx context.Context, typ, condition string, p PatchDoc, ifMatch *int64) (*Resource, error) {
	q, err := ParseCondition(typ, condition)
	if err != nil {
		return nil, err
	}
	out, err := r.Transaction(ctx, []Entry{{Index: -1, Method: http.MethodPatch, Type: typ, cond: q, patch: &p.p, IfMatch: ifMatch}})
	if err != nil {
		return nil, err
	}
	return out[0].Resource, nil
}

// PatchDocument is Patch for a patch of either format.
func (r *Repo) PatchDocument(ctx context.Context, typ, id string, p PatchDoc, ifMatch *int64) (*Resource, error) {
	return r.patchWith(ctx, typ, id, ifMatch, r.patcher(p.p))
}
