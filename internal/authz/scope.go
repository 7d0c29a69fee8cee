package authz

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/fhir/compartment"
)

func compartmentType(t string) bool { return compartment.InPatientCompartment(t) }

// Scope is one SMART on FHIR clinical scope, v1 (patient/Observation.read)
// or v2 (patient/Observation.rs?category=...). Non-clinical scopes (openid,
// fhirUser, launch/patient, offline_access, ...) parse with Context "".
type Scope struct {
	Raw     string
	Context string // patient, user or system; "" for a non-clinical scope
	Type    string // a resource type or "*"
	// Perms holds the v2 permissions granted, in cruds order: c create,
	// r read (read, vread, instance history), u update (and patch), d
	// delete, s search (type and system search and history).
	Perms string
	// Query is a v2 constraint such as "category=laboratory". A
	// constrained scope grants nothing until constraints are enforced
	// (deny by default rather than grant more than the scope says).
	Query string
}

// ErrScope is returned for a malformed scope.
var ErrScope = errors.New("malformed scope")

// ParseScope reads one scope token.
func ParseScope(s string) (Scope, error) {
	sc := Scope{Raw: s}
	if s == "" || len(s) > 256 {
		return sc, fmt.Errorf("%w: empty or longer than 256 characters", ErrScope)
	}
	for _, c := range s {
		if c <= ' ' || c == '"' || c == '\\' || c > '~' {
			return sc, fmt.Errorf("%w: contains a character outside %%x21-7E", ErrScope)
		}
	}
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok || ctx != "patient" && ctx != "user" && ctx != "system" {
		if strings.Contains(s, ".") && ok {
			return sc, fmt.Errorf("%w: context must be patient, user or system", ErrScope)
		}
		// launch, launch/patient, openid, fhirUser, offline_access, ...
		return sc, nil
	}
	sc.Context = ctx
	rest, sc.Query, _ = strings.Cut(rest, "?")
	typ, perm, ok := strings.Cut(rest, ".")
	if !ok || typ == "" || perm == "" {
		return sc, fmt.Errorf("%w: expected %s/Type.permissions", ErrScope, ctx)
	}
	if typ != "*" && !validTypeName(typ) {
		return sc, fmt.Errorf("%w: not a resource type name", ErrScope)
	}
	sc.Type = typ
	switch perm {
	case "read": // v1
		sc.Perms = "rs"
	case "write":
		sc.Perms = "cud"
	case "*":
		sc.Perms = "cruds"
	default:
		// v2: a non-empty subsequence of "cruds", in that order.
		order := "cruds"
		for _, c := range perm {
			i := strings.IndexRune(order, c)
			if i < 0 {
				return sc, fmt.Errorf("%w: v2 permissions are c, r, u, d, s in that order", ErrScope)
			}
			order = order[i+1:]
		}
		sc.Perms = perm
	}
	if sc.Query != "" && sc.Perms != "" && !strings.Contains(sc.Query, "=") {
		return sc, fmt.Errorf("%w: a constraint is name=value", ErrScope)
	}
	return sc, nil
}

func validTypeName(s string) bool {
	if len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ParseScopes reads a space-separated scope list (the OAuth scope
// parameter).
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for _, f := range strings.Fields(s) {
		sc, err := ParseScope(f)
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
	}
	return out, nil
}

// permOf is the v2 permission an action needs.
func permOf(a Action) byte {
	switch a {
	case Create:
		return 'c'
	case Read:
		return 'r'
	case Update, Merge:
		return 'u'
	case Delete:
		return 'd'
	case Search, History:
		return 's'
	}
	return 0
}

// Reasons of scope decisions.
const (
	ReasonScopeGrants       = "scope-grants"
	ReasonNoScope           = "no-scope-grants-this"
	ReasonScopeNeedsPatient = "patient-scope-needs-patient-context"
	ReasonScopeOutside      = "patient-scope-outside-patient-context"
	ReasonScopeConstrained  = "scope-constraint-not-met"
)

// scopesAllow reports whether some scope grants a on t, and why not.
// user/ scopes grant to people logged in, system/ scopes to backend
// clients, never the other way round; patient/ scopes grant within the
// subject's patient context (the patient claim) only. A v2 constraint
// (?category=...) grants only on resources that meet it; at type level it
// grants, and the caller restricts the search (ScopeConstraints).
func scopesAllow(s Subject, a Action, t Target) (bool, string) {
	need := permOf(a)
	client := s.Role == RoleClient
	why := ReasonNoScope
	for _, raw := range s.Scopes {
		sc, err := ParseScope(raw)
		if err != nil || sc.Context == "" {
			continue
		}
		if sc.Type != "*" && sc.Type != t.Type || !strings.ContainsRune(sc.Perms, rune(need)) {
			continue
		}
		switch {
		case (sc.Context == "system") != client:
			// system/ scopes are for backend clients, user/ and patient/
			// for people.
			continue
		case sc.Context == "patient" && s.Patient == "":
			why = ReasonScopeNeedsPatient
			continue
		case sc.Context == "patient" && t.Instance && compartmentType(t.Type) && !slices.Contains(t.Patients, s.Patient):
			why = ReasonScopeOutside
			continue
		case sc.Context == "patient" && !compartmentType(t.Type) && !IsDirectory(t.Type) && t.Type != "Medication" && t.Type != "Substance":
			// Outside the compartment a patient/ scope reaches only the
			// care directory and medication definitions.
			continue
		}
		if sc.Query != "" {
			if !t.Instance {
				if _, ok := constraint(sc.Query); ok {
					return true, ReasonScopeGrants
				}
				why = ReasonScopeConstrained
				continue
			}
			if meets(sc.Query, t) {
				return true, ReasonScopeGrants
			}
			why = ReasonScopeConstrained
			continue
		}
		return true, ReasonScopeGrants
	}
	return false, why
}

// constraint reads a v2 scope constraint Ward can enforce: category=code
// (or category=system|code). Others are not understood and grant nothing.
func constraint(q string) (code string, ok bool) {
	name, val, _ := strings.Cut(q, "=")
	if name != "category" || val == "" || strings.ContainsAny(val, "&,") {
		return "", false
	}
	if _, c, found := strings.Cut(val, "|"); found {
		val = c
	}
	return val, val != ""
}

func meets(q string, t Target) bool {
	code, ok := constraint(q)
	return ok && slices.Contains(t.Categories, code)
}

// ScopeConstraints says how the scopes that grant a on typ restrict a
// search: all false means some scope grants it unconstrained; otherwise
// categories are the category codes one of which a result must have (the
// caller adds them to the query). It is only meaningful after a type-level
// Decide allowed.
func ScopeConstraints(s Subject, a Action, typ string) (constrained bool, categories []string) {
	need := permOf(a)
	client := s.Role == RoleClient
	for _, raw := range s.Scopes {
		sc, err := ParseScope(raw)
		if err != nil || sc.Context == "" || (sc.Context == "system") != client {
			continue
		}
		if sc.Type != "*" && sc.Type != typ || !strings.ContainsRune(sc.Perms, rune(need)) {
			continue
		}
		if sc.Context == "patient" && s.Patient == "" {
			continue
		}
		if sc.Query == "" {
			return false, nil
		}
		if code, ok := constraint(sc.Query); ok && !slices.Contains(categories, code) {
			categories = append(categories, code)
		}
	}
	return len(categories) > 0, categories
}
