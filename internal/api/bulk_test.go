package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
)

// exportManifest is the Bulk Data manifest as a client reads it.
type exportManifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error []any `json:"error"`
}

// kickoff starts an export and returns the status path (relative to the
// server root).
func kickoff(t *testing.T, w *apptest.Ward, role authz.Role, path string) string {
	t.Helper()
	r := w.Do(t, "GET", path, w.Tokens[role], nil, "Prefer: respond-async", "Accept: application/fhir+json")
	if r.Status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", path, r.Status, r.Body)
	}
	loc := r.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, w.Server.URL+"/bulk/export/") {
		t.Fatalf("Content-Location %q", loc)
	}
	return strings.TrimPrefix(loc, w.Server.URL)
}

// awaitManifest polls until the export is done.
func awaitManifest(t *testing.T, w *apptest.Ward, role authz.Role, status string) exportManifest {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := w.Do(t, "GET", status, w.Tokens[role], nil)
		switch r.Status {
		case http.StatusAccepted:
			if r.Header.Get("X-Progress") == "" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("202 without X-Progress or Retry-After: %v", r.Header)
			}
			if time.Now().After(deadline) {
				t.Fatalf("export not done in time; progress %q", r.Header.Get("X-Progress"))
			}
			time.Sleep(50 * time.Millisecond)
			continue
		case http.StatusOK:
			var m exportManifest
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatalf("manifest: %v %s", err, r.Body)
			}
			return m
		default:
			t.Fatalf("status: %d %s", r.Status, r.Body)
		}
	}
}

// download fetches every output file; it returns the NDJSON lines by type.
func download(t *testing.T, w *apptest.Ward, role authz.Role, m exportManifest) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, o := range m.Output {
		r := w.Do(t, "GET", strings.TrimPrefix(o.URL, w.Server.URL), w.Tokens[role], nil, "Accept: application/fhir+ndjson")
		if r.Status != 200 || r.Header.Get("Content-Type") != "application/fhir+ndjson" {
			t.Fatalf("download %s: %d %s %.300s", o.URL, r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		sc := bufio.NewScanner(bytes.NewReader(r.Body))
		sc.Buffer(nil, 64<<20)
		n := 0
		for sc.Scan() {
			out[o.Type] = append(out[o.Type], sc.Text())
			n++
		}
		if n != o.Count {
			t.Fatalf("%s: %d lines, manifest says %d", o.URL, n, o.Count)
		}
	}
	return out
}

// canonical is a resource without meta, re-encoded with sorted keys.
func canonical(t *testing.T, raw []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%v: %.200s", err, raw)
	}
	delete(m, "meta")
	b, _ := json.Marshal(m)
	return string(b)
}

const plantedFamily = "Zzyzxquillon"

func seedExport(t *testing.T, w *apptest.Ward) (patients, observations []string) {
	for i := range 3 {
		patients = append(patients, w.Create(t, authz.RoleAdmin, fmt.Sprintf(
			`{"resourceType":"Patient","name":[{"family":"%s","given":["P%d"]}],"birthDate":"1970-01-0%d"}`, plantedFamily, i, i+1)))
	}
	for i, p := range patients {
		for j := range 2 {
			observations = append(observations, w.Create(t, authz.RoleAdmin, fmt.Sprintf(
				`{"resourceType":"Observation","status":"final","code":{"text":"obs %d-%d"},"subject":{"reference":"Patient/%s"},"valueQuantity":{"value":%d,"unit":"mg"}}`, i, j, p, i*10+j)))
		}
	}
	w.Create(t, authz.RoleAdmin, `{"resourceType":"Organization","name":"Clinic"}`)
	return patients, observations
}

func TestBulkExportRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		patients, observations := seedExport(t, w)
		status := kickoff(t, w, authz.RoleAdmin, "/fhir/$export?_type=Patient,Observation,Organization&_outputFormat=application%2Ffhir%2Bndjson")
		m := awaitManifest(t, w, authz.RoleAdmin, status)
		if !m.RequiresAccessToken || m.TransactionTime == "" || m.Error == nil ||
			m.Request != w.URL+"/$export?_type=Patient%2CObservation%2COrganization" {
			t.Fatalf("manifest fields: %+v", m)
		}
		lines := download(t, w, authz.RoleAdmin, m)
		if len(lines["Patient"]) != 3 || len(lines["Observation"]) != 6 || len(lines["Organization"]) != 1 {
			t.Fatalf("lines per type: %d %d %d", len(lines["Patient"]), len(lines["Observation"]), len(lines["Organization"]))
		}

		// The ledger names every downloaded version, under the file's
		// download record.
		var named []string
		for _, rec := range w.Ledger(t) {
			if rec.Action == "export-download" && rec.Actor == w.UserIDs[authz.RoleAdmin] {
				named = append(named, rec.Entities...)
			}
		}
		for _, id := range append(slices.Clone(patients), observations...) {
			if !slices.ContainsFunc(named, func(e string) bool { return strings.Contains(e, "/"+id+"/_history/") }) {
				t.Fatalf("ledger does not name %s among %d downloaded entities", id, len(named))
			}
		}

		// At rest the output is ciphertext.
		assertNoPlaintextExport(t, w, plantedFamily)
		// The ledger with the (large) download records still verifies.
		if _, _, err := app.VerifyLedger(context.Background(), w.App.Store); err != nil {
			t.Fatalf("ledger: %v", err)
		}

		// Re-imported into an empty server, the output round-trips.
		empty := apptest.Start(t, w.Backend)
		var all []string
		for _, typ := range []string{"Organization", "Patient", "Observation"} {
			all = append(all, lines[typ]...)
		}
		r := empty.Do(t, "POST", "/fhir/$import", empty.Tokens[authz.RoleAdmin], []byte(strings.Join(all, "\n")+"\n"), "Content-Type: application/fhir+ndjson")
		if r.Status != 200 || !bytes.Contains(r.Body, []byte("10 resources stored, 0 lines failed")) {
			t.Fatalf("import: %d %s", r.Status, r.Body)
		}
		for _, line := range all {
			var probe struct{ ResourceType, ID string }
			json.Unmarshal([]byte(line), &probe)
			got := empty.Do(t, "GET", "/fhir/"+probe.ResourceType+"/"+probe.ID, empty.Tokens[authz.RoleAdmin], nil)
			if got.Status != 200 || canonical(t, got.Body) != canonical(t, []byte(line)) {
				t.Fatalf("round trip of %s/%s: %d\n got %s\nwant %s", probe.ResourceType, probe.ID, got.Status, canonical(t, got.Body), canonical(t, []byte(line)))
			}
		}
	})
}

// assertNoPlaintextExport checks the export tables (and for SQLite the
// whole database file and WAL) for a planted value.
func assertNoPlaintextExport(t *testing.T, w *apptest.Ward, planted string) {
	t.Helper()
	if w.Backend == apptest.SQLite {
		n := 0
		for _, f := range []string{"ward.db", "ward.db-wal"} {
			b, err := os.ReadFile(filepath.Join(w.Config.DataDir, f))
			if err != nil {
				continue
			}
			n += len(b)
			if bytes.Contains(b, []byte(planted)) {
				t.Fatalf("%s holds the planted name in the clear", f)
			}
		}
		if n == 0 {
			t.Fatal("no database file to check")
		}
		return
	}
	db := pgtest.DB(t, w.Config.DatabaseURL, 1)
	rows, err := db.Query(`SELECT body FROM export_chunks`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var b []byte
		rows.Scan(&b)
		n++
		if bytes.Contains(b, []byte(planted)) {
			t.Fatal("an export chunk holds the planted name in the clear")
		}
	}
	if n == 0 {
		t.Fatal("no export chunks to check")
	}
}

