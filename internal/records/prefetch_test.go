package records_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// TestDecisionsFollowTheRepoOwnWrites: what one Repo learnt about a
// patient (in care, no consents) is not used after that Repo wrote: a
// physician who hands the patient over to another practitioner is refused the
// next read through the same Repo, on both databases. (It stored a
// denying consent until consents became the patient's to write; now it
// hands the patient over to another general practitioner.)
func TestDecisionsFollowTheRepoOwnWrites(t *testing.T) {
	for _, be := range apptest.Backends {
		t.Run(string(be), func(t *testing.T) {
			w := apptest.Start(t, be)
			A := authz.RoleAdmin
			if r := w.Do(t, "PUT", "/fhir/Practitioner/pr-1", w.Tokens[A], []byte(`{"resourceType":"Practitioner","id":"pr-1"}`)); r.Status != 201 {
				t.Fatalf("practitioner: %d", r.Status)
			}
			pid := w.Create(t, A, `{"resourceType":"Patient","gender":"other","generalPractitioner":[{"reference":"Practitioner/pr-1"}]}`)
			oid := w.Create(t, A, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+pid+`"}}`)
			ctx := context.Background()
			w.App.Records.ForgetAllFacts("default") // the admin's writes cached the patient's consents
			repo := w.App.Records.For(authz.Subject{Tenant: "default", ID: "p", Role: authz.RolePhysician, Scopes: []string{"user/*.cruds"}, Practitioner: "pr-1"}, "test")
			if _, err := repo.Read(ctx, "Observation", oid); err != nil {
				t.Fatalf("first read: %v", err)
			}
			// A physician no longer writes consents (they are the
			// patient's); he hands the patient over instead, which ends
			// his care relationship.
			handover, err := fhir.Parse([]byte(`{"resourceType":"Patient","id":"` + pid + `","gender":"other","generalPractitioner":[{"reference":"Practitioner/pr-2"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := repo.Update(ctx, handover, nil); err != nil {
				t.Fatalf("hand-over: %v", err)
			}
			if _, err := repo.Read(ctx, "Observation", oid); !errors.Is(err, problem.ErrForbidden) {
				t.Fatalf("read after the hand-over: %v, want forbidden", err)
			}
		})
	}
}
