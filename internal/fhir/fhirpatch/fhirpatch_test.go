package fhirpatch

import (
	"errors"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
)

// op builds one "operation" parameter; parts are JSON members such as
// `"valueCode":"x"` keyed by part name.
func op(typ, path string, parts ...string) string {
	s := `{"name":"operation","part":[{"name":"type","valueCode":"` + typ + `"},{"name":"path","valueString":"` + path + `"}`
	for _, p := range parts {
		s += "," + p
	}
	return s + "]}"
}

func part(name, member string) string { return `{"name":"` + name + `",` + member + `}` }

func params(ops ...string) string {
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(ops, ",") + `]}`
}

const ids4 = `"identifier":[{"system":"http://example.org","value":"value 1"},{"system":"http://example.org","value":"value 2"},{"system":"http://example.org","value":"value 3"},{"system":"http://example.org","value":"value 4"}]`

func idList(vals ...string) string {
	var items []string
	for _, v := range vals {
		items = append(items, `{"system":"http://example.org","value":"value `+v+`"}`)
	}
	return `"identifier":[` + strings.Join(items, ",") + `]`
}

func pat(members ...string) string {
	return `{"resourceType":"Patient"` + func() string {
		if len(members) == 0 {
			return ""
		}
		return "," + strings.Join(members, ",")
	}() + "}"
}

