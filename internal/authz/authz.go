// Package authz is the one place where Ward decides whether a request may
// touch data. Decide is a pure function over values: no I/O, no database, no
// HTTP (a test forbids those imports). Facts it needs about the data (which
// patients a resource belongs to, its security labels, the caller's care
// relationships, the patients' consents) are loaded by the caller before and
// passed in as values. Deny by default: a request that no rule permits is
// refused, any deny wins, and every Decision carries the reasons that
// produced it so the ledger can record them.
//
// The effective permission is role ∩ scopes ∩ relationship ∩ consent ∩
// labels. Break-the-glass lets a physician override relationship and
// consent denials (never role, scope, tenant or label denials) for one
// request; the Decision then says Emergency so the ledger marks it.
//
// Deciding and masking are separate: Decide says yes or no for one
// resource (or one type, for a type-level check); what a search returns is
// restricted by the caller from the same facts (AccessiblePatients).
package authz

import (
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/fhir/compartment"
)

// Role is a user's role. The hierarchy is admin > physician > nurse > user;
// privacy-officer stands beside it: it reads every patient's record and
// manages what governs access to it (consents, care teams, practitioner
// roles, security labels), and writes nothing else.
type Role string

// The roles.
const (
	RoleAdmin          Role = "admin"
	RolePrivacyOfficer Role = "privacy-officer"
	RolePhysician      Role = "physician"
	RoleNurse          Role = "nurse"
	RoleUser           Role = "user"
)

// RoleClient is the role of a SMART Backend Services client. It is not a
// user role: a client's permissions are exactly its system/ scopes.
const RoleClient Role = "client"

// Roles lists the user roles, most privileged first.
var Roles = []Role{RoleAdmin, RolePrivacyOfficer, RolePhysician, RoleNurse, RoleUser}

// ParseRole returns the role named s, or false.
func ParseRole(s string) (Role, bool) {
	r := Role(s)
	return r, slices.Contains(Roles, r)
}

// Subject is the authenticated caller, as authn established it, with the
// per-request values the HTTP edge read (purpose of use, break-the-glass).
type Subject struct {
	Tenant string
	// ID is the user or client id; never a name.
	ID   string
	Role Role
	// Scopes are the SMART scopes the token grants; a request needs a
	// scope for its action and type on top of the role's permission.
	Scopes []string
	// Practitioner is the id of the Practitioner a physician or nurse is
	// (the fhirUser claim Practitioner/<id>); "" when not linked.
	Practitioner string
	// Patient is the id of the Patient a user-role subject is or acts for
	// (the SMART patient claim); "" when not linked.
	Patient string
	// Purpose is the v3 PurposeOfUse code of this request ("" : the role's
	// default, see DefaultPurpose).
	Purpose string
	// BreakGlass is the reason a physician gave to override relationship
	// and consent denials for this request ("" : no override asked). It
	// may be free text; Decide only tests it for emptiness.
	BreakGlass string
	// Clearances are the security label codes (R, V, HIV, PSY, ...) the
	// subject is cleared to see.
	Clearances []string
}

// Action is a FHIR interaction, as the access rules see it.
type Action string

// The actions.
const (
	Read    Action = "read" // read and vread
	Search  Action = "search"
	History Action = "history"
	Create  Action = "create"
	Update  Action = "update"
	Delete  Action = "delete"
	// Merge is Patient/$merge on Patient types: one source patient's
	// record moved to a target patient. Only an admin, a backend client
	// and a physician may merge (a nurse does not write Patients, a
	// privacy officer writes no clinical data, a patient cannot hold both
	// records); at instance level the Target names both patients, so a
	// physician needs a care relationship with each, and as a Patient
	// write it governs access: break-the-glass never makes one.
	Merge Action = "merge"
	// Erase is Patient/$erase: the patient's data key is destroyed
	// (crypto-shredding every version sealed under it). Only a privacy
	// officer and an admin may erase, of a Patient only, with a Patient
	// delete scope; no care relationship, consent or break-the-glass
	// enters into it (it is not access to the record).
	Erase Action = "erase"
)

// IsWrite reports whether a changes data.
func (a Action) IsWrite() bool { return a == Create || a == Update || a == Delete || a == Merge }

