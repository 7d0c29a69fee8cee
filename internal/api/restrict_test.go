package api_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// TestChainsAndHasStayInCare: a chain hop or a _has subquery matches only
// through resources the caller may search (care, compartment, labels,
// consent), on both databases; an admin's chains and _has still match
// through every patient.
func TestChainsAndHasStayInCare(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		x := setupAccess(t, w).ids
		mk := func(name, body string) { x[name] = w.Create(t, authz.RoleAdmin, body) }
		focus := func(pid string) string { return `,"focus":[{"reference":"Patient/` + pid + `"}]` }
		// In the physician's care (subject gp), about a patient outside it.
		mk("gpFocusOther", obsFor(x["gp"], focus(x["other"])))
		// Outside the physician's care (subject other), about gp.
		mk("otherFocusGP", obsFor(x["other"], focus(x["gp"])))
		// The nurse's patient, about gp; the patient's own, about other.
		mk("teamFocusGP", obsFor(x["team"], focus(x["gp"])))
		mk("meFocusOther", obsFor("patient-user", focus(x["other"])))
		// The patient's own, about a Questionnaire: a type the patient role
		// may not search.
		mk("questionnaire", `{"resourceType":"Questionnaire","status":"active","name":"screening"}`)
		mk("meFocusQ", obsFor("patient-user", `,"focus":[{"reference":"Questionnaire/`+x["questionnaire"]+`"}]`))
		clearedAdmin := w.Login(t, "cleared-admin", apptest.Password)
		P, N, U, A := w.Tokens[authz.RolePhysician], w.Tokens[authz.RoleNurse], w.Tokens[authz.RoleUser], w.Tokens[authz.RoleAdmin]
		for _, c := range []struct {
			name, token, path string
			want              []string
		}{
			// Chains: the hop's Patient must be one the caller may see.
			{"physician: chain through a patient outside care", P, "/fhir/Observation?focus:Patient.name=Otherby", nil},
			{"admin: the same chain", A, "/fhir/Observation?focus:Patient.name=Otherby", []string{"gpFocusOther", "meFocusOther"}},
			{"physician: chain through a patient in care", P, "/fhir/Observation?subject:Patient.name=Gpson&focus:Patient=" + x["other"], []string{"gpFocusOther"}},
			{"nurse: chain through a patient outside care", N, "/fhir/Observation?focus:Patient.name=Gpson", nil},
			{"admin: the nurse's chain", A, "/fhir/Observation?focus:Patient.name=Gpson", []string{"otherFocusGP", "teamFocusGP"}},
			{"patient: chain through another patient", U, "/fhir/Observation?focus:Patient.name=Otherby", nil},
			{"patient: chain through their own record", U, "/fhir/Observation?subject:Patient.name=Myself&_count=50", []string{"obsMe", "meFocusOther", "meFocusQ"}},
			{"patient: chain through a type they may not search", U, "/fhir/Observation?focus:Questionnaire.name=screening", nil},
			{"admin: the same", A, "/fhir/Observation?focus:Questionnaire.name=screening", []string{"meFocusQ"}},
			// _has: the referring resources must be ones the caller may see.
			{"physician: _has through an observation outside care", P, "/fhir/Patient?_has:Observation:focus:status=final", nil},
			{"admin: the same _has", A, "/fhir/Patient?_has:Observation:focus:status=final", []string{"gp", "other"}},
			{"physician: _has through an observation in care", P, "/fhir/Patient?_has:Observation:subject:status=final", []string{"gp", "enc"}},
			{"physician: _has through an HIV-labelled observation", P, "/fhir/Patient?_has:Observation:subject:_security=HIV", nil},
			{"uncleared admin: the same", A, "/fhir/Patient?_has:Observation:subject:_security=HIV", nil},
			{"cleared admin: the same", clearedAdmin, "/fhir/Patient?_has:Observation:subject:_security=HIV", []string{"gp"}},
			{"physician: _has through a consent-denied condition", P, "/fhir/Patient?_has:Condition:subject:code:text=asthma", nil},
			{"admin: the same", A, "/fhir/Patient?_has:Condition:subject:code:text=asthma", []string{"gp"}},
		} {
			r := w.Do(t, "GET", c.path, c.token, nil)
			if r.Status != 200 {
				t.Errorf("%s: %d %.300s", c.name, r.Status, r.Body)
				continue
			}
			got, _ := searchIDs(t, r)
			var want []string
			for _, n := range c.want {
				want = append(want, x[n])
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %v, want %v (%s)", c.name, got, want, strings.Join(c.want, ", "))
			}
		}
	})
}
