package query

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/value"
)

func parse(t *testing.T, rt, qs string, o Options) (*Query, error) {
	t.Helper()
	q, err := url.ParseQuery(qs)
	if err != nil {
		t.Fatalf("ParseQuery(%q): %v", qs, err)
	}
	return Parse(rt, q, o)
}

func mustParse(t *testing.T, rt, qs string) *Query {
	t.Helper()
	got, err := parse(t, rt, qs, Options{Strict: true})
	if err != nil {
		t.Fatalf("Parse(%s?%s): %v", rt, qs, err)
	}
	return got
}

// only returns the single clause of q, failing otherwise.
func only(t *testing.T, q *Query) Clause {
	t.Helper()
	if len(q.Clauses) != 1 {
		t.Fatalf("want 1 clause, got %d: %+v", len(q.Clauses), q.Clauses)
	}
	return q.Clauses[0]
}

func date(t *testing.T, s string) value.Range {
	t.Helper()
	r, err := value.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func num(t *testing.T, s string) value.Number {
	t.Helper()
	n, err := value.ParseNumber(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// The examples of https://hl7.org/fhir/R4/search.html, each with what it
// must parse into.
func TestParseSpecExamples(t *testing.T) {
	tests := []struct {
		rt, q string
		check func(t *testing.T, q *Query)
	}{
		{"Patient", "given=eve", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "param", c.Param.ID, "individual-given")
			eq(t, "values", c.Values, []Value{{Raw: "eve", Text: "eve"}})
		}},
		{"Patient", "given:exact=Eve", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "modifier", c.Modifier, "exact")
			eq(t, "text", c.Values[0].Text, "Eve")
		}},
		{"Patient", "given:contains=eve", func(t *testing.T, q *Query) {
			eq(t, "modifier", only(t, q).Modifier, "contains")
		}},
		{"Patient", "identifier=http://acme.org/patient|2345", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "token", [3]any{v.System, v.Code, v.HasSystem}, [3]any{"http://acme.org/patient", "2345", true})
		}},
		{"Patient", "identifier=|2345", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "token", [3]any{v.System, v.Code, v.HasSystem}, [3]any{"", "2345", true})
		}},
		{"Patient", "identifier=2345", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "token", [3]any{v.System, v.Code, v.HasSystem}, [3]any{"", "2345", false})
		}},
		{"Patient", "identifier=http://acme.org/patient|", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "system only", [2]any{v.System, v.SystemOnly}, [2]any{"http://acme.org/patient", true})
		}},
		{"Patient", "gender:not=male", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "modifier", c.Modifier, "not")
			eq(t, "code", c.Values[0].Code, "male")
		}},
		{"Patient", "birthdate=ge2013-01-14", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "prefix", v.Prefix, value.GE)
			eq(t, "date", v.Date, date(t, "2013-01-14"))
		}},
		{"Patient", "birthdate=2013-01", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "prefix", v.Prefix, value.EQ)
			eq(t, "precision", v.Date.Precision, value.Month)
		}},
		{"Observation", "value-quantity=5.4|http://unitsofmeasure.org|mg", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "prefix", v.Prefix, value.EQ)
			eq(t, "number", v.Number, num(t, "5.4"))
			eq(t, "unit", [2]string{v.UnitSystem, v.UnitCode}, [2]string{"http://unitsofmeasure.org", "mg"})
		}},
		{"Observation", "value-quantity=le5.4||mg", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "prefix", v.Prefix, value.LE)
			eq(t, "unit", [2]string{v.UnitSystem, v.UnitCode}, [2]string{"", "mg"})
		}},
		{"Observation", "value-quantity=5.4", func(t *testing.T, q *Query) {
			eq(t, "number", only(t, q).Values[0].Number, num(t, "5.4"))
		}},
		{"Observation", "code-value-quantity=http://loinc.org|12907-2$ge150|http://unitsofmeasure.org|mmol/L", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			if len(v.Components) != 2 {
				t.Fatalf("components: %+v", v.Components)
			}
			c0, c1 := v.Components[0], v.Components[1]
			eq(t, "code", [2]string{c0.System, c0.Code}, [2]string{"http://loinc.org", "12907-2"})
			eq(t, "prefix", c1.Prefix, value.GE)
			eq(t, "number", c1.Number, num(t, "150"))
			eq(t, "unit", [2]string{c1.UnitSystem, c1.UnitCode}, [2]string{"http://unitsofmeasure.org", "mmol/L"})
		}},
		{"Group", "characteristic-value=gender$mixed", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "components", [2]string{v.Components[0].Code, v.Components[1].Code}, [2]string{"gender", "mixed"})
		}},
		{"Observation", "subject:Patient.name=peter", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "param", c.Param.ID, "Patient-name")
			if len(c.Chain) != 1 || c.Chain[0].Param.Code != "subject" || c.Chain[0].Type != "Patient" {
				t.Errorf("chain = %+v", c.Chain)
			}
			eq(t, "text", c.Values[0].Text, "peter")
		}},
		{"Observation", "subject._lastUpdated=ge2020", func(t *testing.T, q *Query) {
			// Every target has _lastUpdated: the type need not be known.
			c := only(t, q)
			eq(t, "hop type", c.Chain[0].Type, "")
			eq(t, "param code", c.Param.Code, "_lastUpdated")
		}},
		{"CarePlan", "subject.name=peter", func(t *testing.T, q *Query) {
			// Of Group and Patient only Patient has name.
			eq(t, "hop type", only(t, q).Chain[0].Type, "Patient")
		}},
		{"Observation", "subject.birthdate=1970", func(t *testing.T, q *Query) {
			// Only Patient has birthdate among subject's targets.
			eq(t, "hop type", only(t, q).Chain[0].Type, "Patient")
		}},
		{"Observation", "patient.organization.name=Acme", func(t *testing.T, q *Query) {
			c := only(t, q)
			if len(c.Chain) != 2 || c.Chain[0].Type != "Patient" || c.Chain[1].Type != "Organization" {
				t.Errorf("chain = %+v", c.Chain)
			}
			eq(t, "param", c.Param.ID, "Organization-name")
		}},
		{"Patient", "_has:Observation:patient:code=1234-5", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "param", c.Param.ID, "clinical-code")
			if c.Has == nil || c.Has.Type != "Observation" || c.Has.Ref.Code != "patient" || c.Has.Next != nil {
				t.Errorf("has = %+v", c.Has)
			}
			eq(t, "code", c.Values[0].Code, "1234-5")
		}},
		{"Patient", "_has:Observation:patient:_has:AuditEvent:entity:agent=MyUserId", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "param", c.Param.ID, "AuditEvent-agent")
			if c.Has == nil || c.Has.Next == nil || c.Has.Next.Type != "AuditEvent" || c.Has.Next.Ref.Code != "entity" {
				t.Errorf("has = %+v", c.Has)
			}
		}},
		{"Patient", "_has:Observation:patient:code:text=glucose", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "modifier", c.Modifier, "text")
			eq(t, "text", c.Values[0].Text, "glucose")
		}},
		{"Observation", "_include=Observation:subject:Patient", func(t *testing.T, q *Query) {
			if len(q.Include) != 1 {
				t.Fatalf("include = %+v", q.Include)
			}
			i := q.Include[0]
			eq(t, "include", [4]any{i.Source, i.Param.Code, i.Target, i.Iterate}, [4]any{"Observation", "subject", "Patient", false})
		}},
		{"Patient", "_revinclude:iterate=Provenance:target", func(t *testing.T, q *Query) {
			if len(q.RevInclude) != 1 {
				t.Fatalf("revinclude = %+v", q.RevInclude)
			}
			i := q.RevInclude[0]
			eq(t, "revinclude", [4]any{i.Source, i.Param.Code, i.Target, i.Iterate}, [4]any{"Provenance", "target", "", true})
		}},
		{"MedicationRequest", "_include=MedicationRequest:patient&_include:iterate=Patient:general-practitioner", func(t *testing.T, q *Query) {
			eq(t, "includes", len(q.Include), 2)
			eq(t, "iterate", q.Include[1].Iterate, true)
		}},
		{"Observation", "_include=*", func(t *testing.T, q *Query) {
			eq(t, "wildcard", q.Include, []Include{{}})
		}},
		{"Observation", "_sort=-date,status", func(t *testing.T, q *Query) {
			if len(q.Sort) != 2 {
				t.Fatalf("sort = %+v", q.Sort)
			}
			eq(t, "first", [3]any{q.Sort[0].Name, q.Sort[0].Param.Code, q.Sort[0].Descending}, [3]any{"date", "date", true})
			eq(t, "second", [3]any{q.Sort[1].Name, q.Sort[1].Param.Code, q.Sort[1].Descending}, [3]any{"status", "status", false})
		}},
		{"Observation", "_sort=_lastUpdated,-_id", func(t *testing.T, q *Query) {
			eq(t, "sort", q.Sort, []SortKey{{Name: "_lastUpdated"}, {Name: "_id", Descending: true}})
		}},
		{"Patient", "_lastUpdated=gt2010-10-01", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "prefix", v.Prefix, value.GT)
			eq(t, "date", v.Date, date(t, "2010-10-01"))
		}},
		{"Condition", "code:text=headache", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "modifier", c.Modifier, "text")
			eq(t, "value", c.Values[0], Value{Raw: "headache", Text: "headache"})
		}},
		{"Patient", "identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|446053", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "of-type", [3]string{v.System, v.Code, v.Text}, [3]string{"http://terminology.hl7.org/CodeSystem/v2-0203", "MR", "446053"})
		}},
		{"Observation", "subject=Patient/23", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "ref", [3]string{v.Type, v.ID, v.URL}, [3]string{"Patient", "23", ""})
		}},
		{"Observation", "subject:Patient=23", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "modifier", c.Modifier, "Patient")
			eq(t, "ref", [2]string{c.Values[0].Type, c.Values[0].ID}, [2]string{"Patient", "23"})
		}},
		{"Observation", "subject=23", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "ref", [2]string{v.Type, v.ID}, [2]string{"", "23"})
		}},
		{"Observation", "subject=http://example.org/fhir/Patient/23", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "ref", [3]string{v.Type, v.ID, v.URL}, [3]string{"Patient", "23", "http://example.org/fhir/Patient/23"})
		}},
		{"Observation", "subject=Patient/23/_history/2", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "ref", [2]string{v.Type, v.ID}, [2]string{"Patient", "23"})
		}},
		{"Observation", "subject:identifier=http://acme.org/fhir/identifier/mrn|123456", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "token", [2]string{v.System, v.Code}, [2]string{"http://acme.org/fhir/identifier/mrn", "123456"})
		}},
		{"Patient", "gender:missing=true", func(t *testing.T, q *Query) {
			c := only(t, q)
			if c.Missing == nil || !*c.Missing || c.Values != nil {
				t.Errorf("missing = %v, values = %v", c.Missing, c.Values)
			}
		}},
		{"ValueSet", "url:below=http://acme.org/fhir/", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "uri", [2]string{c.Modifier, c.Values[0].Text}, [2]string{"below", "http://acme.org/fhir/"})
		}},
		{"RiskAssessment", "probability=gt0.8", func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "number", [2]any{v.Prefix, v.Number}, [2]any{value.GT, num(t, "0.8")})
		}},
		{"Patient", "_id=abc-1.2,xyz", func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "ids", [2]string{c.Values[0].ID, c.Values[1].Code}, [2]string{"abc-1.2", "xyz"})
		}},
		{"Patient", "_tag=http://acme.org/codes|needs-review&_profile=http://acme.org/StructureDefinition/p&_source=http://acme.org/src", func(t *testing.T, q *Query) {
			eq(t, "clauses", len(q.Clauses), 3)
			eq(t, "profile", q.Clauses[0].Values[0].Text, "http://acme.org/StructureDefinition/p")
			eq(t, "tag", q.Clauses[2].Values[0].Code, "needs-review")
		}},
		{"Patient", "given=eve,mary&given=smith", func(t *testing.T, q *Query) {
			// Two occurrences AND, commas OR.
			eq(t, "clauses", len(q.Clauses), 2)
			eq(t, "or", len(q.Clauses[0].Values), 2)
		}},
		{"Patient", `given=a\,b,c\\`, func(t *testing.T, q *Query) {
			c := only(t, q)
			eq(t, "texts", [2]string{c.Values[0].Text, c.Values[1].Text}, [2]string{"a,b", `c\`})
			eq(t, "raw", c.Values[0].Raw, `a\,b`)
		}},
		{"Patient", `identifier=http://a\|b|x\$y`, func(t *testing.T, q *Query) {
			v := only(t, q).Values[0]
			eq(t, "token", [2]string{v.System, v.Code}, [2]string{"http://a|b", "x$y"})
		}},
		{"Observation", "_count=10&_total=accurate&_summary=count&_elements=status,code&_cursor=opaque", func(t *testing.T, q *Query) {
			eq(t, "result", [5]any{q.Count, q.Total, q.Summary, q.Elements, q.Cursor}, [5]any{10, "accurate", "count", []string{"status", "code"}, "opaque"})
		}},
		{"Observation", "_count=0", func(t *testing.T, q *Query) { eq(t, "count", q.Count, 0) }},
		{"Observation", "", func(t *testing.T, q *Query) { eq(t, "count", q.Count, 20) }},
		{"Observation", "_count=5000", func(t *testing.T, q *Query) { eq(t, "count", q.Count, 1000) }},
		{"Observation", "_format=json&_pretty=true", func(t *testing.T, q *Query) {
			eq(t, "ignored", q.Ignored, []string(nil))
			eq(t, "self", q.Self, "_count=20")
		}},
		{"", "_type=Patient,Practitioner&name=smith&_lastUpdated=ge2020", func(t *testing.T, q *Query) {
			eq(t, "types", q.Types, []string{"Patient", "Practitioner"})
			eq(t, "clauses", len(q.Clauses), 2)
		}},
		{"", "_id=x1&_sort=-_lastUpdated", func(t *testing.T, q *Query) {
			eq(t, "type", q.Type, "")
			eq(t, "id", only(t, q).Values[0].ID, "x1")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.rt+"?"+tc.q, func(t *testing.T) {
			tc.check(t, mustParse(t, tc.rt, tc.q))
		})
	}
}

// Each row is malformed: an *Error naming the parameter as written, in
// lenient mode as well.
func TestParseErrors(t *testing.T) {
	tests := []struct{ rt, q, param string }{
		{"Patient", "birthdate=2013-13-01", "birthdate"},
		{"Patient", "birthdate=gx2013", "birthdate"},
		{"Patient", "birthdate=ge", "birthdate"},
		{"Patient", "given=", "given"},
		{"Patient", "given=a,,b", "given"},
		{"RiskAssessment", "probability=abc", "probability"},
		{"Patient", "identifier=a|b|c", "identifier"},
		{"Patient", "identifier=|", "identifier"},
		{"Observation", "code-value-quantity=http://loinc.org|12907-2", "code-value-quantity"},
		{"Observation", "code-value-quantity=a$b$c", "code-value-quantity"},
		{"Observation", "code-value-quantity=a$gx5", "code-value-quantity"},
		{"Observation", "value-quantity=5.4|mg", "value-quantity"},
		{"Observation", "value-quantity=5.4|http://unitsofmeasure.org|", "value-quantity"},
		{"Patient", "gender:missing=yes", "gender:missing"},
		{"Patient", "given:not=eve", "given:not"},
		{"Patient", "birthdate:exact=2000", "birthdate:exact"},
		{"Patient", "gender:of-type=a|b|c", "gender:of-type"},
		{"Patient", "identifier:of-type=a|b", "identifier:of-type"},
		{"Observation", "subject:Medication=1", "subject:Medication"},
		{"Observation", "subject=Medication/1", "subject"},
		{"Observation", "subject=Nope/1", "subject"},
		{"Observation", "subject=Patient/", "subject"},
		{"Observation", "subject=Patient/1/2", "subject"},
		{"Observation", "subject:Patient=Group/1", "subject:Patient"},
		// Group, Patient and Location have name, Device does not.
		{"Observation", "subject.name=x&status=final", "subject.name"},
		{"Observation", "status.name=x", "status.name"},
		{"Observation", "subject.nosuch=x", "subject.nosuch"},
		{"Observation", "subject.organization=x", "subject.organization"},
		{"Observation", "subject:Patient.nosuch=x", "subject:Patient.nosuch"},
		{"Observation", "subject:identifier.name=x", "subject:identifier.name"},
		{"Patient", "_has:Observation:patient=x", "_has:Observation:patient"},
		{"Patient", "_has:Nope:patient:code=x", "_has:Nope:patient:code"},
		{"Patient", "_has:Observation:code:code=x", "_has:Observation:code:code"},
		{"Patient", "_has:Observation:nosuch:code=x", "_has:Observation:nosuch:code"},
		{"Patient", "_has:Observation:patient:nosuch=x", "_has:Observation:patient:nosuch"},
		{"Patient", "_has:Account:subject:_has:Observation:patient:code=x", "_has:Account:subject:_has:Observation:patient:code"},
		{"Patient", "_has:Observation:patient:_has:Observation:patient:_has:Observation:patient:_has:Observation:patient:_has:Observation:patient:code=x", "_has:Observation:patient:_has:Observation:patient:_has:Observation:patient:_has:Observation:patient:_has:Observation:patient:code"},
		{"Patient", "_id=a/b", "_id"},
		{"Patient", "_id=" + strings.Repeat("a", 65), "_id"},
		{"Patient", "_count=-1", "_count"},
		{"Patient", "_count=ten", "_count"},
		{"Patient", "_count=1&_count=2", "_count"},
		{"Patient", "_count:x=1", "_count:x"},
		{"Patient", "_sort=", "_sort"},
		{"Patient", "_sort=-", "_sort"},
		{"Patient", "_sort=nosuch", "_sort"},
		{"Observation", "_sort=code-value-quantity", "_sort"},
		{"Patient", "_total=all", "_total"},
		{"Patient", "_summary=yes", "_summary"},
		{"Patient", "_elements=name,,gender", "_elements"},
		{"Patient", "_elements=na me", "_elements"},
		{"Observation", "_include=Patient:organization", "_include"},
		{"Observation", "_include=Observation", "_include"},
		{"Observation", "_include=Observation:code", "_include"},
		{"Observation", "_include=Observation:subject:Medication", "_include"},
		{"Observation", "_include=Nope:subject", "_include"},
		{"Observation", "_include:recurse=Observation:subject", "_include:recurse"},
		{"Patient", "_revinclude=Provenance:nosuch", "_revinclude"},
		{"", "_type=Patient,Nope", "_type"},
		{"", "_type=", "_type"},
		{"Patient", "given=" + strings.Repeat("x", 2001), "given"},
		{"Patient", strings.Repeat("g", 201) + "=x", strings.Repeat("g", 201)},
		{"Patient", "given=" + strings.Repeat("a,", 100) + "a", "given"},
		{"Observation", "subject" + strings.Repeat(".subject", 11) + "=x", "subject" + strings.Repeat(".subject", 11)},
	}
	for _, tc := range tests {
		for _, strict := range []bool{false, true} {
			_, err := parse(t, tc.rt, tc.q, Options{Strict: strict})
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%s?%.60s (strict %v): want *Error, got %v", tc.rt, tc.q, strict, err)
				continue
			}
			if e.Param != tc.param {
				t.Errorf("%s?%.60s: Param = %q, want %q (%s)", tc.rt, tc.q, e.Param, tc.param, e.Msg)
			}
			if len(e.Msg) > 250 {
				t.Errorf("%s?%.60s: message too long: %s", tc.rt, tc.q, e.Msg)
			}
		}
	}
}

