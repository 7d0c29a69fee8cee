package records

import (
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// FuzzParseEntry: any JSON as a Bundle entry either parses into a
// well-formed Entry or is refused with a classified 4xx problem.
func FuzzParseEntry(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"PUT","url":"Patient/x","ifMatch":"W/\"3\""},"resource":{"resourceType":"Patient","id":"x"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient?identifier=a|b"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"//Patient/../x"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[1,"x",null,{}]}`,
		// Conditional create, update and delete.
		`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Practitioner"},"request":{"method":"POST","url":"Practitioner","ifNoneExist":"identifier=http://hl7.org/fhir/sid/us-npi|9999999989"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"Patient?identifier=a|b&birthdate=ge2000"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","id":"x"},"request":{"method":"PUT","url":"Patient?identifier=a%7Cb"}}]}`,
		// PATCH entries: JSON Patch as a Binary, FHIRPath Patch, by condition.
		`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Binary","contentType":"application/json-patch+json","data":"W3sib3AiOiJyZW1vdmUiLCJwYXRoIjoiL2dlbmRlciJ9XQ=="},"request":{"method":"PATCH","url":"Patient/x","ifMatch":"W/\"1\""}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.gender"}]}]},"request":{"method":"PATCH","url":"Patient?identifier=a|b"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"resource":{"resourceType":"Binary","contentType":"text/plain","data":"!!"},"request":{"method":"PATCH","url":"Patient/x"}},{"request":{"method":"PUT","url":"Patient/x","ifNoneMatch":"*"},"resource":{"resourceType":"Patient","id":"x"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"PUT","url":"Patient?"}},{"request":{"method":"GET","url":"Patient?name=x"}},{"request":{"method":"POST","url":"Patient","ifNoneExist":7}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := fhir.Parse(body)
		if err != nil || b.Type != "Bundle" {
			return
		}
		raw, _ := b.Doc["entry"].([]any)
		for i, r := range raw {
			e, err := ParseEntry(i, r)
			if err != nil {
				var pe *problem.Error
				if !errors.As(err, &pe) || !errors.Is(err, problem.ErrInvalid) && !errors.Is(err, problem.ErrTooLarge) {
					t.Fatalf("entry %d: unclassified error %v", i, err)
				}
				continue
			}
			if !fhir.IsResourceType(e.Type) || e.Index != i {
				t.Fatalf("entry %d parsed to %+v", i, e)
			}
			if (e.Method == "POST" || e.Method == "PUT") != (e.Resource != nil) {
				t.Fatalf("entry %d: method %s with resource %v", i, e.Method, e.Resource != nil)
			}
			if e.cond != nil {
				if (e.Method != "PUT" && e.Method != "DELETE" && e.Method != "PATCH") || e.ID != "" || len(e.cond.Clauses) == 0 || e.cond.Type != e.Type {
					t.Fatalf("entry %d: conditional %s parsed to %+v", i, e.Method, e)
				}
			} else if e.Method != "POST" && !fhir.IsID(e.ID) {
				t.Fatalf("entry %d: %s without a valid id", i, e.Method)
			}
			if (e.Method == "PATCH") != (e.patch != nil) {
				t.Fatalf("entry %d: method %s with patch %v", i, e.Method, e.patch != nil)
			}
			if e.ifNoneExist != nil && (e.Method != "POST" || len(e.ifNoneExist.Clauses) == 0) {
				t.Fatalf("entry %d: ifNoneExist on %s", i, e.Method)
			}
		}
	})
}
