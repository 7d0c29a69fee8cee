// Package authz is the one place where Ward decides whether a request may
// touch data. Decide is a pure function over values: no I/O, no database, no
// HTTP (a test forbids those imports). Deny by default: a request that no
// rule permits is refused, any deny wins, and every Decision carries the
// reasons that produced it so the ledger can record them.
//
// Rules so far: tenant isolation, the role table, and SMART scopes (the
// effective permission is role ∩ scopes). Care relationships, consent,
// security labels and break-the-glass are later rules in the same function;
// each can only narrow what the role allows, except break-the-glass, which
// is audited apart.
package authz

import "slices"

// Role is a user's role. The hierarchy is admin > physician > nurse > user.
type Role string

// The roles.
const (
	RoleAdmin     Role = "admin"
	RolePhysician Role = "physician"
	RoleNurse     Role = "nurse"
	RoleUser      Role = "user"
)

// RoleClient is the role of a SMART Backend Services client. It is not a
// user role: a client's permissions are exactly its system/ scopes.
const RoleClient Role = "client"

// Roles lists the user roles, most privileged first.
var Roles = []Role{RoleAdmin, RolePhysician, RoleNurse, RoleUser}

// ParseRole returns the role named s, or false.
func ParseRole(s string) (Role, bool) {
	r := Role(s)
	return r, slices.Contains(Roles, r)
}

// Subject is the authenticated caller, as authn established it.
type Subject struct {
	Tenant string
	// ID is the user or client id; never a name.
	ID   string
	Role Role
	// Scopes are the SMART scopes the token grants; a request needs a
	// scope for its action and type on top of the role's permission.
	Scopes []string
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
)

// IsWrite reports whether a changes data.
func (a Action) IsWrite() bool { return a == Create || a == Update || a == Delete }

// Target is what the action is about.
type Target struct {
	Tenant string
	// Type is the resource type; empty for system-level interactions.
	Type string
}

// Reason codes. They name rules, never data, and go into the ledger.
const (
	ReasonTenant        = "tenant-mismatch"
	ReasonUnknownRole   = "unknown-role"
	ReasonUnknownAction = "unknown-action"
	ReasonNoSubject     = "no-subject"
	ReasonRoleAllows    = "role-allows"
	ReasonRoleNoWrite   = "role-may-not-write-type"
	ReasonNoPatientLink = "patient-access-needs-compartment-rule"
)

// Decision is the outcome of Decide.
type Decision struct {
	Allow   bool
	Reasons []string
}

func deny(reasons ...string) Decision  { return Decision{Allow: false, Reasons: reasons} }
func allow(reasons ...string) Decision { return Decision{Allow: true, Reasons: reasons} }

// nurseWritable are the types a nurse records at the bedside.
var nurseWritable = []string{"Observation", "Immunization"}

var actions = []Action{Read, Search, History, Create, Update, Delete}

// Decide says whether s may perform a on t.
func Decide(s Subject, a Action, t Target) Decision {
	if s.ID == "" {
		return deny(ReasonNoSubject)
	}
	if s.Tenant == "" || s.Tenant != t.Tenant {
		return deny(ReasonTenant)
	}
	if !slices.Contains(actions, a) {
		return deny(ReasonUnknownAction)
	}
	switch s.Role {
	case RoleAdmin, RolePhysician:
	case RoleNurse:
		if a.IsWrite() && !slices.Contains(nurseWritable, t.Type) {
			return deny(ReasonRoleNoWrite)
		}
	case RoleClient:
		// Decided by the system/ scopes below.
	case RoleUser:
		// A patient (or proxy) may see only their own compartment; that
		// rule needs the patient link and compartment facts, which this
		// engine does not have yet. Until then: refused.
		return deny(ReasonNoPatientLink)
	default:
		return deny(ReasonUnknownRole)
	}
	if ok, why := scopesAllow(s.Scopes, a, t.Type, s.Role == RoleClient); !ok {
		return deny(ReasonRoleAllows, why)
	}
	return allow(ReasonRoleAllows, ReasonScopeGrants)
}