// Target is what the action is about: a resource type (a type-level
// check, Instance false) or one resource with its facts (Instance true).
type Target struct {
	Tenant string
	// Type is the resource type; empty for system-level interactions.
	Type string
	// Instance says the fields below describe one resource. A type-level
	// check decides role, scope and purpose only; the caller must then
	// decide each resource or restrict the query (AccessiblePatients).
	Instance bool
	// ID is the resource id (for Consent data references).
	ID string
	// Patients are the ids of the patients in whose compartment the
	// resource is (for a Patient, its own id); empty when none.
	Patients []string
	// Labels are the codes of the resource's meta.security.
	Labels []string
	// Categories are the codes of the resource's category element, for
	// SMART v2 scope constraints (?category=).
	Categories []string
	// New marks the creation of a Patient, which has no record yet to
	// protect: the relationship rule does not apply to it. A Patient id
	// that other resources already name is not new: creating it writes
	// into their compartment.
	New bool
	// Registration marks the CareTeam written together with a new Patient
	// by the clinician who registers it (records): it names that patient
	// alone, and the relationship it makes is the registering clinician's.
	Registration bool
	// RemovedLabels, for a write that replaces a version (update, patch),
	// are the security labels of the replaced version the new one no
	// longer carries: removing one lifts a protection, which only the
	// roles that manage labels may do.
	RemovedLabels []string
	// LabelsOnly says the write changes nothing but meta.security (and
	// the meta the server stamps): a privacy officer's relabelling.
	LabelsOnly bool
	// Replaced marks the current version an update replaces: decided for
	// reach (its patients, labels, consents), while what the change may
	// be (LabelsOnly, RemovedLabels) is decided on the new content.
	Replaced bool
}

// Facts are what the caller loaded about the subject and the target's
// patients before deciding.
type Facts struct {
	// Now is the time consents and their periods are evaluated at.
	Now time.Time
	// CareOf are the target's patients with whom the subject (a
	// clinician) has a care relationship.
	CareOf []string
	// Organizations are the subject's organizations (from PractitionerRole),
	// which consent actors may name.
	Organizations []string
	// Consents are the consents of the target's patients (any status: only
	// active ones count).
	Consents []Consent
	// AdminPHI says an admin may read and write patient data of its tenant
	// (configuration, default true).
	AdminPHI bool
	// AllConsents says Consents holds every active consent of the tenant
	// (for Restrict: only then can it say a restriction is exact).
	AllConsents bool
}

// Reason codes. They name rules, never data, and go into the ledger.
const (
	ReasonTenant        = "tenant-mismatch"
	ReasonUnknownRole   = "unknown-role"
	ReasonUnknownAction = "unknown-action"
	ReasonNoSubject     = "no-subject"
	ReasonRoleAllows    = "role-allows"
	ReasonRoleNoWrite   = "role-may-not-write-type"
	ReasonRoleNoRead    = "role-may-not-read-type"
	ReasonUnknownPurp   = "unknown-purpose-of-use"
	ReasonNoPatientLink = "no-patient-link"
	ReasonNotOwn        = "not-in-own-compartment"
	ReasonNoPractLink   = "no-practitioner-link"
	ReasonNoRelation    = "no-care-relationship"
	ReasonRelation      = "care-relationship"
	// ReasonRegistration: the CareTeam of a clinician registering a new
	// Patient, created with it.
	ReasonRegistration  = "registration"
	ReasonAdminNoPHI    = "admin-phi-access-disabled"
	ReasonAdminPHI      = "admin-phi-access"
	ReasonLabel         = "security-label-needs-clearance"
	ReasonConsentDeny   = "consent-deny"
	ReasonConsentPermit = "consent-permit"
	ReasonResearch      = "research-needs-permitting-consent"
	ReasonBreakGlass    = "break-glass"
	ReasonBGNotAllowed  = "break-glass-not-permitted-for-role"
	ReasonOwnRecord     = "own-record"
	ReasonPrivacyOff    = "privacy-officer"
	// ReasonNotEvery: a write must reach every patient whose compartment
	// its content is in; this one names a patient the caller may not write
	// for (a user) or has no care relationship with (a clinician).
	ReasonNotEvery = "not-every-patient-writable"
	// ReasonGoverns: the write changes what governs access (a Consent, a
	// CareTeam, an Encounter, a PractitionerRole, a Patient's
	// generalPractitioner) and break-the-glass cannot make it: a
	// relationship or consent denial of such a write is final.
	ReasonGoverns = "governs-access"
	// ReasonRoleNoMerge: the role may not merge patients, or the target
	// of a merge is not a Patient.
	ReasonRoleNoMerge = "role-may-not-merge"
	// ReasonRoleNoErase: the role may not erase patients, or the target
	// of an erasure is not a Patient.
	ReasonRoleNoErase = "role-may-not-erase"
	// ReasonLabelRemoval: removing a security label needs a role that
	// manages labels (admin, privacy-officer, backend client).
	ReasonLabelRemoval = "label-removal-needs-privacy-officer"
)

