package records_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/search/query"
)

// TestCountDecidesInChunks: a total decided one by one reads its matches
// a chunk at a time and counts exactly what the caller would be shown,
// whatever the chunk size (the chunks page by rid without skipping or
// repeating a match); past the bound it is left out with a note.
func TestCountDecidesInChunks(t *testing.T) {
	for _, chunk := range []int{1, 2, 3, 7, 1000} {
		for _, bound := range []int{6, 7, 100} {
			restore := records.SetDecideChunk(chunk)
			w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.SearchMaxDecided = bound })
			A := authz.RoleAdmin
			if r := w.Do(t, "PUT", "/fhir/Practitioner/pr-1", w.Tokens[A], []byte(`{"resourceType":"Practitioner","id":"pr-1"}`)); r.Status != 201 {
				t.Fatalf("practitioner: %d", r.Status)
			}
			pid := w.Create(t, A, `{"resourceType":"Patient","gender":"other","generalPractitioner":[{"reference":"Practitioner/pr-1"}]}`)
			var obs []string
			for range 7 {
				obs = append(obs, w.Create(t, A, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+pid+`"}}`))
			}
			// Two of the seven are denied by the patient's consent.
			deny := func(id string) string {
				return `{"meaning":"instance","reference":{"reference":"Observation/` + id + `"}}`
			}
			w.Create(t, A, `{"resourceType":"Consent","status":"active",`+
				`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},`+
				`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/`+pid+`"},`+
				`"provision":{"type":"permit","provision":[{"type":"deny","data":[`+deny(obs[1])+`,`+deny(obs[5])+`]}]}}`)
			q, err := query.Parse("Observation", url.Values{"patient": {pid}, "_summary": {"count"}}, query.Options{})
			if err != nil {
				t.Fatal(err)
			}
			phys := authz.Subject{Tenant: "default", ID: "p", Role: authz.RolePhysician, Scopes: []string{"user/*.rs"}, Practitioner: "pr-1"}
			page, err := w.App.Records.For(phys, "test").Search(context.Background(), q, nil)
			restore()
			if err != nil {
				t.Fatalf("chunk %d bound %d: %v", chunk, bound, err)
			}
			switch {
			case bound >= 7 && (page.Total == nil || *page.Total != 5 || len(page.Notes) != 0):
				t.Errorf("chunk %d bound %d: total %v notes %v, want 5", chunk, bound, page.Total, page.Notes)
			case bound < 7 && (page.Total != nil || len(page.Notes) != 1 || page.Notes[0] != records.TotalTooCostly):
				t.Errorf("chunk %d bound %d: total %v notes %v, want none and the note", chunk, bound, page.Total, page.Notes)
			}
		}
	}
}