func TestBulkExportFilters(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		patients, _ := seedExport(t, w)
		time.Sleep(5 * time.Millisecond)
		since := time.Now().UTC()
		time.Sleep(5 * time.Millisecond)
		late := w.Create(t, authz.RoleAdmin, fmt.Sprintf(`{"resourceType":"Observation","status":"final","code":{"text":"late"},"subject":{"reference":"Patient/%s"}}`, patients[0]))
		group := w.Create(t, authz.RoleAdmin, fmt.Sprintf(`{"resourceType":"Group","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/%s"}}]}`, patients[1]))

		count := func(lines map[string][]string) map[string]int {
			out := map[string]int{}
			for k, v := range lines {
				out[k] = len(v)
			}
			return out
		}
		tests := []struct {
			name string
			path string
			want map[string]int
		}{
			{"_type", "/fhir/$export?_type=Observation", map[string]int{"Observation": 7}},
			{"_since", "/fhir/$export?_type=Patient,Observation&_since=" + url.QueryEscape(since.Format(time.RFC3339Nano)), map[string]int{"Observation": 1}},
			{"patient level leaves out non-compartment types", "/fhir/Patient/$export?_type=Patient,Observation", map[string]int{"Patient": 3, "Observation": 7}},
			// The Group is in its member's compartment (Group.member).
			{"patient level, all compartment types", "/fhir/Patient/$export", map[string]int{"Group": 1, "Patient": 3, "Observation": 7}},
			{"group", "/fhir/Group/" + group + "/$export", map[string]int{"Group": 1, "Patient": 1, "Observation": 2}},
			{"group with _type", "/fhir/Group/" + group + "/$export?_type=Observation", map[string]int{"Observation": 2}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				m := awaitManifest(t, w, authz.RoleAdmin, kickoff(t, w, authz.RoleAdmin, tc.path))
				lines := download(t, w, authz.RoleAdmin, m)
				if got := count(lines); fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
				if tc.name == "_since" && !strings.Contains(lines["Observation"][0], late) {
					t.Fatalf("_since exported the wrong resource: %s", lines["Observation"][0])
				}
			})
		}
	})
}

func TestBulkExportRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		seedExport(t, w)
		status := kickoff(t, w, authz.RoleAdmin, "/fhir/$export?_type=Patient")
		m := awaitManifest(t, w, authz.RoleAdmin, status)
		file := strings.TrimPrefix(m.Output[0].URL, w.Server.URL)
		apptest.AddUser(t, w.App.Store, w.Config.Tenant, "other-physician", authz.RolePhysician)
		other := w.Login(t, "other-physician", apptest.Password)
		async := "Prefer: respond-async"
		for _, sc := range []scenario{
			{name: "no Prefer: respond-async", method: "GET", path: "/fhir/$export", role: authz.RoleAdmin, status: 400, want: []string{"Prefer: respond-async"}},
			{name: "bad _outputFormat", method: "GET", path: "/fhir/$export?_outputFormat=text/csv", role: authz.RoleAdmin, headers: []string{async}, status: 400, want: []string{"_outputFormat"}},
			{name: "unknown _type", method: "GET", path: "/fhir/$export?_type=Patient,Nope", role: authz.RoleAdmin, headers: []string{async}, status: 400, want: []string{"a listed type is not an R4 resource type"}, notWant: []string{"Nope"}},
			{name: "bad _since", method: "GET", path: "/fhir/$export?_since=yesterday", role: authz.RoleAdmin, headers: []string{async}, status: 400, want: []string{"_since must be a FHIR instant"}},
			{name: "unknown parameter, strict", method: "GET", path: "/fhir/$export?_typeFilter=Patient%3Factive%3Dtrue", role: authz.RoleAdmin, headers: []string{"Prefer: respond-async, handling=strict"}, status: 400, want: []string{"_typeFilter"}},
			{name: "unknown parameter, lenient", method: "GET", path: "/fhir/$export?_typeFilter=x&_type=Patient", role: authz.RoleAdmin, headers: []string{async}, status: 202, want: []string{"parameter ignored: _typeFilter"}},
			{name: "non-compartment type at patient level", method: "GET", path: "/fhir/Patient/$export?_type=Organization", role: authz.RoleAdmin, headers: []string{async}, status: 400, want: []string{"not in the Patient compartment"}},
			{name: "unknown group", method: "GET", path: "/fhir/Group/nope/$export", role: authz.RoleAdmin, headers: []string{async}, status: 404},
			{name: "a patient may export (what each resource's decision lets them read: their own compartment)", method: "GET", path: "/fhir/$export?_type=Patient", role: authz.RoleUser, headers: []string{async}, status: 202},
			{name: "no token", method: "GET", path: "/fhir/$export", headers: []string{async}, status: 401},
			{name: "status: another user", method: "GET", path: status, token: other, status: 404, notWant: []string{"Patient"}},
			{name: "file: another user", method: "GET", path: file, token: other, status: 404, notWant: []string{plantedFamily}},
			{name: "file: no token", method: "GET", path: file, status: 401, notWant: []string{plantedFamily}},
			{name: "cancel: another user", method: "DELETE", path: status, token: other, status: 404},
			{name: "file: unknown part", method: "GET", path: strings.Replace(file, "/0.ndjson", "/7.ndjson", 1), role: authz.RoleAdmin, status: 404},
			{name: "file: malformed name", method: "GET", path: strings.Replace(file, "/0.ndjson", "/..%2F..%2Fetc", 1), role: authz.RoleAdmin, status: 404},
			{name: "status: malformed job", method: "GET", path: "/bulk/export/not-a-job", role: authz.RoleAdmin, status: 404},
			// The owner still can.
			{name: "file: requester", method: "GET", path: file, role: authz.RoleAdmin, status: 200, want: []string{plantedFamily}},
		} {
			sc.run(t, w)
		}
		// The other user's attempts disclosed nothing: no download record
		// of theirs.
		for _, rec := range w.Ledger(t) {
			if rec.Action == "export-download" && rec.Actor != w.UserIDs[authz.RoleAdmin] {
				t.Fatalf("download recorded for another actor: %+v", rec)
			}
		}
	})
}

