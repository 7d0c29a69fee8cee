package fhir

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMarshalOrder(t *testing.T) {
	doc := map[string]any{
		"b":            json.Number("1"),
		"meta":         map[string]any{"versionId": "2", "lastUpdated": "2020-01-01T00:00:00Z", "profile": []any{"p"}},
		"a":            []any{map[string]any{"z": true, "y": nil, "x": "s"}},
		"id":           "x",
		"_a":           map[string]any{"id": "e"},
		"resourceType": "Patient",
		"Z":            false,
	}
	got, err := Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Patient","id":"x","meta":{"lastUpdated":"2020-01-01T00:00:00Z","profile":["p"],"versionId":"2"},` +
		`"Z":false,"_a":{"id":"e"},"a":[{"x":"s","y":null,"z":true}],"b":1}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	// Leading keys are skipped when absent, without stray commas.
	got, err = Marshal(map[string]any{"resourceType": "Basic", "code": map[string]any{}})
	if err != nil || string(got) != `{"resourceType":"Basic","code":{}}` {
		t.Errorf("got %s, %v", got, err)
	}
	got, err = Marshal(map[string]any{"meta": map[string]any{}, "a": json.Number("2")})
	if err != nil || string(got) != `{"meta":{},"a":2}` {
		t.Errorf("got %s, %v", got, err)
	}
}

func TestMarshalStrings(t *testing.T) {
	doc := map[string]any{"resourceType": "Basic", "s": "<a href=\"x\">&amp;</a> \\ \u2028\u2029 \x00\x1f\b\f\n\r\t é 😀 \xff"}
	got, err := Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Basic","s":"<a href=\"x\">&amp;</a> \\ \u2028\u2029 \u0000\u001f\b\f\n\r\t é 😀 \ufffd"}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// appendString must agree with encoding/json (SetEscapeHTML(false)).
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	var all strings.Builder
	for r := rune(0); r < 0x3000; r++ {
		all.WriteRune(r)
	}
	for _, s := range []string{"", "plain", all.String(), "\xff\xfe", "a\xc3", "\ud7ff\ue000\U0010ffff", "\"\\/"} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(b.String(), "\n")
		if got := string(appendString(nil, s)); got != want {
			t.Errorf("appendString(%q)\n got  %q\n want %q", s, got, want)
		}
	}
}

func TestMarshalOtherTypesAndErrors(t *testing.T) {
	got, err := Marshal(map[string]any{"resourceType": "Basic", "i": 3, "f": 1.5, "u": uint8(7), "s": []string{"<x>"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"resourceType":"Basic","f":1.5,"i":3,"s":["<x>"],"u":7}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	cyclic := map[string]any{}
	cyclic["self"] = cyclic
	for name, doc := range map[string]map[string]any{
		"nil":            nil,
		"bad number":     {"n": json.Number("1.")},
		"empty number":   {"n": json.Number("")},
		"number text":    {"n": json.Number("0x10")},
		"NaN":            {"n": nanValue()},
		"cyclic":         cyclic,
		"unsupported Go": {"c": make(chan int)},
	} {
		if out, err := Marshal(doc); err == nil {
			t.Errorf("%s: Marshal succeeded: %s", name, out)
		}
	}
}

func nanValue() float64 {
	zero := 0.0
	return zero / zero
}

func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1.50", "1e5", "1E+5", "-1.0e-10", "123456789012345678901234567890"} {
		if !isJSONNumber(s) {
			t.Errorf("isJSONNumber(%q) = false", s)
		}
	}
	for _, s := range []string{"", "-", "01", "1.", ".5", "+1", "1e", "1e+", "NaN", "1 ", "0x1", "--1"} {
		if isJSONNumber(s) {
			t.Errorf("isJSONNumber(%q) = true", s)
		}
	}
}

func TestSetMeta(t *testing.T) {
	r, err := Parse(readFixture(t, "patient.json"))
	if err != nil {
		t.Fatal(err)
	}
	oldMeta := r.Doc["meta"].(map[string]any)
	oldLen := len(oldMeta)
	at := time.Date(2026, 11, 23, 13, 0, 0, 123456789, time.FixedZone("CET", 3600))
	SetMeta(r.Doc, "7", at)

	meta := r.Doc["meta"].(map[string]any)
	if meta["versionId"] != "7" || meta["lastUpdated"] != "2026-11-23T12:00:00.123456Z" {
		t.Errorf("meta = %v", meta)
	}
	if !reflect.DeepEqual(meta["profile"], oldMeta["profile"]) || !reflect.DeepEqual(meta["tag"], oldMeta["tag"]) {
		t.Errorf("profile/tag not kept: %v", meta)
	}
	if len(oldMeta) != oldLen {
		t.Error("SetMeta modified the original meta map")
	}
	// The result is a valid instant per the schema.
	if issues := newValidator(t).Validate(r); len(issues) != 0 {
		t.Errorf("after SetMeta:\n%s", fmtIssues(issues))
	}

	// No meta, and a meta that is not an object.
	for _, doc := range []map[string]any{{"resourceType": "Basic"}, {"resourceType": "Basic", "meta": "x"}} {
		SetMeta(doc, "1", time.Unix(0, 0))
		if m, ok := doc["meta"].(map[string]any); !ok || len(m) != 2 || m["lastUpdated"] != "1970-01-01T00:00:00.000000Z" {
			t.Errorf("meta = %#v", doc["meta"])
		}
	}
}

func TestFormatInstant(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), "2026-11-23T12:00:00.000000Z"},
		{time.Date(2026, 11, 23, 12, 0, 0, 999999999, time.UTC), "2026-11-23T12:00:00.999999Z"},
		{time.Date(2026, 1, 1, 0, 30, 0, 1000, time.FixedZone("", -3600)), "2026-01-01T01:30:00.000001Z"},
	} {
		if got := FormatInstant(tc.t); got != tc.want {
			t.Errorf("FormatInstant(%v) = %s, want %s", tc.t, got, tc.want)
		}
	}
}

func TestMarshalRoundTripFixtures(t *testing.T) {
	for _, f := range []string{"patient.json", "synthea-encounter.json", "synthea-observation.json"} {
		r, err := Parse(readFixture(t, f))
		if err != nil {
			t.Fatal(err)
		}
		out, err := Marshal(r.Doc)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out) {
			t.Fatalf("%s: invalid output", f)
		}
		r2, err := Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r.Doc, r2.Doc) {
			t.Errorf("%s: round trip changed the document", f)
		}
		out2, _ := Marshal(r2.Doc)
		if !bytes.Equal(out, out2) {
			t.Errorf("%s: Marshal is not stable", f)
		}
		// Compact: Marshal matches json.Compact of itself.
		var c bytes.Buffer
		_ = json.Compact(&c, out)
		if !bytes.Equal(c.Bytes(), out) {
			t.Errorf("%s: output is not compact", f)
		}
	}
}
