package api_test

import (
	"slices"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// A system-level search honours the common parameters, with and
// without _type, exactly as the type-level search does.
func TestSystemSearchCommonParameters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		meta := `"meta":{"profile":["http://example.org/sd/special"],"tag":[{"system":"urn:tags","code":"t1"}],"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"PSEUDED"}],"source":"urn:src:lab-9"}`
		pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient",`+meta+`}`)
		oid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation",`+meta+`,"status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+pid+`"}}`)
		plain := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
		since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		for _, c := range []struct {
			query string
			want  []string
		}{
			{"_profile=http://example.org/sd/special", []string{pid, oid}},
			{"_tag=urn:tags|t1", []string{pid, oid}},
			{"_security=http://terminology.hl7.org/CodeSystem/v3-ObservationValue|PSEUDED", []string{pid, oid}},
			{"_source=urn:src:lab-9", []string{pid, oid}},
			{"_id=" + pid + "," + oid, []string{pid, oid}},
			{"_profile=http://example.org/sd/special&_type=Observation", []string{oid}},
			{"_tag=urn:tags|t1&_type=Patient", []string{pid}},
			{"_lastUpdated=gt" + since + "&_type=Patient&_count=100", []string{pid, plain}},
		} {
			r := w.Do(t, "GET", "/fhir?"+c.query, admin, nil)
			if r.Status != 200 {
				t.Errorf("?%s: %d %.300s", c.query, r.Status, r.Body)
				continue
			}
			ids, _ := searchIDs(t, r)
			for _, id := range c.want {
				if !slices.Contains(ids, id) {
					t.Errorf("?%s: %v lacks %s", c.query, ids, id)
				}
			}
			if len(ids) != len(c.want) && c.query[:12] != "_lastUpdated" {
				t.Errorf("?%s: %v, want %v", c.query, ids, c.want)
			}
		}
	})
}
