package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// everythingFixture is one patient with records of care on known dates
// and the resources outside the compartment they refer to.
type everythingFixture struct {
	cleared                                                                      string
	pid, gp, org, secret, perf2020, perf2022, med, obs2020, obs2022, enc, medReq string
}

func newEverythingFixture(t *testing.T, w *apptest.Ward) everythingFixture {
	t.Helper()
	var f everythingFixture
	A := authz.RoleAdmin
	apptest.AddLinkedUser(t, w.App.Store, "default", "cleared-r-admin", authz.RoleAdmin, &store.User{Clearances: []string{"R"}})
	f.cleared = w.Login(t, "cleared-r-admin", apptest.Password)
	f.gp = w.Create(t, A, `{"resourceType":"Practitioner","active":true}`)
	f.org = w.Create(t, A, `{"resourceType":"Organization","name":"Clinic"}`)
	r := w.Do(t, "POST", "/fhir/Organization", f.cleared, []byte(`{"resourceType":"Organization","name":"Hidden","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}`))
	if r.Status != 201 {
		t.Fatalf("restricted Organization: %d %s", r.Status, r.Body)
	}
	f.secret = r.JSON(t)["id"].(string)
	f.perf2020 = w.Create(t, A, `{"resourceType":"Practitioner","active":true}`)
	f.perf2022 = w.Create(t, A, `{"resourceType":"Practitioner","active":false}`)
	f.med = w.Create(t, A, `{"resourceType":"Medication","code":{"text":"aspirin"}}`)
	// An unreferenced practitioner, never part of the answer.
	w.Create(t, A, `{"resourceType":"Practitioner","active":true}`)
	f.pid = w.Create(t, A, `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/`+f.gp+`"},{"reference":"Practitioner/pract-physician"}],"managingOrganization":{"reference":"Organization/`+f.org+`"}}`)
	subj := `"subject":{"reference":"Patient/` + f.pid + `"}`
	f.obs2020 = w.Create(t, A, `{"resourceType":"Observation","status":"final","code":{"text":"a"},`+subj+`,"effectiveDateTime":"2020-03-01","performer":[{"reference":"Practitioner/`+f.perf2020+`"},{"reference":"Organization/`+f.secret+`"}]}`)
	f.obs2022 = w.Create(t, A, `{"resourceType":"Observation","status":"final","code":{"text":"b"},`+subj+`,"effectivePeriod":{"start":"2022-01-01","end":"2022-02-01"},"performer":[{"reference":"Practitioner/`+f.perf2022+`"}]}`)
	f.enc = w.Create(t, A, `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},`+subj+`}`)
	f.medReq = w.Create(t, A, `{"resourceType":"MedicationRequest","status":"active","intent":"order",`+subj+`,"authoredOn":"2021-06-15","medicationReference":{"reference":"Medication/`+f.med+`"}}`)
	return f
}

// everythingPages follows next links from path and returns Type/id of
// every entry and the total of each page.
func everythingPages(t *testing.T, w *apptest.Ward, tok, path string) (ids []string, totals []int, pages int) {
	t.Helper()
	for path != "" {
		r := w.Do(t, "GET", path, tok, nil)
		if r.Status != 200 {
			t.Fatalf("GET %s: %d %.300s", path, r.Status, r.Body)
		}
		pages++
		var b struct {
			Total *int
			Link  []struct{ Relation, URL string }
			Entry []struct {
				Resource struct{ ResourceType, ID string }
			}
		}
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Total == nil {
			t.Fatalf("GET %s: page without total", path)
		}
		totals = append(totals, *b.Total)
		for _, e := range b.Entry {
			ids = append(ids, e.Resource.ResourceType+"/"+e.Resource.ID)
		}
		path = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				path = strings.TrimPrefix(l.URL, w.Server.URL)
			}
		}
	}
	return ids, totals, pages
}

