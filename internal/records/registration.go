package records

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// A physician or nurse who registers a new Patient gets a care
// relationship with it that is data, not a hidden rule: a CareTeam
// (status active, subject the patient, participant the clinician's
// Practitioner, period from now to now + Options.RegistrationCare),
// decided like any CareTeam write, committed in the same unit as the
// Patient and recorded in the ledger (create and careteam-change). When
// the period ends the relationship ends with it; it is extended, ended
// early or handed over by writing the CareTeam.

// registers reports whether creating res makes a registration CareTeam:
// a linked physician or nurse creates a Patient, and their role and token
// may create CareTeams (a token scoped to Patient alone registers the
// patient without one).
func (r *Repo) registers(res *fhir.Resource) bool {
	if r.s.registrationCare <= 0 || res.Type != "Patient" || r.subj.Practitioner == "" ||
		r.subj.Role != authz.RolePhysician && r.subj.Role != authz.RoleNurse {
		return false
	}
	d := authz.Decide(r.subj, authz.Create, authz.Target{Tenant: r.subj.Tenant, Type: "CareTeam"}, authz.Facts{AdminPHI: !r.s.noAdminPHI})
	return d.Allow
}

// RegistrationTeam is the CareTeam document made for a clinician
// (Practitioner practitioner) registering Patient patient at now.
func RegistrationTeam(patient, practitioner string, now time.Time, period time.Duration) map[string]any {
	p := map[string]any{
		"start": now.UTC().Format(time.RFC3339),
		"end":   now.UTC().Add(period).Format(time.RFC3339),
	}
	return map[string]any{
		"resourceType": "CareTeam",
		"status":       "active",
		"name":         "Registration",
		"subject":      map[string]any{"reference": "Patient/" + patient},
		"period":       p,
		"participant": []any{map[string]any{
			"member": map[string]any{"reference": "Practitioner/" + practitioner},
			"period": p,
		}},
	}
}

// createRegistered stores a Patient (already decided, rec its record) and
// the registering clinician's CareTeam in one commit.
func (r *Repo) createRegistered(ctx context.Context, res *fhir.Resource, rec *audit.Record) (*Resource, error) {
	now := r.s.now().UTC()
	team := &fhir.Resource{Type: "CareTeam", ID: r.s.newID(),
		Doc: RegistrationTeam(res.ID, r.subj.Practitioner, now, r.s.registrationCare)}
	trec := r.record("create", "CareTeam")
	if err := r.decide(authz.Create, trec); err != nil {
		return nil, err
	}
	if err := r.validate(team, trec); err != nil {
		return nil, err
	}
	t := targetOf(r.subj.Tenant, team.Type, team.ID, team.Doc)
	t.Registration = true
	if err := r.decideOn(ctx, authz.Create, trec, t); err != nil {
		return nil, err
	}
	plain, sealed, ix, err := r.seal(ctx, res, 1, now)
	if err != nil {
		return nil, err
	}
	_, tsealed, tix, err := r.seal(ctx, team, 1, now)
	if err != nil {
		return nil, err
	}
	pw := store.Write{Tenant: r.subj.Tenant, Type: res.Type, ID: res.ID, Version: 1, LastUpdated: now, Body: sealed, Index: ix}
	tw := store.Write{Tenant: r.subj.Tenant, Type: team.Type, ID: team.ID, Version: 1, LastUpdated: now, Body: tsealed, Index: tix}
	rec.Entities = []string{ref(pw.Type, pw.ID, 1)}
	trec.Entities = []string{ref(tw.Type, tw.ID, 1), ref(pw.Type, pw.ID, 1)}
	trec.Detail = "registration"
	recs := []*audit.Record{rec, trec}
	if g := governanceRecord(trec, tw.Type, nil, team.Doc); g != nil {
		recs = append(recs, g)
	}
	err = r.s.ledger().Commit(ctx, &store.Unit{Writes: []store.Write{pw, tw}}, recs...)
	r.s.publish(pw.Tenant, r.s.invalidate(pw, res.Doc))
	r.s.publish(tw.Tenant, r.s.invalidate(tw, team.Doc))
	r.facts.Wrote()
	switch {
	case err == nil:
	case errors.Is(err, store.ErrConflict):
		return nil, fmt.Errorf("%w: %v", problem.ErrConflict, err)
	default:
		return nil, err // the recorder's: problem.ErrUnavailable
	}
	return &Resource{Type: res.Type, ID: res.ID, Version: 1, LastUpdated: now, JSON: plain}, nil
}

// nowMinute is the current minute (rounded down) as a search date: an
// active CareTeam whose period reaches it makes a care relationship, one
// whose period ended before it no longer does.
func (r *Repo) nowMinute() string {
	return r.s.now().UTC().Truncate(time.Minute).Format("2006-01-02T15:04:05Z")
}
