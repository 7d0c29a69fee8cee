package authz

import (
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

func TestDecideTable(t *testing.T) {
	const tenant = "t1"
	subj := func(role Role) Subject {
		return Subject{Tenant: tenant, ID: "u1", Role: role, Scopes: []string{"openid", "user/*.cruds"}}
	}
	// want[role][action] for a type a nurse may not write (Patient) and one
	// she may (Observation).
	type key struct {
		role   Role
		action Action
		typ    string
	}
	want := map[key]bool{}
	for _, typ := range []string{"Patient", "Observation", "Immunization", "Condition"} {
		for _, a := range actions {
			want[key{RoleAdmin, a, typ}] = a != Merge && a != Erase || typ == "Patient"
			want[key{RolePhysician, a, typ}] = a != Erase && (a != Merge || typ == "Patient")
			want[key{RoleNurse, a, typ}] = a != Merge && a != Erase && (!a.IsWrite() || typ == "Observation" || typ == "Immunization")
			want[key{RoleUser, a, typ}] = false
			want[key{Role("superuser"), a, typ}] = false
			want[key{Role(""), a, typ}] = false
		}
	}
	for k, w := range want {
		d := Decide(subj(k.role), k.action, Target{Tenant: tenant, Type: k.typ}, Facts{AdminPHI: true})
		if d.Allow != w {
			t.Errorf("%s %s %s: allow=%v, want %v (reasons %v)", k.role, k.action, k.typ, d.Allow, w, d.Reasons)
		}
		if len(d.Reasons) == 0 {
			t.Errorf("%s %s %s: decision without reasons", k.role, k.action, k.typ)
		}
	}
}

func TestDecideDeniesAcrossTenantsForEveryRole(t *testing.T) {
	for _, r := range Roles {
		for _, a := range actions {
			for _, target := range []string{"t2", "", "T1"} {
				d := Decide(Subject{Tenant: "t1", ID: "u", Role: r, Scopes: []string{"user/*.*"}}, a, Target{Tenant: target, Type: "Patient"}, Facts{AdminPHI: true})
				if d.Allow || !slices.Contains(d.Reasons, ReasonTenant) {
					t.Errorf("%s %s into tenant %q: %+v", r, a, target, d)
				}
			}
		}
	}
	if d := Decide(Subject{ID: "u", Role: RoleAdmin}, Read, Target{Type: "Patient"}, Facts{AdminPHI: true}); d.Allow {
		t.Errorf("empty tenants must not match: %+v", d)
	}
}

func TestDecideDeniesByDefault(t *testing.T) {
	cases := []struct {
		name string
		s    Subject
		a    Action
		why  string
	}{
		{"no subject id", Subject{Tenant: "t", Role: RoleAdmin}, Read, ReasonNoSubject},
		{"unknown action", Subject{Tenant: "t", ID: "u", Role: RoleAdmin}, Action("purge"), ReasonUnknownAction},
		{"unknown role", Subject{Tenant: "t", ID: "u", Role: "root"}, Read, ReasonUnknownRole},
		{"patient user without a patient link", Subject{Tenant: "t", ID: "u", Role: RoleUser, Scopes: []string{"user/*.rs"}}, Read, ReasonNoPatientLink},
		{"unknown purpose", Subject{Tenant: "t", ID: "u", Role: RoleAdmin, Purpose: "SNOOP"}, Read, ReasonUnknownPurp},
	}
	for _, c := range cases {
		d := Decide(c.s, c.a, Target{Tenant: "t", Type: "Patient"}, Facts{AdminPHI: true})
		if d.Allow || !slices.Contains(d.Reasons, c.why) {
			t.Errorf("%s: %+v, want deny with %s", c.name, d, c.why)
		}
	}
}

func TestParseRole(t *testing.T) {
	for _, r := range Roles {
		if got, ok := ParseRole(string(r)); !ok || got != r {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, ok)
		}
	}
	for _, s := range []string{"", "Admin", "root", "physician "} {
		if _, ok := ParseRole(s); ok {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
}

// The decision engine must stay pure: no network, no database, no files.
func TestAuthzImportsNoIO(t *testing.T) {
	deptest.Check(t, func(path string) string {
		for _, bad := range []string{"net", "database/sql", "os", "io"} {
			if path == bad || strings.HasPrefix(path, bad+"/") {
				return "decisions are pure functions over values"
			}
		}
		if path == "github.com/wardhealth/ward/internal/fhir/compartment" {
			return "" // generated data only (it imports just sort)
		}
		if !deptest.IsStd(path) {
			return "decisions need no third-party code"
		}
		return ""
	})
}

func BenchmarkDecide(b *testing.B) {
	s := Subject{Tenant: "t", ID: "u", Role: RoleNurse, Scopes: []string{"openid", "user/Observation.cruds"}}
	tg := Target{Tenant: "t", Type: "Observation"}
	for b.Loop() {
		Decide(s, Update, tg, Facts{})
	}
}

func TestParseScope(t *testing.T) {
	cases := []struct {
		in                     string
		ctx, typ, perms, query string
		bad                    bool
	}{
		{in: "patient/Observation.read", ctx: "patient", typ: "Observation", perms: "rs"},
		{in: "user/*.write", ctx: "user", typ: "*", perms: "cud"},
		{in: "user/*.*", ctx: "user", typ: "*", perms: "cruds"},
		{in: "system/Patient.rs", ctx: "system", typ: "Patient", perms: "rs"},
		{in: "patient/Observation.rs?category=laboratory", ctx: "patient", typ: "Observation", perms: "rs", query: "category=laboratory"},
		{in: "user/Patient.cruds", ctx: "user", typ: "Patient", perms: "cruds"},
		{in: "user/Patient.c", ctx: "user", typ: "Patient", perms: "c"},
		{in: "openid"}, {in: "fhirUser"}, {in: "launch/patient"}, {in: "offline_access"},
		{in: "user/Patient.sr", bad: true}, // out of order
		{in: "user/Patient.rr", bad: true},
		{in: "user/Patient.x", bad: true},
		{in: "user/Patient.", bad: true},
		{in: "user/.read", bad: true},
		{in: "user/patient.read", bad: true},
		{in: "admin/Patient.read", bad: true},
		{in: "user/Pat-ient.read", bad: true},
		{in: "", bad: true},
		{in: "user/Patient.read\x00", bad: true},
		{in: "user/Patient.rs?category", bad: true},
		{in: strings.Repeat("a", 300), bad: true},
	}
	for _, c := range cases {
		sc, err := ParseScope(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseScope(%q) accepted: %+v", c.in, sc)
			}
			continue
		}
		if err != nil || sc.Context != c.ctx || sc.Type != c.typ || sc.Perms != c.perms || sc.Query != c.query {
			t.Errorf("ParseScope(%q) = %+v, %v", c.in, sc, err)
		}
	}
	if _, err := ParseScopes("openid user/*.read  patient/Observation.rs"); err != nil {
		t.Error(err)
	}
	if _, err := ParseScopes("openid user/*.frobnicate"); err == nil {
		t.Error("a bad scope in a list was accepted")
	}
}

// Role ∩ scopes: every (scope, action, type) case that matters.
func TestScopesNarrowTheRole(t *testing.T) {
	cases := []struct {
		scopes []string
		role   Role
		a      Action
		typ    string
		allow  bool
		why    string
	}{
		{[]string{"user/*.cruds"}, RolePhysician, Delete, "Patient", true, ReasonScopeGrants},
		{[]string{"user/*.read"}, RolePhysician, Read, "Patient", true, ReasonScopeGrants},
		{[]string{"user/*.read"}, RolePhysician, Search, "Patient", true, ReasonScopeGrants},
		{[]string{"user/*.read"}, RolePhysician, History, "Patient", true, ReasonScopeGrants},
		{[]string{"user/*.read"}, RolePhysician, Create, "Patient", false, ReasonNoScope},
		{[]string{"user/*.read"}, RolePhysician, Update, "Patient", false, ReasonNoScope},
		{[]string{"user/Observation.rs"}, RolePhysician, Read, "Patient", false, ReasonNoScope},
		{[]string{"user/Observation.rs"}, RolePhysician, Read, "Observation", true, ReasonScopeGrants},
		{[]string{"user/Observation.r"}, RolePhysician, Search, "Observation", false, ReasonNoScope},
		{[]string{"user/Observation.s"}, RolePhysician, Read, "Observation", false, ReasonNoScope},
		{[]string{"user/Observation.c"}, RolePhysician, Create, "Observation", true, ReasonScopeGrants},
		{[]string{"user/Observation.u"}, RolePhysician, Update, "Observation", true, ReasonScopeGrants},
		{[]string{"user/Observation.d"}, RolePhysician, Delete, "Observation", true, ReasonScopeGrants},
		// The scope never adds to the role.
		{[]string{"user/*.cruds"}, RoleNurse, Create, "Patient", false, ReasonRoleNoWrite},
		{[]string{"user/*.cruds"}, RoleUser, Read, "Patient", false, ReasonNoPatientLink},
		// patient/ scopes need a patient context.
		{[]string{"patient/*.read"}, RolePhysician, Read, "Observation", false, ReasonScopeNeedsPatient},
		// A constrained scope grants at type level (the search is then
		// restricted); on a resource, see TestScopeConstraints.
		{[]string{"user/Observation.rs?category=laboratory"}, RolePhysician, Search, "Observation", true, ReasonScopeGrants},
		{[]string{"user/Observation.rs?code=1234-5"}, RolePhysician, Search, "Observation", false, ReasonScopeConstrained},
		{[]string{"system/*.read"}, RolePhysician, Read, "Observation", false, ReasonNoScope},
		{[]string{"openid", "fhirUser"}, RolePhysician, Read, "Observation", false, ReasonNoScope},
		{nil, RoleAdmin, Read, "Observation", false, ReasonNoScope},
		{[]string{"user/*.*x"}, RoleAdmin, Read, "Observation", false, ReasonNoScope},
		// Backend clients: system/ scopes only.
		{[]string{"system/Patient.rs"}, RoleClient, Read, "Patient", true, ReasonScopeGrants},
		{[]string{"system/Patient.rs"}, RoleClient, Search, "Patient", true, ReasonScopeGrants},
		{[]string{"system/Patient.rs"}, RoleClient, Create, "Patient", false, ReasonNoScope},
		{[]string{"system/Patient.rs"}, RoleClient, Read, "Observation", false, ReasonNoScope},
		{[]string{"user/*.cruds"}, RoleClient, Read, "Patient", false, ReasonNoScope},
		{[]string{"system/*.read"}, RoleClient, History, "Observation", true, ReasonScopeGrants},
		// One granting scope among others is enough.
		{[]string{"patient/*.read", "user/Observation.read"}, RolePhysician, Read, "Observation", true, ReasonScopeGrants},
	}
	for _, c := range cases {
		d := Decide(Subject{Tenant: "t", ID: "u", Role: c.role, Scopes: c.scopes}, c.a, Target{Tenant: "t", Type: c.typ}, Facts{AdminPHI: true})
		if d.Allow != c.allow || !slices.Contains(d.Reasons, c.why) {
			t.Errorf("%v %s %s %s: %+v, want allow=%v with %s", c.scopes, c.role, c.a, c.typ, d, c.allow, c.why)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	for _, s := range []string{"patient/Observation.read", "user/*.cruds", "system/Patient.rs?category=a&b=c", "launch/patient", "user/A.cr?x=", "//.", "user/*.?", "patient/*.*"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		if sc.Raw != s {
			t.Fatal("Raw not kept")
		}
		if sc.Context != "" {
			if sc.Type == "" || sc.Perms == "" {
				t.Fatalf("clinical scope without type or permissions: %+v", sc)
			}
			for _, c := range sc.Perms {
				if !strings.ContainsRune("cruds", c) {
					t.Fatalf("permission %q", c)
				}
			}
		}
	})
}
