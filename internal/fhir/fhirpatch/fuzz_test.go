package fhirpatch

import (
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/jsonpatch"
)

// FuzzPatch: any Parameters body and any resource: Parse either fails
// with ErrInvalid (or ErrTooCostly, over the operation limit) or yields
// operations; Apply either fails with ErrInvalid or ErrFailed, or returns
// a document that still serialises and is still a resource of the same
// type; the input is never modified; ApplyLimited also may refuse as
// ErrTooCostly, and what it returns is within its limits.
func FuzzPatch(f *testing.F) {
	for _, c := range specCases {
		f.Add([]byte(c.patch), []byte(c.in))
	}
	f.Add([]byte(params(op("replace", "Patient.name.where(use = 'usual').family", part("value", `"valueString":"C"`)))), []byte(pat(`"name":[{"use":"usual","family":"B"}]`)))
	f.Add([]byte(params(op("add", "Patient", part("name", `"valueString":"contact"`), part("value", `"part":[{"name":"telecom","valueContactPoint":{"system":"phone"}},{"name":"telecom","valueContactPoint":{"system":"email"}}]`)))), []byte(pat()))
	f.Add([]byte(`{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"move"},{"name":"path","valueString":"Patient.identifier[0]"},{"name":"source","valueInteger":0},{"name":"destination","valueInteger":1e9}]}]}`), []byte(pat(ids4)))
	// Growth past the limits of ApplyLimited: lists and values.
	f.Add([]byte(params(op("add", "Patient", part("name", `"valueString":"name"`), part("value", `"valueHumanName":{"given":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","t"]}`)),
		op("add", "Patient", part("name", `"valueString":"name"`), part("value", `"valueHumanName":{"given":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s","t"]}`)))), []byte(pat()))
	f.Add([]byte(params(op("insert", "Patient.identifier", part("index", `"valueInteger":0`), part("value", `"valueIdentifier":{"value":"x"}`)))), []byte(pat(ids4)))
	f.Fuzz(func(t *testing.T, patch, resource []byte) {
		p, err := fhir.Parse(patch)
		if err != nil {
			return
		}
		ops, err := Parse(p.Doc)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooCostly) {
				t.Fatalf("Parse: unclassified %v", err)
			}
			return
		}
		r, err := fhir.Parse(resource)
		if err != nil {
			return
		}
		before, err := fhir.Marshal(r.Doc)
		if err != nil {
			return
		}
		out, err := Apply(r.Doc, ops)
		if after, _ := fhir.Marshal(r.Doc); string(after) != string(before) {
			t.Fatal("Apply modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrFailed) {
				t.Fatalf("Apply: unclassified %v", err)
			}
			return
		}
		lim := Limits{Elements: 40, ArrayItems: 3}
		if lout, err := ApplyLimited(r.Doc, ops, lim); err == nil {
			if n := jsonpatch.CountValues(lout, -1); n > max(lim.Elements, jsonpatch.CountValues(r.Doc, -1)) {
				t.Fatalf("ApplyLimited grew the resource to %d values", n)
			}
		} else if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrFailed) && !errors.Is(err, ErrTooCostly) {
			t.Fatalf("ApplyLimited: unclassified %v", err)
		}
		if out["resourceType"] != r.Type {
			t.Fatalf("the patched document is a %v, not a %s", out["resourceType"], r.Type)
		}
		if _, err := fhir.Marshal(out); err != nil {
			t.Fatalf("the patched document does not serialise: %v", err)
		}
	})
}

// FuzzParsePath: ParsePath never panics, and what it accepts starts with
// a resource type and has a bounded number of steps.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"Patient", "Patient.contact[0].name.text", "Patient.name.where(use = 'official').given.first()",
		"Patient.identifier.last()", "Patient.name.where(family = 'O\\'Brien')", "Patient..x", "Patient[", "Patient.where(", "patient.name", "Observation.value.where(x = -12)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			return
		}
		if !fhir.IsResourceType(p.Root) || len(p.Steps) > maxSteps {
			t.Fatalf("%q parsed to %+v", s, p)
		}
	})
}
