package authz

import (
	"slices"
	"testing"
)

// Who may merge two patients: an admin, a backend client with a Patient
// write scope, a physician in the care of both patients; nobody else,
// and break-the-glass never makes a merge.
func TestDecideMerge(t *testing.T) {
	const tenant = "t1"
	both := Target{Tenant: tenant, Type: "Patient", ID: "p2", Instance: true, Patients: []string{"p1", "p2"}}
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
		care  []string
		allow bool
		why   string
	}{
		{"admin", who(RoleAdmin), both, nil, true, ""},
		{"client with a Patient write scope", who(RoleClient, "system/Patient.u", "system/*.r"), both, nil, true, ""},
		{"client without one", who(RoleClient, "system/*.r"), both, nil, false, ReasonNoScope},
		{"physician in the care of both", who(RolePhysician), both, []string{"p1", "p2"}, true, ""},
		{"physician of the source only", who(RolePhysician), both, []string{"p1"}, false, ReasonNotEvery},
		{"physician of the target only", who(RolePhysician), both, []string{"p2"}, false, ReasonNotEvery},
		{"physician of neither", who(RolePhysician), both, nil, false, ReasonNoRelation},
		{"physician of the source, break-glass", bg(who(RolePhysician)), both, []string{"p1"}, false, ReasonGoverns},
		{"physician with read scopes only", who(RolePhysician, "user/*.rs"), both, []string{"p1", "p2"}, false, ReasonNoScope},
		{"nurse in the care of both", who(RoleNurse), both, []string{"p1", "p2"}, false, ReasonRoleNoMerge},
		{"privacy officer", who(RolePrivacyOfficer), both, nil, false, ReasonRoleNoMerge},
		{"the patient", who(RoleUser), both, nil, false, ReasonRoleNoMerge},
		{"admin, not a Patient", who(RoleAdmin), Target{Tenant: tenant, Type: "Observation", Instance: true, Patients: []string{"p1"}}, nil, false, ReasonRoleNoMerge},
		{"admin, type level", who(RoleAdmin), Target{Tenant: tenant, Type: "Patient"}, nil, true, ""},
		{"nurse, type level", who(RoleNurse), Target{Tenant: tenant, Type: "Patient"}, nil, false, ReasonRoleNoMerge},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(c.s, Merge, c.t, Facts{CareOf: c.care, AdminPHI: true})
			if d.Allow != c.allow {
				t.Fatalf("allow=%v, want %v (%v)", d.Allow, c.allow, d.Reasons)
			}
			if c.why != "" && !slices.Contains(d.Reasons, c.why) {
				t.Fatalf("reasons %v lack %s", d.Reasons, c.why)
			}
			if d.Emergency {
				t.Fatalf("a merge marked as an emergency: %v", d.Reasons)
			}
		})
	}
	// An admin without PHI access merges nothing.
	if d := Decide(who(RoleAdmin), Merge, both, Facts{}); d.Allow {
		t.Fatalf("admin without PHI access merged: %v", d.Reasons)
	}
}
