// Package compartment holds the official FHIR R4 Patient compartment: which
// resource types belong to a patient, and through which search parameters.
// It is data only (generated from the CompartmentDefinition into table.go),
// shared by $everything, bulk export and patient-scoped access so that all
// three agree on what "a patient's record" is.
package compartment

import "sort"

// PatientParams returns the search parameters that put a resource of type
// typ in a Patient's compartment (for Patient itself, "link"; the Patient is
// also in its own compartment by id). Nil means typ is not in the
// compartment. The slice must not be modified.
func PatientParams(typ string) []string { return patientParams[typ] }

// InPatientCompartment reports whether resources of type typ can belong to a
// Patient's compartment.
func InPatientCompartment(typ string) bool { return len(patientParams[typ]) > 0 }

// PatientTypes returns the resource types of the Patient compartment, sorted.
func PatientTypes() []string {
	out := make([]string, 0, len(patientParams))
	for t := range patientParams {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