func TestParseTooManyClauses(t *testing.T) {
	q := url.Values{}
	for i := range 101 {
		q.Add("given", "x"+strings.Repeat("y", i%3))
	}
	if _, err := Parse("Patient", q, Options{}); err == nil {
		t.Fatal("101 clauses accepted")
	}
	q["given"] = q["given"][:100]
	if _, err := Parse("Patient", q, Options{}); err != nil {
		t.Fatalf("100 clauses: %v", err)
	}
}

func TestParseErrorDoesNotEchoLongValues(t *testing.T) {
	long := strings.Repeat("9", 500)
	_, err := parse(t, "Patient", "birthdate="+long, Options{})
	if err == nil || strings.Contains(err.Error(), long[:41]) {
		t.Fatalf("error echoes the value: %v", err)
	}
}

// _list is _has:List:item:_id, at type and system level; system-level
// _has checks its reference against _type; a bad list id is an error.
func TestParseListAndSystemHas(t *testing.T) {
	for _, tc := range []struct{ rt, q string }{
		{"Patient", "_list=42"},
		{"", "_list=42"},
		{"", "_type=Patient,Observation&_list=42"},
		{"", "_has:Observation:patient:code=x"},
		{"", "_type=Patient&_has:Observation:patient:code=x"},
	} {
		q, err := parse(t, tc.rt, tc.q, Options{Strict: true})
		if err != nil {
			t.Errorf("%s?%s: %v", tc.rt, tc.q, err)
			continue
		}
		if len(q.Clauses) != 1 || q.Clauses[0].Has == nil {
			t.Errorf("%s?%s: clauses %+v", tc.rt, tc.q, q.Clauses)
			continue
		}
		if strings.Contains(tc.q, "_list") {
			c := q.Clauses[0]
			if c.Has.Type != "List" || c.Has.Ref.Code != "item" || c.Param.Code != "_id" || c.Values[0].Code != "42" {
				t.Errorf("%s?%s: %+v", tc.rt, tc.q, c)
			}
		}
	}
	for _, q := range []string{"_list=a/b", "_list:x=1", "_type=Organization&_has:Observation:patient:code=x"} {
		if _, err := parse(t, "", q, Options{Strict: true}); err == nil {
			t.Errorf("?%s: no error", q)
		}
	}
}

