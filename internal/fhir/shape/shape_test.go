package shape

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
)

// load decodes a fixture the way the server does (fhir.Parse: UseNumber).
func load(t testing.TB, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := fhir.Parse(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return r.Doc
}

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(m map[string]any) []string {
	return slices.Sorted(maps.Keys(m))
}

func sortedOf(s ...string) []string {
	slices.Sort(s)
	return s
}

// get follows a path of map keys and slice indexes.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: not an object", p)
			}
			v = m[p]
		case int:
			s, ok := v.([]any)
			if !ok || p >= len(s) {
				t.Fatalf("at %v: not an array of that length", p)
			}
			v = s[p]
		}
	}
	return v
}

func subsettedCount(t *testing.T, r map[string]any) int {
	t.Helper()
	meta, _ := r["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	n := 0
	for _, tag := range tags {
		c := tag.(map[string]any)
		if c["system"] == SubsettedSystem && c["code"] == SubsettedCode {
			n++
		}
	}
	return n
}

func TestShapeTopLevelKeys(t *testing.T) {
	patient := load(t, "patient.json")
	obs := load(t, "observation.json")
	tests := []struct {
		name     string
		in       map[string]any
		shape    func(map[string]any) (map[string]any, error)
		want     []string
		subsetOK bool // output carries the SUBSETTED tag
	}{
		{
			name:  "Patient _summary=true",
			in:    patient,
			shape: func(r map[string]any) (map[string]any, error) { return Summary(r, "true") },
			// Not: text, extension, maritalStatus, multipleBirthBoolean,
			// photo, contact, communication, generalPractitioner.
			want: sortedOf("resourceType", "id", "meta", "identifier", "active", "name", "telecom",
				"gender", "birthDate", "_birthDate", "deceasedBoolean", "address", "managingOrganization", "link"),
			subsetOK: true,
		},
		{
			name:  "Observation _summary=true",
			in:    obs,
			shape: func(r map[string]any) (map[string]any, error) { return Summary(r, "true") },
			// Not: text, category, interpretation, note, bodySite, referenceRange.
			want: sortedOf("resourceType", "id", "meta", "identifier", "status", "code", "subject",
				"encounter", "effectiveDateTime", "issued", "performer", "valueQuantity", "component"),
			subsetOK: true,
		},
		{
			name:     "Patient _summary=text",
			in:       patient,
			shape:    func(r map[string]any) (map[string]any, error) { return Summary(r, "text") },
			want:     sortedOf("resourceType", "id", "meta", "text"),
			subsetOK: true,
		},
		{
			name:  "Observation _summary=text keeps mandatory status and code",
			in:    obs,
			shape: func(r map[string]any) (map[string]any, error) { return Summary(r, "text") },
			want:  sortedOf("resourceType", "id", "meta", "text", "status", "code"), subsetOK: true,
		},
		{
			name:     "Patient _summary=data drops text only",
			in:       patient,
			shape:    func(r map[string]any) (map[string]any, error) { return Summary(r, "data") },
			want:     slices.DeleteFunc(keys(patient), func(k string) bool { return k == "text" }),
			subsetOK: true,
		},
		{
			name:     "Observation _summary=data drops text only",
			in:       obs,
			shape:    func(r map[string]any) (map[string]any, error) { return Summary(r, "data") },
			want:     slices.DeleteFunc(keys(obs), func(k string) bool { return k == "text" }),
			subsetOK: true,
		},
		{
			name:  "_summary=false",
			in:    patient,
			shape: func(r map[string]any) (map[string]any, error) { return Summary(r, "false") },
			want:  keys(patient),
		},
		{
			name:  "_summary empty",
			in:    obs,
			shape: func(r map[string]any) (map[string]any, error) { return Summary(r, "") },
			want:  keys(obs),
		},
		{
			name:     "Patient _elements=name,birthDate",
			in:       patient,
			shape:    func(r map[string]any) (map[string]any, error) { return Elements(r, []string{"name", "birthDate"}) },
			want:     sortedOf("resourceType", "id", "meta", "name", "birthDate", "_birthDate"),
			subsetOK: true,
		},
		{
			name:     "Observation _elements=value keeps valueQuantity and mandatory elements",
			in:       obs,
			shape:    func(r map[string]any) (map[string]any, error) { return Elements(r, []string{"value"}) },
			want:     sortedOf("resourceType", "id", "meta", "status", "code", "valueQuantity"),
			subsetOK: true,
		},
		{
			name:     "Observation _elements=valueQuantity",
			in:       obs,
			shape:    func(r map[string]any) (map[string]any, error) { return Elements(r, []string{"valueQuantity"}) },
			want:     sortedOf("resourceType", "id", "meta", "status", "code", "valueQuantity"),
			subsetOK: true,
		},
		{
			name:     "Observation _elements=valueString does not match valueQuantity",
			in:       obs,
			shape:    func(r map[string]any) (map[string]any, error) { return Elements(r, []string{"valueString"}) },
			want:     sortedOf("resourceType", "id", "meta", "status", "code"),
			subsetOK: true,
		},
		{
			name: "_elements ignores non-elements",
			in:   obs,
			shape: func(r map[string]any) (map[string]any, error) {
				return Elements(r, []string{"Observation.note", "value[x]", "resourceType", "", " note", "subject"})
			},
			want:     sortedOf("resourceType", "id", "meta", "status", "code", "subject"),
			subsetOK: true,
		},
		{
			name:     "_elements with no names",
			in:       patient,
			shape:    func(r map[string]any) (map[string]any, error) { return Elements(r, nil) },
			want:     sortedOf("resourceType", "id", "meta"),
			subsetOK: true,
		},
		{
			name: "Appointment _summary=true keeps participant: mandatory, not isSummary",
			in: decode(t, `{"resourceType":"Appointment","id":"a1","status":"booked","description":"x",
				"participant":[{"status":"accepted","actor":{"reference":"Patient/p"}}]}`),
			shape:    func(r map[string]any) (map[string]any, error) { return Summary(r, "true") },
			want:     sortedOf("resourceType", "id", "meta", "status", "participant"),
			subsetOK: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.shape(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if k := keys(got); !slices.Equal(k, tc.want) {
				t.Errorf("keys\n got  %q\n want %q", k, tc.want)
			}
			want := 0
			if tc.subsetOK {
				want = 1
			}
			if n := subsettedCount(t, got); n != want {
				t.Errorf("SUBSETTED tags: %d, want %d", n, want)
			}
		})
	}
}

func TestSummaryTrueNested(t *testing.T) {
	obs := load(t, "observation.json")
	got, err := Summary(obs, "true")
	if err != nil {
		t.Fatal(err)
	}
	// Backbone elements are filtered by their own isSummary flags.
	comp := get(t, got, "component", 0).(map[string]any)
	if k := keys(comp); !slices.Equal(k, []string{"code", "valueQuantity"}) {
		t.Errorf("component keys %q, want code, valueQuantity (no interpretation, referenceRange)", k)
	}
	// Data types are kept whole, numbers verbatim.
	if !reflect.DeepEqual(got["valueQuantity"], obs["valueQuantity"]) {
		t.Errorf("valueQuantity changed: %v", got["valueQuantity"])
	}
	if v := get(t, got, "valueQuantity", "value"); v != json.Number("72.50") {
		t.Errorf("value = %#v, want json.Number 72.50", v)
	}
	if !reflect.DeepEqual(got["code"], obs["code"]) {
		t.Errorf("code changed")
	}
	// The existing meta is kept beside the tag.
	if get(t, got, "meta", "lastUpdated") != "2024-05-02T08:30:00Z" {
		t.Errorf("meta.lastUpdated lost")
	}

	patient := load(t, "patient.json")
	gotP, err := Summary(patient, "true")
	if err != nil {
		t.Fatal(err)
	}
	// Patient.link is a summary backbone: other and type stay, the
	// non-summary id and extension go.
	if k := keys(get(t, gotP, "link", 0).(map[string]any)); !slices.Equal(k, []string{"other", "type"}) {
		t.Errorf("link keys %q", k)
	}
	if !reflect.DeepEqual(gotP["_birthDate"], patient["_birthDate"]) {
		t.Errorf("_birthDate changed")
	}
	if !reflect.DeepEqual(gotP["name"], patient["name"]) {
		t.Errorf("name changed")
	}
}

func TestSummaryTrueAttachmentData(t *testing.T) {
	doc := decode(t, `{
		"resourceType": "DocumentReference", "id": "d1", "status": "current",
		"content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8=", "_data": {"id": "x"}, "url": "http://example.org/d", "title": "hello"}}],
		"subject": {"reference": "Patient/p", "extension": [{"url": "http://example.org/scan", "valueAttachment": {"contentType": "image/png", "data": "iVBO", "size": 4}}]}
	}`)
	got, err := Summary(doc, "true")
	if err != nil {
		t.Fatal(err)
	}
	att := get(t, got, "content", 0, "attachment").(map[string]any)
	if k := keys(att); !slices.Equal(k, []string{"contentType", "title", "url"}) {
		t.Errorf("attachment keys %q, want data and _data removed", k)
	}
	ext := get(t, got, "subject", "extension", 0, "valueAttachment").(map[string]any)
	if k := keys(ext); !slices.Equal(k, []string{"contentType", "size"}) {
		t.Errorf("attachment in extension keys %q, want data removed", k)
	}
	// _summary=data and _elements keep data types as they are.
	for _, f := range []func() (map[string]any, error){
		func() (map[string]any, error) { return Summary(doc, "data") },
		func() (map[string]any, error) { return Elements(doc, []string{"content"}) },
	} {
		got, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if get(t, got, "content", 0, "attachment", "data") != "aGVsbG8=" {
			t.Errorf("attachment data removed outside _summary=true")
		}
	}
}

func TestSummaryTrueNestedResourceKeptWhole(t *testing.T) {
	b := decode(t, `{"resourceType":"Bundle","type":"collection","entry":[{"fullUrl":"urn:uuid:1",
		"resource":{"resourceType":"Patient","id":"p","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},"photo":[{"data":"AA=="}]}}]}`)
	got, err := Summary(b, "true")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(get(t, got, "entry", 0, "resource"), get(t, b, "entry", 0, "resource")) {
		t.Errorf("entry.resource changed")
	}
}

func TestSubsettedTag(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantTags int // all tags in the output
	}{
		{"no meta", `{"resourceType":"Patient","id":"p"}`, 1},
		{"meta without tag", `{"resourceType":"Patient","meta":{"versionId":"1"}}`, 1},
		{"null meta", `{"resourceType":"Patient","meta":null}`, 1},
		{"other tag kept", `{"resourceType":"Patient","meta":{"tag":[{"system":"s","code":"c"}]}}`, 2},
		{"already subsetted", `{"resourceType":"Patient","meta":{"tag":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ObservationValue","code":"SUBSETTED","display":"subsetted"}]}}`, 1},
		{"same code other system", `{"resourceType":"Patient","meta":{"tag":[{"system":"urn:other","code":"SUBSETTED"}]}}`, 2},
	}
	for _, tc := range tests {
		for _, mode := range []string{"true", "text", "data", "elements"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				in := decode(t, tc.in)
				var got map[string]any
				var err error
				if mode == "elements" {
					got, err = Elements(in, []string{"name"})
				} else {
					got, err = Summary(in, mode)
				}
				if err != nil {
					t.Fatal(err)
				}
				if n := subsettedCount(t, got); n != 1 {
					t.Errorf("SUBSETTED tags: %d, want 1", n)
				}
				if n := len(get(t, got, "meta", "tag").([]any)); n != tc.wantTags {
					t.Errorf("tags: %d, want %d", n, tc.wantTags)
				}
				// Shaping a shaped resource adds nothing.
				again, err := Summary(got, "data")
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(get(t, again, "meta"), get(t, got, "meta")) {
					t.Errorf("second pass changed meta")
				}
			})
		}
	}
}

