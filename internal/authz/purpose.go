package authz

import "slices"

// Purpose of use codes (HL7 v3 PurposeOfUse, 2.16.840.1.113883.5.8) that
// Ward accepts in a token or the X-Purpose-Of-Use header.
const (
	PurposeTreatment  = "TREAT"   // treatment
	PurposeEmergency  = "ETREAT"  // emergency treatment
	PurposeOperations = "HOPERAT" // healthcare operations
	PurposePayment    = "HPAYMT"  // payment
	PurposeResearch   = "HRESCH"  // research
	PurposePatient    = "PATRQT"  // patient requested
	PurposePublic     = "PUBHLTH" // public health
	PurposeBreakGlass = "BTG"     // break the glass
	PurposeLegal      = "HLEGAL"  // legal
	PurposeCoverage   = "COVERAGE"
	PurposeFamily     = "FAMRQT" // family requested
	PurposeSystem     = "SYSADMIN"
)

var purposes = []string{PurposeTreatment, PurposeEmergency, PurposeOperations, PurposePayment, PurposeResearch,
	PurposePatient, PurposePublic, PurposeBreakGlass, PurposeLegal, PurposeCoverage, PurposeFamily, PurposeSystem}

// KnownPurpose reports whether code is a purpose of use Ward accepts.
func KnownPurpose(code string) bool { return slices.Contains(purposes, code) }

// DefaultPurpose is the purpose of use of a request that names none:
// treatment for clinicians, patient request for patients, operations for
// admins and backend clients.
func DefaultPurpose(r Role) string {
	switch r {
	case RolePhysician, RoleNurse:
		return PurposeTreatment
	case RoleUser:
		return PurposePatient
	}
	return PurposeOperations
}

// Security labels (meta.security codes) that need a clearance: the v3
// Confidentiality codes R (restricted) and V (very restricted), and the v3
// ActCode sensitivity codes for information with special protection.
var clearanceLabels = []string{
	"R", "V",
	"HIV", "PSY", "PSYTHPN", "MH", "BH", "ETH", "SUD", "SDV", "SEX", "STD", "GDIS", "SICKLE", "DEMO", "DIA", "DRGIS", "DRG", "TBOO",
}

// NeedsClearance reports whether a security label code restricts access
// to cleared subjects.
func NeedsClearance(code string) bool { return slices.Contains(clearanceLabels, code) }

// ClearanceLabels lists the label codes that need a clearance.
func ClearanceLabels() []string { return slices.Clone(clearanceLabels) }

// cleared reports whether s may see a resource labelled code. A patient
// sees their own record whatever its labels, except very restricted (V)
// information, which needs an explicit clearance like for anyone.
func cleared(s Subject, code string) bool {
	if slices.Contains(s.Clearances, code) {
		return true
	}
	return s.Role == RoleUser && code != "V"
}

// Cleared is cleared for callers restricting searches.
func Cleared(s Subject, code string) bool { return cleared(s, code) }
