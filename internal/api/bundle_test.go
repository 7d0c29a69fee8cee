package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

func syntheaBundle(t *testing.T) []byte {
	t.Helper()
	files, _ := filepath.Glob("testdata/synthea/*.json.gz")
	if len(files) == 0 {
		t.Fatal("no Synthea bundle in testdata")
	}
	f, err := os.Open(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type bundleOut struct {
	ResourceType, Type string
	Entry              []struct {
		Resource json.RawMessage
		Response struct {
			Status, Location, Etag string
			Outcome                json.RawMessage
		}
	}
}

func decodeBundle(t *testing.T, r *apptest.Response) bundleOut {
	t.Helper()
	var b bundleOut
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("%v: %.300s", err, r.Body)
	}
	return b
}

func countVersions(t *testing.T, w *apptest.Ward) int {
	r := w.Do(t, "GET", "/fhir/_history?_count=1000", w.Tokens[authz.RoleAdmin], nil)
	return strings.Count(string(r.Body), `"fullUrl"`)
}

func TestTransactionLoadsSyntheaBundle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		body := syntheaBundle(t)
		var in struct {
			Entry []struct {
				FullURL  string
				Resource map[string]any
			}
		}
		json.Unmarshal(body, &in)
		r := w.Do(t, "POST", "/fhir", w.Tokens[authz.RoleAdmin], body)
		if r.Status != 200 {
			t.Fatalf("transaction: %d %.500s", r.Status, r.Body)
		}
		out := decodeBundle(t, r)
		if out.Type != "transaction-response" || len(out.Entry) != len(in.Entry) {
			t.Fatalf("response: type %s, %d entries for %d", out.Type, len(out.Entry), len(in.Entry))
		}
		tok := w.Tokens[authz.RoleAdmin]
		ids := map[string]string{} // fullUrl -> Type/id
		for i, e := range out.Entry {
			if e.Response.Status != "201 Created" || e.Response.Etag != `W/"1"` || !strings.HasSuffix(e.Response.Location, "/_history/1") {
				t.Fatalf("entry %d: %+v", i, e.Response)
			}
			typeID := strings.TrimSuffix(e.Response.Location, "/_history/1")
			if want := in.Entry[i].Resource["resourceType"].(string); !strings.HasPrefix(typeID, want+"/") {
				t.Fatalf("entry %d: location %s for a %s (results out of Bundle order)", i, typeID, want)
			}
			ids[in.Entry[i].FullURL] = typeID
		}
		// Every stored resource reads back, server ids replaced the
		// client's, and no urn:uuid reference is left: each points at the
		// new id of the entry it named.
		for fullURL, typeID := range ids {
			g := w.Do(t, "GET", "/fhir/"+typeID, tok, nil)
			if g.Status != 200 {
				t.Fatalf("%s: %d", typeID, g.Status)
			}
			if bytes.Contains(g.Body, []byte("urn:uuid:")) {
				t.Fatalf("%s still refers to a urn:uuid: %.300s", typeID, g.Body)
			}
			_ = fullURL
		}
		var patientRef string
		for _, e := range in.Entry {
			if e.Resource["resourceType"] == "Patient" {
				patientRef = ids[e.FullURL]
			}
		}
		for i, e := range in.Entry {
			subj, ok := e.Resource["subject"].(map[string]any)
			if !ok {
				continue
			}
			if orig, _ := subj["reference"].(string); orig != "" {
				g := w.Do(t, "GET", "/fhir/"+ids[in.Entry[i].FullURL], tok, nil)
				want := `"reference":"` + ids[orig] + `"`
				if ids[orig] == "" || !bytes.Contains(g.Body, []byte(want)) {
					t.Fatalf("entry %d: subject %s not rewritten to %s", i, orig, ids[orig])
				}
				if ids[orig] != patientRef {
					t.Fatalf("entry %d: subject is not the bundle's patient", i)
				}
			}
		}
		// One audit record per entry.
		var creates int
		for _, rec := range w.Ledger(t) {
			if rec.Action == "create" && rec.Outcome == 0 && len(rec.Entities) == 1 {
				creates++
			}
		}
		if creates != len(in.Entry) {
			t.Fatalf("%d create records for %d entries", creates, len(in.Entry))
		}
	})
}

func TestTransactionIsAtomic(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	body := syntheaBundle(t)
	var b map[string]any
	json.Unmarshal(body, &b)
	entries := b["entry"].([]any)
	bad := len(entries) / 2
	res := entries[bad].(map[string]any)["resource"].(map[string]any)
	res["status"] = 12345 // wrong type for every resource that has a status, and unknown elsewhere
	broken, _ := json.Marshal(b)
	before := countVersions(t, w)
	ledgerBefore := len(w.Ledger(t))
	r := w.Do(t, "POST", "/fhir", w.Tokens[authz.RoleAdmin], broken)
	if r.Status != 400 || !strings.Contains(string(r.Body), fmt.Sprintf("Bundle.entry[%d]", bad)) {
		t.Fatalf("broken transaction: %d %.500s", r.Status, r.Body)
	}
	if after := countVersions(t, w); after != before {
		t.Fatalf("a failed transaction wrote %d versions", after-before)
	}
	// Only the refusal is in the ledger.
	recs := w.Ledger(t)[ledgerBefore:]
	for _, rec := range recs {
		if rec.Outcome == 0 && rec.Action == "create" {
			t.Fatalf("ledger records a create of a failed transaction: %+v", rec)
		}
	}
}