func TestBulkExportCancelAndExpiry(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		seedExport(t, w)
		js := w.App.Store.(bulk.Store)
		ctx := context.Background()
		for _, how := range []string{"cancel", "expire"} {
			t.Run(how, func(t *testing.T) {
				status := kickoff(t, w, authz.RoleAdmin, "/fhir/$export?_type=Patient,Observation")
				m := awaitManifest(t, w, authz.RoleAdmin, status)
				file := strings.TrimPrefix(m.Output[0].URL, w.Server.URL)
				job := strings.TrimPrefix(status, "/bulk/export/")
				if _, err := js.ExportChunk(ctx, job, 0, 0); err != nil {
					t.Fatalf("no output stored: %v", err)
				}
				switch how {
				case "cancel":
					if r := w.Do(t, "DELETE", status, w.Tokens[authz.RoleAdmin], nil); r.Status != 202 {
						t.Fatalf("cancel: %d %s", r.Status, r.Body)
					}
				case "expire":
					// A node whose clock is past the TTL sweeps the job.
					later := bulk.New(js, w.App.Records, w.App.Keys, bulk.Options{Now: func() time.Time { return time.Now().Add(w.Config.ExportTTL + time.Minute) }})
					if n, err := later.Sweep(ctx); err != nil || n != 1 {
						t.Fatalf("sweep: %d %v", n, err)
					}
				}
				for _, p := range []string{status, file} {
					if r := w.Do(t, "GET", p, w.Tokens[authz.RoleAdmin], nil); r.Status != 404 {
						t.Fatalf("%s after %s: %d", p, how, r.Status)
					}
				}
				if _, err := js.ExportChunk(ctx, job, 0, 0); err != store.ErrNotFound {
					t.Fatalf("output left after %s: %v", how, err)
				}
				if _, err := js.ExportPart(ctx, job, 0); err != store.ErrNotFound {
					t.Fatalf("part left after %s: %v", how, err)
				}
			})
		}
	})
}

