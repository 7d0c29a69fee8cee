package fhirxml

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
)

// FuzzXML feeds untrusted XML to ToJSON. It must never panic, and whatever
// it accepts must survive JSON -> XML -> JSON unchanged (the lossless
// guarantee, from the XML side). Seeds: the fixtures in testdata/xml, the
// committed corpus in testdata/fuzz/FuzzXML (XXE, entity bombs, PIs,
// deep nesting) and a few inline shapes.
func FuzzXML(f *testing.F) {
	files, _ := filepath.Glob("testdata/xml/*.xml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		`<Patient xmlns="http://hl7.org/fhir"/>`,
		`<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/><entry><fullUrl value="urn:uuid:1"/><resource><Patient><id value="a"/></Patient></resource><request><method value="POST"/><url value="Patient"/></request></entry></Bundle>`,
		`<Patient xmlns="http://hl7.org/fhir"><name><given value="a"/><given id="x"/></name></Patient>`,
	} {
		f.Add([]byte(s))
	}
	lim := fhir.Limits{Elements: 10000}
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := Decode(body, lim)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		x, err := AppendXML(nil, doc)
		if err != nil {
			// Accepted XML the writer refuses (an empty
			// primitive array cannot arise; an empty extension
			// list can't either): any refusal is a bug.
			t.Fatalf("accepted XML does not convert back: %v", err)
		}
		back, err := Decode(x, fhir.Limits{})
		if err != nil {
			t.Fatalf("our own XML is refused: %v\n%s", err, x)
		}
		if !reflect.DeepEqual(back, doc) {
			t.Fatalf("round trip differs\nin:  %q\nout: %s", body, x)
		}
	})
}

// FuzzFromJSON is the other side: whatever JSON FromJSON accepts comes
// back from its XML as the same document, and nothing panics.
func FuzzFromJSON(f *testing.F) {
	for _, p := range []string{"../fhir/testdata/patient.json", "../fhir/testdata/synthea-observation.json", "../fhir/shape/testdata/observation.json"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"resourceType":"Patient","name":[{"given":["a",null],"_given":[null,{"id":"x"}]}],"_birthDate":{"extension":[{"url":"u","valueDecimal":1.10}]}}`))
	f.Add([]byte(`{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">&lt;a&gt;</div>"}}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		x, err := FromJSON(body)
		if err != nil {
			return
		}
		back, err := Decode(x, fhir.Limits{})
		if err != nil {
			t.Fatalf("our own XML is refused: %v\n%s", err, x)
		}
		var doc map[string]any
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, doc) {
			t.Fatalf("round trip differs\nin:  %s\nout: %s", body, x)
		}
	})
}
