package api_test

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

func TestFHIRPathPatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		id := w.Create(t, authz.RolePhysician, patient)
		path := "/fhir/Patient/" + id
		stranger := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Vantablack"}],"gender":"female"}`)
		replaceGender := func(code string) string {
			return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"` + code + `"}]}]}`
		}
		addMarital := `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"maritalStatus"},{"name":"value","valueCodeableConcept":{"text":"married"}}]}]}`
		for _, sc := range []scenario{
			{name: "replace with If-Match", method: "PATCH", path: path, role: authz.RolePhysician, body: replaceGender("male"),
				headers: []string{`If-Match: W/"1"`}, status: 200, want: []string{`"gender":"male"`, `"versionId":"2"`, "Quillfeather"}, header: map[string]string{"ETag": `^W/"2"$`}},
			{name: "stale If-Match", method: "PATCH", path: path, role: authz.RolePhysician, body: replaceGender("other"),
				headers: []string{`If-Match: W/"1"`}, status: 412},
			{name: "add complex", method: "PATCH", path: path, role: authz.RolePhysician, body: addMarital, status: 200, want: []string{`"maritalStatus":{"text":"married"}`, `"versionId":"3"`}},
			{name: "validated after applying", method: "PATCH", path: path, role: authz.RolePhysician, body: replaceGender("banana"), status: 422,
				want: []string{"Patient.gender"}, notWant: []string{"banana", "Quillfeather"}},
			{name: "does not apply", method: "PATCH", path: path, role: authz.RolePhysician, body: addMarital, status: 422, want: []string{"already"}},
			{name: "malformed", method: "PATCH", path: path, role: authz.RolePhysician, status: 400, want: []string{"type must be"},
				body: `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"frob"},{"name":"path","valueString":"Patient"}]}]}`},
			{name: "not Parameters", method: "PATCH", path: path, role: authz.RolePhysician, body: patient, status: 400, want: []string{"Parameters"}},
			{name: "nurse may not", method: "PATCH", path: path, role: authz.RoleNurse, body: replaceGender("male"), status: 403},
			// Like a read, a refused patch does not say whether the record exists.
			{name: "unknown resource", method: "PATCH", path: "/fhir/Patient/nope", role: authz.RolePhysician, body: replaceGender("male"), status: 403},
			{name: "unknown resource, admin", method: "PATCH", path: "/fhir/Patient/nope", role: authz.RoleAdmin, body: replaceGender("male"), status: 404},
			// A patient outside the physician's care: the same decision as
			// JSON Patch, on the record and on the result.
			{name: "not in the physician's care", method: "PATCH", path: "/fhir/Patient/" + stranger, role: authz.RolePhysician, body: replaceGender("male"), status: 403, notWant: []string{"Vantablack"}},
		} {
			sc.run(t, w)
		}
		if g := w.Do(t, "GET", path, w.Tokens[authz.RolePhysician], nil); g.Header.Get("ETag") != `W/"3"` {
			t.Fatalf("after the refused patches the resource is at %s, want version 3", g.Header.Get("ETag"))
		}
		if g := w.Do(t, "GET", "/fhir/Patient/"+stranger, w.Tokens[authz.RoleAdmin], nil); g.Header.Get("ETag") != `W/"1"` || !strings.Contains(string(g.Body), `"gender":"female"`) {
			t.Fatalf("the refused patch changed the other patient: %s %s", g.Header.Get("ETag"), g.Body)
		}
	})
}