// TestBulkExportRestart: a job whose node died (its lease ran out) is
// claimed again and restarted from the beginning, without the dead node's
// partial output; after too many interruptions it fails.
func TestBulkExportRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		seedExport(t, w)
		js := w.App.Store.(bulk.Store)
		ctx := context.Background()
		w.App.Bulk.Stop()

		// Interrupted once: resumed by a live node.
		status := kickoff(t, w, authz.RoleAdmin, "/fhir/$export?_type=Patient,Observation")
		past := time.Now().Add(-time.Second)
		dead, err := js.ClaimExportJob(ctx, "dead-node", time.Now(), time.Now().Add(time.Hour))
		if err != nil || dead == nil {
			t.Fatalf("claim: %v %v", dead, err)
		}
		// Its partial output: a chunk that would not open.
		if err := js.AddExportChunk(ctx, dead.ID, "dead-node", past, 0, 0, []byte("garbage")); err != nil {
			t.Fatal(err)
		}
		if r := w.Do(t, "GET", status, w.Tokens[authz.RoleAdmin], nil); r.Status != 202 || r.Header.Get("X-Progress") == "" {
			t.Fatalf("running job status: %d %v", r.Status, r.Header)
		}
		w.App.Bulk.Start()
		m := awaitManifest(t, w, authz.RoleAdmin, status)
		lines := download(t, w, authz.RoleAdmin, m)
		if len(lines["Patient"]) != 3 || len(lines["Observation"]) != 6 {
			t.Fatalf("restarted job output: %d %d", len(lines["Patient"]), len(lines["Observation"]))
		}

		// Interrupted on every attempt: failed, 500 with an OperationOutcome.
		w.App.Bulk.Stop()
		status = kickoff(t, w, authz.RoleAdmin, "/fhir/$export?_type=Patient")
		for range 3 {
			j, err := js.ClaimExportJob(ctx, "dead-node", time.Now(), past)
			if err != nil || j == nil {
				t.Fatalf("claim: %v %v", j, err)
			}
		}
		w.App.Bulk.Start()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := w.Do(t, "GET", status, w.Tokens[authz.RoleAdmin], nil)
			if r.Status == 500 {
				if !bytes.Contains(r.Body, []byte("OperationOutcome")) || !bytes.Contains(r.Body, []byte("interrupted")) {
					t.Fatalf("failed job: %s", r.Body)
				}
				break
			}
			if r.Status != 202 || time.Now().After(deadline) {
				t.Fatalf("status: %d %s", r.Status, r.Body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestImportEndpoint(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		body := strings.Join([]string{
			`{"resourceType":"Patient","id":"imp-1","name":[{"family":"Good"}]}`,
			`{"resourceType":"Patient","id":"imp-2",`,
			`{"resourceType":"Patient","id":"imp-3","gender":"not-a-gender"}`,
			``,
			`{"resourceType":"Observation","id":"imp-4","status":"final","code":{"text":"ok"},"subject":{"reference":"Patient/imp-1"}}`,
			`{"resourceType":"Observation","status":"final","code":{"text":"no id"}}`,
		}, "\n")
		nd := "Content-Type: application/fhir+ndjson"
		for _, sc := range []scenario{
			{name: "wrong content type", method: "POST", path: "/fhir/$import", role: authz.RoleAdmin, body: body, status: 415},
			{name: "nurse refused", method: "POST", path: "/fhir/$import", role: authz.RoleNurse, body: body, headers: []string{nd}, status: 403},
			{name: "no token", method: "POST", path: "/fhir/$import", body: body, headers: []string{nd}, status: 401},
			{name: "bad lines named, good lines stored", method: "POST", path: "/fhir/$import", role: authz.RoleAdmin, body: body, headers: []string{nd}, status: 422,
				want:    []string{"5 lines read, 3 resources stored, 2 lines failed", "line 2: ", "line 3: ", "Patient.gender"},
				notWant: []string{"not-a-gender", "line 1:", "line 5:", "line 6:"}},
		} {
			sc.run(t, w)
		}
		tok := w.Tokens[authz.RoleAdmin]
		for id, want := range map[string]int{"Patient/imp-1": 200, "Patient/imp-2": 404, "Patient/imp-3": 404, "Observation/imp-4": 200} {
			if r := w.Do(t, "GET", "/fhir/"+id, tok, nil); r.Status != want {
				t.Errorf("%s: %d, want %d", id, r.Status, want)
			}
		}
		// All good: 200.
		r := w.Do(t, "POST", "/fhir/$import", tok, []byte(`{"resourceType":"Patient","id":"imp-1","name":[{"family":"Better"}]}`), nd)
		if r.Status != 200 || !bytes.Contains(r.Body, []byte("1 resources stored, 0 lines failed")) {
			t.Fatalf("import: %d %s", r.Status, r.Body)
		}
		if r := w.Do(t, "GET", "/fhir/Patient/imp-1", tok, nil); !bytes.Contains(r.Body, []byte("Better")) || !bytes.Contains(r.Body, []byte(`"versionId":"2"`)) {
			t.Fatalf("re-import did not update: %s", r.Body)
		}
	})
}

