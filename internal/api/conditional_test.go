package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// The identifier values below are the only "PHI" of these tests; no error
// may echo them.
const (
	idSys  = "urn:oid:1.2.36.146.595.217.0.1"
	idVal1 = "MRN-7781"
	idVal2 = "MRN-2294"
)

func patientWithID(val, gender string) string {
	return `{"resourceType":"Patient","identifier":[{"system":"` + idSys + `","value":"` + val + `"}],"gender":"` + gender + `"}`
}

func searchTotal(t *testing.T, w *apptest.Ward, path string) int {
	t.Helper()
	r := w.Do(t, "GET", path, w.Tokens[authz.RoleAdmin], nil)
	if r.Status != 200 {
		t.Fatalf("search %s: %d %.300s", path, r.Status, r.Body)
	}
	total, _ := r.JSON(t)["total"].(float64)
	return int(total)
}

func TestConditionalCreateUpdateDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		cond := "identifier=" + url.QueryEscape(idSys+"|"+idVal1)

		// Conditional create: none -> 201, one -> 200 with it, no write.
		r := w.Do(t, "POST", "/fhir/Patient", tok, []byte(patientWithID(idVal1, "female")), "If-None-Exist: "+cond)
		if r.Status != 201 {
			t.Fatalf("first conditional create: %d %s", r.Status, r.Body)
		}
		id, _ := r.JSON(t)["id"].(string)
		r = w.Do(t, "POST", "/fhir/Patient", tok, []byte(patientWithID(idVal1, "male")), "If-None-Exist: "+cond)
		if r.Status != 200 || r.JSON(t)["id"] != id || r.JSON(t)["gender"] != "female" || r.Header.Get("ETag") != `W/"1"` {
			t.Fatalf("second conditional create: %d %s", r.Status, r.Body)
		}
		// The type prefix form (If-None-Exist: Patient?...) is accepted too.
		r = w.Do(t, "POST", "/fhir/Patient", tok, []byte(patientWithID(idVal1, "male")), "If-None-Exist: Patient?"+cond)
		if r.Status != 200 || r.JSON(t)["id"] != id {
			t.Fatalf("prefixed conditional create: %d %s", r.Status, r.Body)
		}
		if n := searchTotal(t, w, "/fhir/Patient?"+cond); n != 1 {
			t.Fatalf("%d patients with the identifier, want 1", n)
		}

		// Conditional update: one match -> that resource is updated.
		r = w.Do(t, "PUT", "/fhir/Patient?"+cond, tok, []byte(patientWithID(idVal1, "other")))
		if r.Status != 200 || r.JSON(t)["id"] != id || r.Header.Get("ETag") != `W/"2"` {
			t.Fatalf("conditional update of a match: %d %s", r.Status, r.Body)
		}
		// No match -> created with a new id.
		cond2 := "identifier=" + url.QueryEscape(idSys+"|"+idVal2)
		r = w.Do(t, "PUT", "/fhir/Patient?"+cond2, tok, []byte(patientWithID(idVal2, "male")))
		if r.Status != 201 || r.JSON(t)["id"] == id || !regexp.MustCompile(`/fhir/Patient/[^/]+/_history/1$`).MatchString(r.Header.Get("Location")) {
			t.Fatalf("conditional update without a match: %d %s %v", r.Status, r.Body, r.Header)
		}
		id2, _ := r.JSON(t)["id"].(string)
		// No match, id in the body -> created with that id.
		r = w.Do(t, "PUT", "/fhir/Patient?identifier=x|absent", tok, []byte(withID(patient, "chosen-id")))
		if r.Status != 201 || r.JSON(t)["id"] != "chosen-id" {
			t.Fatalf("conditional update with body id: %d %s", r.Status, r.Body)
		}

		bySystem := "identifier=" + url.QueryEscape(idSys+"|") // matches id and id2
		for _, sc := range []scenario{
			{name: "create: several matches", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, status: 412,
				body: patient, headers: []string{"If-None-Exist: identifier=" + idSys + "|"}, want: []string{"more than one"}},
			{name: "update: body id differs from the match", method: "PUT", path: "/fhir/Patient?" + cond, role: authz.RoleAdmin, status: 400,
				body: withID(patient, id2), want: []string{"Patient.id"}, notWant: []string{idVal1}},
			{name: "update: several matches", method: "PUT", path: "/fhir/Patient?identifier=" + url.QueryEscape(idSys+"|"), role: authz.RoleAdmin, status: 412,
				body: patient, want: []string{"more than one"}},
			{name: "update: If-Match honoured", method: "PUT", path: "/fhir/Patient?" + cond, role: authz.RoleAdmin, status: 412,
				body: patientWithID(idVal1, "female"), headers: []string{`If-Match: W/"1"`}, want: []string{"If-Match"}},
			{name: "update: no condition", method: "PUT", path: "/fhir/Patient", role: authz.RoleAdmin, status: 400,
				body: patient, want: []string{"condition"}},
			{name: "update: unknown parameter is refused, not ignored", method: "PUT", path: "/fhir/Patient?nonsense=1", role: authz.RoleAdmin, status: 400,
				body: patient, want: []string{"unknown search parameter for Patient"}, notWant: []string{"nonsense"}},
			{name: "update: result parameters refused", method: "PUT", path: "/fhir/Patient?" + cond + "&_count=1", role: authz.RoleAdmin, status: 400,
				body: patient, want: []string{"_count"}, notWant: []string{idVal1}},
			{name: "create: malformed condition", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, status: 400,
				body: patient, headers: []string{"If-None-Exist: birthdate=notadate"}, want: []string{"birthdate"}},
			{name: "delete: no condition", method: "DELETE", path: "/fhir/Patient", role: authz.RoleAdmin, status: 400},
			{name: "delete: over the cap deletes nothing", method: "DELETE", path: "/fhir/Patient?" + bySystem, role: authz.RoleAdmin, status: 412,
				want: []string{"more than 1 resources"}},
			{name: "delete: nurse may not", method: "DELETE", path: "/fhir/Patient?" + cond, role: authz.RoleNurse, status: 403},
			{name: "delete: no match", method: "DELETE", path: "/fhir/Patient?identifier=x|absent", role: authz.RoleAdmin, status: 204},
			{name: "delete: one match", method: "DELETE", path: "/fhir/Patient?" + cond2, role: authz.RoleAdmin, status: 200, want: []string{"1 Patient resources deleted"}},
		} {
			sc.run(t, w)
		}
		if n := searchTotal(t, w, "/fhir/Patient?"+bySystem); n != 1 {
			t.Fatalf("%d patients with the system after the refused and the conditional delete, want 1", n)
		}
		if g := w.Do(t, "GET", "/fhir/Patient/"+id2, tok, nil); g.Status != 410 {
			t.Fatalf("conditionally deleted patient reads %d", g.Status)
		}
		if strings.Contains(w.Log.String(), idVal1) || strings.Contains(w.Log.String(), idVal2) {
			t.Fatal("an identifier value reached the log")
		}
	}, func(c *config.Config) { c.ConditionalDeleteMax = 1 })
}

