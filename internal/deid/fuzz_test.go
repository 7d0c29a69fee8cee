package deid

import (
	"encoding/json"
	"testing"
)

// FuzzResource: any JSON object either is refused (not an R4 type, no id)
// or de-identifies without panicking into a resource whose id is a
// pseudonym, whose references are pseudonyms, and that holds none of the
// elements that carry identifiers or free text, at any depth.
func FuzzResource(f *testing.F) {
	for _, s := range []string{
		planted,    // every Safe Harbor identifier of a Patient
		plantedImm, // an Immunization with free text and a reaction
		`{"resourceType":"Bundle","id":"b","type":"collection","entry":[{"fullUrl":"urn:uuid:1","resource":` + planted + `}]}`,    // nested
		`{"resourceType":"Observation","id":"o","valueQuantity":{"value":1e308,"system":"http://unitsofmeasure.org","code":"a"}}`, // huge age
		`{"resourceType":"Condition","id":"c","onsetAge":{"value":"ninety","code":"a"},"_recordedDate":{"extension":[{"url":"x","valueString":"y"}]}}`,
		`{"resourceType":"Patient","id":"p","birthDate":7,"address":[{"postalCode":["02139"]}],"extension":[{"url":5}]}`, // wrong JSON types
		`{"resourceType":"Encounter","id":"e","subject":{"reference":"Patient/x/_history/2"},"contained":[` + planted + `]}`,
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, shift bool) {
		var in map[string]any
		if json.Unmarshal(raw, &in) != nil {
			return
		}
		d := must(t, Options{ProjectKey: []byte("project-key-0123456789"), Now: now, ShiftDates: shift})
		out, err := d.Resource(in, "p")
		if err != nil {
			return
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("output does not encode: %v", err)
		}
		if id, _ := out["id"].(string); !pseudonymRE.MatchString(id) || len(id) != 32 {
			t.Fatalf("id %q is not a pseudonym", id)
		}
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case map[string]any:
				for k, y := range x {
					if _, bad := forbidden[k]; bad && !(k == "valueString" && x["url"] == AgeGroupURL) {
						t.Fatalf("%s kept", k)
					}
					if s, ok := y.(string); ok && k == "reference" && !refRE.MatchString(s) {
						t.Fatalf("reference %q kept", s)
					}
					walk(y)
				}
			case []any:
				for _, y := range x {
					walk(y)
				}
			}
		}
		walk(out)
	})
}
