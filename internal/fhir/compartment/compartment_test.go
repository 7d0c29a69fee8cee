package compartment

import (
	"slices"
	"testing"
)

// Spot checks against the R4 Patient CompartmentDefinition file it is generated from
// (4.0.1; its Encounter entry names "subject").
func TestPatientCompartment(t *testing.T) {
	cases := []struct {
		typ    string
		params []string
	}{
		{"Patient", []string{"link"}},
		{"Observation", []string{"subject", "performer"}},
		{"Encounter", []string{"subject"}},
		{"Immunization", []string{"patient"}},
		{"CareTeam", []string{"patient", "participant"}},
		{"Consent", []string{"patient"}},
		{"Organization", nil},
		{"Practitioner", nil},
		{"NoSuchType", nil},
	}
	for _, c := range cases {
		if got := PatientParams(c.typ); !slices.Equal(got, c.params) {
			t.Errorf("PatientParams(%q) = %v, want %v", c.typ, got, c.params)
		}
		if got := InPatientCompartment(c.typ); got != (c.params != nil) {
			t.Errorf("InPatientCompartment(%q) = %v", c.typ, got)
		}
	}
	if n := len(PatientTypes()); n != 67 {
		t.Errorf("PatientTypes has %d types; the R4 definition lists 67 with params", n)
	}
}