// Decision is the outcome of Decide.
type Decision struct {
	Allow   bool
	Reasons []string
	// Emergency says break-the-glass overrode a denial: the access must
	// be marked as an emergency in the ledger.
	Emergency bool
	// Purpose is the purpose of use the decision was made for.
	Purpose string
}

func deny(reasons ...string) Decision { return Decision{Allow: false, Reasons: reasons} }

// nurseWritable are the types a nurse records at the bedside (vital signs
// are Observations).
var nurseWritable = []string{"Observation", "Immunization"}

// directoryTypes describe people and places of care, not patients: an
// admin maintains them (even with PHI access off), everyone may read them.
var directoryTypes = []string{"Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService", "Endpoint"}

// userReadable are the types outside the patient compartment that a
// patient (user role) may read: who treats them, where, and with what.
var userReadable = []string{"Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService", "Medication", "Substance"}

var actions = []Action{Read, Search, History, Create, Update, Delete, Merge, Erase}

// governing are the types whose content decides who reaches a patient's
// record: consents, care teams, encounters (participants), practitioner
// roles (organizations) and the Patient itself (generalPractitioner).
var governing = []string{"Consent", "CareTeam", "Encounter", "PractitionerRole", "Patient"}

// GovernsAccess reports whether writes of typ change who may access
// patient data.
func GovernsAccess(typ string) bool { return slices.Contains(governing, typ) }

// privacyOfficerWritable are the types a privacy officer manages; of any
// other type it may change only the security labels (Target.LabelsOnly).
var privacyOfficerWritable = []string{"Consent", "CareTeam", "PractitionerRole"}

// IsDirectory reports whether typ is a care-directory type (no PHI).
func IsDirectory(typ string) bool { return slices.Contains(directoryTypes, typ) }

