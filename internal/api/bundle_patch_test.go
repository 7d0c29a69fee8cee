package api_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// binaryPatch is a PATCH entry's JSON Patch as bundle.html carries it: a
// Binary of contentType application/json-patch+json.
func binaryPatch(doc string) string {
	return `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"` + base64.StdEncoding.EncodeToString([]byte(doc)) + `"}`
}

// fhirPathGender is a FHIRPath Patch that replaces Patient.gender.
func fhirPathGender(g string) string {
	return `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},{"name":"value","valueCode":"` + g + `"}]}]}`
}

// PATCH entries (JSON Patch as Binary, FHIRPath Patch as Parameters, by
// id and by condition), ifNoneMatch "*" on a PUT entry, and a reference to
// a resource the same Bundle creates by conditional create, in a batch and
// in a transaction.
func TestBundlePatchEntries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		for _, kind := range []string{"batch", "transaction"} {
			t.Run(kind, func(t *testing.T) {
				byID := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"male"}`)
				byCond := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"male","identifier":[{"system":"urn:mrn","value":"cp-`+kind+`"}]}`)
				body := `{"resourceType":"Bundle","type":"` + kind + `","entry":[
					{"resource":` + binaryPatch(`[{"op":"replace","path":"/gender","value":"female"}]`) + `,"request":{"method":"PATCH","url":"Patient/` + byID + `","ifMatch":"W/\"1\""}},
					{"resource":` + fhirPathGender("other") + `,"request":{"method":"PATCH","url":"Patient?identifier=urn:mrn|cp-` + kind + `"}},
					{"resource":{"resourceType":"Patient","id":"inm-` + kind + `"},"request":{"method":"PUT","url":"Patient/inm-` + kind + `","ifNoneMatch":"*"}},
					{"fullUrl":"urn:uuid:3c0f7a52-1111-4a4a-9b9b-00000000000` + map[string]string{"batch": "1", "transaction": "2"}[kind] + `","resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"new-` + kind + `"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:mrn|new-` + kind + `"}}
				]}`
				if kind == "transaction" {
					body = strings.TrimSuffix(strings.TrimSpace(body), "]}") + `,
					{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:3c0f7a52-1111-4a4a-9b9b-000000000002"}},"request":{"method":"POST","url":"Observation"}}]}`
				}
				r := w.Do(t, "POST", "/fhir", admin, []byte(body), "Prefer: return=representation")
				if r.Status != 200 {
					t.Fatalf("%d %.500s", r.Status, r.Body)
				}
				b := decodeBundle(t, r)
				want := []string{"200", "200", "201", "201", "201"}[:len(b.Entry)]
				for i, st := range want {
					if got := statusCode(b.Entry[i].Response.Status); got != st {
						t.Errorf("entry %d: %s %.300s, want %s", i, b.Entry[i].Response.Status, b.Entry[i].Response.Outcome, st)
					}
				}
				if p := entryResource(t, b, 0); p["gender"] != "female" || b.Entry[0].Response.Etag != `W/"2"` {
					t.Errorf("JSON Patch entry: %v %s", p["gender"], b.Entry[0].Response.Etag)
				}
				if p := entryResource(t, b, 1); p["gender"] != "other" || p["id"] != byCond {
					t.Errorf("conditional FHIRPath Patch entry: %v %v", p["gender"], p["id"])
				}
				for id, g := range map[string]string{byID: "female", byCond: "other"} {
					if got := w.Do(t, "GET", "/fhir/Patient/"+id, admin, nil).JSON(t)["gender"]; got != g {
						t.Errorf("stored Patient/%s gender %v, want %s", id, got, g)
					}
				}
				if kind == "transaction" {
					created := entryResource(t, b, 3)["id"].(string)
					subj, _ := entryResource(t, b, 4)["subject"].(map[string]any)
					if subj["reference"] != "Patient/"+created {
						t.Errorf("reference to the conditional create: %v, want Patient/%s", subj["reference"], created)
					}
				}
			})
		}
	})
}

