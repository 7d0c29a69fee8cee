package fhir

import (
	"errors"
	"strings"
	"testing"
)

// items is a JSON array of n copies of item.
func items(item string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]"
}

func TestParseLimited(t *testing.T) {
	lim := Limits{ArrayItems: 5, Elements: 60, BundleEntries: 3}
	entry := `{"resource":{"resourceType":"Patient"}}`
	cases := []struct {
		name, body string
		diag       string // "": accepted
	}{
		{"array at the bound", `{"resourceType":"Patient","name":[{"given":` + items(`"a"`, 5) + `}]}`, ""},
		{"array over the bound", `{"resourceType":"Patient","name":[{"given":` + items(`"Secret"`, 6) + `}]}`, "more than 5 items in one array at name[0].given (WARD_RESOURCE_MAX_ARRAY_ITEMS)"},
		{"nested arrays", `{"resourceType":"Basic","extension":[` + items(items("1", 6), 1) + `]}`, "WARD_RESOURCE_MAX_ARRAY_ITEMS"},
		{"elements at the bound", `{"resourceType":"Basic","a":` + items(items("1", 4), 5) + `,"b":` + items(items("1", 4), 5) + `,"c":{"d":` + items("1", 5) + `}}`, ""},
		{"elements over the bound", `{"resourceType":"Basic","a":` + items(items("1", 5), 5) + `,"b":` + items(items("1", 5), 5) + `}`, "more than 60 elements in the body (WARD_RESOURCE_MAX_ELEMENTS)"},
		{"bundle entries at the bound", `{"resourceType":"Bundle","type":"batch","entry":` + items(entry, 3) + `}`, ""},
		{"bundle entries over the bound", `{"resourceType":"Bundle","type":"batch","entry":` + items(entry, 4) + `}`, "the Bundle has more than 3 entries (WARD_BUNDLE_MAX_ENTRIES)"},
		{"bundle type after the entries", `{"entry":` + items(entry, 4) + `,"type":"batch","resourceType":"Bundle"}`, "WARD_BUNDLE_MAX_ENTRIES"},
		{"bundle entries are not array items", `{"resourceType":"Bundle","type":"batch","entry":` + items(`{}`, 3) + `}`, ""},
		{"a List's entries are array items", `{"resourceType":"List","status":"current","mode":"working","entry":` + items(`{}`, 6) + `}`, "more than 5 items in one array at entry (WARD_RESOURCE_MAX_ARRAY_ITEMS)"},
		{"nested entry is an array", `{"resourceType":"Composition","section":[{"entry":` + items(`{}`, 6) + `}]}`, "WARD_RESOURCE_MAX_ARRAY_ITEMS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse([]byte(c.body)); err != nil {
				t.Fatalf("Parse without limits: %v", err)
			}
			_, err := ParseLimited([]byte(c.body), lim)
			if c.diag == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Code != "too-costly" || !strings.Contains(pe.Msg, c.diag) {
				t.Fatalf("got %v, want too-costly naming %q", err, c.diag)
			}
			if strings.Contains(pe.Msg, "Secret") {
				t.Errorf("message echoes a value: %s", pe.Msg)
			}
		})
	}
}

// A million-item array is refused by the scan without decoding.
func TestParseLimitedMillionItems(t *testing.T) {
	body := []byte(`{"resourceType":"Patient","name":[{"given":` + items(`"a"`, 1_000_000) + `}]}`)
	allocs := testing.AllocsPerRun(1, func() {
		if _, err := ParseLimited(body, Limits{ArrayItems: 10000}); err == nil {
			t.Fatal("accepted")
		}
	})
	if allocs > 100 {
		t.Errorf("%v allocations to refuse it", allocs)
	}
}
