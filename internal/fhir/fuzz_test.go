package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds are added to both fuzzers; the committed corpus under
// testdata/fuzz/ holds these and anything the fuzzers found.
var fuzzSeeds = []string{
	// Valid, minimal and realistic.
	`{"resourceType":"Patient"}`,
	`{"resourceType":"Patient","id":"p1","gender":"female","name":[{"given":["A","B"],"family":"C"}],"birthDate":"1990-01-01"}`,
	`{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50,"unit":"mg"}}`,
	`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","gender":"x"}}]}`,
	`{"resourceType":"Patient","contained":[{"resourceType":"Observation"},{},"x"]}`,
	// Invalid by schema.
	`{"resourceType":"Patient","gender":"banana","foo":1,"name":"x","birthDate":"13-13"}`,
	// Duplicate keys: plain, nested, via escape.
	`{"resourceType":"Patient","gender":"male","gender":"female"}`,
	`{"resourceType":"Patient","name":[{"family":"a","family":"b"}]}`,
	`{"resourceType":"Patient","id":"a","\u0069d":"b"}`,
	`{"resourceType":"Patient","\ud800":1,"\udfff":2}`, // both decode to U+FFFD
	// Deep nesting: 100 levels (accepted by the scanner) and 101.
	strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100),
	strings.Repeat(`{"a":`, 101) + "1" + strings.Repeat("}", 101),
	`{"resourceType":"Basic","x":` + strings.Repeat("[", 120) + strings.Repeat("]", 120) + "}",
	// Huge and odd numbers.
	`{"resourceType":"Observation","valueQuantity":{"value":1e999999999}}`,
	`{"resourceType":"Observation","valueQuantity":{"value":-0.0E-0}}`,
	`{"resourceType":"Patient","multipleBirthInteger":` + strings.Repeat("9", 400) + `}`,
	// Unicode escapes, lone surrogates, U+2028, NUL.
	`{"resourceType":"Patient","name":[{"text":"\u00e9\ud83d\ude00\ud800\u2028\u0000"}]}`,
	// Invalid UTF-8, BOM, trailing data, not an object, empty.
	"{\"resourceType\":\"Patient\",\"x\":\"\xff\xfe\"}",
	"\xef\xbb\xbf{\"resourceType\":\"Patient\"}",
	`{"resourceType":"Patient"} {}`,
	`[{"resourceType":"Patient"}]`,
	``,
	// resourceType and id problems.
	`{"resourceType":"Nope"}`,
	`{"resourceType":7}`,
	`{"resourceType":"Patient","id":"a b"}`,
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
}

// refShape is what the standard library tokenizer says about body: whether
// it is one valid UTF-8 JSON object, whether any object repeats a key and
// how deep it nests. It is the oracle for Parse's own scanner.
func refShape(body []byte) (object, dup bool, depth int) {
	if !utf8.Valid(body) || !json.Valid(body) {
		return false, false, 0
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		obj       bool
		expectKey bool
		keys      map[string]bool
	}
	var stack []*frame
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return object, dup, depth
		}
		if err != nil {
			return false, false, 0
		}
		if first {
			object = tok == json.Delim('{')
			first = false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expectKey {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					dup = true
				}
				top.keys[k] = true
				top.expectKey = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			stack = append(stack, &frame{obj: tok == json.Delim('{'), expectKey: true, keys: map[string]bool{}})
			depth = max(depth, len(stack))
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].expectKey = true
		}
	}
}

// fuzzLimits are small limits for the fuzzers' ParseLimited property.
var fuzzLimits = Limits{ArrayItems: 3, Elements: 40, BundleEntries: 2}

