package app_test

// Bounded work (issue #22): every request's cost is bounded, each limit
// refused with a 4xx OperationOutcome naming it and its setting, before
// the costly work; _count=0 answers the total alone.

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// repeatJSON joins n copies of item into a JSON array.
func repeatJSON(item string, n int) string {
	var b strings.Builder
	b.Grow(n * (len(item) + 1))
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(item)
	}
	b.WriteByte(']')
	return b.String()
}

// fhirPathOps is a FHIRPath Patch Parameters resource of n operations.
func fhirPathOps(op string, n int) []byte {
	return []byte(`{"resourceType":"Parameters","parameter":` + repeatJSON(op, n) + `}`)
}

// addName is a FHIRPath Patch operation adding a name of 100 given names.
var addName = `{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},` +
	`{"name":"name","valueString":"name"},{"name":"value","valueHumanName":{"given":` + repeatJSON(`"g"`, 100) + `}}]}`

// bundleOf is a Bundle of kind with n entries creating an empty Patient.
func bundleOf(kind string, n int) func() []byte {
	return func() []byte {
		return []byte(`{"resourceType":"Bundle","type":"` + kind + `","entry":` +
			repeatJSON(`{"request":{"method":"POST","url":"Patient"},"resource":{"resourceType":"Patient","gender":"other"}}`, n) + `}`)
	}
}

// writesNothing returns a setup and a check asserting that the request
// added no audit record and no Patient.
func writesNothing() (func(t *testing.T, w *apptest.Ward) map[string]string, func(t *testing.T, w *apptest.Ward, r *apptest.Response)) {
	var ledger int
	var patients float64
	countPatients := func(t *testing.T, w *apptest.Ward) float64 {
		r := w.Do(t, "GET", "/fhir/Patient?_summary=count", w.Tokens[authz.RoleAdmin], nil)
		n, _ := r.JSON(t)["total"].(float64)
		return n
	}
	setup := func(t *testing.T, w *apptest.Ward) map[string]string {
		patients = countPatients(t, w)
		ledger = len(w.Ledger(t))
		return nil
	}
	check := func(t *testing.T, w *apptest.Ward, r *apptest.Response) {
		if n := len(w.Ledger(t)); n != ledger {
			t.Errorf("the refused request wrote %d audit records", n-ledger)
		}
		if n := countPatients(t, w); n != patients {
			t.Errorf("the refused request stored %v Patients", n-patients)
		}
	}
	return setup, check
}