// TestPagingByLinkHeader: a generic loader that pages by the HTTP Link
// header gets the same pages as one that follows Bundle.link next.
func TestPagingByLinkHeader(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		for range 3 {
			w.Create(t, authz.RoleAdmin, patient)
		}
		tok := w.Tokens[authz.RoleAdmin]
		for _, start := range []string{"/fhir/Patient?_count=1", "/fhir/Patient/_history?_count=1"} {
			seen := map[string]bool{}
			path := start
			for pages := 0; path != ""; pages++ {
				if pages > 5 {
					t.Fatalf("%s: paging does not end", start)
				}
				r := w.Do(t, "GET", path, tok, nil)
				if r.Status != 200 {
					t.Fatalf("%s: %d %s", path, r.Status, r.Body)
				}
				var b struct {
					Link  []struct{ Relation, URL string }
					Entry []struct {
						Resource struct{ ID string }
					}
				}
				json.Unmarshal(r.Body, &b)
				for _, e := range b.Entry {
					seen[e.Resource.ID] = true
				}
				bundleNext := ""
				for _, l := range b.Link {
					if l.Relation == "next" {
						bundleNext = l.URL
					}
				}
				header := linkRel(r.Header.Get("Link"), "next")
				path = ""
				if bundleNext == "" {
					if header != "" {
						t.Fatalf("%s: Link header next %q on the last page", start, header)
					}
					continue
				}
				if header != linkEscape(bundleNext) {
					t.Fatalf("%s: Link header next %q, Bundle next %q", start, header, bundleNext)
				}
				path = strings.TrimPrefix(bundleNext, w.Server.URL)
			}
			if len(seen) != 3 {
				t.Fatalf("%s: %d resources over the pages, want 3", start, len(seen))
			}
		}
	})
}

// TestBulkExportBackendClient: the usual Bulk Data client, a SMART Backend
// Services client, exports what its system/ scopes grant: without _type
// exactly those types, a named type outside them is refused.
func TestBulkExportBackendClient(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	seedExport(t, w)
	w.Create(t, authz.RoleAdmin, `{"resourceType":"Condition","subject":{"reference":"Patient/x"}}`)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"r1","n":%q,"e":%q}]}`, b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	if err := w.App.Store.Commit(context.Background(), &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{
		ID: "bulk-client", Tenant: "default", JWKS: jwks, Scope: "system/Patient.rs system/Observation.rs", Created: time.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	a := jwt.NewWithClaims(jwt.SigningMethodRS384, jwt.RegisteredClaims{Issuer: "bulk-client", Subject: "bulk-client",
		Audience: jwt.ClaimStrings{w.Server.URL + "/oauth2/token"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute)), ID: "bulk-jti-1"})
	a.Header["kid"] = "r1"
	signed, err := a.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {signed}}
	r := w.Do(t, "POST", "/oauth2/token", "", []byte(form.Encode()), "Content-Type: application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if json.Unmarshal(r.Body, &tok); r.Status != 200 || tok.AccessToken == "" {
		t.Fatalf("client token: %d %s", r.Status, r.Body)
	}
	async := "Prefer: respond-async"
	if r := w.Do(t, "GET", "/fhir/$export?_type=Condition", tok.AccessToken, nil, async); r.Status != 403 {
		t.Fatalf("export of a type outside the scopes: %d %s", r.Status, r.Body)
	}
	r = w.Do(t, "GET", "/fhir/$export", tok.AccessToken, nil, async)
	if r.Status != 202 {
		t.Fatalf("kick-off: %d %s", r.Status, r.Body)
	}
	status := strings.TrimPrefix(r.Header.Get("Content-Location"), w.Server.URL)
	var m exportManifest
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = w.Do(t, "GET", status, tok.AccessToken, nil)
		if r.Status == 200 {
			json.Unmarshal(r.Body, &m)
			break
		}
		if r.Status != 202 || time.Now().After(deadline) {
			t.Fatalf("status: %d %s", r.Status, r.Body)
		}
	}
	got := map[string]int{}
	for _, o := range m.Output {
		got[o.Type] += o.Count
		if r := w.Do(t, "GET", strings.TrimPrefix(o.URL, w.Server.URL), tok.AccessToken, nil); r.Status != 200 || bytes.Count(r.Body, []byte("\n")) != o.Count {
			t.Fatalf("download %s: %d", o.URL, r.Status)
		}
		// A user of the same tenant is not the requester.
		if r := w.Do(t, "GET", strings.TrimPrefix(o.URL, w.Server.URL), w.Tokens[authz.RoleAdmin], nil); r.Status != 404 {
			t.Fatalf("admin downloads the client's file: %d", r.Status)
		}
	}
	if fmt.Sprint(got) != "map[Observation:6 Patient:3]" {
		t.Fatalf("client export: %v", got)
	}
}
