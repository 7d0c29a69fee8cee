package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/fhir"
)

// patient names the test physician and nurse (apptest.Links) as general
// practitioners: their care relationship with her (issue #6).
const patient = `{"resourceType":"Patient","name":[{"family":"Quillfeather","given":["Oriel"]}],"gender":"female","birthDate":"1961-07-14",` +
	`"generalPractitioner":[{"reference":"Practitioner/pract-physician"},{"reference":"Practitioner/pract-nurse"}]}`

func forEachBackend(t *testing.T, f func(t *testing.T, w *apptest.Ward), mutate ...func(*config.Config)) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			f(t, apptest.Start(t, b, mutate...))
		})
	}
}

// scenario is one API exchange and what must and must not be in the answer.
type scenario struct {
	name    string
	method  string
	path    string
	role    authz.Role // "" sends no token
	token   string     // overrides role
	body    string
	headers []string
	status  int
	want    []string // substrings of the body
	notWant []string
	header  map[string]string // header -> regexp
}

func (sc scenario) run(t *testing.T, w *apptest.Ward) *apptest.Response {
	t.Helper()
	tok := sc.token
	if tok == "" && sc.role != "" {
		tok = w.Tokens[sc.role]
	}
	var body []byte
	if sc.body != "" {
		body = []byte(sc.body)
	}
	r := w.Do(t, sc.method, sc.path, tok, body, sc.headers...)
	if r.Status != sc.status {
		t.Errorf("%s: status %d, want %d; body %.400s", sc.name, r.Status, sc.status, r.Body)
	}
	for _, s := range sc.want {
		if !bytes.Contains(r.Body, []byte(s)) {
			t.Errorf("%s: body lacks %q: %.400s", sc.name, s, r.Body)
		}
	}
	for _, s := range sc.notWant {
		if bytes.Contains(r.Body, []byte(s)) {
			t.Errorf("%s: body contains %q: %.400s", sc.name, s, r.Body)
		}
	}
	for h, re := range sc.header {
		if !regexp.MustCompile(re).MatchString(r.Header.Get(h)) {
			t.Errorf("%s: header %s = %q, want /%s/", sc.name, h, r.Header.Get(h), re)
		}
	}
	return r
}

func TestAuthentication(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	id := w.Create(t, authz.RolePhysician, patient)
	for _, sc := range []scenario{
		{name: "health is open", method: "GET", path: "/health", status: 200, want: []string{`"ok"`}},
		{name: "jwks is open", method: "GET", path: "/.well-known/jwks.json", status: 200, want: []string{`"kty":"RSA"`, `"alg":"RS256"`}},
		{name: "smart configuration", method: "GET", path: "/.well-known/smart-configuration", status: 200,
			want: []string{`"token_endpoint":"` + w.Server.URL + `/oauth2/token"`, `"private_key_jwt"`, `"client-confidential-asymmetric"`,
				`"authorization_endpoint":"` + w.Server.URL + `/oauth2/authorize"`, `"code_challenge_methods_supported":["S256"]`, `"launch-standalone"`, `"authorization_code"`,
				`"launch-ehr"`, `"context-ehr-patient"`, `"client-confidential-symmetric"`, `"client_secret_basic"`, `"client_secret_post"`, `"launch"`},
			notWant: []string{`"plain"`}},
		{name: "openid configuration", method: "GET", path: "/.well-known/openid-configuration", status: 200,
			want: []string{`"issuer":"` + w.Server.URL + `"`, `"authorization_endpoint":"` + w.Server.URL + `/oauth2/authorize"`, `"jwks_uri":"` + w.Server.URL + `/.well-known/jwks.json"`,
				`"response_types_supported":["code"]`, `"id_token_signing_alg_values_supported":["RS256"]`, `"subject_types_supported":["public"]`, `"code_challenge_methods_supported":["S256"]`}},
		{name: "openid configuration under the FHIR base", method: "GET", path: "/fhir/.well-known/openid-configuration", status: 200, want: []string{`"token_endpoint"`}},
		{name: "smart configuration under the FHIR base", method: "GET", path: "/fhir/.well-known/smart-configuration", status: 200, want: []string{`"token_endpoint"`}},
		{name: "no token", method: "GET", path: "/fhir/Patient/" + id, status: 401, want: []string{`"OperationOutcome"`, "bearer token is required"}, notWant: []string{"Quillfeather"}, header: map[string]string{"WWW-Authenticate": "^Bearer"}},
		{name: "no token on create", method: "POST", path: "/fhir/Patient", body: patient, status: 401, want: []string{`"OperationOutcome"`}},
		{name: "no token on search", method: "GET", path: "/fhir/Patient", status: 401},
		{name: "garbage token", method: "GET", path: "/fhir/Patient/" + id, token: "not.a.jwt", status: 401, want: []string{"invalid or expired"}},
		{name: "basic auth", method: "GET", path: "/fhir/Patient/" + id, headers: []string{"Authorization: Basic YTpi"}, status: 401},
		{name: "alg none token", method: "GET", path: "/fhir/Patient/" + id, token: algNone(t, w.Tokens[authz.RoleAdmin]), status: 401},
		{name: "tampered token", method: "GET", path: "/fhir/Patient/" + id, token: tamper(w.Tokens[authz.RolePhysician]), status: 401, notWant: []string{"Quillfeather"}},
		{name: "valid token", method: "GET", path: "/fhir/Patient/" + id, role: authz.RolePhysician, status: 200, want: []string{"Quillfeather"}},
	} {
		sc.run(t, w)
	}

	// The token endpoint speaks OAuth2 errors.
	for _, c := range []struct {
		form   string
		status int
		err    string
	}{
		{"grant_type=password&username=physician-user&password=wrong%20password%20here", 400, "invalid_grant"},
		{"grant_type=password&username=nobody&password=whatever%20whatever", 400, "invalid_grant"},
		{"grant_type=password&username=physician-user", 400, "invalid_request"},
		{"grant_type=client_credentials", 401, "invalid_client"},
		{"grant_type=authorization_code&code=x", 400, "invalid_request"},
		{"grant_type=authorization_code&code=x&client_id=a&redirect_uri=https%3A%2F%2Fa.example%2F&code_verifier=" + strings.Repeat("v", 43), 400, "invalid_grant"},
		{"grant_type=implicit", 400, "unsupported_grant_type"},
		{"", 400, "invalid_request"},
	} {
		resp, err := http.Post(w.Server.URL+"/oauth2/token", "application/x-www-form-urlencoded", strings.NewReader(c.form))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(string(b), c.err) {
			t.Errorf("token %q: %d %s", c.form, resp.StatusCode, b)
		}
	}

	// The token is an RS256 JWT whose kid is in the JWKS.
	hdr := jwtHeader(t, w.Tokens[authz.RoleNurse])
	if hdr["alg"] != "RS256" || hdr["kid"] == "" {
		t.Fatalf("token header %v", hdr)
	}
	jwks := w.Do(t, "GET", "/.well-known/jwks.json", "", nil)
	if !strings.Contains(string(jwks.Body), fmt.Sprint(hdr["kid"])) {
		t.Fatalf("kid %v not in JWKS %s", hdr["kid"], jwks.Body)
	}
	// Logins are audited, failures too.
	var ok, failed int
	for _, r := range w.Ledger(t) {
		if r.Action == "login" {
			if r.Outcome == 0 {
				ok++
			} else {
				failed++
			}
		}
	}
	if ok < 4 || failed < 2 {
		t.Fatalf("login audit: %d successes, %d failures", ok, failed)
	}
}

