package records

import (
	"context"
	"fmt"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// Reindex rebuilds the search index of every current resource of every
// tenant (ward reindex): after an upgrade that changes extraction, or to
// switch the leaky index setting. Each batch of resources is one commit
// with one audit record naming them; progress, when not nil, gets the
// running count. Resources written while it runs are indexed by their own
// writes, so a concurrent reindex never leaves stale rows behind.
func (s *Service) Reindex(ctx context.Context, actor string, progress func(n int)) (int, error) {
	const batch = 500
	var after int64
	total := 0
	for {
		hits, err := s.st.Resources(ctx, after, batch)
		if err != nil {
			return total, err
		}
		if len(hits) == 0 {
			return total, nil
		}
		u := &store.Unit{}
		var recs []*audit.Record
		byTenant := map[string]*audit.Record{}
		for _, h := range hits {
			after = h.RID
			v := h.Version
			plain, err := s.keys.Open(v.Body, seal.AAD(v.Tenant, v.Type, v.ID, v.Version))
			if err != nil {
				return total, fmt.Errorf("reindex: open %s/%s: %w", v.Type, v.ID, err)
			}
			res, err := fhir.Parse(plain)
			if err != nil {
				return total, fmt.Errorf("reindex: parse %s/%s: %w", v.Type, v.ID, err)
			}
			k, err := s.keyer(ctx, v.Tenant)
			if err != nil {
				return total, err
			}
			ix, err := s.indexer.Index(res.Doc, k)
			if err != nil {
				return total, fmt.Errorf("reindex: index %s/%s: %w", v.Type, v.ID, err)
			}
			u.Reindex = append(u.Reindex, store.Reindex{Tenant: v.Tenant, Type: v.Type, ID: v.ID, Index: ix})
			rec := byTenant[v.Tenant]
			if rec == nil {
				rec = &audit.Record{Time: s.now().UTC(), Tenant: v.Tenant, RequestID: "reindex", Actor: actor, Role: "system", Action: "reindex"}
				byTenant[v.Tenant] = rec
				recs = append(recs, rec)
			}
			rec.Entities = append(rec.Entities, ref(v.Type, v.ID, v.Version))
		}
		if err := s.ledger().Commit(ctx, u, recs...); err != nil {
			return total, fmt.Errorf("reindex: commit: %w", err)
		}
		total += len(hits)
		if progress != nil {
			progress(total)
		}
	}
}
