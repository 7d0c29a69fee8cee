package loadgen

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestSyntheticPatientSizeAndValidity(t *testing.T) {
	allowedTop := map[string]bool{
		"resourceType": true, "text": true, "extension": true, "identifier": true,
		"active": true, "name": true, "telecom": true, "gender": true,
		"birthDate": true, "address": true, "maritalStatus": true,
		"contact": true, "communication": true,
	}
	genders := map[string]bool{"male": true, "female": true, "other": true, "unknown": true}
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[string]bool)
	for i := range 500 {
		b := SyntheticPatient(rng)
		if n := len(b); n < 1900 || n > 2300 {
			t.Fatalf("#%d: size %d outside 1900..2300", i, n)
		}
		if !json.Valid(b) {
			t.Fatalf("#%d: invalid JSON: %s", i, b)
		}
		seen[string(b)] = true
		var p map[string]any
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		if p["resourceType"] != "Patient" {
			t.Fatalf("#%d: resourceType %v", i, p["resourceType"])
		}
		for k := range p {
			if !allowedTop[k] {
				t.Fatalf("#%d: unexpected element %q", i, k)
			}
		}
		if !genders[p["gender"].(string)] {
			t.Fatalf("#%d: gender %v", i, p["gender"])
		}
		text := p["text"].(map[string]any)
		div := text["div"].(string)
		if text["status"] != "generated" || !strings.HasPrefix(div, `<div xmlns="http://www.w3.org/1999/xhtml">`) || !strings.HasSuffix(div, "</div>") {
			t.Fatalf("#%d: bad narrative %v", i, text)
		}
		var ssn bool
		for _, id := range p["identifier"].([]any) {
			if id.(map[string]any)["system"] == "http://hl7.org/fhir/sid/us-ssn" {
				ssn = true
			}
		}
		if !ssn {
			t.Fatalf("#%d: no SSN identifier", i)
		}
		if len(p["telecom"].([]any)) != 2 || len(p["address"].([]any)) != 1 || len(p["extension"].([]any)) < 1 {
			t.Fatalf("#%d: missing telecom/address/extension", i)
		}
		if bd := p["birthDate"].(string); len(bd) != len("2006-01-02") {
			t.Fatalf("#%d: birthDate %q", i, bd)
		}
	}
	if len(seen) != 500 {
		t.Fatalf("only %d distinct bodies out of 500", len(seen))
	}
}

func TestSyntheticPatientStrictDecode(t *testing.T) {
	// Every field in the output maps onto the generator's typed structs
	// (no misspelled element names slip through).
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		dec := json.NewDecoder(bytes.NewReader(SyntheticPatient(rng)))
		dec.DisallowUnknownFields()
		var p patient
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSyntheticPatientDeterministic(t *testing.T) {
	gen := func(seed uint64) [][]byte {
		r := rand.New(rand.NewPCG(seed, 99))
		var out [][]byte
		for range 20 {
			out = append(out, SyntheticPatient(r))
		}
		return out
	}
	a, b, c := gen(7), gen(7), gen(8)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Fatalf("#%d differs for the same seed", i)
		}
	}
	if bytes.Equal(a[0], c[0]) {
		t.Fatal("different seeds gave the same body")
	}
}

// RealisticPatient is issue #24's create body: two names, two identifiers,
// three telecoms, an address and a contact, about 2 KiB, all distinct.
func TestRealisticPatientShape(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	seen := map[string]bool{}
	for i := range 200 {
		b := RealisticPatient(rng)
		if n := len(b); n < 1900 || n > 2300 {
			t.Fatalf("#%d: size %d outside 1900..2300", i, n)
		}
		var p struct {
			Name       []map[string]any
			Identifier []map[string]any
			Telecom    []map[string]any
			Address    []map[string]any
			Contact    []map[string]any
		}
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Name) != 2 || len(p.Identifier) != 2 || len(p.Telecom) != 3 || len(p.Address) != 1 || len(p.Contact) != 1 {
			t.Fatalf("#%d: %d names, %d identifiers, %d telecoms, %d addresses, %d contacts", i,
				len(p.Name), len(p.Identifier), len(p.Telecom), len(p.Address), len(p.Contact))
		}
		seen[string(b)] = true
	}
	if len(seen) != 200 {
		t.Fatalf("only %d distinct bodies out of 200", len(seen))
	}
}
