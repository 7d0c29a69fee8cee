package fhir

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func newValidator(t testing.TB) *Validator {
	t.Helper()
	v, err := NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustParse(t testing.TB, body string) *Resource {
	t.Helper()
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse(%s): %v", body, err)
	}
	return r
}

func TestValidateIssues(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name string
		body string
		want []Issue // exact, in order
	}{
		{
			name: "gender banana",
			body: `{"resourceType":"Patient","gender":"banana"}`,
			want: []Issue{{Severity: "error", Code: "value", Expression: "Patient.gender", Diagnostics: "value is not one of the allowed codes: male, female, other, unknown"}},
		},
		{
			name: "unknown element",
			body: `{"resourceType":"Patient","foo":1}`,
			want: []Issue{{Severity: "error", Code: "structure", Expression: "Patient.foo", Diagnostics: "unknown element 'foo'"}},
		},
		{
			name: "unknown element with a name that is not echoed",
			body: `{"resourceType":"Patient","Jane Doe":1,"0abc":2}`,
			want: []Issue{{Severity: "error", Code: "structure", Expression: "Patient", Diagnostics: "unknown element"}}, // deduplicated
		},
		{
			name: "wrong JSON type in array",
			body: `{"resourceType":"Patient","name":[{"given":["a",3]}]}`,
			want: []Issue{{Severity: "error", Code: "structure", Expression: "Patient.name[0].given[1]", Diagnostics: "expected string but got number"}},
		},
		{
			name: "array expected",
			body: `{"resourceType":"Patient","name":{"family":"x"}}`,
			want: []Issue{{Severity: "error", Code: "structure", Expression: "Patient.name", Diagnostics: "expected array but got object"}},
		},
		{
			name: "complex type must be an object (stricter than the HL7 schema)",
			body: `{"resourceType":"Patient","name":["x"],"maritalStatus":5}`,
			want: []Issue{
				{Severity: "error", Code: "structure", Expression: "Patient.maritalStatus", Diagnostics: "expected object but got number"},
				{Severity: "error", Code: "structure", Expression: "Patient.name[0]", Diagnostics: "expected object but got string"},
			},
		},
		{
			name: "primitive format from $ref",
			body: `{"resourceType":"Patient","birthDate":"1984-13-01","managingOrganization":{"reference":""},"meta":{"lastUpdated":"2020-01-01"}}`,
			want: []Issue{
				{Severity: "error", Code: "value", Expression: "Patient.birthDate", Diagnostics: "value does not match the FHIR date format"},
				{Severity: "error", Code: "value", Expression: "Patient.managingOrganization.reference", Diagnostics: "value does not match the FHIR string format"},
				{Severity: "error", Code: "value", Expression: "Patient.meta.lastUpdated", Diagnostics: "value does not match the FHIR instant format"},
			},
		},
		{
			name: "required elements",
			body: `{"resourceType":"Observation","status":"final"}`,
			want: []Issue{{Severity: "error", Code: "required", Expression: "Observation.code", Diagnostics: "missing required element 'code'"}},
		},
		{
			name: "required inside backbone element",
			body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"component":[{"code":{"text":"y"}},{"valueString":"z"}]}`,
			want: []Issue{{Severity: "error", Code: "required", Expression: "Observation.component[1].code", Diagnostics: "missing required element 'code'"}},
		},
		{
			name: "contained resources dispatch on resourceType",
			body: `{"resourceType":"Patient","contained":[{"resourceType":"Observation","status":"final"},{"resourceType":"Nope"},"x",{"resourceType":"Patient","id":"a b"},{}]}`,
			want: []Issue{
				{Severity: "error", Code: "required", Expression: "Patient.contained[0].code", Diagnostics: "missing required element 'code'"},
				{Severity: "error", Code: "value", Expression: "Patient.contained[1].resourceType", Diagnostics: "value is not a known resource type"},
				{Severity: "error", Code: "structure", Expression: "Patient.contained[2]", Diagnostics: "expected object but got string"},
				{Severity: "error", Code: "value", Expression: "Patient.contained[3].id", Diagnostics: "value does not match the FHIR id format"},
				{Severity: "error", Code: "required", Expression: "Patient.contained[4].resourceType", Diagnostics: "missing required element 'resourceType'"},
			},
		},
		{
			name: "resources in a Bundle",
			body: `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"x"}}]}`,
			want: []Issue{{Severity: "error", Code: "value", Expression: "Bundle.entry[0].resource.gender", Diagnostics: "value is not one of the allowed codes: male, female, other, unknown"}},
		},
		{
			name: "long enum is summarised",
			body: `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"nope"}]}`,
			want: []Issue{{Severity: "error", Code: "value", Expression: "OperationOutcome.issue[0].code", Diagnostics: "value is not one of the 31 allowed codes"}},
		},
		{
			name: "null is not a value",
			body: `{"resourceType":"Patient","active":null}`,
			want: []Issue{{Severity: "error", Code: "structure", Expression: "Patient.active", Diagnostics: "expected boolean but got null"}},
		},
		{
			name: "short enum lists its codes",
			body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"comparator":"~"}}`,
			want: []Issue{{Severity: "error", Code: "value", Expression: "Observation.valueQuantity.comparator", Diagnostics: "value is not one of the allowed codes: <, <=, >=, >"}},
		},
		{
			name: "valid",
			body: `{"resourceType":"Patient","id":"x","gender":"other","name":[{"given":["a"]}]}`,
			want: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := v.Validate(mustParse(t, tt.body))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", fmtIssues(got), fmtIssues(tt.want))
			}
		})
	}
}