// A PATCH or conditional PUT entry that cannot apply fails alone in a
// batch, with the status the request alone would get, and fails a
// transaction whole, leaving nothing written.
func TestBundlePatchEntryFailures(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"male","identifier":[{"system":"urn:mrn","value":"twin"}]}`)
		twin := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"twin"}]}`)
		gender := binaryPatch(`[{"op":"replace","path":"/gender","value":"female"}]`)
		entries := []struct{ entry, status, says string }{
			{`{"resource":` + gender + `,"request":{"method":"PATCH","url":"Patient/` + pid + `","ifMatch":"W/\"7\""}}`, "412", "version 7"},
			{`{"resource":` + gender + `,"request":{"method":"PATCH","url":"Patient/never-was"}}`, "404", "not known"},
			{`{"resource":` + gender + `,"request":{"method":"PATCH","url":"Patient?identifier=urn:mrn|nobody"}}`, "404", "matches no resource"},
			{`{"resource":` + gender + `,"request":{"method":"PATCH","url":"Patient?identifier=urn:mrn|twin"}}`, "412", "more than one"},
			{`{"resource":{"resourceType":"Binary","contentType":"text/plain","data":"eA=="},"request":{"method":"PATCH","url":"Patient/` + pid + `"}}`, "400", "application/json-patch+json"},
			{`{"resource":` + binaryPatch(`[{"op":"test","path":"/gender","value":"other"}]`) + `,"request":{"method":"PATCH","url":"Patient/` + pid + `"}}`, "422", ""},
			{`{"request":{"method":"PATCH","url":"Patient/` + pid + `"}}`, "400", "entry.resource"},
			{`{"resource":{"resourceType":"Patient","id":"` + pid + `"},"request":{"method":"PUT","url":"Patient/` + pid + `","ifNoneMatch":"*"}}`, "412", ""},
			{`{"resource":{"resourceType":"Patient","id":"` + pid + `"},"request":{"method":"PUT","url":"Patient/` + pid + `","ifNoneMatch":"W/\"1\""}}`, "400", "ifNoneMatch"},
		}
		good := `{"resource":` + binaryPatch(`[{"op":"add","path":"/active","value":true}]`) + `,"request":{"method":"PATCH","url":"Patient/` + twin + `"}}`
		var all []string
		for _, e := range entries {
			all = append(all, e.entry)
		}
		r := w.Do(t, "POST", "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"batch","entry":[`+strings.Join(all, ",")+`]}`))
		if r.Status != 200 {
			t.Fatalf("batch: %d %.400s", r.Status, r.Body)
		}
		b := decodeBundle(t, r)
		for i, e := range entries {
			if got := statusCode(b.Entry[i].Response.Status); got != e.status || !strings.Contains(string(b.Entry[i].Response.Outcome), e.says) {
				t.Errorf("batch entry %d: %s %s, want %s saying %q", i, b.Entry[i].Response.Status, b.Entry[i].Response.Outcome, e.status, e.says)
			}
		}
		for i, e := range entries {
			body := `{"resourceType":"Bundle","type":"transaction","entry":[` + good + `,` + e.entry + `]}`
			if r := w.Do(t, "POST", "/fhir", admin, []byte(body)); fmt.Sprint(r.Status) != e.status {
				t.Errorf("transaction with entry %d: %d, want %s: %.300s", i, r.Status, e.status, r.Body)
			}
		}
		for _, id := range []string{pid, twin} {
			p := w.Do(t, "GET", "/fhir/Patient/"+id, admin, nil).JSON(t)
			if p["active"] != nil || p["meta"].(map[string]any)["versionId"] != "1" {
				t.Errorf("a failed transaction or entry wrote: %v", p)
			}
		}
		// Two entries on one resource are refused in a transaction.
		twice := `{"resourceType":"Bundle","type":"transaction","entry":[` + good + `,{"resource":{"resourceType":"Patient","id":"` + twin + `"},"request":{"method":"PUT","url":"Patient/` + twin + `"}}]}`
		if r := w.Do(t, "POST", "/fhir", admin, []byte(twice)); r.Status != 400 || !strings.Contains(string(r.Body), "also changes") {
			t.Errorf("PUT and PATCH of one resource: %d %.300s", r.Status, r.Body)
		}
	})
}

// PATCH [type]?search patches the one match (JSON Patch and FHIRPath
// Patch), and answers 404 for no match, 412 for several and 400 without
// a condition.
func TestConditionalPatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		id := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"male","identifier":[{"system":"urn:mrn","value":"solo"}]}`)
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"pair"}]}`)
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"pair"}]}`)
		jp := "Content-Type: application/json-patch+json"
		for _, sc := range []scenario{
			{name: "json patch", method: "PATCH", path: "/fhir/Patient?identifier=urn:mrn|solo", role: authz.RoleAdmin, headers: []string{jp, `If-Match: W/"1"`},
				body: `[{"op":"replace","path":"/gender","value":"female"}]`, status: 200, want: []string{`"gender":"female"`, `"id":"` + id + `"`}, header: map[string]string{"ETag": `^W/"2"$`, "Location": "/Patient/" + id + "/_history/2$"}},
			{name: "fhirpath patch", method: "PATCH", path: "/fhir/Patient?identifier=urn:mrn|solo", role: authz.RoleAdmin,
				body: fhirPathGender("other"), status: 200, want: []string{`"gender":"other"`}},
			{name: "stale If-Match", method: "PATCH", path: "/fhir/Patient?identifier=urn:mrn|solo", role: authz.RoleAdmin, headers: []string{jp, `If-Match: W/"1"`},
				body: `[{"op":"remove","path":"/gender"}]`, status: 412},
			{name: "no match", method: "PATCH", path: "/fhir/Patient?identifier=urn:mrn|none", role: authz.RoleAdmin, headers: []string{jp}, body: `[]`, status: 404, want: []string{"matches no resource"}},
			{name: "two matches", method: "PATCH", path: "/fhir/Patient?identifier=urn:mrn|pair", role: authz.RoleAdmin, headers: []string{jp}, body: `[]`, status: 412, want: []string{"more than one"}},
			{name: "no condition", method: "PATCH", path: "/fhir/Patient", role: authz.RoleAdmin, headers: []string{jp}, body: `[]`, status: 400, want: []string{"condition"}},
			{name: "unknown parameter", method: "PATCH", path: "/fhir/Patient?nonsense=1", role: authz.RoleAdmin, headers: []string{jp}, body: `[]`, status: 400},
			{name: "nurse", method: "PATCH", path: "/fhir/Patient?identifier=urn:mrn|solo", role: authz.RoleNurse, headers: []string{jp}, body: `[]`, status: 403},
			{name: "read back", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, status: 200, want: []string{`"versionId":"3"`, `"gender":"other"`}},
		} {
			sc.run(t, w)
		}
	})
}
