package app_test

// Hostile requests at Ward's edge (issue #22, items 9 and 10): values that
// must never come back in an answer, client request ids that must not be
// kept, header blocks over the limit, and CORS preflights from origins
// that are and are not allowed.

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// planted is PHI-like text planted in hostile values; no answer, ledger
// record or log line may contain it.
const planted = "Zanzibarqq"

const (
	appOrigin  = "https://app.example.org"
	devOrigin  = "http://localhost:3000"
	evilOrigin = "https://evil.example"
)

func withCORS(c *config.Config) { c.CORSOrigins = []string{appOrigin, devOrigin} }

// noEcho is a search (or other GET) whose hostile value must be refused
// with a 400 that names the rule, not the value.
func noEcho(name, path string, headers ...string) hostileCase {
	return hostileCase{name: "no echo: " + name, method: "GET", path: path, role: authz.RoleAdmin,
		headers: append([]string{"Prefer: handling=strict"}, headers...), want: 400,
		notContains: []string{planted, "Zanz ibarqq"}}
}

func header(t *testing.T, r *apptest.Response, name string) string {
	t.Helper()
	return r.Header.Get(name)
}

// wantHeaders checks exact values ("" = absent).
func wantHeaders(kv ...string) func(*testing.T, *apptest.Ward, *apptest.Response) {
	return func(t *testing.T, _ *apptest.Ward, r *apptest.Response) {
		t.Helper()
		for i := 0; i+1 < len(kv); i += 2 {
			if got := r.Header.Get(kv[i]); got != kv[i+1] {
				t.Errorf("%s = %q, want %q", kv[i], got, kv[i+1])
			}
		}
		if r.Header.Get("Access-Control-Allow-Origin") == "*" || r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("wildcard origin or credentials: %v", r.Header)
		}
	}
}

func and(fs ...func(*testing.T, *apptest.Ward, *apptest.Response)) func(*testing.T, *apptest.Ward, *apptest.Response) {
	return func(t *testing.T, w *apptest.Ward, r *apptest.Response) {
		t.Helper()
		for _, f := range fs {
			f(t, w, r)
		}
	}
}

func containsAll(name string, parts ...string) func(*testing.T, *apptest.Ward, *apptest.Response) {
	return func(t *testing.T, _ *apptest.Ward, r *apptest.Response) {
		t.Helper()
		got := strings.Join(r.Header.Values(name), ", ")
		for _, p := range parts {
			if !strings.Contains(got, p) {
				t.Errorf("%s = %q lacks %q", name, got, p)
			}
		}
	}
}

// notKept checks that the planted request id is neither in the ledger nor
// in the log, and that the answer carries a fresh UUID instead.
func notKept(t *testing.T, w *apptest.Ward, r *apptest.Response) {
	t.Helper()
	id := r.Header.Get("X-Request-Id")
	if u, err := uuid.Parse(id); err != nil || u.String() != id {
		t.Errorf("X-Request-Id %q is not a fresh UUID", id)
	}
	for _, rec := range w.Ledger(t) {
		if strings.Contains(rec.RequestID, planted) {
			t.Errorf("ledger record %d keeps the client's request id %q", rec.Seq, rec.RequestID)
		}
	}
	if strings.Contains(w.Log.String(), planted) {
		t.Error("the log keeps the client's request id")
	}
}

