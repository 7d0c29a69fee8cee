package params

import (
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
	"github.com/wardhealth/ward/internal/fhir"
)

func TestTableCounts(t *testing.T) {
	all := All()
	if len(all) != 1377 {
		t.Errorf("All() has %d parameters, want 1377 (1378 in the Bundle minus one R5)", len(all))
	}
	exprs := map[string]bool{}
	for _, p := range all {
		if p.Code == "" || p.Type == "" || p.URL == "" || len(p.Base) == 0 {
			t.Errorf("%s: missing code, type, url or base", p.ID)
		}
		if p.ID == "DeviceDefinition-classification" {
			t.Errorf("the R5 parameter %s is in the table", p.ID)
		}
		if p.Expression != "" {
			exprs[p.Expression] = true
		} else if !slices.Contains([]string{"_text", "_content", "_query"}, p.Code) {
			t.Errorf("%s: no expression", p.ID)
		}
		if p.Type == "composite" && len(p.Components) < 2 {
			t.Errorf("%s: composite with %d components", p.ID, len(p.Components))
		}
	}
	// 1,347 in the Bundle, one of which belongs only to the R5 parameter.
	if len(exprs) != 1346 {
		t.Errorf("%d distinct expressions, want 1346", len(exprs))
	}
}

func TestForType(t *testing.T) {
	codes := func(ps []*Param) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Code)
		}
		return out
	}
	pat := codes(ForType("Patient"))
	for _, want := range []string{"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source", "_content", "_query", "_text",
		"birthdate", "family", "identifier", "name", "gender", "general-practitioner", "email", "phone", "deceased"} {
		if !slices.Contains(pat, want) {
			t.Errorf("ForType(Patient) lacks %s", want)
		}
	}
	// R4 defines no SearchParameter resources for these.
	for _, absent := range []string{"_list", "_has", "_type", "_filter"} {
		if slices.Contains(pat, absent) {
			t.Errorf("ForType(Patient) has %s", absent)
		}
	}
	if b := codes(ForType("Bundle")); slices.Contains(b, "_text") || !slices.Contains(b, "_id") {
		t.Errorf("ForType(Bundle) = %v: want _id, not _text (Bundle is not a DomainResource)", b)
	}
	if ForType("Nope") != nil || ForType("patient") != nil || ForType("Resource") != nil {
		t.Error("ForType accepts a name that is not a resource type")
	}
	// Every resource type gets at least the Resource parameters; codes are
	// unique within a type.
	for _, rt := range fhir.ResourceTypes() {
		ps := ForType(rt)
		if len(ps) < 8 {
			t.Errorf("ForType(%s) has %d parameters", rt, len(ps))
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if seen[p.Code] {
				t.Errorf("ForType(%s): code %s twice", rt, p.Code)
			}
			seen[p.Code] = true
			if q, ok := Lookup(rt, p.Code); !ok || q != p {
				t.Errorf("Lookup(%s, %s) = %v, %v; want %s", rt, p.Code, q, ok, p.ID)
			}
		}
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		rt, code, id string
	}{
		{"Patient", "birthdate", "individual-birthdate"},
		{"Patient", "_id", "Resource-id"},
		{"Patient", "_text", "DomainResource-text"},
		{"Observation", "patient", "clinical-patient"},
		{"Observation", "value-quantity", "Observation-value-quantity"},
		{"Observation", "code-value-quantity", "Observation-code-value-quantity"},
		{"Encounter", "date", "clinical-date"},
		{"Bundle", "_text", ""},
		{"Patient", "nope", ""},
		{"Nope", "_id", ""},
	} {
		p, ok := Lookup(tc.rt, tc.code)
		if tc.id == "" {
			if ok {
				t.Errorf("Lookup(%s, %s) = %s, want none", tc.rt, tc.code, p.ID)
			}
			continue
		}
		if !ok || p.ID != tc.id {
			t.Errorf("Lookup(%s, %s) = %v, %v; want %s", tc.rt, tc.code, p, ok, tc.id)
		}
	}
	p, _ := Lookup("Observation", "code-value-quantity")
	if len(p.Components) != 2 || p.Components[0].Expression != "code" || p.Components[1].Expression != "value.as(Quantity)" {
		t.Errorf("code-value-quantity components = %+v", p.Components)
	}
	if p, _ := Lookup("Observation", "subject"); !slices.Contains(p.Target, "Patient") || p.Type != "reference" {
		t.Errorf("Observation subject = %+v", p)
	}
	if p, _ := Lookup("Observation", "date"); !slices.Contains(p.Comparator, "ge") {
		t.Errorf("Observation date comparators = %v", p.Comparator)
	}
}