func fmtIssues(is []Issue) string {
	var b strings.Builder
	for _, i := range is {
		fmt.Fprintf(&b, "  %+v\n", i)
	}
	return b.String()
}

func TestValidateUnknownType(t *testing.T) {
	v := newValidator(t)
	got := v.Validate(&Resource{Type: "Nope", Doc: map[string]any{"resourceType": "Nope"}})
	if len(got) != 1 || got[0].Code != "not-supported" {
		t.Errorf("got %v", got)
	}
	if got := v.Validate(nil); len(got) != 1 || got[0].Code != "structure" {
		t.Errorf("nil resource: got %v", got)
	}
}

func TestValidateFixtures(t *testing.T) {
	v := newValidator(t)
	for _, f := range []string{
		"patient.json",
		"synthea-observation.json",
		"synthea-immunization.json",
		"synthea-encounter.json",
		"synthea-condition.json",
		"synthea-medicationrequest.json",
	} {
		t.Run(f, func(t *testing.T) {
			r, err := Parse(readFixture(t, f))
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Validate(r); len(got) != 0 {
				t.Errorf("issues:\n%s", fmtIssues(got))
			}
			// A broken copy must not validate, so the clean result above
			// means something.
			r.Doc["zzBroken"] = true
			want := []Issue{{Severity: "error", Code: "structure", Expression: r.Type + ".zzBroken", Diagnostics: "unknown element 'zzBroken'"}}
			if got := v.Validate(r); !slices.Equal(got, want) {
				t.Errorf("broken copy: got\n%s", fmtIssues(got))
			}
		})
	}
}

