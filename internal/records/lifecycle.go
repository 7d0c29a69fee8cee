package records

import (
	"context"
	"fmt"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
)

// replaced returns the ids of the DocumentReferences a current
// DocumentReference says it replaces (relatesTo.code = replaces).
func replaced(res *fhir.Resource) []string {
	if res.Type != "DocumentReference" || res.Doc["status"] != "current" {
		return nil
	}
	var ids []string
	rs, _ := res.Doc["relatesTo"].([]any)
	for _, x := range rs {
		m, _ := x.(map[string]any)
		if m["code"] != "replaces" {
			continue
		}
		t, _ := m["target"].(map[string]any)
		ref, _ := t["reference"].(string)
		if id, ok := strings.CutPrefix(ref, "DocumentReference/"); ok && fhir.IsID(id) && id != res.ID {
			ids = append(ids, id)
		}
	}
	return ids
}

// supersede marks the DocumentReferences res replaces as superseded
// (R4 DocumentReference.relatesTo): each is a patch of its own, decided
// and audited as the caller's update, after res was committed.
func (r *Repo) supersede(ctx context.Context, res *fhir.Resource) error {
	for _, id := range replaced(res) {
		_, err := r.patchWith(ctx, "DocumentReference", id, nil, func(doc map[string]any) (map[string]any, error) {
			if doc["status"] == "current" {
				doc["status"] = "superseded"
			}
			return doc, nil
		})
		if err != nil {
			return fmt.Errorf("DocumentReference/%s was stored, but the one it replaces was not marked superseded: %w", res.ID, err)
		}
	}
	return nil
}