func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	b, err := decodeSeg(seg)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

func algNone(t *testing.T, tok string) string {
	parts := strings.Split(tok, ".")
	return encodeSeg([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := decodeSeg(parts[1])
	payload = bytes.Replace(payload, []byte(`"physician"`), []byte(`"admin"`), 1)
	return parts[0] + "." + encodeSeg(payload) + "." + parts[2]
}

// TestCRUDAndHistory runs the FHIR interactions as an admin, who reaches
// every record of the tenant (WARD_ADMIN_PHI_ACCESS default): 404 and 410
// are answered as such. What clinicians and patients see instead is in
// TestAccessByRole.
func TestCRUDAndHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		r := w.Do(t, "POST", "/fhir/Patient", tok, []byte(patient))
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		m := r.JSON(t)
		id := m["id"].(string)
		meta := m["meta"].(map[string]any)
		if meta["versionId"] != "1" || meta["lastUpdated"] == "" {
			t.Fatalf("meta %v", meta)
		}
		if r.Header.Get("ETag") != `W/"1"` || !strings.HasSuffix(r.Header.Get("Location"), "/fhir/Patient/"+id+"/_history/1") {
			t.Fatalf("headers %v", r.Header)
		}
		if r.Header.Get("Last-Modified") == "" || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/fhir+json") {
			t.Fatalf("headers %v", r.Header)
		}
		for _, sc := range []scenario{
			{name: "read", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, status: 200, want: []string{`"id":"` + id + `"`, "Quillfeather"}, header: map[string]string{"ETag": `^W/"1"$`}},
			{name: "read trailing slash", method: "GET", path: "/fhir/Patient/" + id + "/", role: authz.RoleAdmin, status: 200, want: []string{"Quillfeather"}},
			{name: "read double slash base", method: "GET", path: "/fhir//Patient/" + id, role: authz.RoleAdmin, status: 200, want: []string{"Quillfeather"}},
			{name: "read missing", method: "GET", path: "/fhir/Patient/does-not-exist", role: authz.RoleAdmin, status: 404, want: []string{"OperationOutcome", "not-found"}},
			{name: "If-None-Match current", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{`If-None-Match: W/"1"`}, status: 304,
				notWant: []string{"Quillfeather"}, header: map[string]string{"ETag": `^W/"1"$`}},
			{name: "If-None-Match list", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{`If-None-Match: W/"7", W/"1"`}, status: 304},
			{name: "If-None-Match stale", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{`If-None-Match: W/"0"`}, status: 200, want: []string{"Quillfeather"}},
			{name: "If-Modified-Since later", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{"If-Modified-Since: " + time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}, status: 304},
			{name: "If-Modified-Since earlier", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{"If-Modified-Since: Mon, 02 Jan 2006 15:04:05 GMT"}, status: 200},
			{name: "vread", method: "GET", path: "/fhir/Patient/" + id + "/_history/1", role: authz.RoleAdmin, status: 200, want: []string{`"versionId":"1"`}},
			{name: "vread missing version", method: "GET", path: "/fhir/Patient/" + id + "/_history/9", role: authz.RoleAdmin, status: 404},
			{name: "vread bad version", method: "GET", path: "/fhir/Patient/" + id + "/_history/x", role: authz.RoleAdmin, status: 400},
			{name: "update wrong If-Match", method: "PUT", path: "/fhir/Patient/" + id, role: authz.RoleAdmin,
				body: withID(patient, id), headers: []string{`If-Match: W/"7"`}, status: 412, want: []string{"If-Match"}},
			{name: "update", method: "PUT", path: "/fhir/Patient/" + id, role: authz.RoleAdmin,
				body: strings.Replace(withID(patient, id), "Oriel", "Oriana", 1), headers: []string{`If-Match: W/"1"`}, status: 200,
				want: []string{`"versionId":"2"`, "Oriana"}, header: map[string]string{"ETag": `^W/"2"$`}},
			{name: "update without If-Match", method: "PUT", path: "/fhir/Patient/" + id, role: authz.RoleAdmin,
				body: withID(patient, id), status: 200, want: []string{`"versionId":"3"`}},
			{name: "vread old version", method: "GET", path: "/fhir/Patient/" + id + "/_history/2", role: authz.RoleAdmin, status: 200, want: []string{"Oriana"}},
			{name: "update body id mismatch", method: "PUT", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, body: withID(patient, "other"), status: 400, want: []string{"Patient.id"}},
			{name: "update body without id", method: "PUT", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, body: patient, status: 400, want: []string{"Patient.id"}},
			{name: "update creates new id", method: "PUT", path: "/fhir/Patient/client-chosen-1", role: authz.RoleAdmin, body: withID(patient, "client-chosen-1"), status: 201,
				header: map[string]string{"Location": "/fhir/Patient/client-chosen-1/_history/1$"}},
			{name: "prefer minimal", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: patient, headers: []string{"Prefer: return=minimal"}, status: 201, notWant: []string{"Quillfeather"},
				header: map[string]string{"Location": "/fhir/Patient/.+/_history/1$"}},
			{name: "prefer OperationOutcome", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: patient, headers: []string{"Prefer: return=OperationOutcome"}, status: 201,
				want: []string{`"OperationOutcome"`}, notWant: []string{"Quillfeather"}},
			{name: "history instance", method: "GET", path: "/fhir/Patient/" + id + "/_history", role: authz.RoleAdmin, status: 200,
				want: []string{`"type":"history"`, `"method":"POST"`, `"method":"PUT"`, `"versionId":"3"`, `"versionId":"1"`}},
			{name: "delete", method: "DELETE", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, status: 200, want: []string{"deleted"}},
			{name: "read deleted", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, status: 410, want: []string{"OperationOutcome"}, notWant: []string{"Quillfeather"}},
			{name: "delete again", method: "DELETE", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, status: 200},
			{name: "delete missing", method: "DELETE", path: "/fhir/Patient/never-was", role: authz.RoleAdmin, status: 204, header: map[string]string{"ETag": "^$"}},
			{name: "vread before delete", method: "GET", path: "/fhir/Patient/" + id + "/_history/3", role: authz.RoleAdmin, status: 200},
			{name: "vread deletion", method: "GET", path: "/fhir/Patient/" + id + "/_history/4", role: authz.RoleAdmin, status: 410},
			{name: "history keeps deleted", method: "GET", path: "/fhir/Patient/" + id + "/_history", role: authz.RoleAdmin, status: 200, want: []string{`"method":"DELETE"`, `"versionId":"1"`}},
			{name: "update resurrects", method: "PUT", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, body: withID(patient, id), status: 200, want: []string{`"versionId":"5"`}},
			{name: "history type", method: "GET", path: "/fhir/Patient/_history", role: authz.RoleAdmin, status: 200, want: []string{`"type":"history"`, "client-chosen-1"}},
			{name: "history system", method: "GET", path: "/fhir/_history", role: authz.RoleAdmin, status: 200, want: []string{`"type":"history"`}},
			{name: "search by _id", method: "GET", path: "/fhir/Patient?_id=" + id, role: authz.RoleAdmin, status: 200, want: []string{`"type":"searchset"`, `"id":"` + id + `"`}, notWant: []string{"client-chosen-1"}},
			{name: "search POST", method: "POST", path: "/fhir/Patient/_search", role: authz.RoleAdmin, body: "", headers: []string{"Content-Type: application/x-www-form-urlencoded"}, status: 200, want: []string{`"type":"searchset"`}},
			{name: "search unknown param lenient", method: "GET", path: "/fhir/Patient?foo=bar", role: authz.RoleAdmin, status: 200, notWant: []string{"foo=bar"}},
			{name: "search unknown param strict", method: "GET", path: "/fhir/Patient?foo=bar", role: authz.RoleAdmin, headers: []string{"Prefer: handling=strict"}, status: 400, want: []string{"unknown search parameter for Patient"}, notWant: []string{"foo"}},
			{name: "search bad _count", method: "GET", path: "/fhir/Patient?_count=x", role: authz.RoleAdmin, status: 400, want: []string{"_count"}},
		} {
			sc.run(t, w)
		}
	})
}

