package clinic

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodePatient feeds arbitrary bodies to the request decoder and the
// FHIR mapping: it must never panic, must refuse with a problem that names
// no submitted value, and what it accepts must map to a Patient.
func FuzzDecodePatient(f *testing.F) {
	for _, s := range []string{
		`{"first_name":"Ada","last_name":"Lovelace","date_of_birth":"1815-12-10"}`,       // valid
		`{"first_name":"Ada","last_name":"Lovelace","date_of_birth":"1815-13-10"}`,       // bad date
		`{"first_name":"Ada","last_name":"Lovelace","date_of_birth":"1815-12-10","x":1}`, // unknown field
		`{"first_name":1}`, // wrong type
		`{"address":{"line1":["a"]}}`,
		`{"first_name":"A","last_name":"B","date_of_birth":"2000-01-01","email":"a@b"} {}`, // two values
		`[`, ``, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p Patient
		err := decodeInto(body, &p)
		if err != nil {
			pb, ok := err.(*Problem)
			if !ok {
				t.Fatalf("not a problem: %v", err)
			}
			if _, known := problemTypes[pb.Type]; !known {
				t.Fatalf("unknown problem type %q", pb.Type)
			}
			msg, _ := json.Marshal(pb)
			for _, v := range []string{p.FirstName, p.LastName, p.Email, p.Phone, p.MRN} {
				if len(v) >= 4 && strings.Contains(string(msg), v) {
					t.Fatalf("problem echoes a value: %s", msg)
				}
			}
			return
		}
		doc := patientToFHIR(&p, "", true)
		if doc["birthDate"] != p.DateOfBirth {
			t.Fatal("birth date lost")
		}
	})
}

// FuzzCursor: any string is refused or opened, never a panic, and only
// the list a cursor was sealed for accepts it.
func FuzzCursor(f *testing.F) {
	a, err := New(Options{CursorKey: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := a.sealCursor("patients", sortKey{"lovelace", "ada", "x"})
	for _, s := range []string{good, "", "AAAA", "!!!!", good[:len(good)-2]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var k sortKey
		if a.openCursor("patients", s, &k) == nil && s != good {
			// Only a sealed cursor opens; a different encoding of the same
			// bytes is the only way to get here.
			var k2 sortKey
			if a.openCursor("immunizations", s, &k2) == nil {
				t.Fatal("a cursor opens for another list")
			}
		}
	})
}

// TestProblemTypesDocumented: every problem type is named in the OpenAPI
// document, and every status the table maps to has a type.
func TestProblemTypesDocumented(t *testing.T) {
	a, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(a.OpenAPI())
	for slug := range problemTypes {
		if !strings.Contains(string(b), ProblemBase+slug) {
			t.Errorf("%s missing from the document", slug)
		}
	}
	for st, slug := range typeOfStatus {
		if problemTypes[slug].status != st {
			t.Errorf("status %d maps to %s of status %d", st, slug, problemTypes[slug].status)
		}
	}
}
