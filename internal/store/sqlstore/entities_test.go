package sqlstore

import (
	"encoding/json"
	"slices"
	"testing"
)

// The ledger's entity lists are written without encoding/json when every
// reference is plain ASCII; the text must be exactly what json.Marshal
// writes, and must decode back, whatever the references hold.
func TestEncodeEntitiesIsJSON(t *testing.T) {
	cases := [][]string{
		{"Patient/p1/_history/3"},
		{"Patient/6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9/_history/12", "Observation/o.1/_history/1"},
		{""},
		{"a", ""},
		{`quo"te`},
		{`back\slash`},
		{"tab\there"},
		{"<script>&amp;</script>"},
		{"naïve"},
		{"line\u2028sep"},
		{"del\x7f"},
		{"\xff invalid utf-8"},
		{"Patient/p1/_history/1", "Patient/\"x\"/_history/2"},
	}
	for _, es := range cases {
		want, err := json.Marshal(es)
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeEntities(es); got != string(want) {
			t.Errorf("encodeEntities(%q) = %s, want %s", es, got, want)
		}
	}
	if got := encodeEntities(nil); got != "[]" {
		t.Errorf("encodeEntities(nil) = %s", got)
	}
}

func FuzzEncodeEntities(f *testing.F) {
	f.Add("Patient/p1/_history/3", "Observation/o1/_history/1")
	f.Add(`"`, `\`)
	f.Add("<&>", "\x00")
	f.Add("é", "\xff")
	f.Fuzz(func(t *testing.T, a, b string) {
		es := []string{a, b}
		want, _ := json.Marshal(es)
		got := encodeEntities(es)
		if got != string(want) {
			t.Fatalf("encodeEntities(%q) = %s, want %s", es, got, want)
		}
		back, err := decodeEntities(got)
		if err != nil {
			t.Fatal(err)
		}
		var ref []string
		if err := json.Unmarshal(want, &ref); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(back, ref) {
			t.Fatalf("round trip of %q gave %q", es, back)
		}
	})
}

// FuzzDecodeEntities: the split fast path reads every text exactly as
// json.Unmarshal does (the same list, or an error where it errs).
func FuzzDecodeEntities(f *testing.F) {
	f.Add(`["Patient/p1/_history/3","Observation/o1/_history/1"]`)
	f.Add(`[]`)
	f.Add(`[""]`)
	f.Add(`["",""]`)
	f.Add(`["a"",""b"]`)
	f.Add(`["a","b"`)
	f.Add(`[ "a" ]`)
	f.Add(`["a\u0022b"]`)
	f.Add(`["<x>"]`)
	f.Add("[\"a\x01\"]")
	f.Add("[\"\xff\"]")
	f.Add(`["a"]x"]`)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := decodeEntities(s)
		var ref []string
		refErr := json.Unmarshal([]byte(s), &ref)
		if len(ref) == 0 {
			ref = nil
		}
		if (err != nil) != (refErr != nil) {
			t.Fatalf("decodeEntities(%q) error %v, json.Unmarshal %v", s, err, refErr)
		}
		if err == nil && !slices.Equal(got, ref) {
			t.Fatalf("decodeEntities(%q) = %q, json.Unmarshal %q", s, got, ref)
		}
	})
}