func TestPagingFollowsNextLinks(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	for range 7 {
		w.Create(t, authz.RoleAdmin, patient)
	}
	for _, start := range []string{"/fhir/Patient?_count=3", "/fhir/Patient/_history?_count=3"} {
		seen := map[string]bool{}
		next := start
		for pages := 0; next != ""; pages++ {
			if pages > 5 {
				t.Fatal("paging does not end")
			}
			r := w.Do(t, "GET", next, w.Tokens[authz.RoleAdmin], nil)
			if r.Status != 200 {
				t.Fatalf("%s: %d %s", next, r.Status, r.Body)
			}
			var b struct {
				Link  []struct{ Relation, URL string }
				Entry []struct{ FullURL string }
			}
			json.Unmarshal(r.Body, &b)
			for _, e := range b.Entry {
				if seen[e.FullURL] {
					t.Fatalf("%s: %s twice", start, e.FullURL)
				}
				seen[e.FullURL] = true
			}
			next = ""
			for _, l := range b.Link {
				if l.Relation == "next" {
					next = strings.TrimPrefix(l.URL, w.Server.URL)
				}
			}
		}
		if len(seen) != 7 {
			t.Fatalf("%s: %d resources over all pages, want 7", start, len(seen))
		}
	}
}

func TestEveryResourceTypeIsServed(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	tok := w.Tokens[authz.RoleAdmin]
	types := fhir.ResourceTypes()
	if len(types) != 146 {
		t.Fatalf("%d resource types, want the 146 of R4", len(types))
	}
	for _, typ := range types {
		// The smallest instance the schema accepts for each type.
		body := minimal(typ)
		r := w.Do(t, "POST", "/fhir/"+typ, tok, []byte(body))
		if typ == "AuditEvent" {
			// Served from the ledger, read-only (docs/audit-events.md).
			if r.Status != 405 {
				t.Errorf("AuditEvent create: %d, want 405", r.Status)
			}
			continue
		}
		if r.Status == 400 {
			// Types with required elements say which; that is served too.
			if !strings.Contains(string(r.Body), "required") {
				t.Errorf("%s: 400 without a required-element issue: %s", typ, r.Body)
			}
			continue
		}
		if r.Status != 201 {
			t.Errorf("%s create: %d %s", typ, r.Status, r.Body)
			continue
		}
		id := r.JSON(t)["id"].(string)
		if g := w.Do(t, "GET", "/fhir/"+typ+"/"+id, tok, nil); g.Status != 200 {
			t.Errorf("%s read: %d", typ, g.Status)
		}
	}
	caps := w.Do(t, "GET", "/fhir/metadata", "", nil)
	if caps.Status != 200 {
		t.Fatalf("metadata: %d", caps.Status)
	}
	var cs struct {
		ResourceType string
		FhirVersion  string
		Rest         []struct {
			Resource []struct {
				Type        string
				Interaction []struct{ Code string }
			}
		}
	}
	json.Unmarshal(caps.Body, &cs)
	if cs.ResourceType != "CapabilityStatement" || cs.FhirVersion != "4.0.1" || len(cs.Rest) != 1 || len(cs.Rest[0].Resource) != 146 {
		t.Fatalf("capability statement: %s %s %d", cs.ResourceType, cs.FhirVersion, len(cs.Rest))
	}
	for _, res := range cs.Rest[0].Resource {
		var codes []string
		for _, i := range res.Interaction {
			codes = append(codes, i.Code)
		}
		if got := strings.Join(codes, ","); got != "read,vread,update,patch,delete,history-instance,history-type,create,search-type" {
			t.Fatalf("%s interactions %s", res.Type, got)
		}
	}
}