func TestHostileEdges(t *testing.T) {
	const async = "Prefer: respond-async"
	clientID := "0F8FAD5B-D9CB-469F-A165-70867728950E"
	runHostile(t, []hostileCase{
		// Item 9: errors name the parameter and the rule, never the value.
		noEcho("date", "/fhir/Patient?birthdate=1961-03-04"+planted),
		noEcho("date prefix", "/fhir/Observation?date=zz"+planted),
		noEcho("lastUpdated", "/fhir/Patient?_lastUpdated="+planted),
		noEcho("number", "/fhir/RiskAssessment?probability=12"+planted),
		noEcho("quantity", "/fhir/Observation?value-quantity=12"+planted),
		noEcho("_count", "/fhir/Patient?_count="+planted),
		noEcho("_id", "/fhir/Patient?_id=Zanz%20ibarqq"),
		noEcho("reference id", "/fhir/Observation?subject=Patient/Zanz%20ibarqq"),
		noEcho("reference type", "/fhir/Observation?subject="+planted+"/abc"),
		noEcho("_sort", "/fhir/Patient?_sort=-"+planted),
		noEcho("_include", "/fhir/Patient?_include=Patient:"+planted),
		noEcho("_revinclude", "/fhir/Patient?_revinclude=Observation:subject:"+planted),
		noEcho("_summary", "/fhir/Patient?_summary="+planted),
		noEcho("_total", "/fhir/Patient?_total="+planted),
		noEcho("_elements", "/fhir/Patient?_elements=Zanz%20ibarqq"),
		noEcho("_type", "/fhir?_type="+planted),
		noEcho(":missing", "/fhir/Patient?name:missing="+planted),
		noEcho("unknown parameter name", "/fhir/Patient?"+planted+"=1"),
		noEcho("unknown modifier", "/fhir/Patient?name:"+planted+"=1"),
		noEcho("chain type", "/fhir/Observation?subject:"+planted+".name=x"),
		noEcho("chain parameter", "/fhir/Patient?general-practitioner."+planted+"=1"),
		noEcho("_has type", "/fhir/Patient?_has:"+planted+":subject:code=1"),
		noEcho("_has parameter", "/fhir/Patient?_has:Observation:subject:"+planted+"=1"),
		noEcho("history _since", "/fhir/Patient/_history?_since="+planted),
		noEcho("history _count", "/fhir/Patient/_history?_count="+planted),
		noEcho("id in the URL", "/fhir/Patient/Zanz%20ibarqq"),
		noEcho("id in vread", "/fhir/Patient/Zanz%20ibarqq/_history/1"),
		noEcho("version in the URL", "/fhir/Patient/abc/_history/"+planted),
		noEcho("export _type", "/fhir/$export?_type=Patient,"+planted, async),
		noEcho("export _since", "/fhir/$export?_since="+planted, async),
		noEcho("export _outputFormat", "/fhir/$export?_outputFormat="+planted, async),
		{name: "no echo: export unknown parameter", method: "GET", path: "/fhir/$export?" + planted + "=1", role: authz.RoleAdmin,
			headers: []string{async}, want: 202, notContains: []string{planted}},
		{name: "no echo: lenient unknown parameter", method: "GET", path: "/fhir/Patient?" + planted + "=1", role: authz.RoleAdmin,
			want: 200, notContains: []string{planted}},
		{name: "no echo: unknown method", method: "ZANZIBARQQ", path: "/fhir/Patient", role: authz.RoleAdmin,
			want: 405, code: "not-supported", notContains: []string{"ZANZIBARQQ"}},
		{name: "dot segments get an outcome, not a plain redirect", method: "GET", path: "/fhir/Patient/../metadata", role: authz.RoleAdmin,
			want: 400, code: "invalid"},
		{name: "unknown path gets an outcome", method: "GET", path: "/" + planted, want: 404, code: "not-found", notContains: []string{planted}},

		// Item 9: client request ids are UUIDs or replaced, never kept.
		{name: "request id: PHI-like text is replaced", method: "GET", path: "/fhir/Patient?_count=1", role: authz.RoleAdmin,
			headers: []string{"X-Request-Id: " + planted + "-1961-03-04"}, want: 200, notContains: []string{planted}, check: notKept},
		{name: "request id: urn:uuid form is replaced", method: "GET", path: "/fhir/Patient?_count=1", role: authz.RoleAdmin,
			headers: []string{"X-Request-Id: urn:uuid:" + planted}, want: 200, notContains: []string{planted}, check: notKept},
		{name: "request id: on a refused request", method: "GET", path: "/fhir/Patient", headers: []string{"X-Request-Id: " + planted + "000000"},
			want: 401, code: "login", notContains: []string{planted}, check: notKept},
		{name: "request id: a UUID is kept (lower case)", method: "GET", path: "/fhir/Patient?_count=1", role: authz.RoleAdmin,
			headers: []string{"X-Request-Id: " + clientID}, want: 200,
			check: func(t *testing.T, w *apptest.Ward, r *apptest.Response) {
				want := strings.ToLower(clientID)
				if got := header(t, r, "X-Request-Id"); got != want {
					t.Errorf("X-Request-Id %q, want %q", got, want)
				}
				recs := w.Ledger(t)
				if last := recs[len(recs)-1]; last.RequestID != want {
					t.Errorf("ledger request id %q, want %q", last.RequestID, want)
				}
			}},

		// Item 9: an over-large header block is a 431 OperationOutcome.
		{name: "431: one huge header", method: "GET", path: "/fhir/metadata", headers: []string{"X-Filler: " + strings.Repeat("a", 70<<10)},
			want: 431, code: "too-costly", diag: "WARD_MAX_HEADER_BYTES"},
		{name: "431: many headers", method: "GET", path: "/fhir/Patient", role: authz.RoleAdmin, headers: manyHeaders(40, 2<<10),
			want: 431, code: "too-costly", diag: "WARD_MAX_HEADER_BYTES"},
		{name: "431: huge bearer token", method: "GET", path: "/fhir/Patient", headers: []string{"Authorization: Bearer " + strings.Repeat(planted, 7000)},
			want: 431, code: "too-costly", notContains: []string{planted}},
		{name: "431: just under the limit passes", method: "GET", path: "/fhir/metadata", headers: []string{"X-Filler: " + strings.Repeat("a", 60<<10)},
			want: 200},

		// Item 10: CORS for the configured origins only.
		{name: "cors: preflight /fhir from an allowed origin", method: "OPTIONS", path: "/fhir/Patient",
			headers: []string{"Origin: " + appOrigin, "Access-Control-Request-Method: PUT", "Access-Control-Request-Headers: authorization, content-type"},
			want:    204, check: and(wantHeaders("Access-Control-Allow-Origin", appOrigin, "Access-Control-Max-Age", "600"),
				containsAll("Access-Control-Allow-Methods", "GET", "POST", "PUT", "PATCH", "DELETE"),
				containsAll("Access-Control-Allow-Headers", "Authorization", "Content-Type", "If-Match", "Prefer"),
				containsAll("Vary", "Origin"))},
		{name: "cors: preflight /oauth2/token", method: "OPTIONS", path: "/oauth2/token",
			headers: []string{"Origin: " + devOrigin, "Access-Control-Request-Method: POST"},
			want:    204, check: wantHeaders("Access-Control-Allow-Origin", devOrigin, "Access-Control-Allow-Methods", "POST")},
		{name: "cors: preflight /oauth2/revoke", method: "OPTIONS", path: "/oauth2/revoke",
			headers: []string{"Origin: " + appOrigin, "Access-Control-Request-Method: POST"},
			want:    204, check: wantHeaders("Access-Control-Allow-Origin", appOrigin)},
		{name: "cors: preflight /.well-known", method: "OPTIONS", path: "/.well-known/smart-configuration",
			headers: []string{"Origin: " + appOrigin, "Access-Control-Request-Method: GET"},
			want:    204, check: wantHeaders("Access-Control-Allow-Origin", appOrigin, "Access-Control-Allow-Methods", "GET")},
		{name: "cors: preflight from a disallowed origin gets no allow headers", method: "OPTIONS", path: "/fhir/Patient",
			headers: []string{"Origin: " + evilOrigin, "Access-Control-Request-Method: GET"},
			want:    403, code: "forbidden", notContains: []string{"evil.example"},
			check: wantHeaders("Access-Control-Allow-Origin", "", "Access-Control-Allow-Methods", "", "Access-Control-Allow-Headers", "")},
		{name: "cors: an allowed origin as a prefix is not allowed", method: "OPTIONS", path: "/fhir/Patient",
			headers: []string{"Origin: " + appOrigin + ".evil.example", "Access-Control-Request-Method: GET"},
			want:    403, check: wantHeaders("Access-Control-Allow-Origin", "")},
		{name: "cors: origin null", method: "OPTIONS", path: "/fhir/metadata",
			headers: []string{"Origin: null", "Access-Control-Request-Method: GET"},
			want:    403, check: wantHeaders("Access-Control-Allow-Origin", "")},
		{name: "cors: origins match exactly (case)", method: "OPTIONS", path: "/fhir/metadata",
			headers: []string{"Origin: HTTPS://APP.EXAMPLE.ORG", "Access-Control-Request-Method: GET"},
			want:    403, check: wantHeaders("Access-Control-Allow-Origin", "")},
		{name: "cors: no preflight for the admin API", method: "OPTIONS", path: "/admin/users",
			headers: []string{"Origin: " + appOrigin, "Access-Control-Request-Method: GET"},
			want:    404, check: wantHeaders("Access-Control-Allow-Origin", "", "Access-Control-Allow-Methods", "")},
		{name: "cors: no preflight for the login form", method: "OPTIONS", path: "/oauth2/authorize",
			headers: []string{"Origin: " + appOrigin, "Access-Control-Request-Method: POST"},
			want:    404, check: wantHeaders("Access-Control-Allow-Origin", "")},
		{name: "cors: plain OPTIONS is not a preflight", method: "OPTIONS", path: "/fhir/Patient", role: authz.RoleAdmin,
			want: 405, code: "not-supported"},
		{name: "cors: actual request from an allowed origin", method: "GET", path: "/fhir/metadata",
			headers: []string{"Origin: " + appOrigin}, want: 200,
			check: and(wantHeaders("Access-Control-Allow-Origin", appOrigin),
				containsAll("Access-Control-Expose-Headers", "Location", "ETag", "Content-Location", "Last-Modified"),
				containsAll("Vary", "Origin"))},
		{name: "cors: a refusal is readable by the allowed origin", method: "GET", path: "/fhir/Patient",
			headers: []string{"Origin: " + appOrigin}, want: 401, code: "login",
			check: wantHeaders("Access-Control-Allow-Origin", appOrigin)},
		{name: "cors: create exposes Location and ETag", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin,
			body: `{"resourceType":"Patient","active":true}`, headers: []string{"Origin: " + appOrigin}, want: 201,
			check: func(t *testing.T, _ *apptest.Ward, r *apptest.Response) {
				if r.Header.Get("Access-Control-Allow-Origin") != appOrigin || r.Header.Get("Location") == "" || r.Header.Get("ETag") == "" {
					t.Errorf("headers %v", r.Header)
				}
			}},
		{name: "cors: actual request from a disallowed origin", method: "GET", path: "/fhir/metadata",
			headers: []string{"Origin: " + evilOrigin}, want: 200,
			check: wantHeaders("Access-Control-Allow-Origin", "", "Access-Control-Expose-Headers", "")},
		{name: "cors: none on other paths", method: "GET", path: "/health",
			headers: []string{"Origin: " + appOrigin}, want: 200, check: wantHeaders("Access-Control-Allow-Origin", "", "Vary", "")},
	}, withCORS)
}

