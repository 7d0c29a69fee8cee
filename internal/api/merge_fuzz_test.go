package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// FuzzMergeParameters: any body parsed as a resource gives $merge either
// a 400 naming no value, or a request that names both sides with ids
// that are FHIR ids and identifiers with values; never a panic.
// Seeds: testdata/fuzz/FuzzMergeParameters (and those below).
func FuzzMergeParameters(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"reference":"Patient/a"}},{"name":"target-patient","valueReference":{"reference":"Patient/b"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"source-patient-identifier","valueIdentifier":{"system":"urn:mrn","value":"x|y,z$"}},{"name":"target-patient","valueReference":{"reference":"https://h/fhir/Patient/b/_history/2"}},{"name":"preview","valueBoolean":true}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"identifier":{"value":"1"}}},{"name":"target-patient-identifier","valueIdentifier":{"value":"2"}},{"name":"result-patient","resource":{"resourceType":"Patient","id":"b"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"reference":"Observation/a"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"preview","valueBoolean":true},{"name":"preview","valueBoolean":false}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"source-patient","part":[]}]}`,
		`{"resourceType":"Patient"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := fhir.Parse(body)
		if err != nil {
			return
		}
		req, err := parseMergeParameters(res.Doc)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || !errors.Is(err, problem.ErrInvalid) {
				t.Fatalf("not a 400 problem: %v", err)
			}
			return
		}
		for _, side := range []struct {
			id   string
			idfs int
		}{{req.Source.ID, len(req.Source.Identifiers)}, {req.Target.ID, len(req.Target.Identifiers)}} {
			if side.id == "" && side.idfs == 0 {
				t.Fatalf("a side named by nothing: %+v", req)
			}
			if side.id != "" && !fhir.IsID(side.id) {
				t.Fatalf("not an id: %q", side.id)
			}
		}
		for _, i := range append(req.Source.Identifiers, req.Target.Identifiers...) {
			if strings.TrimSpace(i.Value) == "" {
				t.Fatalf("identifier without a value: %+v", req)
			}
		}
		if len(req.Source.Identifiers) > maxMergeIdentifiers || len(req.Target.Identifiers) > maxMergeIdentifiers {
			t.Fatalf("too many identifiers accepted")
		}
	})
}

// Refusals name the parameter, never the value the client sent.
func TestMergeParametersRefusals(t *testing.T) {
	const secret = "SECRET-MRN-123"
	for _, body := range []string{
		`{"resourceType":"Parameters","parameter":[{"name":"source-patient","valueReference":{"reference":"Patient/` + secret + `$"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"` + secret + `","valueString":"x"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"source-patient-identifier","valueIdentifier":{"system":"` + secret + `"}}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"source-patient-identifier","valueIdentifier":{"value":"` + secret + `"}}]}`,
	} {
		res, err := fhir.Parse([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseMergeParameters(res.Doc)
		if err == nil || !errors.Is(err, problem.ErrInvalid) || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: %v", body, err)
		}
	}
}
