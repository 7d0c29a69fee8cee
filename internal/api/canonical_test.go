package api_test

import (
	"slices"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// url=X|version finds the canonical resource with that url and version,
// url=X every version; a canonical reference searched as ref|version
// finds the references to that version, ref alone every version (and
// the unversioned reference).
func TestCanonicalVersionSearch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		const vs = "http://example.org/fhir/ValueSet/colours"
		v1 := w.Create(t, authz.RoleAdmin, `{"resourceType":"ValueSet","url":"`+vs+`","version":"1.0","status":"active"}`)
		v2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"ValueSet","url":"`+vs+`","version":"2.0","status":"active"}`)
		other := w.Create(t, authz.RoleAdmin, `{"resourceType":"ValueSet","url":"http://example.org/fhir/ValueSet/shapes","version":"1.0","status":"active"}`)
		const qn = "http://example.org/fhir/Questionnaire/intake"
		pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
		qr := func(canonical string) string {
			return w.Create(t, authz.RoleAdmin, `{"resourceType":"QuestionnaireResponse","status":"completed","questionnaire":"`+canonical+`","subject":{"reference":"Patient/`+pid+`"}}`)
		}
		r1, r2, r0 := qr(qn+"|1.0"), qr(qn+"|2.0"), qr(qn)
		for _, c := range []struct {
			path string
			want []string
		}{
			{"/fhir/ValueSet?url=" + vs + "|1.0", []string{v1}},
			{"/fhir/ValueSet?url=" + vs + "|2.0", []string{v2}},
			{"/fhir/ValueSet?url=" + vs + "|3.0", nil},
			{"/fhir/ValueSet?url=" + vs, []string{v1, v2}},
			{"/fhir/ValueSet?url=" + vs + "|1.0," + "http://example.org/fhir/ValueSet/shapes|1.0", []string{v1, other}},
			{"/fhir/QuestionnaireResponse?questionnaire=" + qn + "|1.0", []string{r1}},
			{"/fhir/QuestionnaireResponse?questionnaire=" + qn + "|2.0", []string{r2}},
			{"/fhir/QuestionnaireResponse?questionnaire=" + qn, []string{r0, r1, r2}},
		} {
			r := w.Do(t, "GET", c.path, admin, nil, "Prefer: handling=strict")
			if r.Status != 200 {
				t.Errorf("%s: %d %.300s", c.path, r.Status, r.Body)
				continue
			}
			ids, _ := searchIDs(t, r)
			slices.Sort(ids)
			if want := slices.Sorted(slices.Values(c.want)); !slices.Equal(ids, want) {
				t.Errorf("%s: %v, want %v", c.path, ids, want)
			}
		}
		if r := w.Do(t, "GET", "/fhir/ValueSet?url="+vs+"|", admin, nil); r.Status != 400 {
			t.Errorf("url|: %d %.200s", r.Status, r.Body)
		}
	})
}