// Decide says whether s may perform a on t, given facts f.
func Decide(s Subject, a Action, t Target, f Facts) Decision {
	if s.ID == "" {
		return deny(ReasonNoSubject)
	}
	if s.Tenant == "" || s.Tenant != t.Tenant {
		return deny(ReasonTenant)
	}
	if !slices.Contains(actions, a) {
		return deny(ReasonUnknownAction)
	}
	purpose := s.Purpose
	if purpose == "" {
		purpose = DefaultPurpose(s.Role)
	}
	if !KnownPurpose(purpose) {
		return deny(ReasonUnknownPurp)
	}
	if a == Erase {
		return decideErase(s, t, purpose)
	}
	// 1. Role.
	if why := roleDenies(s.Role, a, t.Type); why != "" {
		return Decision{Reasons: []string{why}, Purpose: purpose}
	}
	// 2. Scopes (role ∩ scopes).
	if ok, why := scopesAllow(s, a, t); !ok {
		return Decision{Reasons: []string{ReasonRoleAllows, why}, Purpose: purpose}
	}
	d := Decision{Allow: true, Reasons: []string{ReasonRoleAllows, ReasonScopeGrants}, Purpose: purpose}
	if compartment.InPatientCompartment(t.Type) {
		// Rules that need no facts about the resource hold at type level.
		switch {
		case s.Role == RoleUser && s.Patient == "":
			return Decision{Reasons: []string{ReasonNoPatientLink}, Purpose: purpose}
		case s.Role == RoleAdmin && !f.AdminPHI:
			return Decision{Reasons: []string{ReasonAdminNoPHI}, Purpose: purpose}
		}
	}
	if !t.Instance {
		return d
	}
	if !compartment.InPatientCompartment(t.Type) {
		// Not patient data: role, scope and labels decide (a label needs
		// its clearance on any resource, as searches exclude it in SQL).
		var hard []string
		for _, l := range t.Labels {
			if NeedsClearance(l) && !cleared(s, l) {
				hard = append(hard, ReasonLabel+":"+l)
			}
		}
		if len(hard) > 0 {
			return Decision{Reasons: hard, Purpose: purpose}
		}
		return d
	}
	// 3. Compartment and care relationship; 4. labels; 5. consent. Hard
	// denials are final; soft ones (relationship, consent) can be
	// overridden by a physician's break-the-glass.
	var hard, soft []string
	switch s.Role {
	case RoleUser:
		switch {
		case s.Patient == "":
			hard = append(hard, ReasonNoPatientLink)
		case !slices.Contains(t.Patients, s.Patient):
			hard = append(hard, ReasonNotOwn)
		case a.IsWrite() && !subset(t.Patients, []string{s.Patient}):
			hard = append(hard, ReasonNotOwn, ReasonNotEvery)
		default:
			d.Reasons = append(d.Reasons, ReasonOwnRecord)
		}
	case RoleAdmin:
		if !f.AdminPHI {
			hard = append(hard, ReasonAdminNoPHI)
		} else {
			d.Reasons = append(d.Reasons, ReasonAdminPHI)
		}
	case RolePrivacyOfficer:
		d.Reasons = append(d.Reasons, ReasonPrivacyOff)
	case RolePhysician, RoleNurse:
		switch {
		case t.New && t.Type == "Patient" && subset(slices.DeleteFunc(slices.Clone(t.Patients), func(p string) bool { return p == t.ID }), f.CareOf):
			// A new Patient has no record to protect; one it links to
			// (Patient.link) must be in the writer's care.
		case t.Registration && t.Type == "CareTeam" && s.Practitioner != "" && len(t.Patients) == 1:
			// The care relationship of the clinician registering a new
			// Patient, written with it: explicit data, audited.
			d.Reasons = append(d.Reasons, ReasonRegistration)
		case s.Practitioner == "":
			soft = append(soft, ReasonNoPractLink)
		case !intersects(t.Patients, f.CareOf):
			soft = append(soft, ReasonNoRelation)
		case a.IsWrite() && !subset(t.Patients, f.CareOf):
			// A write reaches every compartment it is in: each of its
			// patients must be in the writer's care.
			soft = append(soft, ReasonNoRelation, ReasonNotEvery)
		default:
			d.Reasons = append(d.Reasons, ReasonRelation)
		}
	case RoleClient:
		// Backend services: the system/ scopes are the whole grant.
	}
	for _, l := range t.Labels {
		if NeedsClearance(l) && !cleared(s, l) {
			hard = append(hard, ReasonLabel+":"+l)
		}
	}
	if s.Role != RoleUser {
		// A patient's own consents govern others, not the patient.
		c := evalConsents(s, a, t, f, purpose)
		soft = append(soft, c.deny...)
		d.Reasons = append(d.Reasons, c.permit...)
		if purpose == PurposeResearch && len(c.research) == 0 {
			hard = append(hard, ReasonResearch)
		}
	}
	if a.IsWrite() {
		hard = append(hard, writeDenies(s, a, t)...)
		if len(soft) > 0 && GovernsAccess(t.Type) {
			// Break-the-glass is for reading and recording in an
			// emergency, never for granting oneself lasting access.
			hard = append(hard, ReasonGoverns)
		}
	}
	switch {
	case len(hard) > 0:
		return Decision{Reasons: append(append(d.Reasons[:0:0], hard...), soft...), Purpose: purpose}
	case len(soft) == 0:
		return d
	case s.BreakGlass != "" && s.Role == RolePhysician:
		d.Reasons = append(append(d.Reasons, soft...), ReasonBreakGlass)
		d.Emergency = true
		return d
	case s.BreakGlass != "":
		return Decision{Reasons: append(soft, ReasonBGNotAllowed), Purpose: purpose}
	default:
		return Decision{Reasons: soft, Purpose: purpose}
	}
}

// decideErase decides Patient/$erase: role and scope alone.
func decideErase(s Subject, t Target, purpose string) Decision {
	if t.Type != "Patient" || s.Role != RoleAdmin && s.Role != RolePrivacyOfficer {
		return Decision{Reasons: []string{ReasonRoleNoErase}, Purpose: purpose}
	}
	if ok, why := scopesAllow(s, Delete, t); !ok {
		return Decision{Reasons: []string{ReasonRoleAllows, why}, Purpose: purpose}
	}
	return Decision{Allow: true, Reasons: []string{ReasonRoleAllows, ReasonScopeGrants}, Purpose: purpose}
}