// minimal returns a body for typ that satisfies the JSON schema's required
// properties where the schema has them (a handful of R4 types).
func minimal(typ string) string {
	return `{"resourceType":"` + typ + `"}`
}

func TestBadInput(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.MaxBodyBytes = 64 << 10 })
	huge := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 70<<10) + `"}]}`
	for _, sc := range []scenario{
		{name: "banana gender", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `{"resourceType":"Patient","gender":"banana"}`, status: 400,
			want: []string{`"OperationOutcome"`, `"Patient.gender"`}, notWant: []string{"banana"}},
		{name: "malformed JSON", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `{"resourceType":"Patient",`, status: 400, want: []string{"OperationOutcome", "JSON"}},
		{name: "not an object", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `[1,2]`, status: 400, want: []string{"OperationOutcome"}},
		{name: "wrong type for URL", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `{"resourceType":"Observation","status":"final","code":{"text":"x"}}`, status: 400, want: []string{"Observation", "Patient"}},
		{name: "unknown type in URL", method: "POST", path: "/fhir/Banana", role: authz.RoleAdmin, body: `{"resourceType":"Banana"}`, status: 404, want: []string{"unknown resource type"}},
		{name: "unknown type in body", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `{"resourceType":"Banana"}`, status: 400},
		{name: "unknown element", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `{"resourceType":"Patient","favouriteColour":"blue"}`, status: 400, want: []string{"favouriteColour"}, notWant: []string{"blue"}},
		{name: "wrong JSON type", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `{"resourceType":"Patient","active":"yes"}`, status: 400, want: []string{"Patient.active"}},
		{name: "bad date", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `{"resourceType":"Patient","birthDate":"1961-13-45x"}`, status: 400, want: []string{"Patient.birthDate"}, notWant: []string{"1961-13-45x"}},
		{name: "duplicate keys", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `{"resourceType":"Patient","gender":"male","gender":"female"}`, status: 400},
		{name: "body too large", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: huge, status: 413, want: []string{"OperationOutcome", "limit"}},
		{name: "xml body outside the FHIR namespace", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `<Patient/>`, headers: []string{"Content-Type: application/fhir+xml"}, status: 400, want: []string{"OperationOutcome", "namespace"}},
		{name: "yaml body", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: `resourceType: Patient`, headers: []string{"Content-Type: application/yaml"}, status: 415},
		{name: "accept html", method: "GET", path: "/fhir/Patient", role: authz.RoleAdmin, headers: []string{"Accept: text/html"}, status: 406, want: []string{"OperationOutcome"}},
		{name: "format turtle", method: "GET", path: "/fhir/Patient?_format=ttl", role: authz.RoleAdmin, status: 406},
		{name: "accept xml", method: "GET", path: "/fhir/Patient", role: authz.RoleAdmin, headers: []string{"Accept: application/fhir+xml"}, status: 200, want: []string{`<Bundle xmlns="http://hl7.org/fhir">`}},
		{name: "format xml", method: "GET", path: "/fhir/Patient?_format=xml", role: authz.RoleAdmin, status: 200, want: []string{`<Bundle xmlns="http://hl7.org/fhir">`}},
		{name: "format json", method: "GET", path: "/fhir/Patient?_format=json", role: authz.RoleAdmin, status: 200},
		{name: "accept json", method: "GET", path: "/fhir/Patient", role: authz.RoleAdmin, headers: []string{"Accept: application/json"}, status: 200},
		{name: "accept list", method: "GET", path: "/fhir/Patient", role: authz.RoleAdmin, headers: []string{"Accept: application/fhir+xml;q=0.9, application/fhir+json"}, status: 200},
		{name: "bad id in URL", method: "GET", path: "/fhir/Patient/" + strings.Repeat("a", 65), role: authz.RoleAdmin, status: 400},
		{name: "bad If-Match", method: "PUT", path: "/fhir/Patient/x1", role: authz.RoleAdmin, body: withID(patient, "x1"), headers: []string{"If-Match: banana"}, status: 400},
		{name: "unsupported method", method: "TRACE", path: "/fhir/Patient/x1", role: authz.RoleAdmin, status: 405, want: []string{"OperationOutcome"}},
		{name: "unknown endpoint", method: "GET", path: "/nope", status: 404, want: []string{"OperationOutcome"}},
		{name: "hostile string", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin, body: "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\\u0000<script>'; DROP TABLE resources;--\"}]}", status: 201},
	} {
		sc.run(t, w)
	}
	// Nothing was half-written: only the one valid create exists.
	r := w.Do(t, "GET", "/fhir/Patient/_history", w.Tokens[authz.RoleAdmin], nil)
	var b struct{ Entry []any }
	json.Unmarshal(r.Body, &b)
	if len(b.Entry) != 1 {
		t.Fatalf("%d versions stored after bad input, want 1", len(b.Entry))
	}
}