// The cases of the FHIRPath Patch test suite of the specification
// (fhir-test-cases, r4/patch/fhir-path-tests.xml), in JSON, named as there.
var specCases = []struct {
	name, in, patch, out string
}{
	{"No Difference", pat(`"birthDate":"1920-01-01"`), params(), pat(`"birthDate":"1920-01-01"`)},
	{"Replace Primitive", pat(`"birthDate":"1920-01-01"`),
		params(op("replace", "Patient.birthDate", part("value", `"valueDate":"1930-01-01"`))), pat(`"birthDate":"1930-01-01"`)},
	{"Delete Primitive", pat(`"birthDate":"1920-01-01"`), params(op("delete", "Patient.birthDate")), pat()},
	{"Add Primitive", pat(), params(op("add", "Patient", part("name", `"valueString":"birthDate"`), part("value", `"valueDate":"1930-01-01"`))),
		pat(`"birthDate":"1930-01-01"`)},
	{"Replace Nested Primitive #1", pat(`"contact":[{"name":{"text":"a name"},"gender":"male"}]`),
		params(op("replace", "Patient.contact[0].gender", part("value", `"valueCode":"female"`))), pat(`"contact":[{"name":{"text":"a name"},"gender":"female"}]`)},
	{"Replace Nested Primitive #2", pat(`"contact":[{"name":{"text":"a name"},"gender":"male"}]`),
		params(op("replace", "Patient.contact[0].name.text", part("value", `"valueString":"the name"`))), pat(`"contact":[{"name":{"text":"the name"},"gender":"male"}]`)},
	{"Delete Nested Primitive #1", pat(`"contact":[{"name":{"text":"a name"},"gender":"male"}]`),
		params(op("delete", "Patient.contact[0].gender")), pat(`"contact":[{"name":{"text":"a name"}}]`)},
	{"Delete Nested Primitive #2", pat(`"contact":[{"name":{"text":"a name"},"gender":"male"}]`),
		params(op("delete", "Patient.contact[0].name.text")), pat(`"contact":[{"name":{},"gender":"male"}]`)},
	{"Add Nested Primitive", pat(`"contact":[{"name":{"text":"a name"}}]`),
		params(op("add", "Patient.contact[0]", part("name", `"valueString":"gender"`), part("value", `"valueCode":"male"`))), pat(`"contact":[{"name":{"text":"a name"},"gender":"male"}]`)},
	{"Add Complex", pat(), params(op("add", "Patient", part("name", `"valueString":"maritalStatus"`), part("value", `"valueCodeableConcept":{"text":"married"}`))),
		pat(`"maritalStatus":{"text":"married"}`)},
	{"Replace Complex", pat(`"maritalStatus":{"id":"1","text":"married"}`),
		params(op("replace", "Patient.maritalStatus", part("value", `"valueCodeableConcept":{"id":"2","text":"not married"}`))), pat(`"maritalStatus":{"id":"2","text":"not married"}`)},
	{"Delete Complex", pat(`"maritalStatus":{"text":"married"}`), params(op("delete", "Patient.maritalStatus")), pat()},
	{"Add Anonymous Type", pat(), params(op("add", "Patient", part("name", `"valueString":"contact"`), part("value", `"part":[{"name":"name","valueHumanName":{"text":"a name"}}]`))),
		pat(`"contact":[{"name":{"text":"a name"}}]`)},
	{"Delete Anonymous Type", pat(`"contact":[{"name":{"text":"a name"}}]`), params(op("delete", "Patient.contact[0]")), pat()},
	{"List unchanged", pat(idList("1", "2")), params(), pat(idList("1", "2"))},
	{"List unchanged, contents changed", pat(`"identifier":[{"id":"a","system":"http://example.org","value":"value 1"},{"id":"b","system":"http://example.org","value":"value 2"}]`),
		params(op("replace", "Patient.identifier[0].value", part("value", `"valueString":"value 2"`)), op("replace", "Patient.identifier[1].value", part("value", `"valueString":"value 1"`))),
		pat(`"identifier":[{"id":"a","system":"http://example.org","value":"value 2"},{"id":"b","system":"http://example.org","value":"value 1"}]`)},
	{"Add to list", pat(idList("1", "2")),
		params(op("insert", "Patient.identifier", part("index", `"valueInteger":2`), part("value", `"valueIdentifier":{"system":"http://example.org","value":"value 3"}`))), pat(idList("1", "2", "3"))},
	{"Insert in list #1", pat(idList("1", "2")),
		params(op("insert", "Patient.identifier", part("index", `"valueInteger":1`), part("value", `"valueIdentifier":{"system":"http://example.org","value":"value 3"}`))), pat(idList("1", "3", "2"))},
	{"Insert in list #2", pat(idList("1", "2")),
		params(op("insert", "Patient.identifier", part("index", `"valueInteger":0`), part("value", `"valueIdentifier":{"system":"http://example.org","value":"value 3"}`))), pat(idList("3", "1", "2"))},
	{"Delete from List #1", pat(idList("1", "2", "3")), params(op("delete", "Patient.identifier[0]")), pat(idList("2", "3"))},
	{"Delete from List #2", pat(idList("1", "2", "3")), params(op("delete", "Patient.identifier[1]")), pat(idList("1", "3"))},
	{"Delete from List #3", pat(idList("1", "2", "3")), params(op("delete", "Patient.identifier[2]")), pat(idList("1", "2"))},
	{"Reorder List #1", pat(ids4), params(op("move", "Patient.identifier", part("source", `"valueInteger":3`), part("destination", `"valueInteger":1`))), pat(idList("1", "4", "2", "3"))},
	{"Reorder List #2", pat(ids4), params(op("move", "Patient.identifier", part("source", `"valueInteger":3`), part("destination", `"valueInteger":0`))), pat(idList("4", "1", "2", "3"))},
	{"Reorder List #3", pat(ids4), params(op("move", "Patient.identifier", part("source", `"valueInteger":3`), part("destination", `"valueInteger":2`))), pat(idList("1", "2", "4", "3"))},
	{"Reorder List #4", pat(ids4), params(op("move", "Patient.identifier", part("source", `"valueInteger":0`), part("destination", `"valueInteger":3`))), pat(idList("2", "3", "4", "1"))},
	{"Reorder List #5 (two moves)", pat(ids4), params(
		op("move", "Patient.identifier", part("source", `"valueInteger":1`), part("destination", `"valueInteger":0`)),
		op("move", "Patient.identifier", part("source", `"valueInteger":3`), part("destination", `"valueInteger":2`))), pat(idList("2", "1", "4", "3"))},
	{"Full resource: narrative and name", pat(`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">old</div>"}`, `"name":[{"use":"official","family":"Chalmers","given":["Peter"]},{"use":"usual","given":["Jim"]}]`),
		params(op("replace", "Patient.text.div", part("value", `"valueString":"<div xmlns=\"http://www.w3.org/1999/xhtml\">new</div>"`)), op("replace", "Patient.name[0].family", part("value", `"valueString":"Chalmers1"`))),
		pat(`"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">new</div>"}`, `"name":[{"use":"official","family":"Chalmers1","given":["Peter"]},{"use":"usual","given":["Jim"]}]`)},
	// Beyond the suite: filters and functions.
	{"where() selects by element", pat(`"name":[{"use":"official","family":"A"},{"use":"usual","family":"B"}]`),
		params(op("replace", "Patient.name.where(use = 'usual').family", part("value", `"valueString":"C"`))), pat(`"name":[{"use":"official","family":"A"},{"use":"usual","family":"C"}]`)},
	{"first() and last()", pat(idList("1", "2", "3")), params(op("delete", "Patient.identifier.last()"), op("delete", "Patient.identifier.first()")), pat(idList("2"))},
	{"delete of nothing is no error", pat(), params(op("delete", "Patient.birthDate")), pat()},
	{"delete takes the primitive's extensions along", pat(`"birthDate":"1920-01-01"`, `"_birthDate":{"extension":[{"url":"http://x","valueString":"y"}]}`), params(op("delete", "Patient.birthDate")), pat()},
	{"add to a repeating element appends", pat(idList("1")), params(op("add", "Patient", part("name", `"valueString":"identifier"`), part("value", `"valueIdentifier":{"system":"http://example.org","value":"value 2"}`))), pat(idList("1", "2"))},
}