// checkLimited asserts ParseLimited's property: it refuses what Parse
// refuses; what Parse accepts it either accepts the same or refuses as
// too-costly, and what it accepts is within the limits.
func checkLimited(t *testing.T, body []byte, r *Resource, perr error) {
	lr, err := ParseLimited(body, fuzzLimits)
	switch {
	case perr != nil:
		if err == nil {
			t.Fatalf("ParseLimited accepted what Parse refused (%v)", perr)
		}
		return
	case err != nil:
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Code != "too-costly" {
			t.Fatalf("ParseLimited refused what Parse accepted, not as too-costly: %v", err)
		}
		return
	}
	if !reflect.DeepEqual(lr.Doc, r.Doc) {
		t.Fatal("ParseLimited and Parse disagree")
	}
	n := 0
	var walk func(v any, bundleEntry bool)
	walk = func(v any, bundleEntry bool) {
		n++
		switch c := v.(type) {
		case map[string]any:
			for _, x := range c {
				walk(x, false)
			}
		case []any:
			if bundleEntry && len(c) > fuzzLimits.BundleEntries || !bundleEntry && len(c) > fuzzLimits.ArrayItems {
				t.Fatalf("accepted an array of %d items", len(c))
			}
			for _, x := range c {
				walk(x, false)
			}
		}
	}
	// The resource object itself is not counted.
	for k, x := range r.Doc {
		walk(x, k == "entry" && r.Type == "Bundle")
	}
	if n > fuzzLimits.Elements {
		t.Fatalf("accepted %d elements", n)
	}
}

// checkParse asserts the properties of Parse that hold for every input.
func checkParse(t *testing.T, body []byte) *Resource {
	r, err := Parse(body)
	checkLimited(t, body, r, err)
	object, dup, depth := refShape(body)
	structural := !object || dup || depth > MaxDepth
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %T is not a *ParseError", err)
		}
		if pe.Msg == "" || pe.Code == "" {
			t.Fatalf("empty ParseError %+v", pe)
		}
		isStructural := pe.Code == "structure" || pe.Code == "too-costly"
		if isStructural != structural {
			t.Fatalf("Parse says %q (%s), oracle says object=%v dup=%v depth=%d", pe.Msg, pe.Code, object, dup, depth)
		}
		return nil
	}
	if structural {
		t.Fatalf("Parse accepted a body the oracle rejects: object=%v dup=%v depth=%d", object, dup, depth)
	}
	if !IsResourceType(r.Type) || r.Doc["resourceType"] != r.Type {
		t.Fatalf("bad Type %q", r.Type)
	}

	// Round trip: Marshal then Parse gives an equal document, and Marshal
	// is stable.
	out, err := Marshal(r.Doc)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	r2, err := Parse(out)
	if err != nil {
		t.Fatalf("Parse(Marshal(doc)): %v\n%s", err, out)
	}
	if !reflect.DeepEqual(r.Doc, r2.Doc) || r.ID != r2.ID || r.Type != r2.Type {
		t.Fatalf("round trip changed the document:\n%q\n%q", body, out)
	}
	out2, err := Marshal(r2.Doc)
	if err != nil || !bytes.Equal(out, out2) {
		t.Fatalf("Marshal not stable: %v", err)
	}
	return r
}

func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		checkParse(t, body)
	})
}

func FuzzParseValidate(f *testing.F) {
	// Compile before f.Fuzz: the fuzzing engine kills a worker whose single
	// input runs longer than 10 s (golang/go#56238), and on a loaded
	// machine with coverage instrumentation the one-time compile inside the
	// first input came close enough to trip it.
	v, err := NewValidator()
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		r := checkParse(t, body)
		if r == nil {
			return
		}
		issues := v.Validate(r)
		if !slices.IsSortedFunc(issues, func(a, b Issue) int {
			return strings.Compare(a.Expression, b.Expression)
		}) {
			t.Fatalf("issues not sorted: %v", issues)
		}
		for i, is := range issues {
			if i > 0 && is == issues[i-1] {
				t.Fatalf("duplicate issue %+v", is)
			}
			if is.Severity != SeverityError || is.Code == "" || is.Diagnostics == "" {
				t.Fatalf("incomplete issue %+v", is)
			}
			if !strings.HasPrefix(is.Expression, r.Type) {
				t.Fatalf("expression %q outside %s", is.Expression, r.Type)
			}
		}
		// Whatever the issues, they make a valid OperationOutcome.
		oo, err := Parse(OperationOutcome(issues...))
		if err != nil {
			t.Fatalf("OperationOutcome does not parse: %v", err)
		}
		if got := v.Validate(oo); len(got) != 0 {
			t.Fatalf("OperationOutcome invalid: %v", got)
		}
	})
}