func TestChunkedBody(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < len(patient); i += 10 {
			pw.Write([]byte(patient[i:min(i+10, len(patient))]))
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", w.URL+"/Patient", pr)
	req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RolePhysician])
	req.Header.Set("Content-Type", "application/fhir+json")
	// Unknown length over HTTP/1.1: the client sends the body chunked.
	if req.ContentLength != 0 {
		t.Fatalf("content length %d: the body would not be chunked", req.ContentLength)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 || !bytes.Contains(b, []byte("Quillfeather")) {
		t.Fatalf("chunked create: %d %s", resp.StatusCode, b)
	}
}

// TestResponsesAreSized: a resource and a search page larger than
// net/http's chunking threshold (2 KB) go out with a Content-Length that
// matches the body, not chunked.
func TestResponsesAreSized(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	tok := w.Tokens[authz.RolePhysician]
	big := strings.Replace(patient, `"resourceType":"Patient"`, `"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">`+strings.Repeat("x", 3000)+`</div>"}`, 1)
	created := w.Do(t, "POST", "/fhir/Patient", tok, []byte(big))
	if created.Status != 201 {
		t.Fatalf("create: %d %s", created.Status, created.Body)
	}
	var p struct{ ID string }
	if err := json.Unmarshal(created.Body, &p); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/Patient/" + p.ID, "/Patient?_id=" + p.ID, "/Patient"} {
		req, _ := http.NewRequest("GET", w.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) < 3000 {
			t.Fatalf("%s: %d, %d bytes", path, resp.StatusCode, len(b))
		}
		if len(resp.TransferEncoding) != 0 || resp.ContentLength != int64(len(b)) {
			t.Fatalf("%s: transfer encoding %v, content length %d for %d bytes", path, resp.TransferEncoding, resp.ContentLength, len(b))
		}
	}
}

