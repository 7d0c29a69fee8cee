package records

import (
	"context"

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
	f, err := r.facts.Load(ctx, t)
	if err != nil {
		return authz.Decision{}, err
	}
	return authz.Decide(r.subj, authz.Read, t, f), nil
}

// ForgetFacts empties the fact cache of tenant, as a write of a Patient
// and a Consent would (a clinician's organizations stay cached).
func (s *Service) ForgetFacts(tenant string) { s.facts.Wrote(tenant, "Patient", "Consent") }

// ForgetAllFacts empties every fact of tenant, as a write of a
// PractitionerRole and a Consent would.
func (s *Service) ForgetAllFacts(tenant string) { s.facts.Wrote(tenant, "PractitionerRole", "Consent") }

// SetDecideChunk sets how many matches a count decides at a time, for the
// test of chunking; it returns the function that restores it.
func SetDecideChunk(n int) (restore func()) {
	old := decideChunk
	decideChunk = n
	return func() { decideChunk = old }
}

// SetCommitFault makes every commit of a write fail with f's error (nil:
// commit) until the returned restore is called.
func SetCommitFault(f func(*store.Unit) error) (restore func()) {
	commitFault = f
	return func() { commitFault = nil }
}
