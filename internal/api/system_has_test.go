package api_test

import (
	"slices"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// _has and _list at system level, with and without _type, and _list at
// type level: strictly understood (Prefer: handling=strict), matching
// what the referring resources and the List's entries name, nothing
// else; a deleted List names nothing.
func TestSystemSearchHasAndList(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		p1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
		p2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
		o1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+p1+`"}}`)
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"preliminary","code":{"text":"x"},"subject":{"reference":"Patient/`+p2+`"}}`)
		list := w.Create(t, authz.RoleAdmin, `{"resourceType":"List","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/`+p1+`"}},{"item":{"reference":"Observation/`+o1+`"}}]}`)
		gone := w.Create(t, authz.RoleAdmin, `{"resourceType":"List","status":"current","mode":"working","entry":[{"item":{"reference":"Patient/`+p2+`"}}]}`)
		if r := w.Do(t, "DELETE", "/fhir/List/"+gone, admin, nil); r.Status >= 300 {
			t.Fatalf("delete list: %d", r.Status)
		}
		for _, c := range []struct {
			path string
			want []string
		}{
			{"/fhir?_has:Observation:subject:status=final", []string{p1}},
			{"/fhir?_has:Observation:subject:status=final,preliminary&_type=Patient", []string{p1, p2}},
			{"/fhir?_has:Observation:subject:status=final&_type=Patient,Observation", []string{p1}},
			{"/fhir?_list=" + list, []string{p1, o1}},
			{"/fhir?_list=" + list + "&_type=Observation", []string{o1}},
			{"/fhir/Patient?_list=" + list, []string{p1}},
			{"/fhir/Patient?_list=" + gone, nil},
			{"/fhir?_list=no-such-list", nil},
		} {
			r := w.Do(t, "GET", c.path, admin, nil, "Prefer: handling=strict")
			if r.Status != 200 {
				t.Errorf("%s: %d %.300s", c.path, r.Status, r.Body)
				continue
			}
			ids, _ := searchIDs(t, r)
			slices.Sort(ids)
			want := slices.Sorted(slices.Values(c.want))
			if !slices.Equal(ids, want) {
				t.Errorf("%s: %v, want %v", c.path, ids, want)
			}
		}
		for _, bad := range []string{"/fhir?_list=a%2Fb", "/fhir?_type=Organization&_has:Observation:subject:status=final"} {
			if r := w.Do(t, "GET", bad, admin, nil, "Prefer: handling=strict"); r.Status != 400 {
				t.Errorf("%s: %d", bad, r.Status)
			}
		}
	})
}