func TestMalformedMeta(t *testing.T) {
	for _, in := range []string{
		`{"resourceType":"Patient","meta":"x"}`,
		`{"resourceType":"Patient","meta":{"tag":{"code":"x"}}}`,
	} {
		if _, err := Summary(decode(t, in), "data"); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", in, err)
		}
		if _, err := Elements(decode(t, in), nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", in, err)
		}
	}
}

// scribble changes every map and slice reachable from v, so that any of them
// shared with the input shows up as a change to the input.
func scribble(v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			scribble(x)
		}
		v["scribbled"] = true
	case []any:
		for i, x := range v {
			scribble(x)
			v[i] = "scribbled"
		}
	}
}

func TestInputNotModified(t *testing.T) {
	fixtures := []string{"patient.json", "observation.json"}
	shapes := map[string]func(map[string]any) (map[string]any, error){
		"true": func(r map[string]any) (map[string]any, error) { return Summary(r, "true") },
		"text": func(r map[string]any) (map[string]any, error) { return Summary(r, "text") },
		"data": func(r map[string]any) (map[string]any, error) { return Summary(r, "data") },
		"elements": func(r map[string]any) (map[string]any, error) {
			return Elements(r, []string{"name", "value", "meta", "text"})
		},
	}
	for _, f := range fixtures {
		for name, shape := range shapes {
			t.Run(f+"/"+name, func(t *testing.T) {
				in := load(t, f)
				orig := load(t, f)
				out, err := shape(in)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(in, orig) {
					t.Fatal("input modified by shaping")
				}
				scribble(out)
				if !reflect.DeepEqual(in, orig) {
					t.Fatal("output shares a map or slice with the input")
				}
			})
		}
	}
}

