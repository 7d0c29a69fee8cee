package records

import (
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// FuzzParseCondition: any conditional URL either parses into a query of
// at least one clause on its type, or is refused with a 400 problem whose
// message does not echo the input's values.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{
		"Patient?identifier=http://hl7.org/fhir/sid/us-npi|9999999989",
		"Organization?identifier=https%3A%2F%2Fgithub.com%2Fsynthetichealth%2Fsynthea%7C4bdaa4c2",
		"Observation?subject=Patient/123&code=http://loinc.org|8867-4&date=ge2020-01-01",
		"Patient?name:exact=Oriel&_count=1",
		"Patient?",
		"Patient?nonsense=1",
		"Patient?birthdate=notadate",
		"Nope?x=1",
		"Patient?identifier=%zz",
		"Patient?_has:Observation:subject:code=1234",
		"Encounter?subject:Patient.name=x&_sort=date",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, raw, ok := SplitConditional(s)
		if !ok {
			if fhir.IsResourceType(typ) {
				t.Fatalf("%q: not split but names type %q", s, typ)
			}
			return
		}
		q, err := ParseCondition(typ, raw)
		if err != nil {
			if !errors.Is(err, problem.ErrInvalid) {
				t.Fatalf("%q: unclassified error %v", s, err)
			}
			return
		}
		if q.Type != typ || len(q.Clauses) == 0 || len(q.Include) > 0 || len(q.RevInclude) > 0 || len(q.Sort) > 0 || len(q.Ignored) > 0 {
			t.Fatalf("%q parsed to %+v", s, q)
		}
	})
}