// Bundles are serialised into reused buffers (writeBundle): responses
// written at the same time must each carry their own page, whole. Under
// -race (CI runs it) a buffer reused while still being written is a
// reported race even when the pages happen not to mix.
func TestConcurrentBundlesDoNotMix(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	tok := w.Tokens[authz.RolePhysician]
	ids := map[string]string{} // id -> marker in its narrative
	for i := range 6 {
		marker := fmt.Sprintf("marker%d", i)
		text := strings.Repeat(marker, 1+i*900) // up to about 35 KB
		body := strings.Replace(patient, `"resourceType":"Patient"`, `"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">`+text+`</div>"}`, 1)
		created := w.Do(t, "POST", "/fhir/Patient", tok, []byte(body))
		var p struct{ ID string }
		if created.Status != 201 || json.Unmarshal(created.Body, &p) != nil {
			t.Fatalf("create: %d %s", created.Status, created.Body)
		}
		ids[p.ID] = marker
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for id, marker := range ids {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					req, _ := http.NewRequest("GET", w.URL+"/Patient?_id="+id, nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						errs <- err
						return
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					var page struct {
						Entry []struct{ Resource struct{ ID string } }
					}
					if err != nil || resp.StatusCode != 200 || json.Unmarshal(b, &page) != nil {
						errs <- fmt.Errorf("%s: %d, %v, %.200s", id, resp.StatusCode, err, b)
						return
					}
					if len(page.Entry) != 1 || page.Entry[0].Resource.ID != id {
						errs <- fmt.Errorf("%s: page holds %+v", id, page.Entry)
						return
					}
					for other, m := range ids {
						if other != id && strings.Contains(string(b), m) {
							errs <- fmt.Errorf("%s: page holds the narrative of %s", id, other)
							return
						}
					}
					if !strings.Contains(string(b), marker) {
						errs <- fmt.Errorf("%s: its own narrative is missing", id)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRolesAreEnforced(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	id := w.Create(t, authz.RolePhysician, patient)
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/` + id + `"}}`
	for _, sc := range []scenario{
		{name: "nurse reads", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleNurse, status: 200},
		{name: "nurse records an observation", method: "POST", path: "/fhir/Observation", role: authz.RoleNurse, body: obs, status: 201},
		{name: "nurse may not create a patient", method: "POST", path: "/fhir/Patient", role: authz.RoleNurse, body: patient, status: 403, notWant: []string{"Quillfeather"}},
		{name: "nurse may not delete", method: "DELETE", path: "/fhir/Patient/" + id, role: authz.RoleNurse, status: 403},
		{name: "patient user may not read another patient", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleUser, status: 403, notWant: []string{"Quillfeather"}},
		{name: "denial does not reveal existence", method: "GET", path: "/fhir/Patient/no-such-id", role: authz.RoleUser, status: 403},
		{name: "admin reads", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, status: 200},
	} {
		sc.run(t, w)
	}
	var denials int
	for _, r := range w.Ledger(t) {
		if strings.HasPrefix(r.Detail, "denied") {
			denials++
		}
	}
	if denials != 4 {
		t.Fatalf("%d denials audited, want 4", denials)
	}
}

func withID(body, id string) string {
	return strings.Replace(body, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1)
}

func decodeSeg(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
func encodeSeg(b []byte) string          { return base64.RawURLEncoding.EncodeToString(b) }

func TestJSONPatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		id := w.Create(t, authz.RoleAdmin, patient)
		jp := "Content-Type: application/json-patch+json"
		for _, sc := range []scenario{
			{name: "patch", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{jp, `If-Match: W/"1"`},
				body:   `[{"op":"test","path":"/name/0/family","value":"Quillfeather"},{"op":"add","path":"/name/0/given/-","value":"Maud"},{"op":"replace","path":"/gender","value":"other"}]`,
				status: 200, want: []string{`"versionId":"2"`, "Maud", `"gender":"other"`}, header: map[string]string{"ETag": `^W/"2"$`}},
			{name: "stale If-Match", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{jp, `If-Match: W/"1"`},
				body: `[{"op":"remove","path":"/gender"}]`, status: 412},
			{name: "failed test op", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{jp},
				body: `[{"op":"test","path":"/gender","value":"female"}]`, status: 422, notWant: []string{"other", "female"}},
			{name: "result invalid", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{jp},
				body: `[{"op":"replace","path":"/gender","value":"banana"}]`, status: 422, want: []string{"Patient.gender"}, notWant: []string{"banana"}},
			{name: "changes the id", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{jp},
				body: `[{"op":"replace","path":"/id","value":"other"}]`, status: 422},
			{name: "malformed patch", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, headers: []string{jp},
				body: `{"op":"add"}`, status: 400, want: []string{"JSON array"}},
			{name: "wrong content type", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleAdmin,
				headers: []string{"Content-Type: text/plain"}, body: `[]`, status: 415},
			{name: "JSON Patch sent as FHIR JSON", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleAdmin,
				body: `[]`, status: 400, want: []string{"application/json-patch+json"}},
			{name: "missing resource", method: "PATCH", path: "/fhir/Patient/nope", role: authz.RoleAdmin, headers: []string{jp}, body: `[]`, status: 404},
			{name: "nurse may not patch a patient", method: "PATCH", path: "/fhir/Patient/" + id, role: authz.RoleNurse, headers: []string{jp}, body: `[]`, status: 403},
			{name: "read after patch", method: "GET", path: "/fhir/Patient/" + id, role: authz.RoleAdmin, status: 200, want: []string{`"versionId":"2"`, "Maud"}},
			{name: "history shows both", method: "GET", path: "/fhir/Patient/" + id + "/_history", role: authz.RoleAdmin, status: 200, want: []string{`"versionId":"1"`, `"versionId":"2"`}},
		} {
			sc.run(t, w)
		}
		var patches, failed int
		for _, r := range w.Ledger(t) {
			if r.Action == "patch" {
				patches++
				if r.Outcome != 0 {
					failed++
				}
			}
		}
		// Every attempt that reached the data is in the ledger; the
		// malformed document and the wrong media type are refused at the
		// edge, before any data is touched, like an unparsable create.
		if patches != 7 || failed != 6 {
			t.Fatalf("ledger: %d patch records, %d failed; want 7 and 6", patches, failed)
		}
	})
}

func TestScopedTokens(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	pid := w.Create(t, authz.RolePhysician, patient)
	obs := `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/` + pid + `"}}`
	oid := w.Create(t, authz.RolePhysician, obs)
	login := func(scope string) *apptest.Response {
		form := "grant_type=password&username=physician-user&password=" + url.QueryEscape(apptest.Password) + "&scope=" + url.QueryEscape(scope)
		return w.Do(t, "POST", "/oauth2/token", "", []byte(form), "Content-Type: application/x-www-form-urlencoded")
	}
	if r := login("user/*.frobnicate"); r.Status != 400 || !bytes.Contains(r.Body, []byte("invalid_scope")) {
		t.Fatalf("bad scope: %d %s", r.Status, r.Body)
	}
	r := login("openid user/Observation.rs")
	var tok struct {
		AccessToken string `json:"access_token"`
		Scope       string
	}
	json.Unmarshal(r.Body, &tok)
	if r.Status != 200 || tok.Scope != "openid user/Observation.rs" {
		t.Fatalf("scoped login: %d %s", r.Status, r.Body)
	}
	for _, sc := range []scenario{
		{name: "scope grants reading observations", method: "GET", path: "/fhir/Observation/" + oid, token: tok.AccessToken, status: 200},
		{name: "scope grants searching observations", method: "GET", path: "/fhir/Observation", token: tok.AccessToken, status: 200},
		{name: "scope does not grant patients", method: "GET", path: "/fhir/Patient/" + pid, token: tok.AccessToken, status: 403, notWant: []string{"Quillfeather"}},
		{name: "scope does not grant writes", method: "POST", path: "/fhir/Observation", token: tok.AccessToken, body: obs, status: 403},
		{name: "default scope leaves it to the role", method: "POST", path: "/fhir/Patient", role: authz.RolePhysician, body: patient, status: 201},
	} {
		sc.run(t, w)
	}
	var scopeDenials int
	for _, rec := range w.Ledger(t) {
		if strings.Contains(rec.Detail, "no-scope-grants-this") {
			scopeDenials++
		}
	}
	if scopeDenials != 2 {
		t.Fatalf("%d scope denials audited, want 2", scopeDenials)
	}
}

func TestRevokeAndIntrospect(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	pid := w.Create(t, authz.RolePhysician, patient)
	tok := w.Login(t, "nurse-user", apptest.Password)
	form := func(tk string) []byte { return []byte(url.Values{"token": {tk}}.Encode()) }
	ct := "Content-Type: application/x-www-form-urlencoded"
	introspect := func(caller, tk string) map[string]any {
		r := w.Do(t, "POST", "/oauth2/introspect", caller, form(tk), ct)
		if r.Status != 200 {
			t.Fatalf("introspect: %d %s", r.Status, r.Body)
		}
		return r.JSON(t)
	}
	admin := w.Tokens[authz.RoleAdmin]
	if m := introspect(admin, tok); m["active"] != true || m["sub"] != w.UserIDs[authz.RoleNurse] || m["role"] != "nurse" || m["scope"] != "user/*.cruds" {
		t.Fatalf("introspection of a live token: %v", m)
	}
	if m := introspect(admin, "garbage"); m["active"] != false || len(m) != 1 {
		t.Fatalf("introspection of garbage: %v", m)
	}
	if r := w.Do(t, "POST", "/oauth2/introspect", "", form(tok), ct); r.Status != 401 {
		t.Fatalf("unauthenticated introspection: %d", r.Status)
	}
	if r := w.Do(t, "POST", "/oauth2/introspect", w.Tokens[authz.RoleNurse], form(tok), ct); r.Status != 403 {
		t.Fatalf("nurse introspection: %d", r.Status)
	}
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, tok, nil); r.Status != 200 {
		t.Fatalf("before revocation: %d", r.Status)
	}
	if r := w.Do(t, "POST", "/oauth2/revoke", "", form(tok), ct); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, tok, nil); r.Status != 401 {
		t.Fatalf("revoked token still works: %d", r.Status)
	}
	if m := introspect(admin, tok); m["active"] != false {
		t.Fatalf("revoked token introspected active: %v", m)
	}
	// Revoking garbage or twice is fine (RFC 7009); other tokens live on.
	for _, tk := range []string{"garbage", tok} {
		if r := w.Do(t, "POST", "/oauth2/revoke", "", form(tk), ct); r.Status != 200 {
			t.Fatalf("revoke %q: %d", tk, r.Status)
		}
	}
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, w.Tokens[authz.RoleNurse], nil); r.Status != 200 {
		t.Fatalf("another token of the same user: %d", r.Status)
	}
	var revokes int
	for _, rec := range w.Ledger(t) {
		if rec.Action == "token-revoke" {
			revokes++
		}
	}
	if revokes != 1 {
		t.Fatalf("%d revocations audited, want 1", revokes)
	}
}

