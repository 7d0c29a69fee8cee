package records

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/value"
	"github.com/wardhealth/ward/internal/store"
)

// EverythingQuery selects Patient/$everything: one patient's compartment
// (PatientID set) or every patient's (PatientID empty, the type-level
// operation).
type EverythingQuery struct {
	PatientID string
	// Since keeps resources last updated at or after it (zero: all).
	Since time.Time
	// Start and End ("" for open) are FHIR dates bounding the care dates
	// of the compartment's resources (careDates).
	Start, End string
	// Types limits the result to these types (empty: all).
	Types []string
	// Count is the page size; 0 asks for the total alone.
	Count int
	// After is the decoded cursor of the previous page, or nil.
	After []any
}

// careDates are, per type of the Patient compartment, the date search
// parameters that say when the care a resource records took place (not
// when the record was written), for $everything's start and end. A type
// absent here has no care date: its resources are always returned, as
// is a resource of a listed type that has none of these dates.
var careDates = map[string][]string{
	"Account":                     {"period"},
	"AdverseEvent":                {"date"},
	"AllergyIntolerance":          {"onset", "date"},
	"Appointment":                 {"date"},
	"AuditEvent":                  {"date"},
	"Basic":                       {"created"},
	"CarePlan":                    {"date"},
	"CareTeam":                    {"date"},
	"ChargeItem":                  {"occurrence"},
	"Claim":                       {"created"},
	"ClaimResponse":               {"created"},
	"ClinicalImpression":          {"date"},
	"Communication":               {"sent", "received"},
	"CommunicationRequest":        {"occurrence", "authored"},
	"Composition":                 {"date"},
	"Condition":                   {"onset-date", "recorded-date"},
	"Consent":                     {"date"},
	"CoverageEligibilityRequest":  {"created"},
	"CoverageEligibilityResponse": {"created"},
	"DetectedIssue":               {"identified"},
	"DeviceRequest":               {"event-date", "authored-on"},
	"DiagnosticReport":            {"date"},
	"DocumentManifest":            {"created"},
	"DocumentReference":           {"period", "date"},
	"Encounter":                   {"date"},
	"EpisodeOfCare":               {"date"},
	"ExplanationOfBenefit":        {"created"},
	"FamilyMemberHistory":         {"date"},
	"Flag":                        {"date"},
	"Goal":                        {"start-date"},
	"ImagingStudy":                {"started"},
	"Immunization":                {"date"},
	"ImmunizationEvaluation":      {"date"},
	"ImmunizationRecommendation":  {"date"},
	"Invoice":                     {"date"},
	"List":                        {"date"},
	"MeasureReport":               {"period"},
	"Media":                       {"created"},
	"MedicationAdministration":    {"effective-time"},
	"MedicationDispense":          {"whenhandedover"},
	"MedicationRequest":           {"authoredon"},
	"MedicationStatement":         {"effective"},
	"NutritionOrder":              {"datetime"},
	"Observation":                 {"date"},
	"Procedure":                   {"date"},
	"Provenance":                  {"when"},
	"QuestionnaireResponse":       {"authored"},
	"RequestGroup":                {"authored"},
	"ResearchSubject":             {"date"},
	"RiskAssessment":              {"date"},
	"Schedule":                    {"date"},
	"ServiceRequest":              {"occurrence", "authored"},
	"Specimen":                    {"collected"},
	"SupplyRequest":               {"date"},
	"Task":                        {"period", "authored-on"},
	"VisionPrescription":          {"datewritten"},
}

// careDatePIDs are the index parameters of every type's care dates: a
// parameter number belongs to one type, so one list serves them all.
var careDatePIDs = sync.OnceValue(func() []int32 {
	var out []int32
	for typ, codes := range careDates {
		for _, c := range codes {
			if p, ok := params.Lookup(typ, c); ok && p.Type == "date" && search.Indexed(typ, p) {
				out = append(out, search.PID(typ, c))
			}
		}
	}
	slices.Sort(out)
	return out
})

