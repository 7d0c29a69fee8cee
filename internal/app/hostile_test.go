package app_test

// The hostile-input suite: requests an attacker would send, each with the
// status and OperationOutcome code Ward must answer, content that must not
// appear in the answer, and a bound on the memory the request may
// allocate. Every case runs on both databases, and the server must answer
// a plain read after each one. Cases live in tables by theme
// (hostile_*_test.go); this file holds the runner.

import (
	"bytes"
	"encoding/json"
	"runtime"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// hostileCase is one hostile request.
type hostileCase struct {
	name string
	// setup, when set, prepares the server (creates resources) and may
	// return values that replace {{key}} in path and body.
	setup  func(t *testing.T, w *apptest.Ward) map[string]string
	method string
	path   string
	role   authz.Role // "" sends no token
	// body is sent as is; bodyFn, when set, builds a large body instead.
	body    string
	bodyFn  func() []byte
	headers []string
	// want is the expected status; code the expected OperationOutcome
	// issue code ("" skips the check; the body must still be an
	// OperationOutcome when the status is 4xx).
	want int
	code string
	// diag must appear in an issue's diagnostics (names the limit).
	diag string
	// notContains must not appear anywhere in the answer.
	notContains []string
	// maxAlloc bounds the bytes the whole process allocates while the
	// request runs (0: 64 MiB); a refused costly request must be refused
	// before it does the costly work.
	maxAlloc uint64
	// check, when set, makes further assertions on the answer.
	check func(t *testing.T, w *apptest.Ward, r *apptest.Response)
}

const defaultMaxAlloc = 64 << 20

// jsonPatch is the Content-Type header of a JSON Patch body.
const jsonPatch = "Content-Type: application/json-patch+json"

// runHostile runs cases on both databases, each against one server per
// database (cases must not depend on each other's state).
func runHostile(t *testing.T, cases []hostileCase, mutate ...func(*config.Config)) {
	t.Helper()
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b, mutate...)
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) { runHostileCase(t, w, c) })
			}
		})
	}
}

func runHostileCase(t *testing.T, w *apptest.Ward, c hostileCase) {
	t.Helper()
	vars := map[string]string{}
	if c.setup != nil {
		vars = c.setup(t, w)
	}
	expand := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "{{"+k+"}}", v)
		}
		return s
	}
	var body []byte
	switch {
	case c.bodyFn != nil:
		body = c.bodyFn()
	case c.body != "":
		body = []byte(expand(c.body))
	}
	tok := ""
	if c.role != "" {
		tok = w.Tokens[c.role]
	}
	headers := make([]string, len(c.headers))
	for i, h := range c.headers {
		headers[i] = expand(h)
	}
	limit := c.maxAlloc
	if limit == 0 {
		limit = defaultMaxAlloc
	}
	limit *= allocScale
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := w.Do(t, c.method, expand(c.path), tok, body, headers...)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Errorf("%s %s allocated %d bytes, more than the bound of %d", c.method, c.path, got, limit)
	}
	if r.Status != c.want {
		t.Fatalf("%s %s: status %d, want %d: %.500s", c.method, c.path, r.Status, c.want, r.Body)
	}
	if r.Status >= 400 && r.Status < 500 {
		assertOutcome(t, r, c.code, c.diag)
	}
	for _, s := range c.notContains {
		if bytes.Contains(r.Body, []byte(expand(s))) {
			t.Errorf("answer contains %q: %.500s", s, r.Body)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, expand(s)) {
					t.Errorf("header %s contains %q", k, s)
				}
			}
		}
	}
	if c.check != nil {
		c.check(t, w, r)
	}
	// The server still answers.
	if h := w.Do(t, "GET", "/health", "", nil); h.Status != 200 {
		t.Fatalf("after %s: /health answered %d", c.name, h.Status)
	}
	if m := w.Do(t, "GET", "/fhir/metadata", "", nil); m.Status != 200 {
		t.Fatalf("after %s: /fhir/metadata answered %d", c.name, m.Status)
	}
}

// assertOutcome checks that r's body is an OperationOutcome with an
// issue of code (when code is not empty) whose diagnostics contain diag
// (when diag is not empty).
func assertOutcome(t *testing.T, r *apptest.Response, code, diag string) {
	t.Helper()
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code        string `json:"code"`
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(r.Body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 {
		t.Fatalf("status %d without an OperationOutcome: %.500s", r.Status, r.Body)
	}
	if code == "" && diag == "" {
		return
	}
	for _, is := range oo.Issue {
		if (code == "" || is.Code == code) && (diag == "" || strings.Contains(is.Diagnostics, diag)) {
			return
		}
	}
	t.Fatalf("no issue with code %q and diagnostics containing %q: %.500s", code, diag, r.Body)
}

// TestHostileBasics: malformed and oversized input on the plain
// interactions.
func TestHostileBasics(t *testing.T) {
	runHostile(t, []hostileCase{
		{name: "malformed json", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin,
			body: `{"resourceType":"Patient",`, want: 400, code: "structure"},
		{name: "wrong type for gender", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin,
			body: `{"resourceType":"Patient","gender":["x"]}`, want: 400},
		{name: "body over the limit", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin,
			bodyFn: func() []byte {
				return []byte(`{"resourceType":"Patient","id":"` + strings.Repeat("a", 17<<20) + `"}`)
			}, want: 413, maxAlloc: 256 << 20},
		{name: "no token", method: "GET", path: "/fhir/Patient", want: 401, code: "login"},
		{name: "hostile id in path", method: "GET", path: "/fhir/Patient/..%2F..%2Fetc%2Fpasswd", role: authz.RoleAdmin,
			want: 400, notContains: []string{"passwd"}},
	})
}