// Unknown and unsupported parameters: errors when strict, listed when not.
func TestParseStrictAndLenient(t *testing.T) {
	tests := []struct{ rt, q, ignored string }{
		{"Patient", "nosuch=1", "nosuch"},
		{"Patient", "nosuch.name=1", "nosuch.name"},
		{"Patient", "_contained=true", "_contained"},
		{"Patient", "_containedType=contained", "_containedType"},
		{"Patient", "_query=x", "_query"},
		{"Patient", "_text=x", "_text"},
		{"Patient", "_content=x", "_content"},
		{"Patient", "_list=$current-problems", "_list"},
		{"Patient", "_filter=name eq x", "_filter"},
		{"Patient", "_type=Patient", "_type"},
		{"Location", "near=42|-71|10|km", "near"},
		{"Condition", "code:in=http://acme.org/vs", "code:in"},
		{"Condition", "code:below=http://snomed.info/sct|235862008", "code:below"},
		{"", "name=smith", "name"},
		{"", "_type=Patient,Observation&name=smith", "name"},
	}
	for _, tc := range tests {
		got, err := parse(t, tc.rt, tc.q+"&given=eve", Options{})
		if tc.rt != "Patient" {
			got, err = parse(t, tc.rt, tc.q, Options{})
		}
		if err != nil {
			t.Errorf("lenient %s?%s: %v", tc.rt, tc.q, err)
			continue
		}
		eq(t, tc.q+" ignored", got.Ignored, []string{tc.ignored})
		if strings.Contains(got.Self, strings.SplitN(tc.ignored, ":", 2)[0]+"=") {
			t.Errorf("%s: Self %q names an ignored parameter", tc.q, got.Self)
		}
		_, err = parse(t, tc.rt, tc.q, Options{Strict: true})
		var e *Error
		if !errors.As(err, &e) || e.Param != tc.ignored {
			t.Errorf("strict %s?%s: got %v, want *Error for %s", tc.rt, tc.q, err, tc.ignored)
		}
	}
}

