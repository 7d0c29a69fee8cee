package records

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
)

// FuzzLocalRef: a reference string either names a resource of this
// server (an R4 type and a valid id, from the string itself or its part
// under one of the bases) or is left alone; it never panics, and a local
// reference always round-trips to "Type/id" inside the input.
func FuzzLocalRef(f *testing.F) {
	for _, s := range []string{
		"Patient/123",            // relative
		"Patient/123/_history/2", // versioned
		"https://ward.example.org/fhir/Observation/a-b.c", // under the configured base
		"http://req.example/fhir/Patient/x",               // under the request's base
		"http://other.example.org/fhir/Patient/1",         // another server
		"urn:uuid:7b0c0e22-0000-4000-8000-000000000001",   // bundle-local
		"#contained",             // contained
		"Patient?identifier=x|y", // conditional
		"Nonsense/1", "Patient/", "Patient/a/b", "Patient/a/_history", "/Patient/1", "",
	} {
		f.Add(s)
	}
	r := &Repo{s: &Service{baseURL: "https://ward.example.org/fhir"}, base: "http://req.example/fhir"}
	f.Fuzz(func(t *testing.T, s string) {
		ref, ok := r.local(s)
		if !ok {
			return
		}
		if !fhir.IsResourceType(ref.Type) || !fhir.IsID(ref.ID) || !strings.Contains(s, ref.Type+"/"+ref.ID) {
			t.Fatalf("%q resolved to %+v", s, ref)
		}
	})
}