// createPatient is a setup creating a Patient with one name; {{id}}.
func createPatient(t *testing.T, w *apptest.Ward) map[string]string {
	return map[string]string{"id": w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Doubling"}]}`)}
}

// countOnly checks a 200 Bundle of type typ with a total of at least min
// and no entries (or only an OperationOutcome).
func countOnly(typ string, min float64) func(t *testing.T, w *apptest.Ward, r *apptest.Response) {
	return func(t *testing.T, w *apptest.Ward, r *apptest.Response) {
		var b struct {
			ResourceType string   `json:"resourceType"`
			Type         string   `json:"type"`
			Total        *float64 `json:"total"`
			Entry        []any    `json:"entry"`
		}
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.ResourceType != "Bundle" || b.Type != typ {
			t.Fatalf("not a %s Bundle: %.300s", typ, r.Body)
		}
		if b.Total == nil || *b.Total < min {
			t.Errorf("total %v, want at least %v: %.300s", b.Total, min, r.Body)
		}
		if len(b.Entry) != 0 {
			t.Errorf("%d entries, want none: %.300s", len(b.Entry), r.Body)
		}
	}
}

func TestHostileLimits(t *testing.T) {
	batchSetup, batchCheck := writesNothing()
	txSetup, txCheck := writesNothing()
	runHostile(t, []hostileCase{
		// JSON Patch: each copy of /name into /name/- doubles the
		// document; refused at the copy that crosses the bound, within
		// the memory of the bound (100,000 elements), never 2^25.
		{name: "json patch doubling", setup: createPatient, method: "PATCH", path: "/fhir/Patient/{{id}}", role: authz.RoleAdmin,
			headers: []string{jsonPatch}, body: repeatJSON(`{"op":"copy","from":"/name","path":"/name/-"}`, 25),
			want: 413, code: "too-costly", diag: "WARD_PATCH_MAX_ELEMENTS", maxAlloc: 16 << 20},
		{name: "json patch 5000 ops", setup: createPatient, method: "PATCH", path: "/fhir/Patient/{{id}}", role: authz.RoleAdmin,
			headers: []string{jsonPatch}, body: repeatJSON(`{"op":"copy","from":"/name","path":"/name/-"}`, 5000),
			want: 413, code: "too-costly", diag: "WARD_PATCH_MAX_OPS", maxAlloc: 4 << 20},
		{name: "fhirpath patch 5000 ops", setup: createPatient, method: "PATCH", path: "/fhir/Patient/{{id}}", role: authz.RoleAdmin,
			bodyFn: func() []byte {
				return fhirPathOps(`{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name"}]}`, 5000)
			},
			want: 413, code: "too-costly", diag: "WARD_PATCH_MAX_OPS", maxAlloc: 16 << 20},
		// A 1,000,000-item array (4 MB) is refused by the scan, before
		// it is decoded.
		{name: "million-item array", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin,
			bodyFn: func() []byte {
				return []byte(`{"resourceType":"Patient","name":[{"given":` + repeatJSON(`"a"`, 1_000_000) + `}]}`)
			},
			want: 413, code: "too-costly", diag: "WARD_RESOURCE_MAX_ARRAY_ITEMS", maxAlloc: 16 << 20,
			notContains: []string{`"a","a"`}},
		// 100,000 entries (9 MB) at the default bound of 10,000: refused
		// before any entry is decoded, processed or audited.
		{name: "batch of 100000", setup: batchSetup, method: "POST", path: "/fhir", role: authz.RoleAdmin,
			bodyFn: bundleOf("batch", 100_000), want: 413, code: "too-costly", diag: "WARD_BUNDLE_MAX_ENTRIES",
			maxAlloc: 32 << 20, check: batchCheck},
		{name: "transaction of 100000", setup: txSetup, method: "POST", path: "/fhir", role: authz.RoleAdmin,
			bodyFn: bundleOf("transaction", 100_000), want: 413, code: "too-costly", diag: "WARD_BUNDLE_MAX_ENTRIES",
			maxAlloc: 32 << 20, check: txCheck},
		// _count=0: the total alone.
		{name: "type search _count=0", setup: createPatient, method: "GET", path: "/fhir/Patient?_count=0", role: authz.RoleAdmin,
			want: 200, check: countOnly("searchset", 1)},
		{name: "system search _count=0", setup: createPatient, method: "GET", path: "/fhir?_type=Patient&_count=0", role: authz.RoleAdmin,
			want: 200, check: countOnly("searchset", 1)},
		{name: "_search POST _count=0", setup: createPatient, method: "POST", path: "/fhir/Patient/_search", role: authz.RoleAdmin,
			body: "_count=0", headers: []string{"Content-Type: application/x-www-form-urlencoded"},
			want: 200, check: countOnly("searchset", 1)},
		{name: "type history _count=0", setup: createPatient, method: "GET", path: "/fhir/Patient/_history?_count=0", role: authz.RoleAdmin,
			want: 200, check: countOnly("history", 1)},
		{name: "instance history _count=0", setup: createPatient, method: "GET", path: "/fhir/Patient/{{id}}/_history?_count=0", role: authz.RoleAdmin,
			want: 200, check: countOnly("history", 1)},
		{name: "system history _count=0", setup: createPatient, method: "GET", path: "/fhir/_history?_count=0", role: authz.RoleAdmin,
			want: 200, check: countOnly("history", 1)},
		{name: "too many values", method: "GET", path: "/fhir/Patient?gender=" + strings.Repeat("male,", 100) + "female", role: authz.RoleAdmin,
			want: 400, diag: "WARD_SEARCH_MAX_VALUES"},
		{name: "too many parameters", method: "GET", path: "/fhir/Patient?" + strings.Repeat("gender=male&", 101), role: authz.RoleAdmin,
			want: 400, diag: "WARD_SEARCH_MAX_PARAMS"},
	})
}

// TestHostileLimitsSmall runs the limits at small configured bounds, so
// that each is met by a small request and refused within little memory.
func TestHostileLimitsSmall(t *testing.T) {
	batchSetup, batchCheck := writesNothing()
	txSetup, txCheck := writesNothing()
	observed := func(n int) func(t *testing.T, w *apptest.Ward) map[string]string {
		return func(t *testing.T, w *apptest.Ward) map[string]string {
			id := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient"}`)
			for range n {
				w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+id+`"}}`)
			}
			return map[string]string{"id": id}
		}
	}
	runHostile(t, []hostileCase{
		{name: "json patch doubling", setup: createPatient, method: "PATCH", path: "/fhir/Patient/{{id}}", role: authz.RoleAdmin,
			headers: []string{jsonPatch}, body: repeatJSON(`{"op":"copy","from":"/name","path":"/name/-"}`, 25),
			want: 413, code: "too-costly", diag: "WARD_PATCH_MAX_ELEMENTS", maxAlloc: 1 << 20,
			notContains: []string{"Doubling"}},
		{name: "json patch doubling via the root", setup: createPatient, method: "PATCH", path: "/fhir/Patient/{{id}}", role: authz.RoleAdmin,
			headers: []string{jsonPatch}, body: `[{"op":"add","path":"/contained","value":[]},` + repeatJSON(`{"op":"copy","from":"","path":"/contained/-"}`, 24)[1:],
			want: 413, code: "too-costly", diag: "WARD_PATCH_MAX_ELEMENTS", maxAlloc: 1 << 20},
		{name: "json patch ops", setup: createPatient, method: "PATCH", path: "/fhir/Patient/{{id}}", role: authz.RoleAdmin,
			headers: []string{jsonPatch}, body: repeatJSON(`{"op":"test","path":"/id","value":"x"}`, 31),
			want: 413, code: "too-costly", diag: "WARD_PATCH_MAX_OPS", maxAlloc: 4 << 20},
		{name: "fhirpath patch growth", setup: createPatient, method: "PATCH", path: "/fhir/Patient/{{id}}", role: authz.RoleAdmin,
			bodyFn: func() []byte { return fhirPathOps(addName, 10) },
			want:   413, code: "too-costly", diag: "WARD_PATCH_MAX_ELEMENTS", maxAlloc: 16 << 20},
		{name: "fhirpath patch ops", setup: createPatient, method: "PATCH", path: "/fhir/Patient/{{id}}", role: authz.RoleAdmin,
			bodyFn: func() []byte {
				return fhirPathOps(`{"name":"operation","part":[{"name":"type","valueCode":"delete"},{"name":"path","valueString":"Patient.name"}]}`, 31)
			},
			want: 413, code: "too-costly", diag: "WARD_PATCH_MAX_OPS", maxAlloc: 4 << 20},
		{name: "array items", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin,
			body: `{"resourceType":"Patient","name":[{"given":` + repeatJSON(`"a"`, 201) + `}]}`,
			want: 413, code: "too-costly", diag: "WARD_RESOURCE_MAX_ARRAY_ITEMS"},
		{name: "elements", method: "POST", path: "/fhir/Patient", role: authz.RoleAdmin,
			body: `{"resourceType":"Patient","name":` + repeatJSON(`{"given":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r","s"]}`, 150) + `}`,
			want: 413, code: "too-costly", diag: "WARD_RESOURCE_MAX_ELEMENTS"},
		{name: "batch entries", setup: batchSetup, method: "POST", path: "/fhir", role: authz.RoleAdmin,
			bodyFn: bundleOf("batch", 101), want: 413, code: "too-costly", diag: "WARD_BUNDLE_MAX_ENTRIES",
			maxAlloc: 4 << 20, check: batchCheck},
		{name: "transaction entries", setup: txSetup, method: "POST", path: "/fhir", role: authz.RoleAdmin,
			bodyFn: bundleOf("transaction", 101), want: 413, code: "too-costly", diag: "WARD_BUNDLE_MAX_ENTRIES",
			maxAlloc: 4 << 20, check: txCheck},
		{name: "batch at the bound", method: "POST", path: "/fhir", role: authz.RoleAdmin,
			bodyFn: bundleOf("batch", 100), want: 200},
		{name: "import lines", method: "POST", path: "/fhir/$import", role: authz.RoleAdmin,
			headers: []string{"Content-Type: application/fhir+ndjson"},
			body:    strings.Repeat(`{"resourceType":"Basic","code":{"text":"x"}}`+"\n", 101),
			want:    413, code: "too-costly", diag: "WARD_BUNDLE_MAX_ENTRIES"},
		{name: "includes over the bound are refused, never cut", setup: observed(4), method: "GET", path: "/fhir/Patient?_id={{id}}&_revinclude=Observation:subject", role: authz.RoleAdmin,
			want: 400, code: "too-costly", diag: "WARD_SEARCH_MAX_INCLUDES"},
		{name: "includes within the bound say nothing", setup: observed(2), method: "GET",
			path: "/fhir/Patient?_id={{id}}&_revinclude=Observation:subject", role: authz.RoleAdmin,
			want: 200, notContains: []string{"WARD_SEARCH_MAX_INCLUDES"}, check: func(t *testing.T, w *apptest.Ward, r *apptest.Response) {}},
		{name: "too many parameters", method: "GET", path: "/fhir/Patient?gender=male&gender=male&gender=male&gender=male&gender=male&gender=male", role: authz.RoleAdmin,
			want: 400, diag: "WARD_SEARCH_MAX_PARAMS"},
		{name: "chain hops count", method: "GET", path: "/fhir/Observation?subject:Patient.general-practitioner:Practitioner.name=x&status=final&code=a&date=2020", role: authz.RoleAdmin,
			want: 400, diag: "WARD_SEARCH_MAX_PARAMS"},
		{name: "too many values", method: "GET", path: "/fhir/Patient?gender=male,female,other,unknown,male,female", role: authz.RoleAdmin,
			want: 400, diag: "WARD_SEARCH_MAX_VALUES"},
	}, func(c *config.Config) {
		c.Limits.PatchElements = 1000
		c.Limits.PatchOps = 30
		c.Limits.ArrayItems = 200
		c.Limits.Elements = 2000
		c.Limits.BundleEntries = 100
		c.Limits.SearchIncludes = 2
		c.Limits.SearchParams = 5
		c.Limits.SearchValues = 5
	})
}