func TestSummaryFalseReturnsSameMap(t *testing.T) {
	in := load(t, "patient.json")
	for _, mode := range []string{"false", ""} {
		got, err := Summary(in, mode)
		if err != nil {
			t.Fatal(err)
		}
		if reflect.ValueOf(got).UnsafePointer() != reflect.ValueOf(in).UnsafePointer() {
			t.Errorf("mode %q: got a different map", mode)
		}
	}
}

func TestErrors(t *testing.T) {
	patient := load(t, "patient.json")
	for _, mode := range []string{"count", "TRUE", "True", "maybe", "Jane Doe 1974-12-25"} {
		_, err := Summary(patient, mode)
		if !errors.Is(err, ErrUnknownMode) {
			t.Errorf("mode %q: err = %v, want ErrUnknownMode", mode, err)
		}
		if err != nil && strings.Contains(err.Error(), "Jane") {
			t.Errorf("error quotes a value that may be PHI: %v", err)
		}
	}
	for _, in := range []map[string]any{
		nil,
		{},
		{"resourceType": "Foo"},
		{"resourceType": "SubscriptionStatus"}, // 4.3.0, not R4
		{"resourceType": "Resource"},           // abstract
		{"resourceType": "Patient.contact"},    // a backbone part of the table
		{"resourceType": "HumanName"},          // a data type
		{"resourceType": 5},
		{"resourceType": "Jane Doe"},
	} {
		for _, mode := range []string{"true", "false"} {
			_, err := Summary(in, mode)
			if !errors.Is(err, ErrUnknownType) {
				t.Errorf("%v mode %s: err = %v, want ErrUnknownType", in, mode, err)
			}
			if err != nil && strings.Contains(err.Error(), "Jane") {
				t.Errorf("error quotes a value that may be PHI: %v", err)
			}
		}
		if _, err := Elements(in, []string{"name"}); !errors.Is(err, ErrUnknownType) {
			t.Errorf("%v Elements: err = %v, want ErrUnknownType", in, err)
		}
	}
}