func TestParseStrictMessage(t *testing.T) {
	_, err := parse(t, "Patient", "nosuch=1", Options{Strict: true})
	if err == nil || err.Error() != "search parameter (a name that is not a known search parameter): unknown search parameter for Patient" {
		t.Fatalf("got %v", err)
	}
}

func TestParseSupported(t *testing.T) {
	o := Options{Supported: func(p *params.Param, mod string) bool { return p.Type != "string" && mod != "not" }}
	got, err := parse(t, "Patient", "given=eve&gender:not=male&gender=female", o)
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "ignored", got.Ignored, []string{"gender:not", "given"})
	eq(t, "self", got.Self, "_count=20&gender=female")
	o.Strict = true
	if _, err := parse(t, "Patient", "given=eve", o); err == nil {
		t.Fatal("strict accepted an unsupported parameter")
	}
}

func TestParseCountOptions(t *testing.T) {
	got, _ := parse(t, "Patient", "", Options{DefaultCount: 50, MaxCount: 30})
	eq(t, "default capped", got.Count, 30)
	got, _ = parse(t, "Patient", "_count=40", Options{DefaultCount: 50, MaxCount: 30})
	eq(t, "capped", got.Count, 30)
	eq(t, "self", got.Self, "_count=30")
}

func TestParseSelf(t *testing.T) {
	tests := []struct{ rt, q, self string }{
		{"Observation", "patient=P1&code=http://loinc.org|8867-4&date=ge2020-01-01&_sort=-date&_count=10",
			"_count=10&_sort=-date&code=http://loinc.org%7C8867-4&date=ge2020-01-01&patient=P1"},
		{"Patient", "given=b&family=x&given=a&_cursor=abc&_format=json&nosuch=1",
			"_count=20&family=x&given=b&given=a"},
		{"Patient", "given=a%26b%3Dc%2Bd%20e",
			"_count=20&given=a%26b%3Dc%2Bd%20e"},
		{"Patient", `given=a\,b,c`, `_count=20&given=a%5C,b,c`},
		{"Observation", "_include:iterate=Patient:organization&_revinclude=Provenance:target&_summary=true",
			"_count=20&_include:iterate=Patient:organization&_revinclude=Provenance:target&_summary=true"},
		{"", "_type=Patient&_id=1", "_count=20&_id=1&_type=Patient"},
		{"Patient", "name=%C3%A9ve;x", ""}, // see below: ParseQuery rejects ';'
	}
	for _, tc := range tests {
		if tc.self == "" {
			continue
		}
		got := mustParseLenient(t, tc.rt, tc.q)
		eq(t, tc.q, got.Self, tc.self)
		again := mustParseLenient(t, tc.rt, got.Self)
		eq(t, "reparsed "+tc.q, again.Self, got.Self)
	}
	got := mustParseLenient(t, "Patient", "name=%C3%A9ve%3Bx")
	eq(t, "non-ASCII and ;", got.Self, "_count=20&name=%C3%A9ve%3Bx")
}