// compartmentRefPIDs are the index parameters of every reference search
// parameter of the Patient compartment's types: the references
// $everything follows one level out.
var compartmentRefPIDs = sync.OnceValue(func() []int32 { return refPIDsOf(compartment.PatientTypes()) })

// Everything returns the Patient compartment as the official
// CompartmentDefinition draws it (package compartment): the patient
// itself and every current resource of a compartment type that refers to
// the patient through one of the type's compartment parameters; and,
// as the Patient-everything OperationDefinition asks, the resources
// outside the compartment that those resources refer to (Practitioner,
// Organization, Medication, Location, ...), one level out, through their
// indexed reference parameters. Resources of compartment types are never
// drawn in by reference: another patient's records are not this
// patient's. Start and End keep the compartment's resources whose care
// date (careDates) overlaps them or is unknown; the references followed
// are those of the resources kept. Results come in a stable order,
// paged. Access is decided per type as a search's: types the caller may
// not read are left out (the patient's own type must be readable, or the
// operation is refused), and each resource disclosed, referenced ones
// too, passes the decision a read would. The audit record names every
// resource disclosed.
func (r *Repo) Everything(ctx context.Context, q EverythingQuery) (*Page, error) {
	action := "everything-instance"
	if q.PatientID == "" {
		action = "everything-type"
	}
	rec := r.record(action, "Patient")
	if err := r.decide(authz.Read, rec); err != nil {
		return nil, err
	}
	invalid := func(msg string) error {
		return r.refuse(rec, audit.OutcomeMinor, "invalid", problem.New(problem.ErrInvalid, "invalid", msg))
	}
	for _, t := range q.Types {
		if !fhir.IsResourceType(t) {
			return nil, invalid("_type: not an R4 resource type")
		}
	}
	lo, hi := int64(value.Min), int64(value.Max)
	dated := q.Start != "" || q.End != ""
	if q.Start != "" {
		d, err := value.ParseDate(q.Start)
		if err != nil {
			return nil, invalid("start: not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)")
		}
		lo = d.Lo
	}
	if q.End != "" {
		d, err := value.ParseDate(q.End)
		if err != nil {
			return nil, invalid("end: not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)")
		}
		hi = d.Hi
	}
	if lo > hi {
		return nil, invalid("start is after end")
	}
	if q.After != nil && len(q.After) != 1 {
		return nil, invalid("_cursor: not a cursor of this operation")
	}
	readable := func(t string) bool { return r.decideType(authz.Read, t).Allow }
	wanted := func(t string) bool { return len(q.Types) == 0 || slices.Contains(q.Types, t) }
	// The compartment as the caller may see it: the resources whose
	// references are followed, whatever _type returns.
	compTypes := slices.DeleteFunc(compartment.PatientTypes(), func(t string) bool { return !readable(t) })
	var refTypes []string
	for _, t := range fhir.ResourceTypes() {
		if t != "Patient" && !compartment.InPatientCompartment(t) && readable(t) && wanted(t) {
			refTypes = append(refTypes, t)
		}
	}
	outComp := slices.DeleteFunc(slices.Clone(compTypes), func(t string) bool { return !wanted(t) })
	if q.PatientID != "" && r.hidesExistence("Patient") {
		// Answer as a read of the Patient does: an unknown, deleted or
		// unreadable patient alike is a refusal (no existence oracle).
		if err := r.guardInstance(ctx, rec, authz.Read, "Patient", q.PatientID, false); err != nil {
			return nil, err
		}
		rec.Entities = nil
	} else if q.PatientID != "" {
		v, err := r.instance(ctx, rec, "Patient", q.PatientID, 0)
		switch {
		case err != nil:
			return nil, err
		case v.Deleted:
			rec.Entities = []string{ref("Patient", q.PatientID, v.Version)}
			return nil, r.refuse(rec, audit.OutcomeMinor, "deleted",
				problem.New(problem.ErrGone, "deleted", "Patient/"+q.PatientID+" was deleted"))
		}
	}
	page := &Page{}
	types := append(slices.Clone(outComp), refTypes...)
	if len(types) == 0 {
		return page, r.commitAudit(rec)
	}
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return nil, err
	}
	var alts []string
	var args []any
	if len(outComp) > 0 {
		c, ca := search.InCompartmentOf(outComp, compartmentPIDs, q.PatientID, r.subj.Tenant, k)
		if dated {
			d, da := search.WithinDates("r", careDatePIDs(), lo, hi)
			c, ca = search.Paren(c)+" AND "+d, append(ca, da...)
		}
		alts, args = append(alts, search.Paren(c)), append(args, ca...)
	}
	if len(refTypes) > 0 {
		// The sources: the compartment restricted as a search of it is,
		// less the resources whose disclosure consents decide one by one
		// (their references are not followed: following them would tell
		// what a resource the caller may not see refers to).
		src, sargs := search.InCompartmentOn("s", compTypes, compartmentPIDs, q.PatientID, r.subj.Tenant, k)
		sres, err := r.restrict(ctx, compTypes, k, "s")
		if err != nil {
			return nil, err
		}
		if sres.where != "" {
			src, sargs = search.Paren(src)+" AND "+search.Paren(sres.where), append(sargs, sres.args...)
		}
		if sres.partial != "" {
			src, sargs = search.Paren(src)+" AND "+search.Not(sres.partial), append(sargs, sres.partialArgs...)
		}
		if dated {
			d, da := search.WithinDates("s", careDatePIDs(), lo, hi)
			src, sargs = search.Paren(src)+" AND "+d, append(sargs, da...)
		}
		c := search.TypesIn("r", len(refTypes)) + " AND " + search.ReferencedFrom("r", compartmentRefPIDs(), len(compTypes), src)
		for _, t := range refTypes {
			args = append(args, t)
		}
		args = append(args, r.subj.Tenant)
		for _, t := range compTypes {
			args = append(args, t)
		}
		alts, args = append(alts, search.Paren(c)), append(args, sargs...)
	}
	sq := store.SearchQuery{Tenant: r.subj.Tenant, Types: types, Where: []string{search.AnyOf(alts)}, Args: args, Limit: q.Count + 1, After: q.After}
	// The same restriction as a search: only patients, labels and
	// categories the caller may see, in SQL, so that paging never leaks.
	res, err := r.restrict(ctx, types, k, "r")
	if err != nil {
		return nil, err
	}
	if res.where != "" {
		sq.Where = append(sq.Where, res.where)
		sq.Args = append(sq.Args, res.args...)
	}
	if !q.Since.IsZero() {
		sq.Where = append(sq.Where, "r.last_updated >= ?")
		sq.Args = append(sq.Args, q.Since.UnixMicro())
	}
	// Every page carries the total of the operation's result, counted
	// (and bounded) as a search's.
	counted := sq
	counted.Limit, counted.After = 0, nil
	n, known, err := r.count(ctx, rec, counted, res)
	if err != nil {
		return nil, err
	}
	if known {
		page.Total = &n
	} else {
		page.Notes = append(page.Notes, TotalTooCostly)
	}
	if q.Count <= 0 {
		return page, r.commitAudit(rec)
	}
	hits, err := r.s.st.Search(ctx, sq)
	if err != nil {
		return nil, store.Problem(err)
	}
	if len(hits) > q.Count {
		hits = hits[:q.Count]
		page.NextKeys = []any{hits[len(hits)-1].RID}
	}
	vs := make([]store.Version, len(hits))
	for i := range hits {
		vs[i] = hits[i].Version
	}
	if err := r.openAllowed(ctx, rec, vs, &page.Resources); err != nil {
		return nil, err
	}
	return page, r.commitAudit(rec)
}

// compartmentPIDs are the index parameters of typ's patient compartment
// references.
func compartmentPIDs(typ string) []int32 {
	var pids []int32
	for _, code := range compartment.PatientParams(typ) {
		if p, ok := params.Lookup(typ, code); ok {
			pids = append(pids, search.RefPIDs(typ, p)...)
		}
	}
	return pids
}