// Many clients create the same patient at once with If-None-Exist: one
// creates it, every other gets it back.
func TestConcurrentConditionalCreates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		cond := "identifier=" + url.QueryEscape(idSys+"|"+idVal1)
		const n = 12
		var wg sync.WaitGroup
		var mu sync.Mutex
		statuses := map[int]int{}
		ids := map[string]bool{}
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := w.Do(t, "POST", "/fhir/Patient", tok, []byte(patientWithID(idVal1, "female")), "If-None-Exist: "+cond)
				mu.Lock()
				defer mu.Unlock()
				statuses[r.Status]++
				if r.Status < 300 {
					ids[r.JSON(t)["id"].(string)] = true
				}
			}()
		}
		wg.Wait()
		if statuses[201] != 1 || statuses[200] != n-1 || len(ids) != 1 {
			t.Fatalf("statuses %v, %d distinct ids; want one 201, %d 200 and one id", statuses, len(ids), n-1)
		}
		if got := searchTotal(t, w, "/fhir/Patient?"+cond); got != 1 {
			t.Fatalf("%d patients created", got)
		}
	})
}

// Conditional references inside a transaction, table-tested: exactly one
// match is rewritten; none, several or a malformed condition fail the
// whole transaction naming the entry and element, and write nothing.
func TestConditionalReferences(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		one := w.Create(t, authz.RoleAdmin, patientWithID(idVal1, "female"))
		w.Create(t, authz.RoleAdmin, patientWithID(idVal2, "male"))
		w.Create(t, authz.RoleAdmin, patientWithID(idVal2, "male"))
		obs := func(ref string) string {
			return `{"fullUrl":"urn:uuid:0f0e0d0c-0000-4000-8000-000000000001","resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"` + ref + `"}},"request":{"method":"POST","url":"Observation"}}`
		}
		enc := func(v string) string { return "Patient?identifier=" + url.QueryEscape(idSys+"|"+v) }
		cases := []struct {
			name    string
			ref     string
			status  int
			want    string // the stored subject reference, or a message
			atEntry bool
		}{
			{"one match", enc(idVal1), 200, "Patient/" + one, false},
			{"one match, unescaped", "Patient?identifier=" + idSys + "|" + idVal1, 200, "Patient/" + one, false},
			{"no match", enc("MRN-0000"), 412, "matches no resource", true},
			{"several matches", enc(idVal2), 412, "matches more than one resource", true},
			{"unknown parameter", "Patient?shoe-size=9", 400, "unknown search parameter for Patient", true},
			{"empty condition", "Patient?", 400, "at least one search parameter", true},
			{"plain reference untouched", "Patient/" + one, 200, "Patient/" + one, false},
		}
		for _, c := range cases {
			before := countVersions(t, w)
			body := `{"resourceType":"Bundle","type":"transaction","entry":[` +
				`{"resource":{"resourceType":"Patient","gender":"unknown"},"request":{"method":"POST","url":"Patient"}},` + obs(c.ref) + `]}`
			r := w.Do(t, "POST", "/fhir", tok, []byte(body), "Prefer: return=representation")
			if r.Status != c.status {
				t.Errorf("%s: status %d, want %d: %.400s", c.name, r.Status, c.status, r.Body)
				continue
			}
			if bytes.Contains(r.Body, []byte(idVal1)) && c.status != 200 || bytes.Contains(r.Body, []byte(idVal2)) {
				t.Errorf("%s: the answer echoes an identifier: %.400s", c.name, r.Body)
			}
			if c.status != 200 {
				if !bytes.Contains(r.Body, []byte(c.want)) || c.atEntry && !bytes.Contains(r.Body, []byte("Bundle.entry[1]")) {
					t.Errorf("%s: %.400s lacks %q or the entry", c.name, r.Body, c.want)
				}
				if after := countVersions(t, w); after != before {
					t.Errorf("%s: the failed transaction wrote %d versions", c.name, after-before)
				}
				continue
			}
			out := decodeBundle(t, r)
			if !bytes.Contains(out.Entry[1].Resource, []byte(`"reference":"`+c.want+`"`)) {
				t.Errorf("%s: subject not %s: %s", c.name, c.want, out.Entry[1].Resource)
			}
		}
		// In a batch each entry resolves its own conditional references,
		// and one entry's failure leaves the others standing.
		batch := `{"resourceType":"Bundle","type":"batch","entry":[` + obs(enc(idVal1)) + `,` + obs(enc(idVal2)) + `]}`
		r := w.Do(t, "POST", "/fhir", tok, []byte(batch), "Prefer: return=representation")
		out := decodeBundle(t, r)
		if r.Status != 200 || len(out.Entry) != 2 || out.Entry[0].Response.Status != "201 Created" || out.Entry[1].Response.Status != "412 Precondition Failed" {
			t.Fatalf("batch: %d %.500s", r.Status, r.Body)
		}
		if !bytes.Contains(out.Entry[0].Resource, []byte(`"reference":"Patient/`+one+`"`)) || !bytes.Contains(out.Entry[1].Response.Outcome, []byte("more than one")) {
			t.Fatalf("batch entries: %s / %s", out.Entry[0].Resource, out.Entry[1].Response.Outcome)
		}
	})
}

