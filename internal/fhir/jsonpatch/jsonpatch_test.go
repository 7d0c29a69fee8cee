package jsonpatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func decode(t testing.TB, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("bad test JSON %q: %v", s, err)
	}
	return v
}

// The examples of RFC 6902, Appendix A (A.1 to A.16), and a few more.
func TestRFC6902Examples(t *testing.T) {
	cases := []struct {
		name, doc, patch, want string
		err                    error
	}{
		{"A.1 add object member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux"}]`, `{"baz":"qux","foo":"bar"}`, nil},
		{"A.2 add array element", `{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`, `{"foo":["bar","qux","baz"]}`, nil},
		{"A.3 remove object member", `{"baz":"qux","foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`, `{"foo":"bar"}`, nil},
		{"A.4 remove array element", `{"foo":["bar","qux","baz"]}`, `[{"op":"remove","path":"/foo/1"}]`, `{"foo":["bar","baz"]}`, nil},
		{"A.5 replace", `{"baz":"qux","foo":"bar"}`, `[{"op":"replace","path":"/baz","value":"boo"}]`, `{"baz":"boo","foo":"bar"}`, nil},
		{"A.6 move value", `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`, `[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`,
			`{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`, nil},
		{"A.7 move array element", `{"foo":["all","grass","cows","eat"]}`, `[{"op":"move","from":"/foo/1","path":"/foo/3"}]`, `{"foo":["all","cows","eat","grass"]}`, nil},
		{"A.8 test success", `{"baz":"qux","foo":["a",2,"c"]}`, `[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]`, `{"baz":"qux","foo":["a",2,"c"]}`, nil},
		{"A.9 test error", `{"baz":"qux"}`, `[{"op":"test","path":"/baz","value":"bar"}]`, ``, ErrFailed},
		{"A.10 add nested member", `{"foo":"bar"}`, `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`, `{"foo":"bar","child":{"grandchild":{}}}`, nil},
		{"A.11 ignore unknown members", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","xyz":123}]`, `{"foo":"bar","baz":"qux"}`, nil},
		{"A.12 add to nonexistent target", `{"foo":"bar"}`, `[{"op":"add","path":"/baz/bat","value":"qux"}]`, ``, ErrFailed},
		{"A.13 invalid patch (op missing)", `{"foo":"bar"}`, `[{"path":"/baz","value":"qux"}]`, ``, ErrInvalid},
		{"A.14 escape ordering", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10}]`, `{"/":9,"~1":10}`, nil},
		{"A.15 comparing strings and numbers", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":"10"}]`, ``, ErrFailed},
		{"A.16 add array value", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`, `{"foo":["bar",["abc","def"]]}`, nil},
		{"copy", `{"a":{"b":1}}`, `[{"op":"copy","from":"/a","path":"/c"}]`, `{"a":{"b":1},"c":{"b":1}}`, nil},
		{"replace root", `{"a":1}`, `[{"op":"replace","path":"","value":{"b":2}}]`, `{"b":2}`, nil},
		{"replace missing", `{"a":1}`, `[{"op":"replace","path":"/b","value":2}]`, ``, ErrFailed},
		{"remove missing", `{"a":1}`, `[{"op":"remove","path":"/b"}]`, ``, ErrFailed},
		{"index out of range", `{"a":[1]}`, `[{"op":"add","path":"/a/5","value":2}]`, ``, ErrFailed},
		{"leading zero index", `{"a":[1,2]}`, `[{"op":"remove","path":"/a/01"}]`, ``, ErrFailed},
		{"move into itself", `{"a":{"b":{}}}`, `[{"op":"move","from":"/a","path":"/a/b/c"}]`, ``, ErrFailed},
		{"number equality by value", `{"a":1.0}`, `[{"op":"test","path":"/a","value":1}]`, `{"a":1.0}`, nil},
		{"null value", `{"a":1}`, `[{"op":"replace","path":"/a","value":null}]`, `{"a":null}`, nil},
		{"bad pointer", `{}`, `[{"op":"add","path":"a","value":1}]`, ``, ErrInvalid},
		{"bad escape", `{}`, `[{"op":"add","path":"/a~2","value":1}]`, ``, ErrInvalid},
		{"unknown op", `{}`, `[{"op":"merge","path":"/a","value":1}]`, ``, ErrInvalid},
		{"add without value", `{}`, `[{"op":"add","path":"/a"}]`, ``, ErrInvalid},
		{"move without from", `{}`, `[{"op":"move","path":"/a"}]`, ``, ErrInvalid},
		{"not an array", `{}`, `{"op":"add"}`, ``, ErrInvalid},
		{"all or nothing", `{"a":1}`, `[{"op":"add","path":"/b","value":2},{"op":"test","path":"/a","value":3}]`, ``, ErrFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := decode(t, c.doc)
			before, _ := json.Marshal(doc)
			ops, err := Parse([]byte(c.patch))
			if err == nil {
				var out any
				out, err = Apply(doc, ops)
				if err == nil {
					if !equal(out, decode(t, c.want)) {
						got, _ := json.Marshal(out)
						t.Fatalf("got %s, want %s", got, c.want)
					}
				}
			}
			if c.err == nil && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if c.err != nil && !errors.Is(err, c.err) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			after, _ := json.Marshal(doc)
			if !bytes.Equal(before, after) {
				t.Fatalf("input modified: %s -> %s", before, after)
			}
		})
	}
}

func TestErrorsNeverCarryValues(t *testing.T) {
	doc := decode(t, `{"name":[{"family":"Quillfeather"}]}`)
	for _, patch := range []string{
		`[{"op":"test","path":"/name/0/family","value":"Secretvalue"}]`,
		`[{"op":"replace","path":"/Secretvalue","value":"x"}]`,
		`[{"op":"add","path":"/name/9","value":"Secretvalue"}]`,
		`[{"op":"remove","path":"/name/0/Secret value with spaces"}]`,
	} {
		ops, err := Parse([]byte(patch))
		if err == nil {
			_, err = Apply(doc, ops)
		}
		if err == nil {
			t.Fatalf("%s applied", patch)
		}
		if strings.Contains(err.Error(), "Quillfeather") || strings.Contains(err.Error(), "Secret value") {
			t.Errorf("error carries a value: %v", err)
		}
	}
}

func FuzzApply(f *testing.F) {
	f.Add(`{"a":[1,2,{"b":"c"}]}`, `[{"op":"move","from":"/a/0","path":"/a/-"}]`)
	f.Add(`{"~":{"/":1}}`, `[{"op":"copy","from":"/~0/~1","path":"/x"},{"op":"remove","path":"/~0"}]`)
	f.Add(`[]`, `[{"op":"add","path":"/0","value":1}]`)
	f.Add(`{"a":1}`, `[{"op":"replace","path":"","value":[]},{"op":"add","path":"/-","value":{}}]`)
	// Growth: doubling by copy, through the root, and replace/remove
	// accounting (ApplyLimited).
	f.Add(`{"name":[{"family":"x"}]}`, strings.Repeat(`[{"op":"copy","from":"/name","path":"/name/-"},`, 1)+
		`{"op":"copy","from":"/name","path":"/name/-"},{"op":"copy","from":"/name","path":"/name/-"},{"op":"copy","from":"/name","path":"/name/-"}]`)
	f.Add(`{"a":[]}`, `[{"op":"copy","from":"","path":"/a/-"},{"op":"copy","from":"","path":"/a/-"},{"op":"copy","from":"","path":"/a/-"},{"op":"copy","from":"","path":"/a/-"}]`)
	f.Add(`{"a":[1,2,3]}`, `[{"op":"replace","path":"/a/0","value":[1,2]},{"op":"move","from":"/a/0","path":"/b"},{"op":"remove","path":"/a"},{"op":"add","path":"/a","value":{}}]`)
	f.Fuzz(func(t *testing.T, doc, patch string) {
		d := json.NewDecoder(strings.NewReader(doc))
		d.UseNumber()
		var v any
		if d.Decode(&v) != nil {
			return
		}
		before, _ := json.Marshal(v)
		ops, err := Parse([]byte(patch))
		if err != nil {
			return
		}
		if _, err := Apply(v, ops); err != nil && !errors.Is(err, ErrFailed) {
			t.Fatalf("unclassified error %v", err)
		}
		// Within limits: refused as too costly, or a result within them.
		lim := Limits{Elements: 30, ArrayItems: 4}
		out, err := ApplyLimited(v, ops, lim)
		switch {
		case err != nil && !errors.Is(err, ErrFailed) && !errors.Is(err, ErrTooCostly):
			t.Fatalf("ApplyLimited: unclassified error %v", err)
		case err == nil && CountValues(out, -1) > max(lim.Elements, CountValues(v, -1)):
			t.Fatalf("ApplyLimited grew the document to %d values", CountValues(out, -1))
		}
		after, _ := json.Marshal(v)
		if !bytes.Equal(before, after) {
			t.Fatal("Apply modified its input")
		}
	})
}