func TestTransactionOrderAndBatch(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	tok := w.Tokens[authz.RoleAdmin]
	old := w.Create(t, authz.RoleAdmin, patient)
	// Listed GET first, PUT second, DELETE last: processed DELETE, PUT, GET.
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	  {"request":{"method":"GET","url":"Patient/p-tx"}},
	  {"fullUrl":"urn:uuid:11111111-2222-3333-4444-555555555555","resource":{"resourceType":"Patient","id":"p-tx","gender":"male"},"request":{"method":"PUT","url":"Patient/p-tx"}},
	  {"fullUrl":"urn:uuid:aaaaaaaa-2222-3333-4444-555555555555","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:11111111-2222-3333-4444-555555555555"}},"request":{"method":"POST","url":"Observation"}},
	  {"request":{"method":"DELETE","url":"Patient/` + old + `"}}
	]}`
	r := w.Do(t, "POST", "/fhir/", tok, []byte(tx), "Prefer: return=representation")
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	out := decodeBundle(t, r)
	statuses := []string{}
	for _, e := range out.Entry {
		statuses = append(statuses, e.Response.Status)
	}
	if fmt.Sprint(statuses) != "[200 OK 201 Created 201 Created 204 No Content]" {
		t.Fatalf("statuses %v", statuses)
	}
	if !bytes.Contains(out.Entry[0].Resource, []byte(`"gender":"male"`)) {
		t.Fatalf("GET did not see the PUT of the same transaction: %s", out.Entry[0].Resource)
	}
	if !bytes.Contains(out.Entry[2].Resource, []byte(`"reference":"Patient/p-tx"`)) {
		t.Fatalf("reference to a PUT entry not rewritten: %s", out.Entry[2].Resource)
	}
	if g := w.Do(t, "GET", "/fhir/Patient/"+old, tok, nil); g.Status != 410 {
		t.Fatalf("deleted in transaction: %d", g.Status)
	}

	batch := `{"resourceType":"Bundle","type":"batch","entry":[
	  {"resource":{"resourceType":"Patient","gender":"female"},"request":{"method":"POST","url":"Patient"}},
	  {"resource":{"resourceType":"Patient","gender":"banana"},"request":{"method":"POST","url":"Patient"}},
	  {"request":{"method":"GET","url":"Patient/does-not-exist"}},
	  {"request":{"method":"GET","url":"Patient/p-tx"}}
	]}`
	r = w.Do(t, "POST", "/fhir", tok, []byte(batch))
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	out = decodeBundle(t, r)
	statuses = statuses[:0]
	for _, e := range out.Entry {
		statuses = append(statuses, e.Response.Status)
	}
	if fmt.Sprint(statuses) != "[201 Created 400 Bad Request 404 Not Found 200 OK]" || out.Type != "batch-response" {
		t.Fatalf("batch statuses %v", statuses)
	}
	if !bytes.Contains(out.Entry[1].Response.Outcome, []byte("Patient.gender")) || bytes.Contains(out.Entry[1].Response.Outcome, []byte("banana")) {
		t.Fatalf("batch entry outcome %s", out.Entry[1].Response.Outcome)
	}

	for _, sc := range []scenario{
		{name: "conditional create in a transaction", method: "POST", path: "/fhir", role: authz.RoleAdmin, status: 200,
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=x|1"}}]}`,
			want: []string{`"201 Created"`}},
		{name: "conditional delete of nothing", method: "POST", path: "/fhir", role: authz.RoleAdmin, status: 200,
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient?identifier=x|no-such"}}]}`,
			want: []string{`"204 No Content"`}},
		{name: "conditional reference to nothing fails the transaction", method: "POST", path: "/fhir", role: authz.RoleAdmin, status: 412,
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"performer":[{"reference":"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999"}]},"request":{"method":"POST","url":"Observation"}}]}`,
			want: []string{"Bundle.entry[0]", "Observation.performer.reference", "matches no resource"}, notWant: []string{"9999"}},
		{name: "not a transaction", method: "POST", path: "/fhir", role: authz.RoleAdmin, status: 400,
			body: `{"resourceType":"Bundle","type":"collection"}`, want: []string{"Bundle.type"}},
		{name: "type mismatch", method: "POST", path: "/fhir", role: authz.RoleAdmin, status: 400,
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation"},"request":{"method":"POST","url":"Patient"}}]}`,
			want: []string{"Bundle.entry[0].resource.resourceType"}},
		{name: "nurse may not create patients in a transaction", method: "POST", path: "/fhir", role: authz.RoleNurse, status: 403,
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"}},"request":{"method":"POST","url":"Observation"}},{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`},
		{name: "empty transaction", method: "POST", path: "/fhir", role: authz.RoleAdmin, status: 200,
			body: `{"resourceType":"Bundle","type":"transaction"}`, want: []string{`"transaction-response"`}},
		{name: "no token", method: "POST", path: "/fhir", status: 401, body: `{"resourceType":"Bundle","type":"transaction"}`},
	} {
		sc.run(t, w)
	}
}