// A conditional create's search is a search: a token that may create
// patients but not search them (SMART v2 user/Patient.c) cannot probe
// identifiers through If-None-Exist or conditional references, and the
// refusal is audited.
func TestConditionalNeedsSearchPermission(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	w.Create(t, authz.RoleAdmin, patientWithID(idVal1, "female"))
	form := "grant_type=password&username=physician-user&password=" + url.QueryEscape(apptest.Password) + "&scope=" + url.QueryEscape("user/Patient.c user/Observation.c")
	r := w.Do(t, "POST", "/oauth2/token", "", []byte(form), "Content-Type: application/x-www-form-urlencoded")
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(r.Body, &tok)
	if r.Status != 200 || tok.AccessToken == "" {
		t.Fatalf("scoped login: %d %s", r.Status, r.Body)
	}
	cond := "identifier=" + url.QueryEscape(idSys+"|"+idVal1)
	for _, sc := range []scenario{
		{name: "plain create allowed", method: "POST", path: "/fhir/Patient", token: tok.AccessToken, body: patient, status: 201},
		{name: "conditional create needs search", method: "POST", path: "/fhir/Patient", token: tok.AccessToken, body: patient,
			headers: []string{"If-None-Exist: " + cond}, status: 403, notWant: []string{idVal1}},
		{name: "conditional reference needs search", method: "POST", path: "/fhir", token: tok.AccessToken, status: 403,
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient?` + cond + `"}},"request":{"method":"POST","url":"Observation"}}]}`},
	} {
		sc.run(t, w)
	}
	denials := 0
	for _, rec := range w.Ledger(t) {
		if rec.ResourceType == "Patient" && strings.HasPrefix(rec.Detail, "denied") {
			denials++
		}
	}
	if denials != 2 {
		t.Fatalf("%d search denials audited, want 2", denials)
	}
}

func gunzipFile(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
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

// The Blaze Synthea layout: shared batches with ifNoneExist, then a
// patient transaction whose references to the shared resources are
// conditional. Expectations come from the files themselves.
func TestSyntheaSharedAndConditionalReferences(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		shared, _ := filepath.Glob("testdata/synthea-blaze/0-*.json.gz")
		patients, _ := filepath.Glob("testdata/synthea-blaze/blaze-*.json.gz")
		if len(shared) != 2 || len(patients) != 1 {
			t.Fatalf("testdata: %d shared, %d patients", len(shared), len(patients))
		}
		// identifier "system|value" -> Type/id as created.
		byIdentifier := map[string]string{}
		for round := range 2 {
			for _, f := range shared {
				body := gunzipFile(t, f)
				var in struct {
					Entry []struct {
						Resource struct {
							ResourceType string
							Identifier   []struct{ System, Value string }
						}
						Request struct{ IfNoneExist string }
					}
				}
				json.Unmarshal(body, &in)
				r := w.Do(t, "POST", "/fhir", tok, body)
				if r.Status != 200 {
					t.Fatalf("%s: %d %.400s", f, r.Status, r.Body)
				}
				out := decodeBundle(t, r)
				for i, e := range out.Entry {
					conditional := in.Entry[i].Request.IfNoneExist != ""
					want := "201 Created"
					if round == 1 && conditional {
						want = "200 OK" // re-posting is idempotent where the entry is conditional
					}
					if e.Response.Status != want {
						t.Fatalf("round %d %s entry %d: %s, want %s: %s", round, filepath.Base(f), i, e.Response.Status, want, e.Response.Outcome)
					}
					loc := regexp.MustCompile(`^([A-Za-z]+/[^/]+)/_history/\d+$`).FindStringSubmatch(e.Response.Location)
					if loc == nil {
						t.Fatalf("entry %d location %q", i, e.Response.Location)
					}
					for _, id := range in.Entry[i].Resource.Identifier {
						k := in.Entry[i].Resource.ResourceType + "?" + id.System + "|" + id.Value
						if prev, ok := byIdentifier[k]; ok && prev != loc[1] && conditional {
							t.Fatalf("round %d: %s now resolves to another resource", round, in.Entry[i].Resource.ResourceType)
						}
						byIdentifier[k] = loc[1]
					}
				}
			}
		}
		body := gunzipFile(t, patients[0])
		r := w.Do(t, "POST", "/fhir", tok, body)
		if r.Status != 200 {
			t.Fatalf("patient transaction: %d %.600s", r.Status, r.Body)
		}
		var in struct {
			Entry []struct {
				Resource json.RawMessage
			}
		}
		json.Unmarshal(body, &in)
		out := decodeBundle(t, r)
		condRef := regexp.MustCompile(`"reference"\s*:\s*"([A-Za-z]+)\?identifier=([^"]*)"`)
		checked := 0
		for i, e := range out.Entry {
			if e.Response.Status != "201 Created" {
				t.Fatalf("entry %d: %s", i, e.Response.Status)
			}
			wantRefs := map[string]bool{}
			for _, m := range condRef.FindAllStringSubmatch(string(in.Entry[i].Resource), -1) {
				to := byIdentifier[m[1]+"?"+m[2]]
				if to == "" {
					t.Fatalf("entry %d refers to a shared %s that the shared batches do not hold", i, m[1])
				}
				wantRefs[to] = true
			}
			if len(wantRefs) == 0 {
				continue
			}
			g := w.Do(t, "GET", "/fhir/"+strings.TrimSuffix(strings.SplitN(e.Response.Location, "/_history/", 2)[0], "/"), tok, nil)
			if g.Status != 200 || regexp.MustCompile(`"reference":"([A-Za-z]+\?|urn:uuid:)`).Match(g.Body) {
				t.Fatalf("entry %d: %d, unresolved references left: %.300s", i, g.Status, g.Body)
			}
			for to := range wantRefs {
				if !bytes.Contains(g.Body, []byte(`"reference":"`+to+`"`)) {
					t.Fatalf("entry %d: no reference to %s", i, to)
				}
				checked++
			}
		}
		if checked == 0 {
			t.Fatal("the patient has no conditional references to check")
		}
		t.Logf("%d conditional references checked", checked)
	})
}

