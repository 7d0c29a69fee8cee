package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// entryResource decodes entry i's resource of a response Bundle.
func entryResource(t *testing.T, b bundleOut, i int) map[string]any {
	t.Helper()
	var m map[string]any
	if len(b.Entry[i].Resource) == 0 {
		t.Fatalf("entry %d has no resource (status %s)", i, b.Entry[i].Response.Status)
	}
	if err := json.Unmarshal(b.Entry[i].Resource, &m); err != nil {
		t.Fatalf("entry %d: %v", i, err)
	}
	return m
}

func statusCode(s string) string { return strings.SplitN(s, " ", 2)[0] }

// GET entries of a batch or transaction answer with their resource by
// default (no Prefer header), and every kind of read works: read, search
// (a searchset Bundle as the entry's resource), metadata, history, vread,
// and the conditional reads ifNoneMatch and ifModifiedSince (304, no
// resource).
func TestBundleGetEntriesAnswerWithTheirResource(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Entryson"}]}`)
		future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		past := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
		for _, kind := range []string{"batch", "transaction"} {
			t.Run(kind, func(t *testing.T) {
				body := `{"resourceType":"Bundle","type":"` + kind + `","entry":[
					{"request":{"method":"GET","url":"Patient/` + pid + `"}},
					{"request":{"method":"GET","url":"Patient?_id=` + pid + `"}},
					{"request":{"method":"GET","url":"metadata"}},
					{"request":{"method":"GET","url":"Patient/` + pid + `/_history"}},
					{"request":{"method":"GET","url":"Patient/` + pid + `/_history/1"}},
					{"request":{"method":"GET","url":"Patient/` + pid + `","ifNoneMatch":"W/\"1\""}},
					{"request":{"method":"GET","url":"Patient/` + pid + `","ifModifiedSince":"` + future + `"}},
					{"request":{"method":"GET","url":"Patient/` + pid + `","ifModifiedSince":"` + past + `"}},
					{"fullUrl":"urn:uuid:8d1c6f6e-2f7a-4b8e-9d55-000000000001","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + pid + `"}},"request":{"method":"POST","url":"Observation"}}
				]}`
				r := w.Do(t, "POST", "/fhir", admin, []byte(body))
				if r.Status != 200 {
					t.Fatalf("%s: %d %.400s", kind, r.Status, r.Body)
				}
				b := decodeBundle(t, r)
				if b.Type != kind+"-response" || len(b.Entry) != 9 {
					t.Fatalf("type %s, %d entries", b.Type, len(b.Entry))
				}
				want := []string{"200", "200", "200", "200", "200", "304", "304", "200", "201"}
				for i, st := range want {
					if got := statusCode(b.Entry[i].Response.Status); got != st {
						t.Errorf("entry %d: status %s, want %s", i, b.Entry[i].Response.Status, st)
					}
				}
				if p := entryResource(t, b, 0); p["resourceType"] != "Patient" || p["id"] != pid {
					t.Errorf("read entry: %v", p)
				}
				if b.Entry[0].Response.Etag != `W/"1"` {
					t.Errorf("read entry etag %q", b.Entry[0].Response.Etag)
				}
				if s := entryResource(t, b, 1); s["resourceType"] != "Bundle" || s["type"] != "searchset" || s["total"] != float64(1) {
					t.Errorf("search entry: %v %v %v", s["resourceType"], s["type"], s["total"])
				}
				if c := entryResource(t, b, 2); c["resourceType"] != "CapabilityStatement" {
					t.Errorf("metadata entry: %v", c["resourceType"])
				}
				if h := entryResource(t, b, 3); h["resourceType"] != "Bundle" || h["type"] != "history" {
					t.Errorf("history entry: %v %v", h["resourceType"], h["type"])
				}
				if v := entryResource(t, b, 4); v["id"] != pid {
					t.Errorf("vread entry: %v", v["id"])
				}
				for _, i := range []int{5, 6} {
					if len(b.Entry[i].Resource) != 0 {
						t.Errorf("entry %d: a 304 carries no resource", i)
					}
				}
				if len(b.Entry[8].Resource) != 0 {
					t.Error("a POST entry without Prefer: return=representation carried its resource")
				}
			})
		}
	})
}

// A GET entry is decided exactly as the same request alone: a physician
// reads the patient in their care and is refused the other, with the
// status the plain interaction answers, while the other entries succeed.
func TestBundleGetEntriesAreDecidedLikeRequests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		x := setupAccess(t, w).ids
		P := w.Tokens[authz.RolePhysician]
		alone := w.Do(t, "GET", "/fhir/Patient/"+x["other"], P, nil).Status
		if alone < 400 {
			t.Fatalf("the physician may read the unrelated patient alone (%d): the world is not as this test expects", alone)
		}
		body := `{"resourceType":"Bundle","type":"batch","entry":[
			{"request":{"method":"GET","url":"Patient/` + x["gp"] + `"}},
			{"request":{"method":"GET","url":"Patient/` + x["other"] + `"}},
			{"request":{"method":"GET","url":"Observation?subject=Patient/` + x["other"] + `"}}]}`
		r := w.Do(t, "POST", "/fhir", P, []byte(body))
		if r.Status != 200 {
			t.Fatalf("batch: %d %.300s", r.Status, r.Body)
		}
		b := decodeBundle(t, r)
		if got := statusCode(b.Entry[0].Response.Status); got != "200" {
			t.Errorf("patient in care: %s", b.Entry[0].Response.Status)
		}
		if got := statusCode(b.Entry[1].Response.Status); got != fmt.Sprint(alone) || len(b.Entry[1].Resource) != 0 || len(b.Entry[1].Response.Outcome) == 0 {
			t.Errorf("unrelated patient: %s (alone: %d), resource %d bytes, outcome %d bytes", b.Entry[1].Response.Status, alone, len(b.Entry[1].Resource), len(b.Entry[1].Response.Outcome))
		}
		if s := entryResource(t, b, 2); s["total"] != float64(0) && s["total"] != nil {
			t.Errorf("search of the unrelated patient's observations disclosed %v", s["total"])
		}
		if strings.Contains(string(b.Entry[1].Response.Outcome), "Otherby") {
			t.Error("the refusal names the patient")
		}
	})
}

// In a batch, an entry that cannot be parsed fails alone with its own
// OperationOutcome; the others are processed. In a transaction the same
// entry fails the whole Bundle and nothing is written.
func TestBatchEntryFailsAlone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		entries := `
			{"resource":{"resourceType":"Patient","name":[{"family":"Alonesome"}]},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Patient"}},
			{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}},"request":{"method":"POST","url":"Patient"}},
			{"request":{"method":"GET","url":"https://elsewhere.example/fhir/Patient/1"}},
			{"request":{"method":"GET","url":"Patient/x","ifModifiedSince":"yesterday"}},
			{"resource":{"resourceType":"Patient","birthDate":"not-a-date"},"request":{"method":"POST","url":"Patient"}},
			{"resource":{"resourceType":"Patient","name":[{"family":"Alonesome"}]},"request":{"method":"POST","url":"Patient"}}`
		r := w.Do(t, "POST", "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"batch","entry":[`+entries+`]}`))
		if r.Status != 200 {
			t.Fatalf("batch: %d %.400s", r.Status, r.Body)
		}
		b := decodeBundle(t, r)
		want := []string{"201", "400", "400", "400", "400", "400", "201"}
		if len(b.Entry) != len(want) {
			t.Fatalf("%d entries", len(b.Entry))
		}
		for i, st := range want {
			if got := statusCode(b.Entry[i].Response.Status); got != st {
				t.Errorf("entry %d: %s, want %s", i, b.Entry[i].Response.Status, st)
			}
			if st == "400" && !strings.Contains(string(b.Entry[i].Response.Outcome), "OperationOutcome") {
				t.Errorf("entry %d: no OperationOutcome", i)
			}
		}
		if strings.Contains(string(r.Body), "elsewhere.example") || strings.Contains(string(r.Body), "not-a-date") {
			t.Error("an entry's error echoes the submitted value")
		}
		before := w.Do(t, "GET", "/fhir/Patient?family=Alonesome&_total=accurate", admin, nil)
		_, n := searchIDs(t, before)
		if n != 2 {
			t.Fatalf("batch created %v patients, want 2", n)
		}
		r = w.Do(t, "POST", "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+entries+`]}`))
		if r.Status != 400 {
			t.Fatalf("transaction with a malformed entry: %d %.300s", r.Status, r.Body)
		}
		_, n = searchIDs(t, w.Do(t, "GET", "/fhir/Patient?family=Alonesome&_total=accurate", admin, nil))
		if n != 2 {
			t.Fatalf("the failed transaction wrote: %v patients", n)
		}
	})
}

