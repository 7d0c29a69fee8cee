package fhir

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestResourceTypes(t *testing.T) {
	types := ResourceTypes()
	if len(types) != 146 {
		t.Fatalf("ResourceTypes() has %d types, want 146", len(types))
	}
	if !slices.IsSorted(types) {
		t.Error("ResourceTypes() is not sorted")
	}
	for _, name := range []string{"Patient", "Observation", "Bundle", "OperationOutcome", "CapabilityStatement", "VisionPrescription"} {
		if !IsResourceType(name) || !slices.Contains(types, name) {
			t.Errorf("%s missing", name)
		}
	}
	// Not R4 resource types: abstract types, data types, R5 and vendor types,
	// wrong case.
	for _, name := range []string{"", "Resource", "DomainResource", "HumanName", "patient", "PATIENT", "SubscriptionStatus", "Project", "ResourceList"} {
		if IsResourceType(name) {
			t.Errorf("IsResourceType(%q) = true", name)
		}
	}
	types[0] = "changed"
	if ResourceTypes()[0] == "changed" {
		t.Error("ResourceTypes returns shared storage")
	}
}

func TestParseErrors(t *testing.T) {
	deep := strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100) // depth 100: ok
	// More members than smallObject, so the map path finds the duplicate.
	large := `{"resourceType":"Basic"`
	for i := range 40 {
		large += `,"k` + strconv.Itoa(i) + `":` + strconv.Itoa(i)
	}
	largeDup := len(large) + 1
	large += `,"k3":3}`
	tooDeep := strings.Repeat(`{"a":`, 101) + "1" + strings.Repeat("}", 101) // depth 101
	tests := []struct {
		name, body string
		code       string
		msg        string // exact ParseError.Msg
		offset     int
	}{
		{"empty", ``, "structure", "empty body", -1},
		{"whitespace only", " \n\t ", "structure", "empty body", -1},
		{"invalid utf8", "{\"resourceType\":\"Patient\",\"x\":\"\xff\"}", "structure", "invalid UTF-8 at byte offset 31", 31},
		{"truncated", `{"resourceType":"Patient"`, "structure", "invalid JSON: unexpected end of input at byte offset 25", 25},
		{"bad literal", `{"a":tru}`, "structure", "invalid JSON: invalid literal at byte offset 8", 8},
		{"missing colon", `{"a" 1}`, "structure", "invalid JSON: expected ':' after key at byte offset 5", 5},
		{"unquoted key", `{a:1}`, "structure", "invalid JSON: expected a string key at byte offset 1", 1},
		{"trailing comma", `{"a":1,}`, "structure", "invalid JSON: expected a string key at byte offset 7", 7},
		{"bad number", `{"a":01}`, "structure", "invalid JSON: expected ',' or '}' in object at byte offset 6", 6},
		{"bad fraction", `{"a":1.}`, "structure", "invalid JSON: invalid number at byte offset 7", 7},
		{"bad escape", `{"a":"\x"}`, "structure", "invalid JSON: invalid escape in string at byte offset 7", 7},
		{"control char", "{\"a\":\"\n\"}", "structure", "invalid JSON: control character in string at byte offset 6", 6},
		{"array", `[{"resourceType":"Patient"}]`, "structure", "resource must be a JSON object, not an array at byte offset 0", 0},
		{"string", ` "Patient"`, "structure", "resource must be a JSON object, not a string at byte offset 1", 1},
		{"null", `null`, "structure", "resource must be a JSON object, not null at byte offset 0", 0},
		{"number", `42`, "structure", "resource must be a JSON object, not a number at byte offset 0", 0},
		{"trailing object", `{"resourceType":"Patient"} {}`, "structure", "trailing data after the resource at byte offset 27", 27},
		{"trailing garbage", `{"resourceType":"Patient"}x`, "structure", "trailing data after the resource at byte offset 26", 26},
		{"missing resourceType", `{"id":"a"}`, "required", "missing resourceType", -1},
		{"numeric resourceType", `{"resourceType":7}`, "value", "resourceType must be a string", -1},
		{"null resourceType", `{"resourceType":null}`, "value", "resourceType must be a string", -1},
		{"unknown resourceType", `{"resourceType":"Pateint"}`, "not-supported", "unknown resourceType", -1},
		{"lower-case resourceType", `{"resourceType":"patient"}`, "not-supported", "unknown resourceType", -1},
		{"duplicate top-level key", `{"resourceType":"Patient","gender":"male","gender":"female"}`, "structure", "duplicate key at gender at byte offset 42", 42},
		{"duplicate resourceType", `{"resourceType":"Patient","resourceType":"Observation"}`, "structure", "duplicate key at resourceType at byte offset 26", 26},
		{"duplicate nested key", `{"resourceType":"Patient","name":[{"given":["a"]},{"family":"x","family":"y"}]}`, "structure", "duplicate key at name[1].family at byte offset 64", 64},
		{"duplicate via escape", `{"resourceType":"Patient","id":"a","\u0069d":"b"}`, "structure", "duplicate key at id at byte offset 35", 35},
		{"duplicate unsafe key", `{"resourceType":"Patient","a b":1,"a b":2}`, "structure", "duplicate key at ? at byte offset 34", 34},
		{"duplicate in large object", large, "structure", "duplicate key at k3 at byte offset " + strconv.Itoa(largeDup), largeDup},
		{"too deep objects", tooDeep, "too-costly", "nesting deeper than 100 levels at " + strings.TrimSuffix(strings.Repeat("a.", 100), ".") + " at byte offset 500", 500},
		{"too deep arrays", `{"resourceType":"Basic","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}", "too-costly", "nesting deeper than 100 levels at x" + strings.Repeat("[0]", 99) + " at byte offset 127", 127},
		{"id not a string", `{"resourceType":"Patient","id":12}`, "value", "id must be a string", -1},
		{"id empty", `{"resourceType":"Patient","id":""}`, "value", `id does not match the FHIR id format [A-Za-z0-9\-\.]{1,64}`, -1},
		{"id with space", `{"resourceType":"Patient","id":"a b"}`, "value", `id does not match the FHIR id format [A-Za-z0-9\-\.]{1,64}`, -1},
		{"id too long", `{"resourceType":"Patient","id":"` + strings.Repeat("a", 65) + `"}`, "value", `id does not match the FHIR id format [A-Za-z0-9\-\.]{1,64}`, -1},
		{"byte order mark", "\ufeff{\"resourceType\":\"Patient\"}", "structure", "invalid JSON: byte order mark at byte offset 0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := Parse([]byte(tt.body))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", r)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T %v is not a *ParseError", err, err)
			}
			if pe.Code != tt.code || pe.Msg != tt.msg || pe.Offset != tt.offset {
				t.Errorf("got  {%s %q %d}\nwant {%s %q %d}", pe.Code, pe.Msg, pe.Offset, tt.code, tt.msg, tt.offset)
			}
			if err.Error() != "fhir: "+pe.Msg {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}

	// Exactly MaxDepth levels is accepted (the resourceType check runs after
	// the structural one, so this fails on the type, not the depth).
	_, err := Parse([]byte(deep))
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Code != "required" {
		t.Errorf("depth 100: got %v, want missing resourceType", err)
	}
	if _, err := Parse([]byte(`{"resourceType":"Basic","code":{},"x":` + strings.Repeat("[", 99) + strings.Repeat("]", 99) + "}")); err != nil {
		t.Errorf("depth 100 with arrays: %v", err)
	}
}

// The byte offsets in the table above are easy to get wrong by hand; check
// that each names the position the message is about.
func TestParseErrorOffsetsPointAtTheProblem(t *testing.T) {
	for _, tc := range []struct{ body, at string }{
		{`{"resourceType":"Patient","gender":"male","gender":"female"}`, `"gender":"female"`},
		{`{"resourceType":"Patient","name":[{"given":["a"]},{"family":"x","family":"y"}]}`, `"family":"y"`},
		{`{"resourceType":"Patient"}x`, `x`},
		{"{\"resourceType\":\"Patient\",\"x\":\"\xff\"}", "\xff"},
		{`{"a":1.}`, `}`},
	} {
		_, err := Parse([]byte(tc.body))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Offset < 0 {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if !strings.HasPrefix(tc.body[pe.Offset:], tc.at) {
			t.Errorf("%s: offset %d points at %q, want %q", tc.body, pe.Offset, tc.body[pe.Offset:], tc.at)
		}
	}
}

func TestParseOK(t *testing.T) {
	r, err := Parse(readFixture(t, "patient.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != "Patient" || r.ID != "pat-7f3a9c21" {
		t.Errorf("Type, ID = %q, %q", r.Type, r.ID)
	}
	if _, ok := r.Doc["name"].([]any); !ok {
		t.Errorf("name is %T", r.Doc["name"])
	}
	// Numbers stay json.Number with their text.
	if n, ok := r.Doc["multipleBirthInteger"].(json.Number); !ok || n != "2" {
		t.Errorf("multipleBirthInteger = %#v", r.Doc["multipleBirthInteger"])
	}

	r, err = Parse([]byte(` {"resourceType":"Basic","code":{"text":"\u00e9\ud83d\ude00"}} ` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != "" {
		t.Errorf("ID = %q, want empty", r.ID)
	}
	if got := r.Doc["code"].(map[string]any)["text"]; got != "é😀" {
		t.Errorf("unicode escapes decoded to %q", got)
	}
}

func TestDecimalPrecisionRoundTrip(t *testing.T) {
	in := `{"resourceType":"Observation","code":{"text":"t"},"status":"final","valueQuantity":{"value":1.50,"unit":"mg"},` +
		`"component":[{"code":{"text":"c"},"valueQuantity":{"value":0.000000000000000000001}},{"code":{"text":"d"},"valueQuantity":{"value":123456789012345678901234567890.10}},{"code":{"text":"e"},"valueQuantity":{"value":1E+2}},{"code":{"text":"f"},"valueQuantity":{"value":-0.0}}]}`
	r, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(r.Doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, lit := range []string{`"value":1.50`, `0.000000000000000000001`, `123456789012345678901234567890.10`, `1E+2`, `-0.0`} {
		if !strings.Contains(string(out), lit) {
			t.Errorf("output lost %s: %s", lit, out)
		}
	}
	if got := r.Doc["valueQuantity"].(map[string]any)["value"]; got != json.Number("1.50") {
		t.Errorf("value = %#v", got)
	}
}
