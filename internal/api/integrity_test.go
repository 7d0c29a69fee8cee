package api_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// plainPatient refers to nothing.
const plainPatient = `{"resourceType":"Patient","gender":"female"}`

func obsOf(ref string) string {
	return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + ref + `"}}`
}

// referencePolicy is what the CapabilityStatement declares on Patient.
func referencePolicy(t *testing.T, w *apptest.Ward) []string {
	t.Helper()
	var md struct {
		Rest []struct {
			Resource []struct {
				Type            string
				ReferencePolicy []string
			}
		}
	}
	if err := json.Unmarshal(w.Do(t, "GET", "/fhir/metadata", "", nil).Body, &md); err != nil {
		t.Fatal(err)
	}
	for _, r := range md.Rest[0].Resource {
		if r.Type == "Patient" {
			return r.ReferencePolicy
		}
	}
	return nil
}

func TestReferentialIntegrityOn(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		A := authz.RoleAdmin
		tok := w.Tokens[A]
		if p := referencePolicy(t, w); !slices.Equal(p, []string{"literal", "local", "enforced"}) {
			t.Fatalf("referencePolicy %v", p)
		}
		pid := w.Create(t, A, plainPatient)
		for _, sc := range []scenario{
			// Unresolved: 409 naming the element, never the reference.
			{name: "unknown relative", method: "POST", path: "/fhir/Observation", role: A, body: obsOf("Patient/secret-id-42"), status: 409,
				want: []string{"Observation.subject.reference"}, notWant: []string{"secret-id-42"}},
			{name: "unknown absolute on this server", method: "POST", path: "/fhir/Observation", role: A, body: obsOf(w.URL + "/Patient/secret-id-42"), status: 409,
				want: []string{"Observation.subject.reference"}, notWant: []string{"secret-id-42"}},
			{name: "unknown in an array", method: "POST", path: "/fhir/Observation", role: A,
				body:   `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + pid + `"},"performer":[{"reference":"Patient/` + pid + `"},{"reference":"Practitioner/nope"}]}`,
				status: 409, want: []string{"Observation.performer[1].reference"}},
			{name: "update", method: "PUT", path: "/fhir/Observation/o1", role: A, body: strings.Replace(obsOf("Patient/nope"), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"o1",`, 1), status: 409},
			// Resolved, or not local.
			{name: "known relative", method: "POST", path: "/fhir/Observation", role: A, body: obsOf("Patient/" + pid), status: 201},
			{name: "known absolute", method: "POST", path: "/fhir/Observation", role: A, body: obsOf(w.URL + "/Patient/" + pid), status: 201},
			{name: "versioned", method: "POST", path: "/fhir/Observation", role: A, body: obsOf("Patient/" + pid + "/_history/1"), status: 201},
			{name: "another server", method: "POST", path: "/fhir/Observation", role: A, body: obsOf("http://other.example.org/fhir/Patient/nope"), status: 201},
			// A delete that would leave references dangling.
			{name: "delete referenced", method: "DELETE", path: "/fhir/Patient/" + pid, role: A, status: 409, want: []string{"refer"}},
		} {
			sc.run(t, w)
		}

		// Transactions resolve against their own writes...
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"urn:uuid:7b0c0e22-0000-4000-8000-000000000001","resource":` + plainPatient + `,"request":{"method":"POST","url":"Patient"}},
			{"resource":` + obsOf("urn:uuid:7b0c0e22-0000-4000-8000-000000000001") + `,"request":{"method":"POST","url":"Observation"}},
			{"fullUrl":"http://example.com/fhir/Patient/p0","resource":{"resourceType":"Patient","id":"p0"},"request":{"method":"PUT","url":"Patient/p0"}},
			{"resource":` + obsOf("Patient/p0") + `,"request":{"method":"POST","url":"Observation"}}]}`
		r := w.Do(t, "POST", "/fhir", tok, []byte(tx))
		if r.Status != 200 {
			t.Fatalf("transaction: %d %s", r.Status, r.Body)
		}
		// ...but not against what they delete.
		tx = `{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"DELETE","url":"Patient/p0"}},
			{"resource":` + obsOf("Patient/p0") + `,"request":{"method":"POST","url":"Observation"}}]}`
		if r := w.Do(t, "POST", "/fhir", tok, []byte(tx)); r.Status != 409 || !strings.Contains(string(r.Body), "subject") {
			t.Fatalf("reference to a deleted entry: %d %s", r.Status, r.Body)
		}
		// A record and everything referring to it go together.
		q := w.Create(t, A, plainPatient)
		o := w.Create(t, A, obsOf("Patient/"+q))
		if r := w.Do(t, "DELETE", "/fhir/Patient/"+q, tok, nil); r.Status != 409 {
			t.Fatalf("delete referenced: %d", r.Status)
		}
		tx = `{"resourceType":"Bundle","type":"transaction","entry":[
			{"request":{"method":"DELETE","url":"Patient/` + q + `"}},
			{"request":{"method":"DELETE","url":"Observation/` + o + `"}}]}`
		if r := w.Do(t, "POST", "/fhir", tok, []byte(tx)); r.Status != 200 {
			t.Fatalf("delete both: %d %s", r.Status, r.Body)
		}
		// A conditional delete is held by references to its matches too.
		c := w.Create(t, A, `{"resourceType":"Patient","gender":"other"}`)
		co := w.Create(t, A, obsOf("Patient/"+c))
		if r := w.Do(t, "DELETE", "/fhir/Patient?_id="+c, tok, nil); r.Status != 409 {
			t.Fatalf("conditional delete of a referenced patient: %d %s", r.Status, r.Body)
		}
		if r := w.Do(t, "DELETE", "/fhir/Observation?_id="+co, tok, nil); r.Status != 200 && r.Status != 204 {
			t.Fatalf("conditional delete of the referrer: %d %s", r.Status, r.Body)
		}
		// Deleted counts as unresolved.
		(scenario{name: "deleted", method: "POST", path: "/fhir/Observation", role: A, body: obsOf("Patient/" + q), status: 409}).run(t, w)
		// Deleting the referrer first frees the target.
		r2 := w.Create(t, A, plainPatient)
		o2 := w.Create(t, A, obsOf("Patient/"+r2))
		if r := w.Do(t, "DELETE", "/fhir/Observation/"+o2, tok, nil); r.Status != 200 {
			t.Fatalf("delete referrer: %d", r.Status)
		}
		if r := w.Do(t, "DELETE", "/fhir/Patient/"+r2, tok, nil); r.Status != 200 {
			t.Fatalf("delete freed: %d %s", r.Status, r.Body)
		}
		// In a batch the failing entry fails alone.
		batch := `{"resourceType":"Bundle","type":"batch","entry":[
			{"resource":` + obsOf("Patient/nope") + `,"request":{"method":"POST","url":"Observation"}},
			{"resource":` + obsOf("Patient/"+pid) + `,"request":{"method":"POST","url":"Observation"}}]}`
		r = w.Do(t, "POST", "/fhir", tok, []byte(batch))
		var b struct {
			Entry []struct{ Response struct{ Status string } }
		}
		json.Unmarshal(r.Body, &b)
		if r.Status != 200 || len(b.Entry) != 2 || !strings.HasPrefix(b.Entry[0].Response.Status, "409") || !strings.HasPrefix(b.Entry[1].Response.Status, "201") {
			t.Fatalf("batch: %d %s", r.Status, r.Body)
		}
	}, func(c *config.Config) { c.ReferentialIntegrity = true })
}

func TestReferentialIntegrityOff(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		A := authz.RoleAdmin
		if p := referencePolicy(t, w); !slices.Equal(p, []string{"literal", "local"}) {
			t.Fatalf("referencePolicy %v", p)
		}
		pid := w.Create(t, A, plainPatient)
		w.Create(t, A, obsOf("Patient/"+pid))
		for _, sc := range []scenario{
			{name: "unknown reference", method: "POST", path: "/fhir/Observation", role: A, body: obsOf("Patient/nope"), status: 201},
			{name: "delete referenced", method: "DELETE", path: "/fhir/Patient/" + pid, role: A, status: 200},
			{name: "reference to deleted", method: "POST", path: "/fhir/Observation", role: A, body: obsOf("Patient/" + pid), status: 201},
		} {
			sc.run(t, w)
		}
	})
}