// References inside a transaction resolve by bundle.html's rules: a
// relative reference in an entry with a RESTful fullUrl names the entry
// whose fullUrl is [that base]/Type/id, and a reference to the fullUrl of
// a conditional create that matched names the existing resource.
func TestTransactionResolvesReferencesByFullURL(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		existing := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"mrn-77"}]}`)
		body := `{"resourceType":"Bundle","type":"transaction","entry":[
			{"fullUrl":"http://example.com/fhir/Patient/0","resource":{"resourceType":"Patient","name":[{"family":"Fullurl"}]},"request":{"method":"POST","url":"Patient"}},
			{"fullUrl":"http://example.com/fhir/Observation/1","resource":{"resourceType":"Observation","status":"final","code":{"text":"a"},"subject":{"reference":"Patient/0"}},"request":{"method":"POST","url":"Observation"}},
			{"fullUrl":"urn:uuid:0b9e5bd4-6a55-4d0c-8f43-000000000077","resource":{"resourceType":"Patient","identifier":[{"system":"urn:mrn","value":"mrn-77"}]},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=urn:mrn|mrn-77"}},
			{"fullUrl":"urn:uuid:5f0d8a2e-9c1b-4e3a-b7d6-000000000002","resource":{"resourceType":"Observation","status":"final","code":{"text":"b"},"subject":{"reference":"urn:uuid:0b9e5bd4-6a55-4d0c-8f43-000000000077"}},"request":{"method":"POST","url":"Observation"}}
		]}`
		r := w.Do(t, "POST", "/fhir", admin, []byte(body), "Prefer: return=representation")
		if r.Status != 200 {
			t.Fatalf("transaction: %d %.400s", r.Status, r.Body)
		}
		b := decodeBundle(t, r)
		created := entryResource(t, b, 0)["id"].(string)
		if created == "0" {
			t.Fatal("the Patient kept the fullUrl's id")
		}
		subj := func(i int) string {
			o := entryResource(t, b, i)
			s, _ := o["subject"].(map[string]any)
			ref, _ := s["reference"].(string)
			return ref
		}
		if got := subj(1); got != "Patient/"+created {
			t.Errorf("relative reference resolved to %q, want Patient/%s", got, created)
		}
		if statusCode(b.Entry[2].Response.Status) != "200" || entryResource(t, b, 2)["id"] != existing {
			t.Errorf("conditional create: %s", b.Entry[2].Response.Status)
		}
		if got := subj(3); got != "Patient/"+existing {
			t.Errorf("reference to the matched conditional create: %q, want Patient/%s", got, existing)
		}
		// Stored as answered.
		obs := w.Do(t, "GET", "/fhir/Observation/"+entryResource(t, b, 1)["id"].(string), admin, nil)
		if !strings.Contains(string(obs.Body), `"Patient/`+created+`"`) {
			t.Errorf("stored Observation: %s", obs.Body)
		}
	})
}

// request.ifMatch holds for DELETE entries as for PUT ones: a stale
// version is 412 (the entry alone in a batch, the whole transaction),
// the current one deletes.
func TestBundleDeleteEntryIfMatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		a := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Ifmatch"}]}`)
		b := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Ifmatch"}]}`)
		del := func(id, version string) string {
			return `{"request":{"method":"DELETE","url":"Patient/` + id + `","ifMatch":"W/\"` + version + `\""}}`
		}
		r := w.Do(t, "POST", "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+del(a, "1")+`,`+del(b, "2")+`]}`))
		if r.Status != 412 {
			t.Fatalf("transaction with a stale ifMatch: %d %.300s", r.Status, r.Body)
		}
		if got := w.Do(t, "GET", "/fhir/Patient/"+a, admin, nil).Status; got != 200 {
			t.Fatalf("the failed transaction deleted Patient a: %d", got)
		}
		r = w.Do(t, "POST", "/fhir", admin, []byte(`{"resourceType":"Bundle","type":"batch","entry":[`+del(a, "1")+`,`+del(b, "2")+`]}`))
		if r.Status != 200 {
			t.Fatalf("batch: %d %.300s", r.Status, r.Body)
		}
		out := decodeBundle(t, r)
		if statusCode(out.Entry[0].Response.Status) != "204" || statusCode(out.Entry[1].Response.Status) != "412" {
			t.Fatalf("batch statuses %s, %s", out.Entry[0].Response.Status, out.Entry[1].Response.Status)
		}
		if got := w.Do(t, "GET", "/fhir/Patient/"+a, admin, nil).Status; got != 410 {
			t.Errorf("Patient a after its delete: %d", got)
		}
		if got := w.Do(t, "GET", "/fhir/Patient/"+b, admin, nil).Status; got != 200 {
			t.Errorf("Patient b after a refused delete: %d", got)
		}
	})
}