func TestValidElement(t *testing.T) {
	tests := []struct {
		typ, name string
		want      bool
	}{
		{"Patient", "name", true},
		{"Patient", "birthDate", true},
		{"Patient", "deceased", true},
		{"Patient", "deceasedDateTime", true},
		{"Patient", "deceasedString", false},
		{"Patient", "id", true},
		{"Patient", "meta", true},
		{"Patient", "text", true},
		{"Patient", "contained", true},
		{"Patient", "modifierExtension", true},
		{"Observation", "value", true},
		{"Observation", "valueQuantity", true},
		{"Observation", "valueCodeableConcept", true},
		{"Observation", "effective", true},
		{"Observation", "effectiveInstant", true},
		{"Observation", "value[x]", false},
		{"Observation", "Value", false},
		{"Observation", "_value", false},
		{"Observation", "component", true},
		{"Observation", "component.code", false},
		{"Observation", "Observation.status", false},
		{"Observation", "resourceType", false},
		{"Observation", "", false},
		{"Foo", "name", false},
		{"", "id", false},
		// R5 or vendor elements of the source StructureDefinitions.
		{"Binary", "url", false},
		{"Binary", "data", true},
		{"DeviceDefinition", "classification", false},
		{"DeviceDefinition", "bodySite", false},
		{"ResearchStudy", "name", false},
		{"ResearchStudy", "title", true},
		{"OperationOutcome", "status", false},
		{"OperationOutcome", "issue", true},
	}
	for _, tc := range tests {
		if got := ValidElement(tc.typ, tc.name); got != tc.want {
			t.Errorf("ValidElement(%q, %q) = %v, want %v", tc.typ, tc.name, got, tc.want)
		}
	}
}

