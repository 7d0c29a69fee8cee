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

// registration is the CareTeam planned with a new Patient, decided and
// validated before anything is written, and its audit record.
type registration struct {
	team *fhir.Resource
	rec  *audit.Record
}

// planRegistration makes and decides the registration CareTeam of Patient
// patient, before the write: the same decision for every path that creates
// a Patient (create, update-as-create, batch and transaction entries).
func (r *Repo) planRegistration(ctx context.Context, patient string) (*registration, error) {
	team := &fhir.Resource{Type: "CareTeam", ID: r.s.newID(),
		Doc: RegistrationTeam(patient, r.subj.Practitioner, r.s.now().UTC(), r.s.registrationCare)}
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
	return &registration{team: team, rec: trec}, nil
}

// seal seals the planned CareTeam at now (its period restamped from now)
// for Patient patient, written as version 1 in the same unit, and returns
// its write and audit records (create, careteam-change).
func (g *registration) seal(ctx context.Context, r *Repo, patient string, now time.Time) (store.Write, []*audit.Record, error) {
	g.team.Doc = RegistrationTeam(patient, r.subj.Practitioner, now, r.s.registrationCare)
	_, sealed, ix, err := r.seal(ctx, g.team, 1, now)
	if err != nil {
		return store.Write{}, nil, err
	}
	tw := store.Write{Tenant: r.subj.Tenant, Type: g.team.Type, ID: g.team.ID, Version: 1, LastUpdated: now, Body: sealed, Index: ix}
	g.rec.Time = now
	g.rec.Entities = []string{ref(tw.Type, tw.ID, 1), ref("Patient", patient, 1)}
	g.rec.Detail = "registration"
	recs := []*audit.Record{g.rec}
	if gov := governanceRecord(g.rec, tw.Type, nil, g.team.Doc); gov != nil {
		recs = append(recs, gov)
	}
	return tw, recs, nil
}

// createRegistered stores a Patient (already decided, rec its record) as
// version 1 and the registering clinician's CareTeam (planned: g) in one
// commit.
func (r *Repo) createRegistered(ctx context.Context, res *fhir.Resource, rec *audit.Record, g *registration) (*Resource, error) {
	now := r.s.now().UTC()
	plain, sealed, ix, err := r.seal(ctx, res, 1, now)
	if err != nil {
		return nil, err
	}
	tw, trecs, err := g.seal(ctx, r, res.ID, now)
	if err != nil {
		return nil, err
	}
	pw := store.Write{Tenant: r.subj.Tenant, Type: res.Type, ID: res.ID, Version: 1, LastUpdated: now, Body: sealed, Index: ix}
	rec.Time = now
	rec.Entities = []string{ref(pw.Type, pw.ID, 1)}
	recs := []*audit.Record{rec}
	if gov := governanceRecord(rec, pw.Type, nil, res.Doc); gov != nil {
		recs = append(recs, gov) // as commitWrite: a generalPractitioner or labels set
	}
	ws := []store.Write{pw, tw}
	unit := &store.Unit{Writes: ws, Parts: []store.Part{r.outbox(ws, nil, map[int]map[string]any{0: res.Doc, 1: g.team.Doc})}}
	err = r.s.ledger().Commit(ctx, unit, append(recs, trecs...)...)
	r.s.publish(pw.Tenant, r.s.invalidate(pw, res.Doc))
	r.s.publish(tw.Tenant, r.s.invalidate(tw, g.team.Doc))
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