func TestRefreshTokens(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	ct := "Content-Type: application/x-www-form-urlencoded"
	type tokenResp struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Scope        string
		Error        string
	}
	post := func(form url.Values) (int, tokenResp) {
		r := w.Do(t, "POST", "/oauth2/token", "", []byte(form.Encode()), ct)
		var tr tokenResp
		json.Unmarshal(r.Body, &tr)
		return r.Status, tr
	}
	login := url.Values{"grant_type": {"password"}, "username": {"physician-user"}, "password": {apptest.Password}}
	if _, tr := post(login); tr.RefreshToken != "" {
		t.Fatal("a refresh token without offline_access or online_access")
	}
	login.Set("scope", "user/*.rs offline_access")
	status, first := post(login)
	if status != 200 || first.RefreshToken == "" {
		t.Fatalf("login with offline_access: %d %+v", status, first)
	}
	refresh := func(rt, scope string) (int, tokenResp) {
		f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			f.Set("scope", scope)
		}
		return post(f)
	}
	status, second := refresh(first.RefreshToken, "")
	if status != 200 || second.AccessToken == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken || second.Scope != "user/*.rs offline_access" {
		t.Fatalf("refresh: %d %+v", status, second)
	}
	if r := w.Do(t, "GET", "/fhir/Patient", second.AccessToken, nil); r.Status != 200 {
		t.Fatalf("refreshed access token: %d", r.Status)
	}
	if status, tr := refresh(second.RefreshToken, "user/Patient.write"); status != 400 || tr.Error != "invalid_scope" {
		t.Fatalf("widening the scope: %d %+v", status, tr)
	}
	status, third := refresh(second.RefreshToken, "user/*.rs")
	if status != 200 || third.Scope != "user/*.rs" {
		t.Fatalf("narrowing the scope: %d %+v", status, third)
	}
	// Reusing the first (already rotated) token revokes the whole family,
	// including the newest token.
	if status, tr := refresh(first.RefreshToken, ""); status != 400 || tr.Error != "invalid_grant" {
		t.Fatalf("reuse: %d %+v", status, tr)
	}
	if status, _ := refresh(third.RefreshToken, ""); status != 400 {
		t.Fatalf("the family survived a reuse: %d", status)
	}
	if status, _ := refresh("not-a-refresh-token", ""); status != 400 {
		t.Fatalf("garbage: %d", status)
	}
	var reuse int
	for _, rec := range w.Ledger(t) {
		if rec.Action == "token-refresh" && strings.HasPrefix(rec.Detail, "refresh-reuse") {
			reuse++
		}
	}
	if reuse != 1 {
		t.Fatalf("%d reuse detections audited, want 1", reuse)
	}
}