// writeDenies are the final denials of a write that depend on what it
// changes: the governing types and labels only the roles that manage them
// may change.
func writeDenies(s Subject, a Action, t Target) []string {
	var out []string
	if s.Role == RolePrivacyOfficer && !slices.Contains(privacyOfficerWritable, t.Type) && !(a == Update && (t.LabelsOnly || t.Replaced)) {
		out = append(out, ReasonRoleNoWrite)
	}
	if len(t.RemovedLabels) > 0 && !managesLabels(s.Role) {
		out = append(out, ReasonLabelRemoval)
	}
	return out
}

// managesLabels says the role may remove security labels.
func managesLabels(r Role) bool {
	return r == RoleAdmin || r == RolePrivacyOfficer || r == RoleClient
}

// roleDenies returns why the role may not perform a on typ, or "".
func roleDenies(r Role, a Action, typ string) string {
	if a == Merge && (typ != "Patient" || r != RoleAdmin && r != RoleClient && r != RolePhysician) {
		return ReasonRoleNoMerge
	}
	switch r {
	case RoleAdmin, RoleClient:
		return ""
	case RolePrivacyOfficer:
		// Updates of any type are decided per resource (a relabelling,
		// writeDenies); creating and deleting only of the managed types.
		if (a == Create || a == Delete) && !slices.Contains(privacyOfficerWritable, typ) {
			return ReasonRoleNoWrite
		}
	case RolePhysician:
		if a.IsWrite() && (IsDirectory(typ) || typ == "Consent") {
			// Consents are the patient's, managed for them by an admin
			// or a privacy officer: a clinician never changes one, not
			// even one that denies them, not even under break-the-glass.
			return ReasonRoleNoWrite
		}
	case RoleNurse:
		if a.IsWrite() && !slices.Contains(nurseWritable, typ) {
			return ReasonRoleNoWrite
		}
	case RoleUser:
		// A patient (or their delegate) writes only their own Consents.
		if a.IsWrite() && typ != "Consent" {
			return ReasonRoleNoWrite
		}
		if !compartment.InPatientCompartment(typ) && !slices.Contains(userReadable, typ) {
			return ReasonRoleNoRead
		}
	default:
		return ReasonUnknownRole
	}
	return ""
}

// NeedsRelationship reports whether s reaches patient data of typ only
// through care relationships (so searches must be restricted to them).
func NeedsRelationship(s Subject, typ string) bool {
	return (s.Role == RolePhysician || s.Role == RoleNurse) && compartment.InPatientCompartment(typ)
}

// subset says every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// Restriction is what a search of one type may return, for the caller to
// turn into SQL so that paging and totals never count what is withheld.
type Restriction struct {
	// All: no restriction by patient.
	All bool
	// Patients: when not All, only resources in these patients'
	// compartments (for Patient, these Patients) may be returned.
	Patients []string
	// Emergency: the restriction was lifted by break-the-glass.
	Emergency bool
	// ExcludeLabels: resources carrying any of these security labels are
	// left out.
	ExcludeLabels []string
	// ExcludePatients: resources in these patients' compartments are left
	// out (their consents deny this type to the subject).
	ExcludePatients []string
	// Partial are the patients with a consent whose provisions test a
	// resource's own labels or identity: whether one of their resources
	// may be seen depends on that resource, so the restriction keeps their
	// compartments and the caller must decide each resource in them.
	Partial []string
	// Exact says every resource the restriction keeps, outside the
	// compartments of Partial, passes Decide: the caller may skip the
	// per-resource decision for it, and a count under the restriction
	// counts only what would be shown. Never exact under break-the-glass
	// (each overriding access must be marked), when the subject holds
	// patient/ scopes without being the patient (the scope's patient is
	// not a compartment the restriction expresses), or when Facts did not
	// hold every consent of the tenant.
	Exact bool
}

