package records

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/store"
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

// staged is a write prepared (decided, sealed) to commit in the unit of
// another: its record, and the content it replaces and writes.
type staged struct {
	w        store.Write
	rec      *audit.Record
	old, doc map[string]any
}

// superseding prepares the writes that mark the DocumentReferences res
// replaces as superseded (R4 DocumentReference.relatesTo): each decided
// and audited as the caller's patch, committed in the same unit as res,
// so the new document and the old one's status change together or not
// at all. A replaced document that is already not current is left as
// it is.
func (r *Repo) superseding(ctx context.Context, res *fhir.Resource, now time.Time) ([]staged, error) {
	var out []staged
	for _, id := range replaced(res) {
		rec := r.record("patch", "DocumentReference")
		rec.Time = now
		if err := r.decide(authz.Update, rec); err != nil {
			return nil, err
		}
		v, err := r.instance(ctx, rec, "DocumentReference", id, 0)
		if err != nil {
			return nil, err
		}
		rec.Entities = []string{ref("DocumentReference", id, v.Version)}
		if v.Deleted {
			continue
		}
		plain, err := r.decideVersion(ctx, authz.Update, rec, v)
		if err != nil {
			return nil, err
		}
		cur, err := fhir.Parse(plain)
		if err != nil {
			return nil, fmt.Errorf("stored DocumentReference/%s does not parse: %w", id, err)
		}
		if cur.Doc["status"] != "current" {
			continue
		}
		old, err := docOf(v, plain)
		if err != nil {
			return nil, err
		}
		cur.Doc["status"] = "superseded"
		if err := r.decideOn(ctx, authz.Update, rec, writeTarget(r.subj.Tenant, "DocumentReference", id, old, cur.Doc)); err != nil {
			return nil, err
		}
		_, sealed, ix, err := r.seal(ctx, cur, v.Version+1, now)
		if err != nil {
			return nil, err
		}
		w := store.Write{Tenant: r.subj.Tenant, Type: "DocumentReference", ID: id, Version: v.Version + 1, LastUpdated: now, Body: sealed, Index: ix}
		out = append(out, staged{w: w, rec: rec, old: old, doc: cur.Doc})
	}
	return out, nil
}
