package api_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// Compartment search: GET Patient/id/Type?params and Patient/id/* find
// what the official Patient compartment puts in that patient's record
// and nothing else, with the search's own parameters, paging links under
// the compartment URL, and the caller's access restriction.
func TestCompartmentSearch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		x := setupAccess(t, w).ids
		admin := w.Tokens[authz.RoleAdmin]
		gp := x["gp"]
		enc := w.Create(t, authz.RoleAdmin, `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`+gp+`"}}`)
		heart := w.Create(t, authz.RoleAdmin, obsFor(gp, `,"valueQuantity":{"value":1},"effectiveDateTime":"2020-01-01"`))
		get := func(tok, path string) *apptest.Response {
			t.Helper()
			r := w.Do(t, "GET", path, tok, nil)
			if r.Status != 200 {
				t.Fatalf("%s: %d %.300s", path, r.Status, r.Body)
			}
			return r
		}
		ids, total := searchIDs(t, get(admin, "/fhir/Patient/"+gp+"/Observation"))
		slices.Sort(ids)
		want := []string{x["obsGP"], heart}
		slices.Sort(want)
		if !slices.Equal(ids, want) || total != 2 {
			t.Errorf("Patient/gp/Observation: %v (total %v), want %v", ids, total, want)
		}
		if ids, _ := searchIDs(t, get(admin, "/fhir/Patient/"+gp+"/Observation?date=2020-01-01")); !slices.Equal(ids, []string{heart}) {
			t.Errorf("with date: %v", ids)
		}
		if ids, _ := searchIDs(t, get(admin, "/fhir/Patient/"+x["other"]+"/Observation")); !slices.Equal(ids, []string{x["obsOther"]}) {
			t.Errorf("Patient/other/Observation: %v", ids)
		}
		all, _ := searchIDs(t, get(admin, "/fhir/Patient/"+gp+"/*?_count=50"))
		for _, id := range []string{gp, enc, heart, x["obsGP"], x["condGP"], x["consentGP"]} {
			if !slices.Contains(all, id) {
				t.Errorf("Patient/gp/* lacks %s", id)
			}
		}
		for _, id := range []string{x["other"], x["obsOther"], "pract-physician"} {
			if slices.Contains(all, id) {
				t.Errorf("Patient/gp/* has %s, outside the compartment", id)
			}
		}
		if ids, _ := searchIDs(t, get(admin, "/fhir/Patient/"+gp+"/*?_type=Encounter")); !slices.Equal(ids, []string{enc}) {
			t.Errorf("Patient/gp/*?_type=Encounter: %v", ids)
		}
		page := get(admin, "/fhir/Patient/"+gp+"/Observation?_count=1").JSON(t)
		var next string
		for _, l := range page["link"].([]any) {
			if m := l.(map[string]any); m["relation"] == "next" {
				next = m["url"].(string)
			}
		}
		if !strings.Contains(next, "/fhir/Patient/"+gp+"/Observation?") {
			t.Fatalf("next link %q is not under the compartment", next)
		}
		second, _ := searchIDs(t, get(admin, next[strings.Index(next, "/fhir/"):]))
		if len(second) != 1 || !slices.Contains(want, second[0]) {
			t.Errorf("second page: %v", second)
		}
		// The physician is the GP of gp, not of other: the compartment
		// search is restricted as a search is.
		P := w.Tokens[authz.RolePhysician]
		if ids, _ := searchIDs(t, get(P, "/fhir/Patient/"+gp+"/Observation")); !slices.Contains(ids, x["obsGP"]) {
			t.Errorf("physician, own patient: %v", ids)
		}
		if r := w.Do(t, "GET", "/fhir/Patient/"+x["other"]+"/Observation", P, nil); r.Status == 200 {
			if ids, _ := searchIDs(t, r); len(ids) != 0 {
				t.Errorf("physician saw another's compartment: %v", ids)
			}
		}
		for _, sc := range []scenario{
			{name: "type outside the compartment", method: "GET", path: "/fhir/Patient/" + gp + "/Practitioner", role: authz.RoleAdmin, status: 400, want: []string{"not a type of the Patient compartment"}},
			{name: "_type outside the compartment", method: "GET", path: "/fhir/Patient/" + gp + "/*?_type=Organization", role: authz.RoleAdmin, status: 400},
			{name: "other compartments", method: "GET", path: "/fhir/Encounter/" + enc + "/Observation", role: authz.RoleAdmin, status: 404, want: []string{"Patient compartment only"}},
			{name: "unknown type", method: "GET", path: "/fhir/Patient/" + gp + "/Nonsense", role: authz.RoleAdmin, status: 404},
			{name: "no token", method: "GET", path: "/fhir/Patient/" + gp + "/Observation", status: 401},
			{name: "history still routed", method: "GET", path: "/fhir/Patient/" + gp + "/_history", role: authz.RoleAdmin, status: 200, want: []string{`"type":"history"`}},
		} {
			sc.run(t, w)
		}
	})
}
