package authz

import "testing"

// Who may erase a patient: a privacy officer or an admin with a Patient
// delete scope; nobody else, break-the-glass or care relationship aside.
func TestDecideErase(t *testing.T) {
	const tenant = "t1"
	p := Target{Tenant: tenant, Type: "Patient", ID: "p1", Instance: true, Patients: []string{"p1"}}
	who := func(r Role, scopes ...string) Subject {
		if len(scopes) == 0 {
			scopes = []string{"user/*.cruds"}
		}
		s := Subject{Tenant: tenant, ID: "u", Role: r, Scopes: scopes}
		if r == RolePhysician || r == RoleNurse {
			s.Practitioner = "pr1"
		}
		if r == RoleUser {
			s.Patient = "p1"
		}
		return s
	}
	bg := func(s Subject) Subject { s.BreakGlass = "ETREAT"; return s }
	for _, c := range []struct {
		name  string
		s     Subject
		t     Target
		allow bool
		why   string
	}{
		{"privacy officer", who(RolePrivacyOfficer), p, true, ""},
		{"admin", who(RoleAdmin), p, true, ""},
		{"admin without a delete scope", who(RoleAdmin, "user/*.rs"), p, false, ReasonNoScope},
		{"physician in the patient's care", who(RolePhysician), p, false, ReasonRoleNoErase},
		{"physician with break-the-glass", bg(who(RolePhysician)), p, false, ReasonRoleNoErase},
		{"nurse", who(RoleNurse), p, false, ReasonRoleNoErase},
		{"backend client", who(RoleClient, "system/*.cruds"), p, false, ReasonRoleNoErase},
		{"the patient", who(RoleUser), p, false, ReasonRoleNoErase},
		{"privacy officer, not a Patient", who(RolePrivacyOfficer), Target{Tenant: tenant, Type: "Observation", Instance: true, Patients: []string{"p1"}}, false, ReasonRoleNoErase},
		{"privacy officer, other tenant", who(RolePrivacyOfficer), Target{Tenant: "t2", Type: "Patient", Instance: true}, false, ReasonTenant},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.s, Erase, c.t, Facts{CareOf: []string{"p1"}, AdminPHI: true})
			if d.Allow != c.allow {
				t.Fatalf("allow = %v, want %v (%v)", d.Allow, c.allow, d.Reasons)
			}
			if !c.allow && !contains(d.Reasons, c.why) {
				t.Fatalf("reasons %v lack %s", d.Reasons, c.why)
			}
		})
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
