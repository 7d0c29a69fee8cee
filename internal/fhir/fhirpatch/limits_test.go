package fhirpatch

import (
	"errors"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/jsonpatch"
)

func parseOps(t *testing.T, body string, limit int) ([]Op, error) {
	t.Helper()
	p, err := fhir.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return ParseLimited(p.Doc, limit)
}

func TestParseLimitedOps(t *testing.T) {
	del := op("delete", "Patient.name")
	if _, err := parseOps(t, params(strings.Repeat(del+",", 9)+del), 10); err != nil {
		t.Fatalf("10 operations at a bound of 10: %v", err)
	}
	_, err := parseOps(t, params(strings.Repeat(del+",", 10)+del), 10)
	if !errors.Is(err, ErrTooCostly) || !strings.Contains(err.Error(), "more than 10 operations (WARD_PATCH_MAX_OPS)") {
		t.Fatalf("11 operations: %v", err)
	}
}

func TestApplyLimited(t *testing.T) {
	given := func(n int) string {
		return `"valueHumanName":{"given":["` + strings.TrimSuffix(strings.Repeat(`Secret","`, n), `","`) + `"]}`
	}
	addName := func(n int) string {
		return op("add", "Patient", part("name", `"valueString":"name"`), part("value", given(n)))
	}
	cases := []struct {
		name, patch, resource string
		lim                   Limits
		failAt                int // operation number (1-based) refused; 0: none
		diag                  string
	}{
		// Patient (2 values) + each name of 10 given names (12 values).
		{"growth refused at the crossing add", params(addName(10), addName(10), addName(10), addName(10)), pat(),
			Limits{Elements: 30}, 3, "more than 30 elements (WARD_PATCH_MAX_ELEMENTS)"},
		{"growth within the bound", params(addName(10), addName(10)), pat(), Limits{Elements: 30}, 0, ""},
		{"replace does not accumulate", params(strings.TrimSuffix(strings.Repeat(op("replace", "Patient.name[0]", part("value", given(10)))+",", 20), ",")),
			pat(`"name":[{"given":["a"]}]`), Limits{Elements: 30}, 0, ""},
		{"delete frees room", params(addName(10), op("delete", "Patient.name[0]"), addName(10), op("delete", "Patient.name[0]"), addName(10)), pat(),
			Limits{Elements: 20}, 0, ""},
		{"list items on add", params(strings.TrimSuffix(strings.Repeat(addName(1)+",", 4), ",")), pat(),
			Limits{ArrayItems: 3}, 4, "more than 3 items (WARD_RESOURCE_MAX_ARRAY_ITEMS)"},
		{"list items on insert", params(op("insert", "Patient.identifier", part("index", `"valueInteger":0`), part("value", `"valueIdentifier":{"value":"x"}`))),
			pat(ids4), Limits{ArrayItems: 4}, 1, "WARD_RESOURCE_MAX_ARRAY_ITEMS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, err := parseOps(t, c.patch, 0)
			if err != nil {
				t.Fatal(err)
			}
			r, err := fhir.Parse([]byte(c.resource))
			if err != nil {
				t.Fatal(err)
			}
			out, err := ApplyLimited(r.Doc, ops, c.lim)
			if c.failAt == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c.lim.Elements > 0 && jsonpatch.CountValues(out, -1) > c.lim.Elements {
					t.Fatalf("%d values", jsonpatch.CountValues(out, -1))
				}
				return
			}
			if !errors.Is(err, ErrTooCostly) || !strings.Contains(err.Error(), "operation "+string(rune('0'+c.failAt))+":") || !strings.Contains(err.Error(), c.diag) {
				t.Fatalf("got %v, want operation %d refused naming %q", err, c.failAt, c.diag)
			}
			if strings.Contains(err.Error(), "Secret") {
				t.Errorf("error echoes a value: %v", err)
			}
		})
	}
}