func manyHeaders(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "X-Filler-" + strconv.Itoa(i) + ": " + strings.Repeat("b", size)
	}
	return out
}

// With no origins configured (the default) Ward writes no CORS header at
// all, and a preflight is refused like any OPTIONS.
func TestNoCORSByDefault(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	for _, c := range []struct {
		method, path string
		headers      []string
	}{
		{"OPTIONS", "/fhir/Patient", []string{"Origin: " + appOrigin, "Access-Control-Request-Method: GET"}},
		{"OPTIONS", "/oauth2/token", []string{"Origin: " + appOrigin, "Access-Control-Request-Method: POST"}},
		{"GET", "/fhir/metadata", []string{"Origin: " + appOrigin}},
		{"GET", "/.well-known/smart-configuration", []string{"Origin: " + appOrigin}},
	} {
		r := w.Do(t, c.method, c.path, "", nil, c.headers...)
		for k := range r.Header {
			if strings.HasPrefix(http.CanonicalHeaderKey(k), "Access-Control-") {
				t.Errorf("%s %s: %s: %v", c.method, c.path, k, r.Header[k])
			}
		}
		if c.method == "OPTIONS" && r.Status < 400 {
			t.Errorf("%s %s: %d", c.method, c.path, r.Status)
		}
	}
}
