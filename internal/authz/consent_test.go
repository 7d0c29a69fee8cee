package authz

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

const consentJSON = `{
  "resourceType": "Consent", "id": "c1", "status": "active",
  "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
  "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
  "patient": {"reference": "Patient/p1"},
  "provision": {
    "type": "permit",
    "period": {"start": "2026-01-01", "end": "2027"},
    "provision": [
      {"type": "deny",
       "actor": [{"role": {"coding": [{"code": "PRCP"}]}, "reference": {"reference": "Practitioner/dr-a"}}],
       "purpose": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}],
       "class": [{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}],
       "securityLabel": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HIV"}],
       "data": [{"meaning": "instance", "reference": {"reference": "https://ward.example/fhir/Observation/o2/_history/3"}}],
       "provision": [{"type": "permit", "actor": [{"reference": {"identifier": {"value": "x"}}}]}]}
    ]
  }
}`

func TestParseConsent(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal([]byte(consentJSON), &doc); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConsent(doc)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != "c1" || c.Patient != "p1" || !c.Active || !c.Privacy || c.Research {
		t.Fatalf("header: %+v", c)
	}
	p := c.Provision
	if p.Type != "permit" || !p.Start.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || p.End.Year() != 2027 || p.End.Month() != 12 || len(p.Provisions) != 1 {
		t.Fatalf("root: %+v", p)
	}
	n := p.Provisions[0]
	want := Provision{Type: "deny", Actors: []string{"Practitioner/dr-a"}, Purposes: []string{"TREAT"}, Classes: []string{"Observation"},
		Labels: []string{"HIV"}, Data: []string{"Observation/o2"}}
	if n.Type != want.Type || !slices.Equal(n.Actors, want.Actors) || !slices.Equal(n.Purposes, want.Purposes) ||
		!slices.Equal(n.Classes, want.Classes) || !slices.Equal(n.Labels, want.Labels) || !slices.Equal(n.Data, want.Data) {
		t.Fatalf("nested: %+v", n)
	}
	// An actor Ward cannot resolve matches nobody.
	if got := n.Provisions[0].Actors; !slices.Equal(got, []string{"unresolved"}) {
		t.Fatalf("unresolved actor: %v", got)
	}
	// Applied: dr-a, TREAT, an HIV-labelled o2 in 2026 is denied.
	f := Facts{Now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), CareOf: []string{"p1"}, Consents: []Consent{c}}
	tg := Target{Tenant: "t", Type: "Observation", ID: "o2", Instance: true, Patients: []string{"p1"}, Labels: []string{"HIV"}}
	if d := Decide(clear(drA, "HIV"), Read, tg, f); d.Allow {
		t.Errorf("parsed deny not applied: %+v", d)
	}
	f.Now = time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := Decide(clear(drA, "HIV"), Read, tg, f); !d.Allow {
		t.Errorf("deny applied outside its period: %+v", d)
	}
}

func TestParseConsentRefuses(t *testing.T) {
	cases := map[string]string{
		"not a consent":   `{"resourceType":"Patient"}`,
		"bad type":        `{"resourceType":"Consent","provision":{"type":"maybe"}}`,
		"bad period":      `{"resourceType":"Consent","provision":{"period":{"start":"yesterday"}}}`,
		"nested not obj":  `{"resourceType":"Consent","provision":{"provision":[1]}}`,
		"nested too deep": `{"resourceType":"Consent","provision":{"provision":[{"provision":[{"provision":[{"provision":[{"provision":[{"provision":[{"provision":[{"provision":[{}]}]}]}]}]}]}]}]}}`,
	}
	for name, js := range cases {
		var doc map[string]any
		if err := json.Unmarshal([]byte(js), &doc); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseConsent(doc); !errors.Is(err, ErrConsent) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzParseConsent: any JSON object parses or is refused with ErrConsent,
// never panics, and a parsed consent can be applied.
func FuzzParseConsent(f *testing.F) {
	f.Add(consentJSON)
	f.Add(`{"resourceType":"Consent","status":"active","patient":{"reference":"Patient/x"},"provision":{"type":"deny"}}`)
	f.Add(`{"resourceType":"Consent","provision":{"actor":{"reference":"x"},"class":"Observation","purpose":[null]}}`)
	f.Add(`{"resourceType":"Consent","provision":{"period":{"start":"2026-13-01"}}}`)
	f.Fuzz(func(t *testing.T, js string) {
		var doc map[string]any
		if json.Unmarshal([]byte(js), &doc) != nil {
			return
		}
		c, err := ParseConsent(doc)
		if err != nil {
			if !errors.Is(err, ErrConsent) {
				t.Fatalf("error outside ErrConsent: %v", err)
			}
			return
		}
		c.Patient, c.Active, c.Privacy = "p1", true, true
		Decide(drA, Read, obsP1, Facts{Now: now, CareOf: []string{"p1"}, Consents: []Consent{c}})
	})
}

// A clinician's patient context (an EHR launch for Patient/p9) is not who
// the clinician is: a consent naming actor Patient/p9 does not apply to
// them, while it applies to the user-role account that is Patient/p9.
func TestConsentActorIsNotTheLaunchPatient(t *testing.T) {
	doc := map[string]any{}
	if err := json.Unmarshal([]byte(`{"resourceType":"Consent","id":"c9","status":"active",
	  "scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},
	  "category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],
	  "patient":{"reference":"Patient/p1"},
	  "provision":{"type":"permit","provision":[{"type":"deny","actor":[{"reference":{"reference":"Patient/p9"}}]}]}}`), &doc); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConsent(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := Facts{Now: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), CareOf: []string{"p1"}, Consents: []Consent{c}}
	tg := Target{Tenant: "t", Type: "Observation", ID: "o1", Instance: true, Patients: []string{"p1"}}
	doctor := Subject{Tenant: "t", ID: "u1", Role: RolePhysician, Practitioner: "dr", Patient: "p9", Scopes: []string{"user/*.rs"}}
	if d := Decide(doctor, Read, tg, f); !d.Allow {
		t.Fatalf("a physician in the context of p9 is not actor Patient/p9: %v", d.Reasons)
	}
	if got := subjectRefs(Subject{Role: RoleUser, Patient: "p9"}, Facts{}); !slices.Equal(got, []string{"Patient/p9"}) {
		t.Fatalf("a user-role account is its patient: %v", got)
	}
}
