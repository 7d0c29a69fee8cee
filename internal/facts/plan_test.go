package facts_test

import (
	"context"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// TestFactPlansBindLikeDirectPlans: a memoized fact question, bound to a
// patient, is exactly the query planning it for that patient gives (same
// SQL, same arguments in the same places), for every question the access
// layer asks, for patients whose ids look like other arguments, and per
// tenant.
func TestFactPlansBindLikeDirectPlans(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	ctx := context.Background()
	actors := "Practitioner/pr-1,Organization/org-1"
	questions := []struct {
		memo, typ string
		limit     int
		q         func(p string) url.Values
	}{
		{"gp", "Patient", 1, func(p string) url.Values {
			return url.Values{"_id": {p}, "general-practitioner": {actors}}
		}},
		{"careteam", "CareTeam", 1, func(p string) url.Values {
			return url.Values{"patient": {"Patient/" + p}, "participant": {actors}, "status": {"active"}}
		}},
		{"encounter", "Encounter", 1, func(p string) url.Values {
			return url.Values{"patient": {"Patient/" + p}, "participant": {"Practitioner/pr-1"}, "date": {"ge2026-09-01T10:00:00Z"}}
		}},
		{"consents", "Consent", 1000, func(p string) url.Values {
			return url.Values{"patient": {"Patient/" + p}, "status": {"active"}}
		}},
	}
	// Ids equal to other arguments of the questions, or to each other.
	patients := []string{"p1", "pr-1", "org-1", "active", "Patient", "a-b.c", "p1"}
	for _, tenant := range []string{"default", "other-tenant"} {
		r := w.App.Records.FactSource().For(authz.Subject{Tenant: tenant, ID: "p", Role: authz.RolePhysician, Practitioner: "pr-1"})
		for _, qu := range questions {
			for _, p := range patients {
				bound, direct, err := r.BoundAndPlanned(ctx, qu.memo, qu.typ, qu.q, qu.limit, p)
				if err != nil {
					t.Fatalf("%s %s %s: %v", tenant, qu.memo, p, err)
				}
				if !reflect.DeepEqual(bound, direct) {
					t.Errorf("%s %s for %s:\nbound  %+v %v\ndirect %+v %v", tenant, qu.memo, p, bound, bound.Drive, direct, direct.Drive)
				}
				if bound.Tenant != tenant {
					t.Errorf("%s %s: bound for tenant %q", tenant, qu.memo, bound.Tenant)
				}
			}
		}
	}
}

// TestRelationQueriesPinThePatient: no relationship question lists the
// clinician's panel: each is driven by the patient (its own row, or the
// references to it) and probes the clinician's rows.
func TestRelationQueriesPinThePatient(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	r := w.App.Records.FactSource().For(authz.Subject{Tenant: "default", ID: "p", Role: authz.RolePhysician, Practitioner: "pr-1"})
	ctx := context.Background()
	// Patient generalPractitioner, CareTeam without a period, CareTeam
	// whose period has not ended, Encounter.
	qs, err := r.RelationQueries(ctx, "p1")
	if err != nil || len(qs) != 4 {
		t.Fatalf("%d %v", len(qs), err)
	}
	other, err := r.RelationQueries(ctx, "p2")
	if err != nil {
		t.Fatal(err)
	}
	if qs[0].Drive != nil || !slices.ContainsFunc(qs[0].Where, byID) || !slices.Contains(qs[0].Args, any("p1")) {
		t.Errorf("Patient question: drive %+v where %v args %v", qs[0].Drive, qs[0].Where, qs[0].Args)
	}
	for i, q := range qs[1:] {
		// Driven by the one hash of the reference to the patient: it
		// differs between patients.
		o := other[i+1]
		if q.Drive == nil || len(q.Drive.Args) != 1 || o.Drive == nil || q.Drive.Args[0] == o.Drive.Args[0] {
			t.Errorf("%v question not driven by the patient: %+v, for another patient %+v", q.Types, q.Drive, o.Drive)
		}
	}
}

// byID reports whether a clause selects the resource by its id: plainly
// (r.id IN, PostgreSQL) or through the resources key (SQLite, which would
// otherwise walk the type's rows to keep the page order).
func byID(clause string) bool {
	return clause == "r.id IN (?)" ||
		strings.HasPrefix(clause, "r.rid IN (SELECT ") && strings.HasSuffix(clause, ".id IN (?))")
}
