package api_test

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
)

// /metadata is shaped by _summary and _elements, carries an ETag that
// stays while the server's capabilities do, and answers If-None-Match
// with 304.
func TestMetadataShapesAndRevalidates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		full := w.Do(t, "GET", "/fhir/metadata", "", nil)
		tag := full.Header.Get("ETag")
		if full.Status != 200 || !strings.HasPrefix(tag, `W/"`) {
			t.Fatalf("metadata: %d, ETag %q", full.Status, tag)
		}
		if again := w.Do(t, "GET", "/fhir/metadata", "", nil); again.Header.Get("ETag") != tag || string(again.Body) != string(full.Body) {
			t.Error("the CapabilityStatement or its ETag changed between two requests")
		}
		nm := w.Do(t, "GET", "/fhir/metadata", "", nil, "If-None-Match: "+tag)
		if nm.Status != 304 || len(nm.Body) != 0 {
			t.Errorf("If-None-Match with the current ETag: %d %q", nm.Status, nm.Body)
		}
		if r := w.Do(t, "GET", "/fhir/metadata", "", nil, `If-None-Match: W/"other"`); r.Status != 200 {
			t.Errorf("If-None-Match with another ETag: %d", r.Status)
		}
		el := w.Do(t, "GET", "/fhir/metadata?_elements=fhirVersion,format", "", nil).JSON(t)
		if el["fhirVersion"] != "4.0.1" || el["format"] == nil || el["rest"] != nil || el["software"] != nil {
			t.Errorf("_elements=fhirVersion,format kept %v", keys(el))
		}
		if !strings.Contains(jsonString(el["meta"]), "SUBSETTED") {
			t.Errorf("_elements result is not tagged SUBSETTED: %v", el["meta"])
		}
		sum := w.Do(t, "GET", "/fhir/metadata?_summary=true", "", nil)
		if sum.Status != 200 || len(sum.Body) >= len(full.Body) || !strings.Contains(string(sum.Body), "SUBSETTED") || sum.Header.Get("ETag") == tag {
			t.Errorf("_summary=true: %d, %d bytes of %d, ETag %s", sum.Status, len(sum.Body), len(full.Body), sum.Header.Get("ETag"))
		}
		for _, q := range []string{"_summary=count", "_summary=bogus", "_elements=nonsense", "_summary=true&_elements=format"} {
			if r := w.Do(t, "GET", "/fhir/metadata?"+q, "", nil); r.Status != 400 || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Errorf("%s: %d %.200s", q, r.Status, r.Body)
			}
		}
	})
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