func TestSummaryElements(t *testing.T) {
	tests := []struct {
		typ  string
		want []string
	}{
		{"Patient", sortedOf("id", "meta", "implicitRules", "identifier", "active", "name", "telecom", "gender",
			"birthDate", "deceased", "address", "managingOrganization", "link")},
		{"Observation", sortedOf("id", "meta", "implicitRules", "identifier", "basedOn", "partOf", "status", "code",
			"subject", "focus", "encounter", "effective", "issued", "performer", "value", "hasMember", "derivedFrom", "component")},
		{"Foo", nil},
	}
	for _, tc := range tests {
		if got := SummaryElements(tc.typ); !slices.Equal(got, tc.want) {
			t.Errorf("SummaryElements(%s)\n got  %q\n want %q", tc.typ, got, tc.want)
		}
	}
	// The R4 EvidenceVariable.characteristic replaces the R5 one of the
	// source files: 1..*, in the summary, definition[x] mandatory.
	if !slices.Contains(SummaryElements("EvidenceVariable"), "characteristic") {
		t.Error("EvidenceVariable.characteristic not in the summary")
	}
	ev := decode(t, `{"resourceType":"EvidenceVariable","status":"active","characteristic":[
		{"description":"d","definitionDataRequirement":{"type":"Condition"},"exclude":true}]}`)
	got, err := Summary(ev, "true")
	if err != nil {
		t.Fatal(err)
	}
	if k := keys(get(t, got, "characteristic", 0).(map[string]any)); !slices.Equal(k, []string{"definitionDataRequirement"}) {
		t.Errorf("characteristic keys %q", k)
	}
}

