package search

import (
	"testing"

	"github.com/wardhealth/ward/internal/search/fhirpath"
)

// richest returns the sample resource of type rt with the most top-level
// elements, or with key present if key is not "".
func richest(b testing.TB, rt, key string) map[string]any {
	var best map[string]any
	for _, r := range loadSample(b) {
		if r["resourceType"] != rt {
			continue
		}
		if _, ok := r[key]; key != "" && !ok {
			continue
		}
		if best == nil || len(r) > len(best) {
			best = r
		}
	}
	if best == nil {
		b.Fatalf("no %s in the sample", rt)
	}
	return best
}

func benchAllParams(b *testing.B, r map[string]any) {
	x, err := ExtractorFor(r["resourceType"].(string))
	if err != nil {
		b.Fatal(err)
	}
	var exprs []*fhirpath.Expr
	for _, c := range x.Params() {
		if c.Expr != nil {
			exprs = append(exprs, c.Expr)
		}
	}
	var buf []fhirpath.Value
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		n = 0
		for _, e := range exprs {
			buf, err = e.AppendEval(buf[:0], r)
			if err != nil {
				b.Fatal(err)
			}
			n += len(buf)
		}
	}
	b.ReportMetric(float64(len(exprs)), "params")
	b.ReportMetric(float64(n), "values")
}

// BenchmarkEvalPatientAllParams evaluates every Patient parameter on one
// Synthea Patient.
func BenchmarkEvalPatientAllParams(b *testing.B) {
	benchAllParams(b, richest(b, "Patient", ""))
}

// BenchmarkEvalObservationAllParams evaluates every Observation parameter on
// one Synthea Observation with a valueQuantity.
func BenchmarkEvalObservationAllParams(b *testing.B) {
	benchAllParams(b, richest(b, "Observation", "valueQuantity"))
}

// BenchmarkExtractObservation is the same through Extractor.Extract.
func BenchmarkExtractObservation(b *testing.B) {
	r := richest(b, "Observation", "valueQuantity")
	x, _ := ExtractorFor("Observation")
	visit := func(*Compiled, []fhirpath.Value) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := x.Extract(r, visit); err != nil {
			b.Fatal(err)
		}
	}
}
