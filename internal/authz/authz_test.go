package authz

import (
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

func TestDecideTable(t *testing.T) {
	const tenant = "t1"
	subj := func(role Role) Subject { return Subject{Tenant: tenant, ID: "u1", Role: role} }
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
			want[key{RoleAdmin, a, typ}] = true
			want[key{RolePhysician, a, typ}] = true
			want[key{RoleNurse, a, typ}] = !a.IsWrite() || typ == "Observation" || typ == "Immunization"
			want[key{RoleUser, a, typ}] = false
			want[key{Role("superuser"), a, typ}] = false
			want[key{Role(""), a, typ}] = false
		}
	}
	for k, w := range want {
		d := Decide(subj(k.role), k.action, Target{Tenant: tenant, Type: k.typ})
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
				d := Decide(Subject{Tenant: "t1", ID: "u", Role: r}, a, Target{Tenant: target, Type: "Patient"})
				if d.Allow || !slices.Contains(d.Reasons, ReasonTenant) {
					t.Errorf("%s %s into tenant %q: %+v", r, a, target, d)
				}
			}
		}
	}
	if d := Decide(Subject{ID: "u", Role: RoleAdmin}, Read, Target{Type: "Patient"}); d.Allow {
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
		{"patient user without compartment rule", Subject{Tenant: "t", ID: "u", Role: RoleUser}, Read, ReasonNoPatientLink},
	}
	for _, c := range cases {
		d := Decide(c.s, c.a, Target{Tenant: "t", Type: "Patient"})
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
		if !deptest.IsStd(path) {
			return "decisions need no third-party code"
		}
		return ""
	})
}

func BenchmarkDecide(b *testing.B) {
	s := Subject{Tenant: "t", ID: "u", Role: RoleNurse}
	tg := Target{Tenant: "t", Type: "Observation"}
	for b.Loop() {
		Decide(s, Update, tg)
	}
}