func mustParseLenient(t *testing.T, rt, qs string) *Query {
	t.Helper()
	got, err := parse(t, rt, qs, Options{})
	if err != nil {
		t.Fatalf("Parse(%s?%s): %v", rt, qs, err)
	}
	return got
}

func TestParseBadResourceType(t *testing.T) {
	if _, err := Parse("Nope", nil, Options{}); err == nil {
		t.Fatal("accepted an unknown resource type")
	}
}

// Every composite's components resolve to a parameter of a type the value
// parser handles, so no composite is unusable.
func TestCompositeComponentsResolve(t *testing.T) {
	for _, p := range params.All() {
		for _, c := range p.Components {
			cp, ok := paramByURL()[c.Definition]
			if !ok {
				t.Errorf("%s: component %s not in the table", p.ID, c.Definition)
				continue
			}
			switch cp.Type {
			case "token", "quantity", "date", "number", "string", "reference", "uri":
			default:
				t.Errorf("%s: component %s is a %s", p.ID, cp.ID, cp.Type)
			}
		}
	}
}

func BenchmarkParseObservationQuery(b *testing.B) {
	q, err := url.ParseQuery("patient=P1&code=http://loinc.org|8867-4&date=ge2020-01-01&_sort=-date&_count=10")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("Observation", q, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
