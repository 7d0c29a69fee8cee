package fhir

import (
	"encoding/json"
	"testing"
	"time"
)

func benchPatient(b *testing.B) []byte {
	b.Helper()
	r, err := Parse(readFixture(b, "patient.json"))
	if err != nil {
		b.Fatal(err)
	}
	out, err := Marshal(r.Doc) // compact, as stored and as clients send
	if err != nil {
		b.Fatal(err)
	}
	return out
}

func BenchmarkParse(b *testing.B) {
	body := benchPatient(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidatePatient(b *testing.B) {
	v := newValidator(b)
	r, err := Parse(benchPatient(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if issues := v.Validate(r); len(issues) != 0 {
			b.Fatal(issues)
		}
	}
}

func BenchmarkValidateInvalidPatient(b *testing.B) {
	v := newValidator(b)
	r := mustParse(b, `{"resourceType":"Patient","gender":"banana","foo":1,"name":[{"given":["a",3]}],"birthDate":"x"}`)
	b.ReportAllocs()
	for b.Loop() {
		if issues := v.Validate(r); len(issues) != 4 {
			b.Fatal(issues)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	r, err := Parse(benchPatient(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(r.Doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMarshalEncodingJSON is the baseline Marshal replaces.
func BenchmarkMarshalEncodingJSON(b *testing.B) {
	r, err := Parse(benchPatient(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(r.Doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseValidateMarshal is the write path: request body in, stored
// bytes out.
func BenchmarkParseValidateMarshal(b *testing.B) {
	v := newValidator(b)
	body := benchPatient(b)
	at := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		if issues := v.Validate(r); len(issues) != 0 {
			b.Fatal(issues)
		}
		SetMeta(r.Doc, "1", at)
		if _, err := Marshal(r.Doc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBundle100(b *testing.B) {
	raw := benchPatient(b)
	total := 100
	bundle := &Bundle{Type: "searchset", Total: &total, Links: []BundleLink{{Relation: "self", URL: "https://ward.example/fhir/Patient"}}}
	for range 100 {
		bundle.Entries = append(bundle.Entries, BundleEntry{FullURL: "https://ward.example/fhir/Patient/pat-7f3a9c21", Resource: raw, Search: &BundleSearch{Mode: "match"}})
	}
	b.SetBytes(int64(100 * len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bundle.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}