// Restrict computes the restriction of a search of typ by s, after a
// type-level Decide allowed it. For a clinician, f.CareOf must be every
// patient the clinician has a care relationship with; for everyone but a
// patient, f.Consents the tenant's active consents (f.AllConsents when
// that is all of them; otherwise at least those of f.CareOf, and the
// restriction is not exact).
func Restrict(s Subject, a Action, typ string, f Facts) Restriction {
	var r Restriction
	for _, l := range clearanceLabels {
		if !cleared(s, l) {
			r.ExcludeLabels = append(r.ExcludeLabels, l)
		}
	}
	if !compartment.InPatientCompartment(typ) {
		// Decide on such a resource is its type-level decision.
		r.All, r.Exact = true, true
		return r
	}
	if s.Role == RoleUser {
		// A patient's own consents do not govern them; the compartment and
		// the labels are the whole rule.
		r.Patients, r.Exact = []string{s.Patient}, true
		return r
	}
	r.Partial = dataDependent(f.Consents)
	r.Exact = f.AllConsents && !patientScoped(s)
	if s.Role == RolePhysician && s.BreakGlass != "" {
		// Break-the-glass overrides relationship and consent denials.
		r.All, r.Emergency, r.Exact = true, true, false
		return r
	}
	// The patients whose consents alone decide the type: allowed or denied
	// the same for each of their resources. A resource in the compartments
	// of several patients is denied when any of their consents denies.
	holders := consentHolders(f.Consents)
	// A resource of p that meets the scopes' category constraints (the
	// caller applies those in SQL too).
	_, cats := ScopeConstraints(s, a, typ)
	partial := map[string]bool{}
	for _, p := range r.Partial {
		partial[p] = true
	}
	// Each patient's decision reads only their own consents.
	byPatient := map[string][]Consent{}
	for _, c := range f.Consents {
		byPatient[c.Patient] = append(byPatient[c.Patient], c)
	}
	of := func(p string) Facts {
		g := f
		g.Consents = byPatient[p]
		return g
	}
	typeLevel := func(p string) Decision {
		return Decide(s, a, Target{Tenant: s.Tenant, Type: typ, Instance: true, Patients: []string{p}, Categories: cats}, of(p))
	}
	purpose := s.Purpose
	if purpose == "" {
		purpose = DefaultPurpose(s.Role)
	}
	for _, p := range holders {
		if partial[p] {
			continue
		}
		t := Target{Tenant: s.Tenant, Type: typ, Instance: true, Patients: []string{p}}
		if len(evalConsents(s, a, t, of(p), purpose).deny) > 0 {
			r.ExcludePatients = append(r.ExcludePatients, p)
		}
	}
	switch s.Role {
	case RolePhysician, RoleNurse:
		for _, p := range f.CareOf {
			if partial[p] || typeLevel(p).Allow {
				r.Patients = append(r.Patients, p)
			}
		}
	default:
		// Admin (with PHI access) and backend clients reach every patient,
		// but research reaches only those whose consents permit it.
		if purpose != PurposeResearch {
			r.All = true
			return r
		}
		for _, p := range holders {
			if partial[p] || typeLevel(p).Allow {
				r.Patients = append(r.Patients, p)
			}
		}
	}
	return r
}

// consentHolders are the patients with an active privacy consent.
func consentHolders(cs []Consent) []string {
	var out []string
	for _, c := range cs {
		if c.Active && c.Privacy && c.Patient != "" && !slices.Contains(out, c.Patient) {
			out = append(out, c.Patient)
		}
	}
	return out
}

// dataDependent are the patients with an active privacy consent whose
// provisions test a resource's labels or identity.
func dataDependent(cs []Consent) []string {
	var out []string
	for _, c := range cs {
		if c.Active && c.Privacy && c.Patient != "" && c.Provision != nil && c.Provision.dataDependent() && !slices.Contains(out, c.Patient) {
			out = append(out, c.Patient)
		}
	}
	return out
}

func (p *Provision) dataDependent() bool {
	if len(p.Labels) > 0 || len(p.Data) > 0 {
		return true
	}
	return slices.ContainsFunc(p.Provisions, (*Provision).dataDependent)
}

// patientScoped says s holds a patient/ scope without being a patient: the
// scope reaches only its patient's compartment, per resource.
func patientScoped(s Subject) bool {
	if s.Role == RoleUser {
		return false
	}
	return slices.ContainsFunc(s.Scopes, func(raw string) bool {
		sc, err := ParseScope(raw)
		return err == nil && sc.Context == "patient"
	})
}
