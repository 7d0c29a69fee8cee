package api_test

import (
	"encoding/json"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir/compartment"
)

type everythingPage struct {
	Link []struct {
		Relation, URL string
	}
	Entry []struct {
		Resource struct {
			ResourceType, ID string
			Meta             struct{ LastUpdated string }
		}
	}
}

// collect follows next links and returns Type/id of every entry.
func collect(t *testing.T, w *apptest.Ward, tok, path string) ([]string, int) {
	t.Helper()
	var out []string
	pages := 0
	for path != "" {
		r := w.Do(t, "GET", path, tok, nil)
		if r.Status != 200 {
			t.Fatalf("GET %s: %d %.300s", path, r.Status, r.Body)
		}
		pages++
		var p everythingPage
		if err := json.Unmarshal(r.Body, &p); err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entry {
			out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
		path = ""
		for _, l := range p.Link {
			if l.Relation == "next" {
				path = strings.TrimPrefix(l.URL, w.Server.URL)
			}
		}
	}
	sort.Strings(out)
	return out, pages
}

// expectedCompartment asks ordinary search, type by type and parameter by
// parameter of the compartment definition, what refers to the patient.
func expectedCompartment(t *testing.T, w *apptest.Ward, tok, pid string, types []string) []string {
	t.Helper()
	set := map[string]bool{}
	for _, typ := range types {
		if typ == "Patient" {
			set["Patient/"+pid] = true
		}
		for _, p := range compartment.PatientParams(typ) {
			got, _ := collect(t, w, tok, "/fhir/"+typ+"?_count=1000&"+p+"="+url.QueryEscape("Patient/"+pid))
			for _, g := range got {
				set[g] = true
			}
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// expectedReferenced asks search, with _include=Type:* over the
// compartment type by type, which resources outside the Patient
// compartment the patient's resources refer to.
func expectedReferenced(t *testing.T, w *apptest.Ward, tok, pid string, types []string) []string {
	t.Helper()
	set := map[string]bool{}
	add := func(path string) {
		got, _ := collect(t, w, tok, path)
		for _, g := range got {
			if typ := g[:strings.Index(g, "/")]; typ != "Patient" && !compartment.InPatientCompartment(typ) {
				set[g] = true
			}
		}
	}
	for _, typ := range types {
		if typ == "Patient" {
			add("/fhir/Patient?_id=" + pid + "&_include=Patient:*")
		}
		for _, p := range compartment.PatientParams(typ) {
			add("/fhir/" + typ + "?_count=100&_include=" + typ + ":*&" + p + "=" + url.QueryEscape("Patient/"+pid))
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestPatientEverything(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		// Only types that were loaded can be in a compartment: asking
		// search about the others would only slow the test.
		loaded := map[string]bool{"Patient": true, "Observation": true}
		shared, _ := filepath.Glob("testdata/synthea-blaze/0-*.json.gz")
		patients, _ := filepath.Glob("testdata/synthea-blaze/blaze-*.json.gz")
		if len(shared) == 0 || len(patients) != 1 {
			t.Fatal("testdata/synthea-blaze is incomplete")
		}
		for _, f := range append(shared, patients...) {
			body := gunzipFile(t, f)
			if r := w.Do(t, "POST", "/fhir", tok, body); r.Status != 200 {
				t.Fatalf("%s: %d", f, r.Status)
			}
			var b struct {
				Entry []struct{ Resource struct{ ResourceType string } }
			}
			json.Unmarshal(body, &b)
			for _, e := range b.Entry {
				loaded[e.Resource.ResourceType] = true
			}
		}
		var types []string
		for _, typ := range compartment.PatientTypes() {
			if loaded[typ] {
				types = append(types, typ)
			}
		}
		pids, _ := collect(t, w, tok, "/fhir/Patient?_count=10")
		if len(pids) != 1 {
			t.Fatalf("patients: %v", pids)
		}
		pid := strings.TrimPrefix(pids[0], "Patient/")
		// A second patient with resources of its own, and one resource
		// referring to both (in both compartments).
		other := w.Create(t, authz.RoleAdmin, patient)
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"other"},"subject":{"reference":"Patient/`+other+`"}}`)
		time.Sleep(5 * time.Millisecond)
		both := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"both"},"subject":{"reference":"Patient/`+pid+`"},"performer":[{"reference":"Patient/`+other+`"}]}`)

		inComp := expectedCompartment(t, w, tok, pid, types)
		referenced := expectedReferenced(t, w, tok, pid, types)
		if len(referenced) < 3 {
			t.Fatalf("the fixture refers to only %v outside the compartment", referenced)
		}
		want := union(inComp, referenced)
		got, pages := collect(t, w, tok, "/fhir/Patient/"+pid+"/$everything?_count=37")
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("$everything returned %d resources, the compartment and its references have %d;\nmissing %v\nextra %v", len(got), len(want), minus(want, got), minus(got, want))
		}
		if len(got) < 100 || pages < 3 {
			t.Fatalf("%d resources in %d pages: the fixture is too small to test paging", len(got), pages)
		}
		if !contains(got, "Observation/"+both) || contains(got, "Patient/"+other) {
			t.Fatal("the shared observation or the other patient is misplaced")
		}
		wantOther := union(expectedCompartment(t, w, tok, other, types), expectedReferenced(t, w, tok, other, types))
		if gotOther, _ := collect(t, w, tok, "/fhir/Patient/"+other+"/$everything"); strings.Join(gotOther, " ") != strings.Join(wantOther, " ") || len(gotOther) != 3 {
			t.Fatalf("other patient: got %v want %v", gotOther, wantOther)
		}

		// _type narrows to the listed compartment types.
		wantTyped := expectedCompartment(t, w, tok, pid, []string{"Patient", "Encounter"})
		if got, _ := collect(t, w, tok, "/fhir/Patient/"+pid+"/$everything?_type=Patient,Encounter"); strings.Join(got, " ") != strings.Join(wantTyped, " ") {
			t.Fatalf("_type: got %d, want %d", len(got), len(wantTyped))
		}
		// _since keeps only what changed since.
		r := w.Do(t, "GET", "/fhir/Observation/"+both, tok, nil)
		since := r.JSON(t)["meta"].(map[string]any)["lastUpdated"].(string)
		if got, _ := collect(t, w, tok, "/fhir/Patient/"+pid+"/$everything?_since="+url.QueryEscape(since)); strings.Join(got, " ") != "Observation/"+both {
			t.Fatalf("_since: %v", got)
		}
		// Type level: every patient's compartment.
		all, _ := collect(t, w, tok, "/fhir/Patient/$everything?_count=500")
		wantAll := union(want, wantOther)
		if strings.Join(all, " ") != strings.Join(wantAll, " ") {
			t.Fatalf("type level: %d, want %d; missing %v extra %v", len(all), len(wantAll), minus(wantAll, all), minus(all, wantAll))
		}

		// The ledger names exactly what was disclosed.
		var named []string
		for _, rec := range w.Ledger(t) {
			if rec.Action == "everything-instance" && rec.Outcome == 0 && len(rec.Entities) > 0 && strings.Contains(strings.Join(rec.Entities, " "), "Patient/"+other+"/") {
				for _, e := range rec.Entities {
					named = append(named, e[:strings.Index(e, "/_history/")])
				}
			}
		}
		sort.Strings(named)
		if strings.Join(named, " ") != strings.Join(wantOther, " ") {
			t.Fatalf("audited %v, disclosed %v", named, wantOther)
		}

		for _, sc := range []scenario{
			{name: "unknown patient", method: "GET", path: "/fhir/Patient/nope/$everything", role: authz.RoleAdmin, status: 404},
			{name: "type outside the compartment", method: "GET", path: "/fhir/Patient/" + pid + "/$everything?_type=Organization", role: authz.RoleAdmin, status: 200},
			{name: "not a type", method: "GET", path: "/fhir/Patient/" + pid + "/$everything?_type=Nonsense", role: authz.RoleAdmin, status: 400},
			{name: "bad _since", method: "GET", path: "/fhir/Patient/" + pid + "/$everything?_since=yesterday", role: authz.RoleAdmin, status: 400},
			{name: "bad cursor", method: "GET", path: "/fhir/Patient/" + pid + "/$everything?_cursor=x", role: authz.RoleAdmin, status: 400},
			{name: "no token", method: "GET", path: "/fhir/Patient/" + pid + "/$everything", status: 401},
		} {
			sc.run(t, w)
		}
		if g := w.Do(t, "DELETE", "/fhir/Patient/"+other, tok, nil); g.Status != 200 {
			t.Fatal(g.Status)
		}
		(scenario{name: "deleted patient", method: "GET", path: "/fhir/Patient/" + other + "/$everything", role: authz.RoleAdmin, status: 410}).run(t, w)
	})
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func union(a, b []string) []string {
	set := map[string]bool{}
	for _, x := range append(append([]string(nil), a...), b...) {
		set[x] = true
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