// TestEveryResourceType checks the table against the project's list of the
// 146 R4 resource types (derived from the embedded JSON schema).
func TestEveryResourceType(t *testing.T) {
	types := fhir.ResourceTypes()
	if len(types) != 146 {
		t.Fatalf("fhir.ResourceTypes: %d types", len(types))
	}
	tab := loadTable()
	if len(tab.resources) != len(types) {
		t.Errorf("table has %d resource types, want %d", len(tab.resources), len(types))
	}
	for _, rt := range types {
		p := tab.resources[rt]
		if p == nil {
			t.Errorf("%s: no table entry", rt)
			continue
		}
		s := SummaryElements(rt)
		if len(s) == 0 {
			t.Errorf("%s: no summary elements", rt)
		}
		if !slices.Contains(s, "id") || !slices.Contains(s, "meta") {
			t.Errorf("%s: id or meta not in the summary", rt)
		}
		for _, e := range p.elems {
			if !ValidElement(rt, e.name) {
				t.Errorf("%s.%s: not a ValidElement", rt, e.name)
			}
		}
		// Every type shapes an empty instance without error.
		for _, mode := range []string{"true", "text", "data", "false"} {
			if _, err := Summary(map[string]any{"resourceType": rt}, mode); err != nil {
				t.Errorf("%s _summary=%s: %v", rt, mode, err)
			}
		}
	}
}

// TestTableTypes checks that every type the table names is either one of its
// entries or a type whose values are copied whole: a primitive, xhtml, or
// Resource (a nested resource).
func TestTableTypes(t *testing.T) {
	opaque := map[string]bool{
		"Resource": true, "xhtml": true, "base64Binary": true, "boolean": true, "canonical": true, "code": true,
		"date": true, "dateTime": true, "decimal": true, "id": true, "instant": true, "integer": true,
		"markdown": true, "oid": true, "positiveInt": true, "string": true, "time": true, "unsignedInt": true,
		"uri": true, "url": true, "uuid": true,
	}
	tab := loadTable()
	for name, p := range tab.parts {
		for key, f := range p.keys {
			if tab.parts[f.typ] == nil && !opaque[f.typ] {
				t.Errorf("%s.%s: type %q is neither in the table nor opaque", name, key, f.typ)
			}
		}
	}
	for _, dt := range []string{"Attachment", "Meta", "Element", "Extension", "HumanName", "Timing.repeat"} {
		if p := tab.parts[dt]; p == nil || !p.datatype {
			t.Errorf("%s: missing or not a data type", dt)
		}
	}
	for _, bb := range []string{"Patient.contact", "Observation.component", "Observation.referenceRange"} {
		if p := tab.parts[bb]; p == nil || p.datatype {
			t.Errorf("%s: missing or not a backbone element", bb)
		}
	}
}

// TestShapedStillValid checks that shaping a schema-valid resource gives a
// schema-valid resource: nothing mandatory at the top level goes, and
// nothing is reshaped into an invalid form.
func TestShapedStillValid(t *testing.T) {
	v, err := fhir.NewValidator()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"patient.json", "observation.json"} {
		in := load(t, f)
		if issues := v.Validate(&fhir.Resource{Type: in["resourceType"].(string), Doc: in}); issues != nil {
			t.Fatalf("fixture %s is not valid: %v", f, issues)
		}
		for _, mode := range []string{"true", "text", "data"} {
			out, err := Summary(in, mode)
			if err != nil {
				t.Fatal(err)
			}
			if issues := v.Validate(&fhir.Resource{Type: out["resourceType"].(string), Doc: out}); issues != nil {
				t.Errorf("%s _summary=%s: %v", f, mode, issues)
			}
		}
		out, err := Elements(in, []string{"name", "value"})
		if err != nil {
			t.Fatal(err)
		}
		if issues := v.Validate(&fhir.Resource{Type: out["resourceType"].(string), Doc: out}); issues != nil {
			t.Errorf("%s _elements: %v", f, issues)
		}
	}
}

func TestEmbeddedTableDeterministicHeader(t *testing.T) {
	// gzip header: no name, no modification time (bytes 4-7), so
	// regenerating gives identical bytes.
	if len(summaryGz) < 10 || !bytes.Equal(summaryGz[4:8], []byte{0, 0, 0, 0}) || summaryGz[3] != 0 {
		t.Errorf("summary.json.gz header carries a timestamp or flags: % x", summaryGz[:10])
	}
}

func BenchmarkSummaryObservation(b *testing.B) {
	obs := load(b, "observation.json")
	loadTable()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Summary(obs, "true"); err != nil {
			b.Fatal(err)
		}
	}
}
