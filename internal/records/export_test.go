package records

import (
	"context"
	"net/url"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/store"
)

// DecisionOnly runs what a read adds for access control, after the store
// read and before the audit record: describe the resource, load the facts,
// decide. For the benchmark of the decision's cost.
func (r *Repo) DecisionOnly(ctx context.Context, typ string, plain []byte, id string) (authz.Decision, error) {
	res, err := fhir.Parse(plain)
	if err != nil {
		return authz.Decision{}, err
	}
	t := targetOf(r.subj.Tenant, typ, id, res.Doc)
	f, err := r.facts(ctx, t)
	if err != nil {
		return authz.Decision{}, err
	}
	return authz.Decide(r.subj, authz.Read, t, f), nil
}

// ForgetFacts empties the fact cache of tenant, as a write of a Patient
// and a Consent would (a clinician's organizations stay cached).
func (s *Service) ForgetFacts(tenant string) { s.facts.wrote(tenant, "Patient", "Consent") }

// ForgetAllFacts empties every fact of tenant, as a write of a
// PractitionerRole and a Consent would.
func (s *Service) ForgetAllFacts(tenant string) { s.facts.wrote(tenant, "PractitionerRole", "Consent") }

// BoundAndPlanned returns, for patient p, the memoized fact plan bound to
// p and the plan made directly for p, which must be the same query. q
// builds the question for a patient id.
func (r *Repo) BoundAndPlanned(ctx context.Context, memo, typ string, q func(patient string) url.Values, limit int, p string) (bound, direct store.SearchQuery, err error) {
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

// SetDecideChunk sets how many matches a count decides at a time, for the
// test of chunking; it returns the function that restores it.
func SetDecideChunk(n int) (restore func()) {
	old := decideChunk
	decideChunk = n
	return func() { decideChunk = old }
}

// RelationQueries are the questions of a care relationship with p.
func (r *Repo) RelationQueries(ctx context.Context, p string) ([]store.SearchQuery, error) {
	return r.relationQueries(ctx, p)
}
