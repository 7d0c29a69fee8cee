package authz

import (
	"slices"
	"strings"
)

// Scope negotiation (SMART App Launch 2.x, "Scopes and launch context"):
// a server grants the part of the requested scopes that the client is
// registered for and the user may have, and says which in the token
// response's scope. Scopes are sets of permissions, not strings: v1
// patient/Observation.read is v2 patient/Observation.rs, system/*.rs holds
// system/Patient.rs, and patient/Observation.rs?category=laboratory is a
// narrowing of patient/Observation.rs.

// Covers reports whether scope g grants everything scope r asks for:
// for clinical scopes, the same context, g's type "*" or r's, r's
// permissions among g's, and g unconstrained or constrained exactly as r;
// for other scopes (openid, launch/patient, ...), the same string.
func Covers(g, r Scope) bool {
	if g.Context == "" || r.Context == "" {
		return g.Context == r.Context && g.Raw == r.Raw
	}
	if g.Context != r.Context || g.Type != "*" && g.Type != r.Type {
		return false
	}
	for _, p := range r.Perms {
		if !strings.ContainsRune(g.Perms, p) {
			return false
		}
	}
	return g.Query == "" || g.Query == r.Query
}

// Intersect is the largest scope that both a and b grant, or false when
// they share no permission. The requested scope a keeps its spelling (v1
// or v2) when the intersection is a itself.
func Intersect(a, b Scope) (Scope, bool) {
	if a.Context == "" || b.Context == "" {
		return a, a.Context == b.Context && a.Raw == b.Raw
	}
	if a.Context != b.Context {
		return Scope{}, false
	}
	out := Scope{Context: a.Context}
	switch {
	case a.Type == "*":
		out.Type = b.Type
	case b.Type == "*" || b.Type == a.Type:
		out.Type = a.Type
	default:
		return Scope{}, false
	}
	for _, p := range "cruds" {
		if strings.ContainsRune(a.Perms, p) && strings.ContainsRune(b.Perms, p) {
			out.Perms += string(p)
		}
	}
	switch {
	case out.Perms == "":
		return Scope{}, false
	case a.Query == "" || a.Query == b.Query:
		out.Query = b.Query
	case b.Query == "":
		out.Query = a.Query
	default:
		// Two different constraints: their common part is not a scope
		// Ward can write (nor enforce), so nothing is granted.
		return Scope{}, false
	}
	if out.Type == a.Type && out.Perms == a.Perms && out.Query == a.Query {
		out.Raw = a.Raw
		return out, true
	}
	out.Raw = out.Context + "/" + out.Type + "." + out.Perms
	if out.Query != "" {
		out.Raw += "?" + out.Query
	}
	return out, true
}

// Negotiate returns the scopes to grant: for each requested scope, its
// intersection with each allowed scope, in request order, without
// duplicates and without a scope another granted scope covers. An empty
// result means nothing the client asked for may be granted.
func Negotiate(requested, allowed []Scope) []Scope {
	var out []Scope
	for _, r := range requested {
		for _, a := range allowed {
			if g, ok := Intersect(r, a); ok {
				out = append(out, g)
			}
		}
	}
	var kept []Scope
	for i, g := range out {
		redundant := false
		for j, h := range out {
			// h makes g redundant if it grants more, or the same and
			// came first (v1 and v2 spellings of one scope).
			if j != i && Covers(h, g) && (!Covers(g, h) || j < i) {
				redundant = true
				break
			}
		}
		if !redundant {
			kept = append(kept, g)
		}
	}
	return kept
}

// JoinScopes is the scope parameter of a list of scopes.
func JoinScopes(scopes []Scope) string {
	raw := make([]string, len(scopes))
	for i, s := range scopes {
		raw[i] = s.Raw
	}
	return strings.Join(raw, " ")
}

// userScopes are the scopes a person signed in to Ward may be granted
// through an app: every patient/ and user/ permission (the role, care
// relationships and consents then decide each access) and the launch and
// identity scopes; system/ scopes are for backend clients only.
var userScopes = mustScopes("patient/*.cruds user/*.cruds openid fhirUser launch launch/patient offline_access online_access")

// UserScopes are the scopes a user may be granted (see Negotiate).
func UserScopes() []Scope { return slices.Clone(userScopes) }

func mustScopes(s string) []Scope {
	sc, err := ParseScopes(s)
	if err != nil {
		panic(err)
	}
	return sc
}