// A transaction that fails in the middle, at each of the places a
// conditional or versioned entry can fail, leaves nothing behind: no
// version, no search index row (the first entry's identifier finds
// nothing), no successful write in the ledger.
func TestTransactionAtomicUnderFailure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		existing := w.Create(t, authz.RoleAdmin, patientWithID(idVal2, "male"))
		w.Create(t, authz.RoleAdmin, patientWithID(idVal2, "male"))
		first := `{"fullUrl":"urn:uuid:0f0e0d0c-0000-4000-8000-0000000000aa","resource":` + patientWithID(idVal1, "female") + `,"request":{"method":"POST","url":"Patient"}}`
		last := `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0f0e0d0c-0000-4000-8000-0000000000aa"}},"request":{"method":"POST","url":"Observation"}}`
		dup := url.QueryEscape(idSys + "|" + idVal2)
		cases := []struct {
			name, middle string
			status       int
		}{
			{"stale If-Match", `{"resource":{"resourceType":"Patient","id":"` + existing + `","gender":"other"},"request":{"method":"PUT","url":"Patient/` + existing + `","ifMatch":"W/\"7\""}}`, 412},
			{"conditional create with several matches", `{"resource":` + patientWithID(idVal2, "male") + `,"request":{"method":"POST","url":"Patient","ifNoneExist":"identifier=` + dup + `"}}`, 412},
			{"conditional update with several matches", `{"resource":` + patientWithID(idVal2, "male") + `,"request":{"method":"PUT","url":"Patient?identifier=` + dup + `"}}`, 412},
			{"conditional delete over the cap", `{"request":{"method":"DELETE","url":"Patient?identifier=` + dup + `"}}`, 412},
			{"conditional reference to nothing", `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"y"},"performer":[{"reference":"Practitioner?identifier=x|none"}]},"request":{"method":"POST","url":"Observation"}}`, 412},
			{"invalid resource", `{"resource":{"resourceType":"Observation","status":"final"},"request":{"method":"POST","url":"Observation"}}`, 400},
		}
		for _, c := range cases {
			before := countVersions(t, w)
			ledgerBefore := len(w.Ledger(t))
			body := `{"resourceType":"Bundle","type":"transaction","entry":[` + first + `,` + c.middle + `,` + last + `]}`
			r := w.Do(t, "POST", "/fhir", tok, []byte(body))
			if r.Status != c.status || !bytes.Contains(r.Body, []byte("Bundle.entry[1]")) {
				t.Errorf("%s: %d %.400s, want %d naming Bundle.entry[1]", c.name, r.Status, r.Body, c.status)
			}
			if after := countVersions(t, w); after != before {
				t.Errorf("%s: %d versions written", c.name, after-before)
			}
			if n := searchTotal(t, w, "/fhir/Patient?identifier="+url.QueryEscape(idSys+"|"+idVal1)); n != 0 {
				t.Errorf("%s: the first entry's index rows are there (%d matches)", c.name, n)
			}
			for _, rec := range w.Ledger(t)[ledgerBefore:] {
				if rec.Outcome == 0 && (rec.Action == "create" || rec.Action == "update" || rec.Action == "delete") {
					t.Errorf("%s: the ledger records a successful %s: %+v", c.name, rec.Action, rec)
				}
			}
		}
	}, func(c *config.Config) { c.ConditionalDeleteMax = 1 })
}

