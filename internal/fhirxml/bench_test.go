package fhirxml

import (
	"encoding/json"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
)

// benchDocs returns the Synthea Patient and a 100-entry Bundle built from
// the Synthea transaction's entries (repeated when it has fewer).
func benchDocs(b *testing.B) (patient, bundle map[string]any) {
	b.Helper()
	src := decodeJSON(b, readFixture(b, "testdata/synthea-blaze-bundle.json.gz")).(map[string]any)
	entries := src["entry"].([]any)
	var out []any
	for len(out) < 100 {
		for _, e := range entries {
			if len(out) == 100 {
				break
			}
			out = append(out, e)
		}
	}
	for _, e := range entries {
		r := e.(map[string]any)["resource"].(map[string]any)
		if r["resourceType"] == "Patient" {
			patient = r
		}
	}
	if patient == nil {
		b.Fatal("no Patient in the fixture")
	}
	bundle = map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": out}
	return patient, bundle
}

func benchPair(b *testing.B, doc map[string]any) {
	j, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	x, err := FromJSON(j)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("JSONtoXML", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(j)))
		for b.Loop() {
			if _, err := FromJSON(j); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("XMLtoJSON", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(x)))
		for b.Loop() {
			if _, err := ToJSON(x, fhir.Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkPatient(b *testing.B) {
	p, _ := benchDocs(b)
	benchPair(b, p)
}

func BenchmarkBundle100(b *testing.B) {
	_, bd := benchDocs(b)
	benchPair(b, bd)
}