// TestValidateNoInputInIssues plants unique markers in bad values of every
// kind this package reports and checks that none reaches an Issue.
func TestValidateNoInputInIssues(t *testing.T) {
	v := newValidator(t)
	const m = "ZQXMARK"
	body := `{"resourceType":"Patient",
		"gender":"` + m + `gender",
		"birthDate":"` + m + `date",
		"id":"abc",
		"active":"` + m + `bool",
		"name":"` + m + `name",
		"telecom":[{"system":"` + m + `sys","value":7357735773577357}],
		"` + m + ` key":"` + m + `v1",
		"` + m + `-key":{"x":"` + m + `v2"},
		"multipleBirthInteger":"` + m + `int",
		"maritalStatus":"` + m + `cc",
		"meta":{"lastUpdated":"` + m + `instant","versionId":"` + m + ` v"},
		"contained":[{"resourceType":"` + m + `Type"},{"resourceType":"Patient","id":"` + m + ` id","gender":"` + m + `g2"}],
		"text":{"status":"` + m + `st","div":{"` + m + `":1}}
	}`
	r := mustParse(t, body)
	issues := v.Validate(r)
	if len(issues) < 14 {
		t.Fatalf("only %d issues; the markers were not all exercised:\n%s", len(issues), fmtIssues(issues))
	}
	for _, is := range issues {
		all := is.Severity + is.Code + is.Expression + is.Diagnostics
		if strings.Contains(all, m) || strings.Contains(all, "7357") {
			t.Errorf("issue echoes input: %+v", is)
		}
	}
	oo := OperationOutcome(issues...)
	if strings.Contains(string(oo), m) {
		t.Errorf("OperationOutcome echoes input")
	}

	// Parse errors too.
	for _, bad := range []string{
		`{"resourceType":"` + m + `"}`,
		`{"resourceType":"Patient","id":"` + m + ` x"}`,
		`{"resourceType":"Patient","` + m + ` k":1,"` + m + ` k":2}`,
		`{"resourceType":"Patient","x":"` + m + `\q"}`,
		`{"resourceType":"Patient","x":` + m + `}`,
		`{"resourceType":"Patient"}` + m,
		`["` + m + `"]`,
	} {
		_, err := Parse([]byte(bad))
		if err == nil {
			t.Errorf("%s parsed", bad)
			continue
		}
		if strings.Contains(err.Error(), m) {
			t.Errorf("parse error echoes input: %v", err)
		}
	}
}

// TestValidateEveryTypeMinimal: every resource type accepts
// {"resourceType":T} or reports exactly its schema-required elements.
func TestValidateEveryTypeMinimal(t *testing.T) {
	v := newValidator(t)
	b, err := schemaBytes()
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Definitions map[string]struct {
			Required []string `json:"required"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	withRequired := 0
	for _, typ := range ResourceTypes() {
		r := mustParse(t, `{"resourceType":"`+typ+`"}`)
		got := v.Validate(r)
		var want []Issue
		for _, name := range s.Definitions[typ].Required {
			if name != "resourceType" {
				want = append(want, Issue{Severity: "error", Code: "required", Expression: typ + "." + name, Diagnostics: "missing required element '" + name + "'"})
			}
		}
		want = sortIssues(want)
		if len(want) > 0 {
			withRequired++
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: got\n%swant\n%s", typ, fmtIssues(got), fmtIssues(want))
		}
	}
	if withRequired != 77 {
		t.Errorf("%d types with required elements, the R4 schema has 77", withRequired)
	}
}

func TestValidateConcurrent(t *testing.T) {
	v := newValidator(t)
	bodies := []string{
		string(readFixture(t, "patient.json")),
		`{"resourceType":"Patient","gender":"banana"}`,
		string(readFixture(t, "synthea-encounter.json")),
	}
	want := make([][]Issue, len(bodies))
	for i, b := range bodies {
		want[i] = v.Validate(mustParse(t, b))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := (g + i) % len(bodies)
				r, err := Parse([]byte(bodies[k]))
				if err != nil {
					t.Error(err)
					return
				}
				if got := v.Validate(r); !slices.Equal(got, want[k]) {
					t.Errorf("concurrent result differs for body %d", k)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestPrimitiveName(t *testing.T) {
	for in, want := range map[string]string{
		schemaURL + "#/definitions/code":                               "code",
		schemaURL + "#/definitions/dateTime/pattern":                   "dateTime",
		schemaURL + "#/definitions/Patient":                            "",
		schemaURL + "#/definitions/Patient/properties/deceasedBoolean": "",
		schemaURL + "#/definitions/code/properties/x":                  "",
		schemaURL:              "",
		"#/definitions/string": "string",
	} {
		if got := primitiveName(in); got != want {
			t.Errorf("primitiveName(%q) = %q, want %q", in, got, want)
		}
	}
}
