package api_test

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// near on Location.position is not supported (a position is an address
// by another name, never stored in the clear): strict handling refuses
// it with a 400 that says why, lenient handling answers the rest of the
// search with a warning naming the parameter left out.
func TestNearStrictAndLenient(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		lid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Location","status":"active","position":{"latitude":42.25,"longitude":-83.7}}`)
		path := "/fhir/Location?_id=" + lid + "&near=42.2|-83.7|10|km"
		r := w.Do(t, "GET", path, admin, nil, "Prefer: handling=strict")
		if r.Status != 400 || !strings.Contains(string(r.Body), "near is not supported") || !strings.Contains(string(r.Body), "sealed") {
			t.Errorf("strict: %d %.300s", r.Status, r.Body)
		}
		r = w.Do(t, "GET", path, admin, nil, "Prefer: handling=lenient")
		if r.Status != 200 {
			t.Fatalf("lenient: %d %.300s", r.Status, r.Body)
		}
		ids, _ := searchIDs(t, r)
		if len(ids) != 1 || ids[0] != lid || !strings.Contains(string(r.Body), `"warning"`) || !strings.Contains(string(r.Body), "ignored: near") {
			t.Errorf("lenient: %v %.500s", ids, r.Body)
		}
	})
}