func mustParse(t *testing.T, s string) map[string]any {
	t.Helper()
	r, err := fhir.Parse([]byte(s))
	if err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return r.Doc
}

func TestSpecCases(t *testing.T) {
	for _, c := range specCases {
		t.Run(c.name, func(t *testing.T) {
			in := mustParse(t, c.in)
			before, _ := fhir.Marshal(in)
			ops, err := Parse(mustParse(t, c.patch))
			if err != nil {
				t.Fatal(err)
			}
			out, err := Apply(in, ops)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := fhir.Marshal(out)
			want, _ := fhir.Marshal(mustParse(t, c.out))
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
			if after, _ := fhir.Marshal(in); string(after) != string(before) {
				t.Fatal("Apply changed its input")
			}
		})
	}
}

func TestErrors(t *testing.T) {
	secret := "Quillfeather"
	cases := []struct {
		name, in, patch string
		want            error
		msg             string
	}{
		{"not Parameters", pat(), pat(), ErrInvalid, "Parameters"},
		{"unknown type", pat(), params(op("frob", "Patient")), ErrInvalid, "type must be"},
		{"missing value", pat(), params(op("replace", "Patient.birthDate")), ErrInvalid, "needs a value"},
		{"missing name", pat(), params(op("add", "Patient", part("value", `"valueDate":"1930-01-01"`))), ErrInvalid, "needs a name"},
		{"bad path", pat(), params(op("delete", "Patient..x")), ErrInvalid, "path"},
		{"unsupported function", pat(), params(op("delete", "Patient.name.exists()")), ErrInvalid, "not supported"},
		{"path of another type", pat(), params(op("delete", "Observation.status")), ErrFailed, "resource type"},
		{"value and parts", pat(), params(op("replace", "Patient.birthDate", part("value", `"valueDate":"1930-01-01","part":[]`))), ErrInvalid, "value"},
		{"negative index", pat(), params(op("insert", "Patient.identifier", part("index", `"valueInteger":-1`), part("value", `"valueString":"x"`))), ErrInvalid, "index"},
		{"index past the end", pat(idList("1")), params(op("insert", "Patient.identifier", part("index", `"valueInteger":5`), part("value", `"valueIdentifier":{}`))), ErrFailed, "past the end"},
		{"move out of range", pat(idList("1")), params(op("move", "Patient.identifier", part("source", `"valueInteger":0`), part("destination", `"valueInteger":1`))), ErrFailed, "within the list"},
		{"insert into a non-list", pat(), params(op("insert", "Patient.birthDate", part("index", `"valueInteger":0`), part("value", `"valueDate":"1930-01-01"`))), ErrFailed, "not a repeating"},
		{"replace of nothing", pat(), params(op("replace", "Patient.birthDate", part("value", `"valueDate":"1930-01-01"`))), ErrFailed, "matches 0"},
		{"replace of many", pat(idList("1", "2")), params(op("replace", "Patient.identifier", part("value", `"valueIdentifier":{}`))), ErrFailed, "matches 2"},
		{"add to an existing singleton", pat(`"birthDate":"1920-01-01"`), params(op("add", "Patient", part("name", `"valueString":"birthDate"`), part("value", `"valueDate":"1930-01-01"`))), ErrFailed, "already"},
		{"add of an unknown element", pat(), params(op("add", "Patient", part("name", `"valueString":"shoeSize"`), part("value", `"valueInteger":9`))), ErrFailed, "no element"},
		{"where literal not echoed", pat(`"name":[{"family":"Other"}]`), params(op("replace", "Patient.name.where(family = '"+secret+"')", part("value", `"valueString":"x"`))), ErrFailed, "matches 0"},
		{"delete of many", pat(idList("1", "2")), params(op("delete", "Patient.identifier")), ErrFailed, "at most one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, err := Parse(mustParse(t, c.patch))
			if err == nil {
				_, err = Apply(mustParse(t, c.in), ops)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %v, want %v containing %q", err, c.want, c.msg)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "value 1") {
				t.Fatalf("the error echoes a value: %v", err)
			}
		})
	}
}