func TestExpressionFor(t *testing.T) {
	for _, tc := range []struct{ rt, code, want string }{
		{"Observation", "patient", "Observation.subject.where(resolve() is Patient)"},
		{"AllergyIntolerance", "patient", "AllergyIntolerance.patient"},
		{"Observation", "value-quantity", "(Observation.value as Quantity) | (Observation.value as SampledData)"},
		{"Patient", "_id", "Resource.id"},
		{"Patient", "email", "Patient.telecom.where(system='email')"},
		{"Patient", "deceased", "Patient.deceased.exists() and Patient.deceased != false"},
		{"Observation", "combo-code-value-quantity", "Observation | Observation.component"},
		{"Encounter", "date", "Encounter.period"},
		{"Patient", "_text", ""},
	} {
		p, ok := Lookup(tc.rt, tc.code)
		if !ok {
			t.Fatalf("Lookup(%s, %s) failed", tc.rt, tc.code)
		}
		if got := p.ExpressionFor(tc.rt); got != tc.want {
			t.Errorf("%s %s: ExpressionFor = %q, want %q", tc.rt, tc.code, got, tc.want)
		}
	}
	if p, _ := Lookup("Patient", "name"); p.ExpressionFor("Observation") != "" {
		t.Error("ExpressionFor returns a branch of another type")
	}
	if p, _ := Lookup("InsurancePlan", "name"); p.ExpressionFor("InsurancePlan") != "name | alias" || p.ExpressionFor("Patient") != "" {
		t.Errorf("relative expression %q: ExpressionFor = %q, %q", p.Expression, p.ExpressionFor("InsurancePlan"), p.ExpressionFor("Patient"))
	}
}

// TestExpressionForEveryBase checks the splitting on the whole table: each
// (parameter, base) pair with an expression gets a non-empty expression, and
// every branch of every expression is claimed by one of the bases, so no
// part of an expression is lost.
func TestExpressionForEveryBase(t *testing.T) {
	pairs := 0
	for _, p := range All() {
		if p.Expression == "" {
			continue
		}
		if lowerThanUnion(p.Expression) && len(p.branches) > 1 {
			t.Errorf("%s: | combined with a lower-precedence operator at top level: splitting is unsound", p.ID)
		}
		for _, b := range p.Base {
			pairs++
			if p.ExpressionFor(b) == "" {
				t.Errorf("%s: ExpressionFor(%s) is empty; expression %q", p.ID, b, p.Expression)
			}
		}
		for _, br := range p.branches {
			if !slices.Contains(p.Base, br.head) && !br.relative() {
				t.Errorf("%s: branch %q starts with %q, not one of the bases %v", p.ID, br.text, br.head, p.Base)
			}
		}
	}
	if pairs != 1705 {
		t.Errorf("only %d (param, base) pairs", pairs)
	}
	t.Logf("%d (parameter, base) pairs", pairs)
}

// lowerThanUnion reports whether expr has, outside parentheses, an operator
// binding more loosely than | (and, or, xor, implies, =, !=, <, >, in,
// contains). A conservative textual check, enough for the R4 table.
func lowerThanUnion(expr string) bool {
	depth := 0
	var top strings.Builder
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; c {
		case '(':
			depth++
		case ')':
			depth--
		case '\'':
			for i++; i < len(expr) && expr[i] != '\''; i++ {
			}
		default:
			if depth == 0 {
				top.WriteByte(c)
			}
		}
	}
	s := " " + top.String() + " "
	for _, op := range []string{" and ", " or ", " xor ", " implies ", "=", "<", ">", " in ", "~"} {
		if strings.Contains(s, op) {
			return true
		}
	}
	return false
}

func TestSplitUnion(t *testing.T) {
	got := splitUnion("(A.b as X) | A.c.where(d = 'x|y') | `B|c`.d | A.e")
	var heads, texts []string
	for _, b := range got {
		heads = append(heads, b.head)
		texts = append(texts, b.text)
	}
	if want := []string{"A", "A", "", "A"}; !slices.Equal(heads, want) {
		t.Errorf("heads = %q, want %q", heads, want)
	}
	if want := []string{"(A.b as X)", "A.c.where(d = 'x|y')", "`B|c`.d", "A.e"}; !slices.Equal(texts, want) {
		t.Errorf("texts = %q, want %q", texts, want)
	}
}

func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		if deptest.IsStd(path) || path == "github.com/wardhealth/ward/internal/fhir" {
			return ""
		}
		return "params needs only the standard library and internal/fhir"
	})
}
