package fhirpath

import (
	"errors"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
	"github.com/wardhealth/ward/internal/search/params"
)

// TestCompileSearchParameters compiles every expression of the R4 table: the
// whole published expression, each base's branch (ExpressionFor) and each
// composite component.
func TestCompileSearchParameters(t *testing.T) {
	whole := map[string]bool{}
	branches := map[string]bool{}
	pairs, comps := 0, 0
	for _, p := range params.All() {
		if p.Expression == "" {
			continue
		}
		whole[p.Expression] = true
		for _, b := range p.Base {
			pairs++
			branches[p.ExpressionFor(b)] = true
		}
		for _, c := range p.Components {
			comps++
			branches[c.Expression] = true
		}
	}
	fail := 0
	for _, set := range []map[string]bool{whole, branches} {
		for e := range set {
			if _, err := Compile(e); err != nil {
				fail++
				t.Errorf("Compile(%q): %v", e, err)
			}
		}
	}
	t.Logf("compiled %d distinct published expressions and %d distinct per-base branches and components (%d pairs, %d components); %d failed",
		len(whole), len(branches), pairs, comps, fail)
	if len(whole) != 1346 {
		t.Errorf("%d distinct expressions, want 1346", len(whole))
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct {
		expr   string
		offset int
		msg    string
	}{
		{"", 0, "empty expression"},
		{"   ", 3, "empty expression"},
		{"Patient.", 8, "expected a name after '.'"},
		{"Patient.name[", 13, "index must be"},
		{"Patient.name[0", 14, `expected "]"`},
		{"Patient.name[x]", 13, "index must be"},
		{"Patient.name[1.5]", 13, "index must be"},
		{"Patient.name.where(", 19, "unexpected end of expression"},
		{"Patient.name.where(use = 'official'", 35, `expected ")"`},
		{"Patient.name.where()", 13, "where() takes 1 argument(s), found 0"},
		{"Patient.name.exists(a, b)", 13, "exists() takes 0 or 1 argument(s), found 2"},
		{"Patient.name.frobnicate()", 13, "function frobnicate() is not supported"},
		{"Patient.name as", 15, "expected a type name"},
		{"Patient.name.as('x')", 16, "expected a type name"},
		{"Patient.name.as(FHIR.)", 21, "expected a type name after FHIR."},
		{"Patient.name 'x'", 13, "unexpected string literal after the end"},
		{"Patient.name | ", 15, "unexpected end of expression"},
		{"Patient.name + 1", 13, `operator "+" is not supported`},
		{"Patient.name contains 'x'", 13, `operator "contains" is not supported`},
		{"Patient.birthDate > @2000", 18, `operator ">" is not supported`},
		{"@2000-01-01", 0, "date and time literals"},
		{"Patient.name.where(use = 'x)", 25, "unterminated string literal"},
		{"`Patient", 0, "unterminated delimited identifier"},
		{"Patient.``", 8, "empty delimited identifier"},
		{"'a\\qb'", 2, "invalid escape"},
		{"'\\u12'", 1, "incomplete \\u escape"},
		{"Patient # x", 8, "unexpected character '#'"},
		{"Patient /* x", 8, "unterminated comment"},
		{"%foo.bar", 0, "unknown environment variable %foo"},
		{"% x", 0, "expected a name after %"},
		{"$index", 0, "$index is not supported"},
		{"$", 0, "expected a name after $"},
		{"-Patient", 0, "unary - is supported only before a number"},
		{"Patient.extension(1)", 8, "extension() takes a string literal"},
		{"(Patient.name", 13, `expected ")"`},
		{"Patient.name)", 12, `unexpected ")" after the end`},
		{"{", 1, `expected "}"`},
		{strings.Repeat("(", 200) + "a" + strings.Repeat(")", 200), 100, "nested more than 100 deep"},
	} {
		_, err := Compile(tc.expr)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Compile(%q) = %v, want a *SyntaxError", tc.expr, err)
			continue
		}
		if se.Offset != tc.offset || !strings.Contains(se.Msg, tc.msg) || se.Expr != tc.expr {
			t.Errorf("Compile(%q) = offset %d %q, want offset %d containing %q", tc.expr, se.Offset, se.Msg, tc.offset, tc.msg)
		}
		if !strings.HasPrefix(err.Error(), "fhirpath: offset ") {
			t.Errorf("Error() = %q", err.Error())
		}
	}
}

func TestCompileAccepts(t *testing.T) {
	for _, e := range []string{
		"Patient.name.given",
		"`Patient`.`name`",
		"Patient.name // comment",
		"Patient /* c */ .name",
		"Patient.name.where(use = 'official' and family.exists()).given",
		"Patient.name.where($this.use = 'usual')",
		"Observation.value.as(FHIR.Quantity)",
		"Observation.value is System.String",
		"Observation.value.ofType(Quantity).value",
		"Patient.contained.ofType(Practitioner)",
		"Patient.name.first() | Patient.name.last() | Patient.name.tail()",
		"Patient.name.count() = 2",
		"Patient.active = true or Patient.active = false xor {} implies true",
		"Patient.name.empty().not()",
		"Patient.extension('http://x').value",
		"'a\\'b\\u00e9'",
		"-1.5",
		"%resource.id | %rootResource.id | %context.id",
		"Bundle.entry[0].resource",
	} {
		if _, err := Compile(e); err != nil {
			t.Errorf("Compile(%q): %v", e, err)
		}
	}
}

func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		if deptest.IsStd(path) {
			return ""
		}
		return "fhirpath imports only the standard library"
	})
}
