package fhirpath

import (
	"errors"
	"strings"
	"testing"
)

// FuzzCompile: Compile never panics, fails only with a *SyntaxError whose
// offset lies within the expression, and what compiles evaluates on a
// resource without panicking. Seeds: search parameter expressions of every
// shape, plus the error cases; the committed corpus under
// testdata/fuzz/FuzzCompile holds these and anything found.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		// Shapes from the R4 table.
		"Patient.name",
		"AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient)",
		"(Observation.value as Quantity) | (Observation.value as SampledData)",
		"(Observation.value as string) | (Observation.value as CodeableConcept).text",
		"Condition.onset.as(Age) | Condition.onset.as(Range)",
		"Patient.deceased.exists() and Patient.deceased != false",
		"Patient.telecom.where(system='email')",
		"Bundle.entry[0].resource",
		"%resource.referenceSeq.chromosome",
		"value.as(DateTime) | value.as(Period)",
		"ValueSet.expansion.contains.code",
		"name | alias",
		// Other supported constructs.
		"Patient.name.where($this.use = 'x' or given.empty().not()).first().tail().last().count()",
		"Patient.extension('http://x').value.ofType(FHIR.string) is System.String",
		"`Patient`.`div` xor true implies {} // c",
		"'\\u00e9\\'' /* c */ | -1.5 | 2",
		// Errors.
		"", "(", ")", "[0]", "Patient.name[", "a.where(", "'", "`", "%", "$", "@2020", "a +", "a as", "a.as(",
		"'\\u", "/*", "a.b(c,", strings.Repeat("(", 150), strings.Repeat("a.", 500) + "a",
		"\xff\xfe", "a\x00b",
	} {
		f.Add(s)
	}
	res := doc(f, patient)
	f.Fuzz(func(t *testing.T, expr string) {
		e, err := Compile(expr)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Compile(%q) error %T %v, want *SyntaxError", expr, err, err)
			}
			if se.Offset < 0 || se.Offset > len(expr) {
				t.Fatalf("Compile(%q): offset %d outside the expression", expr, se.Offset)
			}
			return
		}
		if e.String() != expr {
			t.Fatalf("String() = %q, want %q", e.String(), expr)
		}
		if _, err := e.Eval(res); err != nil {
			var ee *EvalError
			if !errors.As(err, &ee) {
				t.Fatalf("Eval(%q) error %T %v, want *EvalError", expr, err, err)
			}
		}
	})
}