func TestPatientEverythingReferencesAndDates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		f := newEverythingFixture(t, w)
		P := func(id string) string { return "Patient/" + id }
		Pr := func(id string) string { return "Practitioner/" + id }
		O := func(id string) string { return "Organization/" + id }
		Ob := func(id string) string { return "Observation/" + id }
		compartment := []string{P(f.pid), Ob(f.obs2020), Ob(f.obs2022), "Encounter/" + f.enc, "MedicationRequest/" + f.medReq}
		refs := []string{Pr(f.gp), O(f.org), Pr(f.perf2020), Pr(f.perf2022), "Medication/" + f.med}
		base := "/fhir/Patient/" + f.pid + "/$everything"
		for _, c := range []struct {
			name, query string
			want        []string
		}{
			// The compartment and what it refers to, one level out; the
			// restricted Organization is not for an uncleared caller, the
			// Practitioner that does not exist is nothing.
			{"all", "", union(compartment, refs)},
			// start/end keep records of care whose date overlaps, those
			// without a care date (the Patient, the Encounter) always;
			// references follow only what is kept.
			{"2021", "?start=2021&end=2021", []string{P(f.pid), "Encounter/" + f.enc, "MedicationRequest/" + f.medReq, Pr(f.gp), O(f.org), "Medication/" + f.med}},
			{"from 2022-01-15", "?start=2022-01-15", []string{P(f.pid), "Encounter/" + f.enc, Ob(f.obs2022), Pr(f.gp), O(f.org), Pr(f.perf2022)}},
			{"until 2020-03", "?end=2020-03", []string{P(f.pid), "Encounter/" + f.enc, Ob(f.obs2020), Pr(f.gp), O(f.org), Pr(f.perf2020)}},
			// _type selects among compartment and referenced types.
			{"_type", "?_type=Practitioner,Observation", []string{Ob(f.obs2020), Ob(f.obs2022), Pr(f.gp), Pr(f.perf2020), Pr(f.perf2022)}},
			{"_type and dates", "?_type=Practitioner&start=2020-01-01&end=2020-12-31", []string{Pr(f.gp), Pr(f.perf2020)}},
		} {
			got, totals, _ := everythingPages(t, w, tok, base+c.query)
			want := union(c.want, nil)
			if strings.Join(union(got, nil), " ") != strings.Join(want, " ") || len(got) != len(want) {
				t.Fatalf("%s: got %v\nwant %v", c.name, union(got, nil), want)
			}
			if totals[0] != len(want) {
				t.Fatalf("%s: total %d, want %d", c.name, totals[0], len(want))
			}
		}
		// Paging: _count pages through the same set, every page with the
		// total; _count=0 is the total alone; the default page is a
		// search's (20).
		all := union(compartment, refs)
		got, totals, pages := everythingPages(t, w, tok, base+"?_count=3")
		if strings.Join(union(got, nil), " ") != strings.Join(all, " ") || len(got) != len(all) || pages != (len(all)+2)/3 {
			t.Fatalf("paged: %d pages %v", pages, got)
		}
		for _, n := range totals {
			if n != len(all) {
				t.Fatalf("page totals %v", totals)
			}
		}
		r := w.Do(t, "GET", base+"?_count=0", tok, nil)
		if m := r.JSON(t); r.Status != 200 || m["total"] != float64(len(all)) || m["entry"] != nil {
			t.Fatalf("_count=0: %d %s", r.Status, r.Body)
		}
		for i := 0; i < 25; i++ {
			w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"n"},"subject":{"reference":"Patient/`+f.pid+`"}}`)
		}
		r = w.Do(t, "GET", base, tok, nil)
		var page struct{ Entry []any }
		json.Unmarshal(r.Body, &page)
		if r.Status != 200 || len(page.Entry) != 20 {
			t.Fatalf("default page: %d entries", len(page.Entry))
		}

		// A referenced resource is decided like a read: the physician in
		// care reads the record and its practitioners; a cleared reader
		// would see the restricted Organization, which no one here is.
		phys := w.Tokens[authz.RolePhysician]
		got, _, _ = everythingPages(t, w, phys, base+"?_type=Practitioner,Organization")
		if strings.Join(union(got, nil), " ") != strings.Join(union([]string{Pr(f.gp), Pr(f.perf2020), Pr(f.perf2022), O(f.org)}, nil), " ") {
			t.Fatalf("physician: %v", got)
		}
		// The cleared admin sees the restricted Organization too.
		got, _, _ = everythingPages(t, w, f.cleared, base+"?_type=Organization")
		if strings.Join(union(got, nil), " ") != strings.Join(union([]string{O(f.org), O(f.secret)}, nil), " ") {
			t.Fatalf("cleared: %v", got)
		}
		// The ledger names the referenced resources disclosed.
		found := map[string]bool{}
		for _, rec := range w.Ledger(t) {
			if rec.Action == "everything-instance" && rec.Outcome == 0 {
				for _, e := range rec.Entities {
					found[e[:strings.Index(e, "/_history/")]] = true
				}
			}
		}
		for _, x := range refs {
			if !found[x] {
				t.Fatalf("%s disclosed but not audited", x)
			}
		}

		for _, sc := range []scenario{
			{name: "bad start", method: "GET", path: base + "?start=soon", role: authz.RoleAdmin, status: 400, want: []string{"start"}},
			{name: "bad end", method: "GET", path: base + "?end=2020-13", role: authz.RoleAdmin, status: 400, want: []string{"end"}},
			{name: "start after end", method: "GET", path: base + "?start=2022&end=2021", role: authz.RoleAdmin, status: 400},
			{name: "bad count", method: "GET", path: base + "?_count=-1", role: authz.RoleAdmin, status: 400},
		} {
			sc.run(t, w)
		}
	})
}
