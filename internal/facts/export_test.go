package facts

import (
	"context"
	"net/url"

	"github.com/wardhealth/ward/internal/store"
)

// BoundAndPlanned returns, for patient p, the memoized fact plan bound to
// p and the plan made directly for p, which must be the same query. q
// builds the question for a patient id.
func (r *Loader) BoundAndPlanned(ctx context.Context, memo, typ string, q func(patient string) url.Values, limit int, p string) (bound, direct store.SearchQuery, err error) {
	bound, err = r.patientFactQuery(ctx, memo, typ, q(r.s.factPlans.sentinel), limit, p)
	if err != nil {
		return bound, direct, err
	}
	d, err := r.factQuery(ctx, typ, q(p), limit)
	if err != nil {
		return bound, direct, err
	}
	return bound, *d, nil
}

// RelationQueries are the questions of a care relationship with p.
func (r *Loader) RelationQueries(ctx context.Context, p string) ([]store.SearchQuery, error) {
	return r.relationQueries(ctx, p)
}