// PUT with If-None-Match: * creates only what is absent (412 otherwise,
// no new version), and an update that changes nothing but the version
// metadata makes no new version: 200 with the current one.
func TestUpdateIfNoneMatchAndUnchangedContent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		body := func(id, extra string) []byte {
			return []byte(`{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Sameold"}]` + extra + `}`)
		}
		if r := w.Do(t, "PUT", "/fhir/Patient/inm-1", admin, body("inm-1", ""), "If-None-Match: *"); r.Status != 201 {
			t.Fatalf("create-if-absent: %d %.300s", r.Status, r.Body)
		}
		if r := w.Do(t, "PUT", "/fhir/Patient/inm-1", admin, body("inm-1", `,"gender":"other"`), "If-None-Match: *"); r.Status != 412 || !strings.Contains(string(r.Body), "OperationOutcome") {
			t.Fatalf("If-None-Match: * on an existing resource: %d %.300s", r.Status, r.Body)
		}
		if r := w.Do(t, "PUT", "/fhir/Patient/inm-1", admin, body("inm-1", ""), "If-None-Match: W/\"1\""); r.Status != 400 {
			t.Errorf("If-None-Match other than * on an update: %d", r.Status)
		}
		r := w.Do(t, "PUT", "/fhir/Patient/inm-1", admin, body("inm-1", `,"meta":{"versionId":"7","lastUpdated":"2020-01-01T00:00:00Z"}`))
		if r.Status != 200 || r.Header.Get("ETag") != `W/"1"` {
			t.Fatalf("unchanged update: %d etag %q %.300s", r.Status, r.Header.Get("ETag"), r.Body)
		}
		if r := w.Do(t, "PUT", "/fhir/Patient/inm-1", admin, body("inm-1", `,"meta":{"tag":[{"code":"t"}]}`)); r.Status != 200 || r.Header.Get("ETag") != `W/"2"` {
			t.Fatalf("an update that adds a tag: %d etag %q", r.Status, r.Header.Get("ETag"))
		}
		h := w.Do(t, "GET", "/fhir/Patient/inm-1/_history", admin, nil)
		if n := strings.Count(string(h.Body), `"fullUrl"`); n != 2 {
			t.Fatalf("history has %d versions, want 2 (create, tag)", n)
		}
		var updates, unchanged int
		for _, rec := range w.Ledger(t) {
			if rec.Action == "update" && len(rec.Entities) > 0 && strings.HasPrefix(rec.Entities[0], "Patient/inm-1") {
				updates++
				if rec.Detail == "unchanged" {
					unchanged++
				}
			}
		}
		if unchanged != 1 {
			t.Errorf("ledger: %d unchanged updates of %d, want 1", unchanged, updates)
		}
	})
}

// $versions names R4 (4.0) as the one and default version.
func TestVersionsOperation(t *testing.T) {
	w := apptest.Start(t, apptest.Backends[0])
	r := w.Do(t, "GET", "/fhir/$versions", "", nil)
	if r.Status != 200 || r.Header.Get("Content-Type") == "" {
		t.Fatalf("$versions: %d %s", r.Status, r.Body)
	}
	var p struct {
		ResourceType string
		Parameter    []struct{ Name, ValueCode string }
	}
	if err := json.Unmarshal(r.Body, &p); err != nil || p.ResourceType != "Parameters" || len(p.Parameter) != 2 ||
		p.Parameter[0] != (struct{ Name, ValueCode string }{"version", "4.0"}) || p.Parameter[1] != (struct{ Name, ValueCode string }{"default", "4.0"}) {
		t.Fatalf("$versions: %v %s", err, r.Body)
	}
}
