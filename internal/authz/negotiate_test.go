package authz

import (
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	cases := []struct {
		name, requested, allowed, want string
	}{
		{"same string", "patient/Observation.rs", "patient/Observation.rs", "patient/Observation.rs"},
		{"v1 read is v2 rs", "patient/Observation.read", "patient/Observation.rs", "patient/Observation.read"},
		{"v2 rs under v1 read", "patient/Observation.rs", "patient/Observation.read", "patient/Observation.rs"},
		{"v1 star is cruds", "user/Patient.*", "user/Patient.cruds", "user/Patient.*"},
		{"v1 write is cud", "user/Patient.write", "user/*.cruds", "user/Patient.write"},
		{"wildcard type grants a type", "system/Patient.rs", "system/*.rs", "system/Patient.rs"},
		{"wildcard request narrowed to the registered types", "patient/*.rs", "patient/Patient.rs patient/Observation.read", "patient/Patient.rs patient/Observation.rs"},
		{"permissions narrowed", "user/Observation.cruds", "user/*.rs", "user/Observation.rs"},
		{"v1 read narrowed to r", "patient/Observation.read", "patient/Observation.r", "patient/Observation.r"},
		{"no shared permission", "user/Observation.c", "user/*.rs", ""},
		{"other context refused", "user/Patient.rs", "patient/*.rs", ""},
		{"system never from user", "system/Patient.rs", "user/*.cruds", ""},
		{"other type refused", "patient/Observation.rs", "patient/Patient.rs", ""},
		{"constraint is a narrowing", "patient/Observation.rs?category=laboratory", "patient/Observation.rs", "patient/Observation.rs?category=laboratory"},
		{"registered constraint applies", "patient/Observation.rs", "patient/Observation.rs?category=vital-signs", "patient/Observation.rs?category=vital-signs"},
		{"same constraint", "patient/Observation.rs?category=laboratory", "patient/*.rs?category=laboratory", "patient/Observation.rs?category=laboratory"},
		{"different constraints grant nothing", "patient/Observation.rs?category=laboratory", "patient/Observation.rs?category=vital-signs", ""},
		{"launch scopes by string", "launch/patient openid fhirUser launch", "launch/patient openid", "launch/patient openid"},
		{"offline only if allowed", "offline_access patient/*.rs", "patient/*.rs online_access", "patient/*.rs"},
		{"duplicates dropped", "patient/Patient.rs patient/Patient.read", "patient/*.rs", "patient/Patient.rs"},
		{"covered scope dropped", "patient/*.rs patient/Observation.r", "patient/*.cruds", "patient/*.rs"},
		{"union of two registrations", "user/Observation.cruds", "user/Observation.rs user/Observation.cu", "user/Observation.rs user/Observation.cu"},
		{"nothing asked", "", "patient/*.rs", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := ParseScopes(c.requested)
			if err != nil {
				t.Fatal(err)
			}
			al, err := ParseScopes(c.allowed)
			if err != nil {
				t.Fatal(err)
			}
			if got := JoinScopes(Negotiate(req, al)); got != c.want {
				t.Errorf("Negotiate(%q, %q) = %q, want %q", c.requested, c.allowed, got, c.want)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	cases := []struct {
		g, r string
		want bool
	}{
		{"system/*.rs", "system/Patient.rs", true},
		{"system/*.rs", "system/Patient.read", true},
		{"system/*.read", "system/Patient.s", true},
		{"system/*.rs", "system/Patient.rds", false},
		{"patient/Observation.rs", "patient/Observation.rs?category=laboratory", true},
		{"patient/Observation.rs?category=laboratory", "patient/Observation.rs", false},
		{"patient/*.rs", "user/Patient.rs", false},
		{"launch/patient", "launch/patient", true},
		{"launch", "launch/patient", false},
		{"patient/*.cruds", "launch/patient", false},
	}
	for _, c := range cases {
		g, _ := ParseScope(c.g)
		r, _ := ParseScope(c.r)
		if got := Covers(g, r); got != c.want {
			t.Errorf("Covers(%s, %s) = %v, want %v", c.g, c.r, got, c.want)
		}
	}
}

// FuzzNegotiate: whatever two scope lists say, every granted scope parses
// again to itself, is covered by some allowed scope and by some requested
// scope (nothing is granted that was not both asked for and allowed).
func FuzzNegotiate(f *testing.F) {
	f.Add("patient/*.rs launch/patient", "patient/Observation.read patient/Patient.rs launch/patient")
	f.Add("system/Patient.rs", "system/*.rs")
	f.Add("patient/Observation.rs?category=laboratory", "patient/*.cruds?category=laboratory user/*.*")
	f.Add("user/*.write openid", "user/Observation.cu fhirUser")
	f.Fuzz(func(t *testing.T, requested, allowed string) {
		req, err1 := ParseScopes(requested)
		al, err2 := ParseScopes(allowed)
		if err1 != nil || err2 != nil {
			return
		}
		for _, g := range Negotiate(req, al) {
			back, err := ParseScope(g.Raw)
			if err != nil {
				t.Fatalf("granted %q does not parse: %v", g.Raw, err)
			}
			if !Covers(back, g) || !Covers(g, back) {
				t.Fatalf("granted %q parses to another scope", g.Raw)
			}
			inReq, inAl := false, false
			for _, r := range req {
				inReq = inReq || Covers(r, g)
			}
			for _, a := range al {
				inAl = inAl || Covers(a, g)
			}
			if !inReq || !inAl {
				t.Fatalf("granted %q: covered by request %v, by allowed %v", g.Raw, inReq, inAl)
			}
			if strings.ContainsAny(g.Raw, " \t") {
				t.Fatalf("granted %q has a space", g.Raw)
			}
		}
	})
}

func TestDescribeScope(t *testing.T) {
	for raw, want := range map[string]string{
		"patient/Observation.rs":                     "Read and search observation records of the chosen patient",
		"patient/Observation.read":                   "Read and search observation records of the chosen patient",
		"user/*.cruds":                               "Create, read, update, delete and search all kinds of records you may see",
		"patient/Observation.rs?category=laboratory": "Read and search observation records (only where category is laboratory) of the chosen patient",
		"system/MedicationRequest.r":                 "Read medication request records of every patient (a system permission)",
		"launch/patient":                             "Open with one patient, the one you choose",
		"x-unknown":                                  "Use the permission x-unknown",
	} {
		if got := DescribeScope(raw); got != want {
			t.Errorf("DescribeScope(%q) = %q, want %q", raw, got, want)
		}
	}
}