// Two entries of one transaction conditionally creating the same thing
// create it once; the second is answered with the first's resource, and
// references to either fullUrl point at it.
func TestSameConditionTwiceInOneTransaction(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	cond := "identifier=" + url.QueryEscape(idSys+"|"+idVal1)
	entry := func(n int) string {
		return fmt.Sprintf(`{"fullUrl":"urn:uuid:0f0e0d0c-0000-4000-8000-00000000000%d","resource":%s,"request":{"method":"POST","url":"Patient","ifNoneExist":"%s"}}`, n, patientWithID(idVal1, "female"), cond)
	}
	obs := `{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:0f0e0d0c-0000-4000-8000-000000000002"}},"request":{"method":"POST","url":"Observation"}}`
	r := w.Do(t, "POST", "/fhir", w.Tokens[authz.RoleAdmin], []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+entry(1)+`,`+entry(2)+`,`+obs+`]}`), "Prefer: return=representation")
	if r.Status != 200 {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	out := decodeBundle(t, r)
	if out.Entry[0].Response.Status != "201 Created" || out.Entry[1].Response.Status != "200 OK" || out.Entry[0].Response.Location != out.Entry[1].Response.Location {
		t.Fatalf("entries: %+v / %+v", out.Entry[0].Response, out.Entry[1].Response)
	}
	pid := strings.Split(out.Entry[0].Response.Location, "/")[1]
	if !bytes.Contains(out.Entry[2].Resource, []byte(`"reference":"Patient/`+pid+`"`)) {
		t.Fatalf("reference to the second entry not rewritten to the one patient: %s", out.Entry[2].Resource)
	}
	if n := searchTotal(t, w, "/fhir/Patient?"+cond); n != 1 {
		t.Fatalf("%d patients", n)
	}
}

