package api_test

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// DELETE to the letter of http.html 3.1.0.7: a resource that never
// existed is deleted without error (204, nothing written), alone and as a
// batch entry; a DELETE with neither id nor condition is a 400 that says
// so; a condition with several matches deletes them all, as the
// CapabilityStatement declares (conditionalDelete = multiple).
func TestDeleteSemantics(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		before := countVersions(t, w)
		for _, sc := range []scenario{
			{name: "never existed", method: "DELETE", path: "/fhir/Observation/never-was", role: authz.RoleAdmin, status: 204, header: map[string]string{"ETag": "^$"}},
			{name: "still not there", method: "GET", path: "/fhir/Observation/never-was", role: authz.RoleAdmin, status: 404},
			{name: "no id, no condition", method: "DELETE", path: "/fhir/Observation", role: authz.RoleAdmin, status: 400, want: []string{"needs an id in the URL", "or a condition"}},
			{name: "nurse refused before existence is told", method: "DELETE", path: "/fhir/Patient/never-was", role: authz.RoleNurse, status: 403},
		} {
			sc.run(t, w)
		}
		if after := countVersions(t, w); after != before {
			t.Errorf("deleting what never existed wrote %d versions", after-before)
		}
		r := w.Do(t, "POST", "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"Observation/never-was"}}]}`))
		if b := decodeBundle(t, r); r.Status != 200 || statusCode(b.Entry[0].Response.Status) != "204" || b.Entry[0].Response.Etag != "" {
			t.Errorf("batch delete of what never existed: %d %.300s", r.Status, r.Body)
		}

		var ids []string
		for range 3 {
			ids = append(ids, w.Create(t, authz.RoleAdmin, `{"resourceType":"Device","identifier":[{"system":"urn:dev","value":"many"}]}`))
		}
		md := w.Do(t, "GET", "/fhir/metadata", "", nil).JSON(t)
		rest := md["rest"].([]any)[0].(map[string]any)
		for _, x := range rest["resource"].([]any) {
			if m := x.(map[string]any); m["type"] == "Device" && m["conditionalDelete"] != "multiple" {
				t.Fatalf("Device conditionalDelete %v: the test assumes the declared policy is multiple", m["conditionalDelete"])
			}
		}
		d := w.Do(t, "DELETE", "/fhir/Device?identifier=urn:dev|many", admin, nil)
		if d.Status != 200 || !strings.Contains(string(d.Body), "3 Device resources deleted") {
			t.Errorf("conditional delete of 3: %d %s", d.Status, d.Body)
		}
		for _, id := range ids {
			if g := w.Do(t, "GET", "/fhir/Device/"+id, admin, nil); g.Status != 410 {
				t.Errorf("Device/%s after the conditional delete: %d", id, g.Status)
			}
		}
	})
}
