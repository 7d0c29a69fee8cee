package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

func docRefBody(pid, status, typeCode, category, date, extra string) string {
	return `{"resourceType":"DocumentReference","status":"` + status + `",` + extra +
		`"type":{"coding":[{"system":"http://loinc.org","code":"` + typeCode + `"}]},` +
		`"category":[{"coding":[{"system":"http://ward.example/doc-category","code":"` + category + `"}]}],` +
		`"subject":{"reference":"Patient/` + pid + `"},"date":"` + date + `",` +
		`"content":[{"attachment":{"contentType":"text/plain","data":"aGVsbG8="}}]}`
}

// TestDocumentReferenceSearchAndLifecycle: search by patient, type,
// category, date and status; a replacement supersedes the replaced
// document; archiving (a status change) is a version in the ledger.
func TestDocumentReferenceSearchAndLifecycle(t *testing.T) {
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			A := authz.RoleAdmin
			p1, p2 := uniq("dr-pat"), uniq("dr-pat")
			patientOf(t, w, p1, physicianRef)
			patientOf(t, w, p2, physicianRef)
			d1 := w.Create(t, A, docRefBody(p1, "current", "18842-5", "discharge", "2024-03-01T10:00:00Z", ""))
			d2 := w.Create(t, A, docRefBody(p1, "current", "11488-4", "consult", "2025-06-15T10:00:00Z", ""))
			d3 := w.Create(t, A, docRefBody(p2, "entered-in-error", "18842-5", "discharge", "2025-01-01T10:00:00Z", ""))
			ids := func(q string) string {
				r := w.Do(t, "GET", "/fhir/DocumentReference?"+q, w.Tokens[A], nil)
				if r.Status != 200 {
					t.Fatalf("%s: %d %s", q, r.Status, r.Body)
				}
				var out []string
				for _, e := range asList(r.JSON(t)["entry"]) {
					out = append(out, e.(map[string]any)["resource"].(map[string]any)["id"].(string))
				}
				return strings.Join(sorted(out), ",")
			}
			for q, want := range map[string][]string{
				"patient=" + p1:                             {d1, d2},
				"subject=Patient/" + p2:                     {d3},
				"type=http://loinc.org|18842-5":             {d1, d3},
				"category=consult":                          {d2},
				"date=ge2025-01-01&patient=" + p1:           {d2},
				"status=entered-in-error":                   {d3},
				"status=current&type=18842-5&patient=" + p1: {d1},
			} {
				if got := ids(q); got != strings.Join(sorted(want), ",") {
					t.Errorf("%s: %s, want %v", q, got, want)
				}
			}
			// d4 replaces d1: d1 becomes superseded.
			d4 := w.Create(t, A, docRefBody(p1, "current", "18842-5", "discharge", "2025-07-01T10:00:00Z",
				`"relatesTo":[{"code":"replaces","target":{"reference":"DocumentReference/`+d1+`"}}],`))
			r := w.Do(t, "GET", "/fhir/DocumentReference/"+d1, w.Tokens[A], nil)
			if r.JSON(t)["status"] != "superseded" {
				t.Fatalf("the replaced document is %v", r.JSON(t)["status"])
			}
			if got := ids("status=current&patient=" + p1); got != strings.Join(sorted([]string{d2, d4}), ",") {
				t.Fatalf("current after the replacement: %s", got)
			}
			// Archiving: a status change, a new version, a ledger record.
			r = w.Do(t, "PATCH", "/fhir/DocumentReference/"+d2, w.Tokens[A], []byte(`[{"op":"replace","path":"/status","value":"superseded"}]`),
				"Content-Type: application/json-patch+json")
			if r.Status != 200 {
				t.Fatalf("archive: %d %s", r.Status, r.Body)
			}
			found := false
			for _, rec := range w.Ledger(t) {
				if rec.Action == "patch" && len(rec.Entities) == 1 && rec.Entities[0] == fmt.Sprintf("DocumentReference/%s/_history/2", d2) {
					found = true
				}
			}
			if !found {
				t.Fatal("the archiving is not in the ledger")
			}
			if r := w.Do(t, "GET", "/fhir/DocumentReference/"+d2+"/_history/1", w.Tokens[A], nil); r.Status != 200 || r.JSON(t)["status"] != "current" {
				t.Fatalf("the version before archiving: %d", r.Status)
			}
		})
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