// A condition sees only what the caller could search: a physician's
// conditional create answers with a match only in their care (otherwise it
// creates), and a physician's conditional delete never removes a record
// outside their care.
func TestConditionsStayInCare(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		other := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"male","identifier":[{"system":"urn:mrn","value":"out-1"}]}`)
		outside := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},"subject":{"reference":"Patient/`+other+`"}}`)
		r := w.Do(t, "DELETE", "/fhir/Observation?code=http://loinc.org|8867-4", w.Tokens[authz.RolePhysician], nil)
		if r.Status >= 500 {
			t.Fatalf("conditional delete: %d %s", r.Status, r.Body)
		}
		if g := w.Do(t, "GET", "/fhir/Observation/"+outside, w.Tokens[authz.RoleAdmin], nil); g.Status != 200 {
			t.Errorf("the Observation outside the physician's care: %d, want 200 (untouched)", g.Status)
		}
		// The conditional create does not disclose the patient outside
		// the physician's care: it does not answer 200 with it.
		c := w.Do(t, "POST", "/fhir/Patient", w.Tokens[authz.RolePhysician], []byte(`{"resourceType":"Patient","gender":"male"}`), "If-None-Exist: identifier=urn:mrn|out-1")
		if c.Status == 200 || strings.Contains(string(c.Body), other) {
			t.Errorf("conditional create answered with a patient outside the physician's care: %d %s", c.Status, c.Body)
		}
	})
}