// TestHostileRequestTimeout: a request whose time is up stops its work
// and answers 503 naming the limit; a batch runs none of its entries.
func TestHostileRequestTimeout(t *testing.T) {
	var ledger int
	runHostile(t, []hostileCase{
		{name: "search", method: "GET", path: "/fhir/Patient?gender=male", role: authz.RoleAdmin,
			want: 503, check: func(t *testing.T, w *apptest.Ward, r *apptest.Response) {
				assertOutcome(t, r, "timeout", "WARD_REQUEST_TIMEOUT")
			}},
		{name: "batch", method: "POST", path: "/fhir", role: authz.RoleAdmin, bodyFn: bundleOf("batch", 50),
			setup: func(t *testing.T, w *apptest.Ward) map[string]string {
				ledger = len(w.Ledger(t))
				return nil
			},
			want: 200, check: func(t *testing.T, w *apptest.Ward, r *apptest.Response) {
				if strings.Contains(string(r.Body), `"201 Created"`) || !strings.Contains(string(r.Body), "WARD_REQUEST_TIMEOUT") {
					t.Errorf("entries ran after the time was up: %.500s", r.Body)
				}
				for _, rec := range w.Ledger(t)[ledger:] {
					if rec.Action == "create" {
						t.Errorf("a create was audited after the time was up: %+v", rec)
					}
				}
			}},
	}, func(c *config.Config) { c.Limits.RequestTimeout = time.Nanosecond })
}
