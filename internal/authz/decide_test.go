package authz

import (
	"fmt"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Named fixtures. p1 is the patient in a care relationship with dr-a and
// rn-b; p2 is nobody's patient.
var (
	now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

	scopesAll = []string{"openid", "fhirUser", "user/*.cruds"}

	admin      = Subject{Tenant: "t", ID: "u-admin", Role: RoleAdmin, Scopes: scopesAll}
	drA        = Subject{Tenant: "t", ID: "u-dra", Role: RolePhysician, Scopes: scopesAll, Practitioner: "dr-a"}
	drUnlinked = Subject{Tenant: "t", ID: "u-drx", Role: RolePhysician, Scopes: scopesAll}
	rnB        = Subject{Tenant: "t", ID: "u-rnb", Role: RoleNurse, Scopes: scopesAll, Practitioner: "rn-b"}
	pat1       = Subject{Tenant: "t", ID: "u-p1", Role: RoleUser, Scopes: []string{"openid", "patient/*.rs"}, Patient: "p1"}
	patNoLink  = Subject{Tenant: "t", ID: "u-p0", Role: RoleUser, Scopes: []string{"openid", "patient/*.rs"}}
	client     = Subject{Tenant: "t", ID: "client/c", Role: RoleClient, Scopes: []string{"system/*.rs"}}
	officer    = Subject{Tenant: "t", ID: "u-po", Role: RolePrivacyOfficer, Scopes: scopesAll}
	pat1Writes = with(pat1, func(s *Subject) { s.Scopes = scopesAll })

	obsP1      = Target{Tenant: "t", Type: "Observation", ID: "o1", Instance: true, Patients: []string{"p1"}, Categories: []string{"vital-signs"}}
	obsP1Lab   = Target{Tenant: "t", Type: "Observation", ID: "o4", Instance: true, Patients: []string{"p1"}, Categories: []string{"laboratory"}}
	obsP1HIV   = Target{Tenant: "t", Type: "Observation", ID: "o2", Instance: true, Patients: []string{"p1"}, Labels: []string{"HIV"}}
	obsP1R     = Target{Tenant: "t", Type: "Observation", ID: "o3", Instance: true, Patients: []string{"p1"}, Labels: []string{"R"}}
	obsP1V     = Target{Tenant: "t", Type: "Observation", ID: "o5", Instance: true, Patients: []string{"p1"}, Labels: []string{"V"}}
	obsP1N     = Target{Tenant: "t", Type: "Observation", ID: "o6", Instance: true, Patients: []string{"p1"}, Labels: []string{"N"}}
	obsP2      = Target{Tenant: "t", Type: "Observation", ID: "o9", Instance: true, Patients: []string{"p2"}}
	obsNone    = Target{Tenant: "t", Type: "Observation", ID: "o0", Instance: true}
	condP1     = Target{Tenant: "t", Type: "Condition", ID: "c1", Instance: true, Patients: []string{"p1"}}
	patientP1  = Target{Tenant: "t", Type: "Patient", ID: "p1", Instance: true, Patients: []string{"p1"}}
	patientP2  = Target{Tenant: "t", Type: "Patient", ID: "p2", Instance: true, Patients: []string{"p2"}}
	newPatient = Target{Tenant: "t", Type: "Patient", ID: "p3", Instance: true, Patients: []string{"p3"}, New: true}
	practDrA   = Target{Tenant: "t", Type: "Practitioner", ID: "dr-a", Instance: true}
	orgX       = Target{Tenant: "t", Type: "Organization", ID: "org-x", Instance: true}
	medication = Target{Tenant: "t", Type: "Medication", ID: "m1", Instance: true}
	plan       = Target{Tenant: "t", Type: "PlanDefinition", ID: "pd1", Instance: true}

	// Writes that reach two compartments, and the resources that govern
	// access.
	obsP1P2      = Target{Tenant: "t", Type: "Observation", ID: "o7", Instance: true, Patients: []string{"p1", "p2"}}
	consentP1    = Target{Tenant: "t", Type: "Consent", ID: "deny-dra", Instance: true, Patients: []string{"p1"}}
	consentP2    = Target{Tenant: "t", Type: "Consent", ID: "k2", Instance: true, Patients: []string{"p2"}}
	careTeamP1   = Target{Tenant: "t", Type: "CareTeam", ID: "ct1", Instance: true, Patients: []string{"p1"}}
	careTeamP1P2 = Target{Tenant: "t", Type: "CareTeam", ID: "ct2", Instance: true, Patients: []string{"p1", "p2"}}
	careTeamP2   = Target{Tenant: "t", Type: "CareTeam", ID: "ct3", Instance: true, Patients: []string{"p2"}}
	encounterP2  = Target{Tenant: "t", Type: "Encounter", ID: "e2", Instance: true, Patients: []string{"p2"}}
	encounterP1  = Target{Tenant: "t", Type: "Encounter", ID: "e1", Instance: true, Patients: []string{"p1"}}
	claimedP6    = Target{Tenant: "t", Type: "Patient", ID: "p6", Instance: true, Patients: []string{"p6"}}
	practRoleX   = Target{Tenant: "t", Type: "PractitionerRole", ID: "pr1", Instance: true}
	unlabelled   = func(t Target, l ...string) Target { t.RemovedLabels = l; return t }
	relabelled   = func(t Target) Target { t.LabelsOnly = true; return t }

	related   = Facts{Now: now, CareOf: []string{"p1"}, AdminPHI: true}
	unrelated = Facts{Now: now, AdminPHI: true}
)

func consentFacts(cs ...Consent) Facts {
	f := related
	f.Consents = cs
	return f
}

func privacy(id string, p *Provision) Consent {
	return Consent{ID: id, Patient: "p1", Active: true, Privacy: true, Provision: p}
}

var (
	denyAll        = privacy("deny-all", &Provision{Type: "deny"})
	denyDrA        = privacy("deny-dra", &Provision{Type: "permit", Provisions: []*Provision{{Type: "deny", Actors: []string{"Practitioner/dr-a"}}}})
	denyObs        = privacy("deny-obs", &Provision{Type: "permit", Provisions: []*Provision{{Type: "deny", Classes: []string{"Observation"}}}})
	denyHIV        = privacy("deny-hiv", &Provision{Type: "permit", Provisions: []*Provision{{Type: "deny", Labels: []string{"HIV"}}}})
	denyExpired    = privacy("deny-old", &Provision{Type: "deny", End: now.AddDate(-1, 0, 0)})
	denyFuture     = privacy("deny-future", &Provision{Type: "deny", Start: now.AddDate(0, 0, 1)})
	denyDraft      = Consent{ID: "deny-draft", Patient: "p1", Active: false, Privacy: true, Provision: &Provision{Type: "deny"}}
	denyOtherPat   = Consent{ID: "deny-p2", Patient: "p2", Active: true, Privacy: true, Provision: &Provision{Type: "deny"}}
	denyButDrA     = privacy("deny-but-dra", &Provision{Type: "deny", Provisions: []*Provision{{Type: "permit", Actors: []string{"Practitioner/dr-a"}}}})
	denyOrgX       = privacy("deny-orgx", &Provision{Type: "permit", Provisions: []*Provision{{Type: "deny", Actors: []string{"Organization/org-x"}}}})
	denyResearch   = privacy("deny-resch", &Provision{Type: "permit", Provisions: []*Provision{{Type: "deny", Purposes: []string{PurposeResearch}}}})
	denyData       = privacy("deny-o1", &Provision{Type: "permit", Provisions: []*Provision{{Type: "deny", Data: []string{"Observation/o1"}}}})
	permitResearch = Consent{ID: "resch", Patient: "p1", Active: true, Privacy: true, Research: true,
		Provision: &Provision{Type: "deny", Provisions: []*Provision{{Type: "permit", Purposes: []string{PurposeResearch}, Classes: []string{"Observation"}}}}}
	treatmentOnly = Consent{ID: "treat", Patient: "p1", Active: true, Privacy: false, Provision: &Provision{Type: "deny"}}
)

func withLabels(t Target, l ...string) Target { t.Labels = l; return t }

func with(s Subject, mod func(*Subject)) Subject { mod(&s); return s }

func bg(s Subject) Subject { return with(s, func(s *Subject) { s.BreakGlass = "unconscious in ED" }) }
func purpose(s Subject, p string) Subject {
	return with(s, func(s *Subject) { s.Purpose = p })
}
func clear(s Subject, l ...string) Subject {
	return with(s, func(s *Subject) { s.Clearances = l })
}

// TestDecideFixtures: role × interaction × relationship × consent × label
// × purpose × break-glass, every combination that changes the outcome, with
// the reason that must be recorded.
func TestDecideFixtures(t *testing.T) {
	cases := []struct {
		name      string
		s         Subject
		a         Action
		t         Target
		f         Facts
		allow     bool
		why       string
		emergency bool
	}{
		// Admin: PHI access by configuration.
		{"admin reads patient data", admin, Read, obsP1, unrelated, true, ReasonAdminPHI, false},
		{"admin writes patient data", admin, Update, patientP2, unrelated, true, ReasonAdminPHI, false},
		{"admin without PHI access", admin, Read, obsP1, Facts{Now: now}, false, ReasonAdminNoPHI, false},
		{"admin without PHI access, type level", admin, Search, Target{Tenant: "t", Type: "Observation"}, Facts{Now: now}, false, ReasonAdminNoPHI, false},
		{"admin without PHI access writes a Practitioner", admin, Update, practDrA, Facts{Now: now}, true, ReasonScopeGrants, false},
		{"admin without PHI access writes an Organization", admin, Create, orgX, Facts{Now: now}, true, ReasonScopeGrants, false},
		{"admin is bound by a deny consent", admin, Read, obsP1, consentFacts(denyAll), false, ReasonConsentDeny + ":deny-all", false},
		{"admin needs clearance", admin, Read, obsP1HIV, unrelated, false, ReasonLabel + ":HIV", false},
		{"admin break-glass does nothing", bg(admin), Read, obsP1, consentFacts(denyAll), false, ReasonBGNotAllowed, false},

		// Physician: relationship.
		{"physician reads related", drA, Read, obsP1, related, true, ReasonRelation, false},
		{"physician writes related", drA, Create, condP1, related, true, ReasonRelation, false},
		{"physician updates related patient", drA, Update, patientP1, related, true, ReasonRelation, false},
		{"physician reads unrelated", drA, Read, obsP2, related, false, ReasonNoRelation, false},
		{"physician reads unrelated patient", drA, Read, patientP2, related, false, ReasonNoRelation, false},
		{"physician without relationships", drA, Read, obsP1, unrelated, false, ReasonNoRelation, false},
		{"physician not linked to a Practitioner", drUnlinked, Read, obsP1, related, false, ReasonNoPractLink, false},
		{"physician registers a new patient", drA, Create, newPatient, unrelated, true, ReasonScopeGrants, false},
		{"the registering physician's CareTeam", drA, Create, registration(careTeamP2), unrelated, true, ReasonRegistration, false},
		{"a registration CareTeam names one patient only", drA, Create, registration(careTeamP1P2), unrelated, false, ReasonNoRelation, false},
		{"a registration CareTeam needs a linked clinician", drUnlinked, Create, registration(careTeamP2), unrelated, false, ReasonNoPractLink, false},
		{"a CareTeam not marked as a registration", drA, Create, careTeamP2, unrelated, false, ReasonNoRelation, false},
		{"observation in no compartment", drA, Read, obsNone, related, false, ReasonNoRelation, false},
		{"physician reads a Practitioner", drA, Read, practDrA, unrelated, true, ReasonScopeGrants, false},
		{"a restricted label needs clearance outside patient data too", drA, Read, withLabels(practDrA, "R"), unrelated, false, ReasonLabel + ":R", false},
		{"cleared for a restricted Practitioner", clear(drA, "R"), Read, withLabels(practDrA, "R"), unrelated, true, ReasonScopeGrants, false},
		{"physician may not write a Practitioner", drA, Update, practDrA, unrelated, false, ReasonRoleNoWrite, false},
		{"physician may not write an Organization", drA, Create, orgX, unrelated, false, ReasonRoleNoWrite, false},
		{"physician writes a PlanDefinition", drA, Create, plan, unrelated, true, ReasonScopeGrants, false},
		{"physician type-level search", drA, Search, Target{Tenant: "t", Type: "Observation"}, unrelated, true, ReasonScopeGrants, false},

		// Break-the-glass.
		{"break-glass overrides no relationship", bg(drA), Read, obsP2, related, true, ReasonBreakGlass, true},
		{"break-glass overrides missing link", bg(drUnlinked), Read, obsP1, related, true, ReasonBreakGlass, true},
		{"break-glass overrides a deny consent", bg(drA), Read, obsP1, consentFacts(denyDrA), true, ReasonBreakGlass, true},
		{"break-glass with access is no emergency", bg(drA), Read, obsP1, related, true, ReasonRelation, false},
		{"break-glass does not override labels", bg(drA), Read, obsP1HIV, related, false, ReasonLabel + ":HIV", false},
		{"break-glass does not override role", bg(drA), Delete, practDrA, related, false, ReasonRoleNoWrite, false},
		{"break-glass does not override scopes", with(bg(drA), func(s *Subject) { s.Scopes = []string{"user/Patient.rs"} }), Read, obsP2, related, false, ReasonNoScope, false},
		{"break-glass does not override tenant", bg(drA), Read, with2(obsP2, "t2"), related, false, ReasonTenant, false},
		{"break-glass does not make research legal", purpose(bg(drA), PurposeResearch), Read, obsP1, related, false, ReasonResearch, false},
		{"nurse may not break the glass", bg(rnB), Read, obsP2, related, false, ReasonBGNotAllowed, false},

		// Nurse.
		{"nurse reads related", rnB, Read, condP1, related, true, ReasonRelation, false},
		{"nurse writes an Observation", rnB, Create, obsP1, related, true, ReasonRelation, false},
		{"nurse writes an Immunization", rnB, Update, Target{Tenant: "t", Type: "Immunization", ID: "i", Instance: true, Patients: []string{"p1"}}, related, true, ReasonRelation, false},
		{"nurse may not write a Condition", rnB, Create, condP1, related, false, ReasonRoleNoWrite, false},
		{"nurse may not write a Patient", rnB, Update, patientP1, related, false, ReasonRoleNoWrite, false},
		{"nurse reads unrelated", rnB, Read, obsP2, related, false, ReasonNoRelation, false},
		{"nurse writes for unrelated", rnB, Create, obsP2, related, false, ReasonNoRelation, false},

		// Patient (user role).
		{"patient reads own Patient", pat1, Read, patientP1, unrelated, true, ReasonOwnRecord, false},
		{"patient reads own Observation", pat1, Read, obsP1, unrelated, true, ReasonOwnRecord, false},
		{"patient searches own compartment", pat1, Search, Target{Tenant: "t", Type: "Observation"}, unrelated, true, ReasonScopeGrants, false},
		{"patient reads another Patient", pat1, Read, patientP2, unrelated, false, ReasonScopeOutside, false},
		{"patient with user scope reads another Patient", with(pat1, func(s *Subject) { s.Scopes = scopesAll }), Read, patientP2, unrelated, false, ReasonNotOwn, false},
		{"patient reads another's Observation", with(pat1, func(s *Subject) { s.Scopes = scopesAll }), Read, obsP2, unrelated, false, ReasonNotOwn, false},
		{"patient may not write", with(pat1, func(s *Subject) { s.Scopes = scopesAll }), Create, obsP1, unrelated, false, ReasonRoleNoWrite, false},
		{"patient reads a Practitioner", pat1, Read, practDrA, unrelated, true, ReasonScopeGrants, false},
		{"patient reads a Medication", pat1, Read, medication, unrelated, true, ReasonScopeGrants, false},
		{"patient may not read a PlanDefinition", pat1, Read, plan, unrelated, false, ReasonRoleNoRead, false},
		{"patient without a link", patNoLink, Read, patientP1, unrelated, false, ReasonScopeNeedsPatient, false},
		{"patient without a link, user scopes", with(patNoLink, func(s *Subject) { s.Scopes = scopesAll }), Read, patientP1, unrelated, false, ReasonNoPatientLink, false},
		{"patient without a link, type level", with(patNoLink, func(s *Subject) { s.Scopes = scopesAll }), Search, Target{Tenant: "t", Type: "Observation"}, unrelated, false, ReasonNoPatientLink, false},
		{"patient sees own HIV result", pat1, Read, obsP1HIV, unrelated, true, ReasonOwnRecord, false},
		{"patient needs clearance for V", pat1, Read, obsP1V, unrelated, false, ReasonLabel + ":V", false},
		{"patient's own deny consent does not hide the record from them", pat1, Read, obsP1, consentFacts(denyAll), true, ReasonOwnRecord, false},
		{"patient break-glass does nothing", bg(pat1), Read, obsP2, unrelated, false, ReasonScopeOutside, false},

		// Security labels.
		{"HIV without clearance", drA, Read, obsP1HIV, related, false, ReasonLabel + ":HIV", false},
		{"HIV with clearance", clear(drA, "HIV"), Read, obsP1HIV, related, true, ReasonRelation, false},
		{"HIV with another clearance", clear(drA, "PSY"), Read, obsP1HIV, related, false, ReasonLabel + ":HIV", false},
		{"restricted without clearance", drA, Read, obsP1R, related, false, ReasonLabel + ":R", false},
		{"restricted with clearance", clear(drA, "R"), Read, obsP1R, related, true, ReasonRelation, false},
		{"very restricted with R clearance", clear(drA, "R"), Read, obsP1V, related, false, ReasonLabel + ":V", false},
		{"normal label needs nothing", drA, Read, obsP1N, related, true, ReasonRelation, false},
		{"cleared but unrelated", clear(drA, "HIV"), Read, obsP1HIV, unrelated, false, ReasonNoRelation, false},
		{"backend client needs clearance", client, Read, obsP1HIV, unrelated, false, ReasonLabel + ":HIV", false},

		// Consents.
		{"deny all", drA, Read, obsP1, consentFacts(denyAll), false, ReasonConsentDeny + ":deny-all", false},
		{"deny this actor", drA, Read, obsP1, consentFacts(denyDrA), false, ReasonConsentDeny + ":deny-dra", false},
		{"deny another actor", rnB, Read, obsP1, consentFacts(denyDrA), true, ReasonConsentPermit + ":deny-dra", false},
		{"deny a class", drA, Read, obsP1, consentFacts(denyObs), false, ReasonConsentDeny + ":deny-obs", false},
		{"deny a class, other class", drA, Read, condP1, consentFacts(denyObs), true, ReasonRelation, false},
		{"deny a label", clear(drA, "HIV"), Read, obsP1HIV, consentFacts(denyHIV), false, ReasonConsentDeny + ":deny-hiv", false},
		{"deny a label, unlabelled resource", drA, Read, obsP1, consentFacts(denyHIV), true, ReasonRelation, false},
		{"expired deny", drA, Read, obsP1, consentFacts(denyExpired), true, ReasonRelation, false},
		{"future deny", drA, Read, obsP1, consentFacts(denyFuture), true, ReasonRelation, false},
		{"draft deny", drA, Read, obsP1, consentFacts(denyDraft), true, ReasonRelation, false},
		{"another patient's deny", drA, Read, obsP1, consentFacts(denyOtherPat), true, ReasonRelation, false},
		{"non-privacy consent", drA, Read, obsP1, consentFacts(treatmentOnly), true, ReasonRelation, false},
		{"deny except this actor", drA, Read, obsP1, consentFacts(denyButDrA), true, ReasonConsentPermit + ":deny-but-dra", false},
		{"deny except another actor", rnB, Read, obsP1, consentFacts(denyButDrA), false, ReasonConsentDeny + ":deny-but-dra", false},
		{"deny by organization", drA, Read, obsP1, func() Facts { f := consentFacts(denyOrgX); f.Organizations = []string{"org-x"}; return f }(), false, ReasonConsentDeny + ":deny-orgx", false},
		{"deny by another organization", drA, Read, obsP1, consentFacts(denyOrgX), true, ReasonRelation, false},
		{"deny one resource", drA, Read, obsP1, consentFacts(denyData), false, ReasonConsentDeny + ":deny-o1", false},
		{"deny one resource, another", drA, Read, obsP1Lab, consentFacts(denyData), true, ReasonRelation, false},
		{"deny wins over permit", drA, Read, obsP1, consentFacts(denyButDrA, denyObs), false, ReasonConsentDeny + ":deny-obs", false},
		{"consent deny applies to writes", drA, Update, obsP1, consentFacts(denyAll), false, ReasonConsentDeny + ":deny-all", false},
		{"consents do not govern consents", admin, Delete, Target{Tenant: "t", Type: "Consent", ID: "deny-all", Instance: true, Patients: []string{"p1"}}, consentFacts(denyAll), true, ReasonAdminPHI, false},
		{"consent deny applies to the nurse", rnB, Read, obsP1, consentFacts(denyAll), false, ReasonConsentDeny + ":deny-all", false},
		{"unrelated and denied", drA, Read, obsP2, Facts{Now: now, Consents: []Consent{denyOtherPat}}, false, ReasonConsentDeny + ":deny-p2", false},
		{"unrelated and denied, break-glass", bg(drA), Read, obsP2, Facts{Now: now, Consents: []Consent{denyOtherPat}}, true, ReasonBreakGlass, true},

		// Purpose of use.
		{"treatment by default", drA, Read, obsP1, related, true, ReasonRelation, false},
		{"research without consent", purpose(drA, PurposeResearch), Read, obsP1, related, false, ReasonResearch, false},
		{"research with a permitting consent", purpose(drA, PurposeResearch), Read, obsP1, consentFacts(permitResearch), true, ReasonConsentPermit + ":resch", false},
		{"research consent covers another class only", purpose(drA, PurposeResearch), Read, condP1, consentFacts(permitResearch), false, ReasonConsentDeny + ":resch", false},
		{"research consent is no treatment consent", drA, Read, obsP1, consentFacts(permitResearch), false, ReasonConsentDeny + ":resch", false},
		{"research denied by privacy consent", purpose(drA, PurposeResearch), Read, obsP1, consentFacts(permitResearch, denyResearch), false, ReasonConsentDeny + ":deny-resch", false},
		{"admin research without consent", purpose(admin, PurposeResearch), Read, obsP1, unrelated, false, ReasonResearch, false},
		{"unknown purpose", purpose(drA, "SNOOP"), Read, obsP1, related, false, ReasonUnknownPurp, false},
		{"research outside the compartment needs nothing", purpose(drA, PurposeResearch), Read, plan, unrelated, true, ReasonScopeGrants, false},

		// SMART scopes on resources.
		{"patient scope in context", with(drA, func(s *Subject) { s.Patient = "p1"; s.Scopes = []string{"patient/Observation.rs"} }), Read, obsP1, related, true, ReasonRelation, false},
		{"patient scope out of context", with(drA, func(s *Subject) { s.Patient = "p1"; s.Scopes = []string{"patient/Observation.rs"} }), Read, obsP2, Facts{Now: now, CareOf: []string{"p2"}}, false, ReasonScopeOutside, false},
		{"category constraint met", with(drA, func(s *Subject) { s.Scopes = []string{"user/Observation.rs?category=vital-signs"} }), Read, obsP1, related, true, ReasonRelation, false},
		{"category constraint with system met", with(drA, func(s *Subject) {
			s.Scopes = []string{"user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"}
		}), Read, obsP1, related, true, ReasonRelation, false},
		{"category constraint not met", with(drA, func(s *Subject) { s.Scopes = []string{"user/Observation.rs?category=vital-signs"} }), Read, obsP1Lab, related, false, ReasonScopeConstrained, false},
		{"patient category scope", with(pat1, func(s *Subject) { s.Scopes = []string{"patient/Observation.rs?category=laboratory"} }), Read, obsP1Lab, unrelated, true, ReasonOwnRecord, false},
		{"patient category scope not met", with(pat1, func(s *Subject) { s.Scopes = []string{"patient/Observation.rs?category=laboratory"} }), Read, obsP1, unrelated, false, ReasonScopeConstrained, false},

		// Writes reach every compartment they are in (both patients of
		// the content, each decided; the old content is decided too).
		{"physician writes into a second, unrelated compartment", drA, Create, obsP1P2, related, false, ReasonNotEvery, false},
		{"physician updates into a second, unrelated compartment", drA, Update, obsP1P2, related, false, ReasonNoRelation, false},
		{"physician writes into two compartments in care", drA, Create, obsP1P2, Facts{Now: now, CareOf: []string{"p1", "p2"}}, true, ReasonRelation, false},
		{"physician reads what is in one compartment in care", drA, Read, obsP1P2, related, true, ReasonRelation, false},
		{"break-glass writes into a second compartment, marked", bg(drA), Create, obsP1P2, related, true, ReasonBreakGlass, true},
		{"nurse writes into a second, unrelated compartment", rnB, Create, obsP1P2, related, false, ReasonNotEvery, false},
		{"patient writes a Consent naming another patient too", pat1Writes, Create, Target{Tenant: "t", Type: "Consent", ID: "k", Instance: true, Patients: []string{"p1", "p2"}}, unrelated, false, ReasonNotEvery, false},

		// Consents: the patient, an admin, a privacy officer; never a
		// clinician.
		{"patient writes own Consent", pat1Writes, Create, consentP1, unrelated, true, ReasonOwnRecord, false},
		{"patient withdraws own Consent", pat1Writes, Delete, consentP1, unrelated, true, ReasonOwnRecord, false},
		{"patient writes another's Consent", pat1Writes, Update, consentP2, unrelated, false, ReasonNotOwn, false},
		{"patient with read scopes may not write own Consent", pat1, Create, consentP1, unrelated, false, ReasonNoScope, false},
		{"patient still writes nothing else", pat1Writes, Update, patientP1, unrelated, false, ReasonRoleNoWrite, false},
		{"physician may not withdraw a Consent that denies him", drA, Delete, consentP1, consentFacts(denyDrA), false, ReasonRoleNoWrite, false},
		{"physician may not update a Consent, even in care", drA, Update, consentP1, related, false, ReasonRoleNoWrite, false},
		{"physician may not weaken a Consent under break-glass", bg(drA), Update, consentP1, consentFacts(denyDrA), false, ReasonRoleNoWrite, false},
		{"physician may not create a Consent", drA, Create, consentP1, related, false, ReasonRoleNoWrite, false},
		{"physician may not write a Consent, type level", drA, Update, Target{Tenant: "t", Type: "Consent"}, related, false, ReasonRoleNoWrite, false},
		{"nurse may not write a Consent", rnB, Delete, consentP1, related, false, ReasonRoleNoWrite, false},
		{"privacy officer writes a Consent", officer, Update, consentP1, unrelated, true, ReasonPrivacyOff, false},
		{"privacy officer deletes a Consent", officer, Delete, consentP2, consentFacts(denyAll), true, ReasonPrivacyOff, false},
		{"admin writes a Consent", admin, Update, consentP1, unrelated, true, ReasonAdminPHI, false},
		{"admin without PHI access may not write a Consent", admin, Update, consentP1, Facts{Now: now}, false, ReasonAdminNoPHI, false},

		// CareTeam, Encounter, Patient: clinicians within their reach,
		// never by break-the-glass.
		{"physician writes a CareTeam of a patient in care", drA, Update, careTeamP1, related, true, ReasonRelation, false},
		{"physician adds an unrelated patient to a CareTeam", drA, Update, careTeamP1P2, related, false, ReasonGoverns, false},
		{"physician creates a CareTeam for an unrelated patient", drA, Create, careTeamP2, related, false, ReasonNoRelation, false},
		{"break-glass does not write a CareTeam", bg(drA), Create, careTeamP2, related, false, ReasonGoverns, false},
		{"break-glass does not write an Encounter", bg(drA), Create, encounterP2, related, false, ReasonGoverns, false},
		{"break-glass does not name oneself general practitioner", bg(drA), Update, patientP2, related, false, ReasonGoverns, false},
		{"break-glass does not claim an orphaned id", bg(drA), Update, claimedP6, related, false, ReasonGoverns, false},
		{"physician registers a patient linked to one of his", drA, Create, linked(newPatient, "p1"), related, true, ReasonScopeGrants, false},
		{"physician registers a patient linked to an unrelated one", drA, Create, linked(newPatient, "p2"), related, false, ReasonGoverns, false},
		{"physician links his patient to an unrelated one", drA, Update, linked(patientP1, "p2"), related, false, ReasonGoverns, false},
		{"physician claims an orphaned id", drA, Update, claimedP6, related, false, ReasonNoRelation, false},
		{"physician registers a patient under a new id", drA, Update, with3(claimedP6), unrelated, true, ReasonScopeGrants, false},
		{"physician writes an Encounter of a patient in care", drA, Create, encounterP1, related, true, ReasonRelation, false},
		{"consent-denied physician may not write a CareTeam", drA, Update, careTeamP1, consentFacts(denyDrA), false, ReasonGoverns, false},
		{"consent-denied physician may not write one under break-glass", bg(drA), Update, careTeamP1, consentFacts(denyDrA), false, ReasonGoverns, false},
		{"break-glass still writes an Observation", bg(drA), Create, obsP2, related, true, ReasonBreakGlass, true},
		{"privacy officer writes a CareTeam", officer, Update, careTeamP1P2, unrelated, true, ReasonPrivacyOff, false},
		{"privacy officer writes a PractitionerRole", officer, Create, practRoleX, unrelated, true, ReasonScopeGrants, false},
		{"privacy officer may not write an Encounter", officer, Create, encounterP1, unrelated, false, ReasonRoleNoWrite, false},
		{"privacy officer may not write an Observation", officer, Update, obsP1, unrelated, false, ReasonRoleNoWrite, false},
		{"privacy officer may not create an Observation", officer, Create, Target{Tenant: "t", Type: "Observation"}, unrelated, false, ReasonRoleNoWrite, false},
		{"privacy officer may replace an Observation it relabels", officer, Update, with4(obsP1), unrelated, true, ReasonPrivacyOff, false},
		{"privacy officer relabels an Observation", officer, Update, relabelled(unlabelled(obsP1HIV, "R")), unrelated, false, ReasonLabel + ":HIV", false},
		{"cleared privacy officer relabels an Observation", clear(officer, "HIV"), Update, relabelled(unlabelled(obsP1HIV, "R")), unrelated, true, ReasonPrivacyOff, false},
		{"privacy officer reads patient data", officer, Read, obsP2, unrelated, true, ReasonPrivacyOff, false},
		{"privacy officer reads without admin PHI access", officer, Read, obsP2, Facts{Now: now}, true, ReasonPrivacyOff, false},
		{"privacy officer may not break the glass", bg(officer), Read, obsP1, consentFacts(denyAll), false, ReasonBGNotAllowed, false},

		// Security labels: removing one is the privacy officer's (or an
		// admin's, a client's).
		{"physician removes a label", clear(drA, "R"), Update, unlabelled(obsP1, "R"), related, false, ReasonLabelRemoval, false},
		{"physician removes a label under break-glass", clear(bg(drA), "R"), Update, unlabelled(obsP1, "R"), related, false, ReasonLabelRemoval, false},
		{"physician adds a label he is cleared for", clear(drA, "R"), Update, obsP1R, related, true, ReasonRelation, false},
		{"nurse removes a label", rnB, Update, unlabelled(obsP1, "N"), related, false, ReasonLabelRemoval, false},
		{"admin removes a label", admin, Update, unlabelled(obsP1, "R"), unrelated, true, ReasonAdminPHI, false},
		{"client removes a label", with(client, func(s *Subject) { s.Scopes = []string{"system/*.cruds"} }), Update, unlabelled(obsP1, "R"), unrelated, true, ReasonScopeGrants, false},

		// Backend clients.
		{"client reads by system scope", client, Read, obsP2, unrelated, true, ReasonScopeGrants, false},
		{"client bound by consent", client, Read, obsP1, consentFacts(denyAll), false, ReasonConsentDeny + ":deny-all", false},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		seen[c.name] = true
		d := Decide(c.s, c.a, c.t, c.f)
		if d.Allow != c.allow || !slices.Contains(d.Reasons, c.why) || d.Emergency != c.emergency {
			t.Errorf("%s: %+v, want allow=%v emergency=%v with %s", c.name, d, c.allow, c.emergency, c.why)
		}
	}
}

func with2(t Target, tenant string) Target { t.Tenant = tenant; return t }

// linked adds the patients a Patient links to.
func linked(t Target, ps ...string) Target {
	t.Patients = append(slices.Clone(t.Patients), ps...)
	return t
}

// with4 marks t the version a write replaces.
func with4(t Target) Target { t.Replaced = true; return t }

// with3 marks t a new Patient (an id nothing refers to yet).
func with3(t Target) Target { t.New = true; return t }

// TestDecideProperties runs every combination of the fixtures and checks
// what must hold for all of them.
func TestDecideProperties(t *testing.T) {
	subjects := []Subject{admin, drA, drUnlinked, rnB, pat1, pat1Writes, patNoLink, client, officer, clear(drA, "HIV", "R"), purpose(drA, PurposeResearch), purpose(pat1, "BOGUS")}
	targets := []Target{obsP1, obsP1Lab, obsP1HIV, obsP1R, obsP1V, obsP2, obsNone, condP1, patientP1, patientP2, newPatient, practDrA, orgX, medication, plan, {Tenant: "t", Type: "Observation"}, {Tenant: "t", Type: "Patient"},
		obsP1P2, consentP1, consentP2, careTeamP1P2, encounterP2, claimedP6, unlabelled(obsP1R, "HIV"), relabelled(obsP2)}
	consents := [][]Consent{nil, {denyAll}, {denyDrA}, {denyObs}, {denyHIV}, {denyButDrA}, {permitResearch}, {denyExpired}, {denyData}, {permitResearch, denyResearch}}
	careOf := [][]string{nil, {"p1"}, {"p1", "p2"}}
	n := 0
	for _, s0 := range subjects {
		for _, bgOn := range []bool{false, true} {
			s := s0
			if bgOn {
				s = bg(s)
			}
			for _, tg := range targets {
				for _, a := range actions {
					for _, cs := range consents {
						for _, co := range careOf {
							for _, phi := range []bool{false, true} {
								f := Facts{Now: now, CareOf: co, Consents: cs, AdminPHI: phi}
								d := Decide(s, a, tg, f)
								n++
								name := func() string {
									return string(s.Role) + "/" + s.ID + " bg=" + strconv.FormatBool(bgOn) + " " + string(a) + " " + tg.Type + "/" + tg.ID
								}
								if len(d.Reasons) == 0 {
									t.Fatalf("%s: a decision without reasons", name())
								}
								if d.Emergency && (!d.Allow || s.Role != RolePhysician || s.BreakGlass == "") {
									t.Fatalf("%s: emergency %+v", name(), d)
								}
								if d.Allow && slices.ContainsFunc(d.Reasons, func(r string) bool {
									return strings.HasPrefix(r, ReasonLabel) || r == ReasonNoRelation && !d.Emergency || r == ReasonTenant
								}) {
									t.Fatalf("%s: allowed with a denying reason: %+v", name(), d)
								}
								// Break-glass only ever adds, and only marks
								// what it overrode.
								plain := Decide(s0, a, tg, f)
								if plain.Allow && !d.Allow {
									t.Fatalf("%s: break-glass took access away: %+v", name(), d)
								}
								if !plain.Allow && d.Allow && !d.Emergency {
									t.Fatalf("%s: break-glass allowed without marking an emergency: %+v", name(), d)
								}
								// Monotone in facts: more relationships never
								// deny, another deny consent never allows.
								if d.Allow && len(co) < 2 {
									f2 := f
									f2.CareOf = []string{"p1", "p2"}
									if !Decide(s, a, tg, f2).Allow {
										t.Fatalf("%s: a further relationship denied", name())
									}
								}
								if !d.Allow {
									f2 := f
									f2.Consents = append(slices.Clone(cs), denyAll)
									if Decide(s, a, tg, f2).Allow && !bgOn {
										t.Fatalf("%s: a deny consent allowed", name())
									}
								}
								// A write reaches every compartment: a
								// clinician's allowed write (not an
								// emergency) is in the care of every patient
								// it names, and no clinician ever changes a
								// Consent, nor a governing resource by
								// break-the-glass, nor removes a label.
								if d.Allow && a.IsWrite() && (s.Role == RolePhysician || s.Role == RoleNurse) {
									if !d.Emergency && !tg.New && tg.Instance && !subset(tg.Patients, co) && len(tg.Patients) > 0 {
										t.Fatalf("%s: a write outside the care of one of its patients: %+v", name(), d)
									}
									if tg.Type == "Consent" || d.Emergency && GovernsAccess(tg.Type) || len(tg.RemovedLabels) > 0 {
										t.Fatalf("%s: a clinician changed what governs access: %+v", name(), d)
									}
								}
								// Another tenant: always denied.
								if Decide(s, a, with2(tg, "t2"), f).Allow {
									t.Fatalf("%s: allowed across tenants", name())
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d combinations", n)
}

// The compartment table authz imports must itself stay free of I/O: the
// import rule covers what authz pulls in, not just its own files.
func TestCompartmentImportsNoIO(t *testing.T) {
	files, err := filepath.Glob("../fhir/compartment/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("compartment sources not found: %v", err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p != "sort" && p != "slices" {
				t.Errorf("%s imports %s; authz may only depend on data", name, p)
			}
		}
	}
}

func TestRestrict(t *testing.T) {
	f := Facts{Now: now, CareOf: []string{"p1", "p2"}, Consents: []Consent{denyObs}, AdminPHI: true}
	cases := []struct {
		name      string
		s         Subject
		typ       string
		all       bool
		patients  []string
		emergency bool
	}{
		{"physician, consent hides p1's observations", drA, "Observation", false, []string{"p2"}, false},
		{"physician, conditions of both", drA, "Condition", false, []string{"p1", "p2"}, false},
		{"nurse", rnB, "Observation", false, []string{"p2"}, false},
		{"physician break-glass", bg(drA), "Observation", true, nil, true},
		{"patient", pat1, "Observation", false, []string{"p1"}, false},
		{"admin", admin, "Observation", true, nil, false},
		{"directory", drA, "Practitioner", true, nil, false},
	}
	for _, c := range cases {
		r := Restrict(c.s, Search, c.typ, f)
		if r.All != c.all || !slices.Equal(r.Patients, c.patients) || r.Emergency != c.emergency {
			t.Errorf("%s: %+v", c.name, r)
		}
	}
	if r := Restrict(admin, Search, "Observation", f); !r.All || !slices.Equal(r.ExcludePatients, []string{"p1"}) {
		t.Errorf("admin: patients whose consents deny are excluded: %+v", r)
	}
	if r := Restrict(admin, Search, "Condition", f); !r.All || len(r.ExcludePatients) != 0 {
		t.Errorf("admin: a consent denying Observations excludes no Conditions: %+v", r)
	}
	if r := Restrict(drA, Search, "Observation", f); !slices.Contains(r.ExcludeLabels, "HIV") || !slices.Contains(r.ExcludeLabels, "R") {
		t.Errorf("uncleared labels not excluded: %v", r.ExcludeLabels)
	}
	if r := Restrict(clear(drA, "HIV"), Search, "Observation", f); slices.Contains(r.ExcludeLabels, "HIV") {
		t.Errorf("cleared label excluded: %v", r.ExcludeLabels)
	}
	if r := Restrict(pat1, Search, "Observation", f); !slices.Equal(r.ExcludeLabels, []string{"V"}) {
		t.Errorf("patient's own labels: %v", r.ExcludeLabels)
	}
}

func TestScopeConstraints(t *testing.T) {
	cases := []struct {
		scopes      []string
		constrained bool
		cats        []string
	}{
		{[]string{"user/Observation.rs"}, false, nil},
		{[]string{"user/Observation.rs?category=laboratory"}, true, []string{"laboratory"}},
		{[]string{"user/Observation.rs?category=laboratory", "user/Observation.rs?category=vital-signs"}, true, []string{"laboratory", "vital-signs"}},
		{[]string{"user/Observation.rs?category=laboratory", "user/*.rs"}, false, nil},
		{[]string{"user/Observation.rs?code=x"}, false, nil},
	}
	for _, c := range cases {
		got, cats := ScopeConstraints(with(drA, func(s *Subject) { s.Scopes = c.scopes }), Search, "Observation")
		if got != c.constrained || !slices.Equal(cats, c.cats) {
			t.Errorf("%v: %v %v", c.scopes, got, cats)
		}
	}
}

// BenchmarkDecideInstance: one resource with a relationship, labels and
// two consents to evaluate.
func BenchmarkDecideInstance(b *testing.B) {
	f := consentFacts(denyHIV, denyButDrA)
	s := clear(drA, "HIV")
	for b.Loop() {
		if d := Decide(s, Read, obsP1HIV, f); d.Allow {
			b.Fatal("allowed")
		}
	}
}

// TestRestrictIsExact checks the promise that lets a search skip the
// per-resource decision: under every combination of the fixtures, a
// resource that the restriction keeps (evaluated here as the SQL does),
// outside the compartments of Partial, passes Decide when Exact; and for a
// resource of one patient the restriction keeps exactly what Decide allows.
func TestRestrictIsExact(t *testing.T) {
	scoped := func(s Subject, scopes ...string) Subject { return with(s, func(s *Subject) { s.Scopes = scopes }) }
	subjects := []Subject{admin, drA, rnB, pat1, client, clear(drA, "HIV", "R"), purpose(drA, PurposeResearch),
		purpose(admin, PurposeResearch), purpose(client, PurposeResearch), bg(drA), bg(rnB),
		scoped(drA, "user/Observation.rs?category=laboratory", "user/Patient.rs", "user/Condition.rs"),
		with(scoped(drA, "launch/patient", "patient/*.rs"), func(s *Subject) { s.Patient = "p1" }),
		with(scoped(admin, "launch/patient", "patient/*.rs"), func(s *Subject) { s.Patient = "p1" }),
		scoped(pat1, "patient/Observation.rs?category=laboratory", "patient/Patient.rs")}
	on := func(c Consent, p string) Consent { c.Patient = p; c.ID += "-" + p; return c }
	consents := [][]Consent{nil, {denyAll}, {denyDrA}, {denyObs}, {denyHIV}, {denyButDrA}, {permitResearch}, {denyExpired},
		{denyData}, {permitResearch, denyResearch}, {denyOtherPat}, {on(denyObs, "p2"), on(permitResearch, "p3")},
		{on(denyHIV, "p2"), permitResearch}, {on(denyAll, "p3"), denyDrA}, {denyDraft}, {treatmentOnly}, {denyOrgX}}
	careOf := [][]string{nil, {"p1"}, {"p1", "p2"}, {"p2", "p3"}}
	patientSets := [][]string{{"p1"}, {"p2"}, {"p3"}, {"p1", "p2"}, {"p2", "p3"}, nil}
	labelSets := [][]string{nil, {"HIV"}, {"R"}, {"V"}, {"N"}}
	catSets := [][]string{nil, {"laboratory"}, {"vital-signs"}}
	n, exact := 0, 0
	for _, typ := range []string{"Observation", "Condition", "Patient", "Practitioner"} {
		var resources []Target
		for i, ps := range patientSets {
			for j, ls := range labelSets {
				for k, cs := range catSets {
					id := "o" + strconv.Itoa(i) + strconv.Itoa(j) + strconv.Itoa(k)
					if typ == "Patient" {
						if len(ps) != 1 {
							continue
						}
						id = ps[0]
					}
					if typ == "Practitioner" {
						ps = nil
					}
					if i == 0 && j == 0 && k == 0 && typ != "Patient" {
						id = "o1" // the id denyData names
					}
					resources = append(resources, Target{Tenant: "t", Type: typ, ID: id, Instance: true, Patients: ps, Labels: ls, Categories: cs})
				}
			}
		}
		for _, s := range subjects {
			for _, cs := range consents {
				for _, co := range careOf {
					for _, all := range []bool{true, false} {
						f := Facts{Now: now, CareOf: co, Consents: cs, AdminPHI: true, AllConsents: all}
						if !Decide(s, Search, Target{Tenant: "t", Type: typ}, f).Allow {
							continue
						}
						r := Restrict(s, Search, typ, f)
						constrained, cats := ScopeConstraints(s, Search, typ)
						for _, res := range resources {
							n++
							kept := (r.All || intersects(res.Patients, r.Patients)) && !intersects(res.Patients, r.ExcludePatients) &&
								!intersects(res.Labels, r.ExcludeLabels) && (!constrained || intersects(res.Categories, cats))
							if !r.Exact || intersects(res.Patients, r.Partial) {
								continue
							}
							exact++
							d := Decide(s, Read, res, f)
							name := func() string {
								return fmt.Sprintf("%s/%s purpose=%q bg=%v care=%v consents=%v: %s %v labels=%v cats=%v: restriction %+v",
									s.Role, s.ID, s.Purpose, s.BreakGlass != "", co, consentIDs(cs), typ, res.Patients, res.Labels, res.Categories, r)
							}
							if kept && !d.Allow {
								t.Fatalf("%s keeps a resource Decide refuses: %v", name(), d.Reasons)
							}
							if kept && d.Emergency {
								t.Fatalf("%s: exact, but the access must be marked as an emergency", name())
							}
							if len(res.Patients) <= 1 && !kept && d.Allow {
								t.Fatalf("%s leaves out a resource Decide allows", name())
							}
						}
					}
				}
			}
		}
	}
	if exact < n/4 {
		t.Fatalf("only %d of %d combinations exact: the fast path would rarely apply", exact, n)
	}
	t.Logf("%d combinations, %d exact", n, exact)
}

func consentIDs(cs []Consent) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// registration marks t as the CareTeam written with a new Patient.
func registration(t Target) Target { t.Registration = true; return t }
