package fhirpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func doc(t testing.TB, s string) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("bad fixture %s: %v", s, err)
	}
	return m
}

// render prints a result compactly: each item as JSON, with its type as
// "Type:" prefix when known.
func render(t testing.TB, vs []Value) string {
	t.Helper()
	var parts []string
	for _, v := range vs {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v.Node); err != nil {
			t.Fatal(err)
		}
		s := strings.TrimSpace(b.String())
		if v.Type != "" {
			s = v.Type + ":" + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

const (
	patient = `{"resourceType":"Patient","id":"p1",
		"meta":{"lastUpdated":"2024-01-02T03:04:05Z","profile":["http://x/p"],"tag":[{"system":"s","code":"t"}]},
		"identifier":[{"system":"urn:a","value":"1"},{"system":"urn:b","value":"2"}],
		"active":true,
		"name":[{"use":"official","family":"Chalmers","given":["Peter","James"]},{"use":"usual","given":["Jim"]}],
		"telecom":[{"system":"phone","value":"555"},{"system":"email","value":"a@b"},{"system":"phone","value":"556"}],
		"gender":"male","birthDate":"1974-12-25","_birthDate":{"extension":[{"url":"x"}]},
		"deceasedBoolean":false,
		"multipleBirthInteger":2,
		"generalPractitioner":[{"reference":"Practitioner/7"},{"reference":"#org1"},{"reference":"https://h.example/fhir/Organization/9/_history/2"}],
		"managingOrganization":{"reference":"urn:uuid:0b9c"},
		"contained":[{"resourceType":"Organization","id":"org1","name":"Inner"}],
		"extension":[{"url":"http://x/race","valueString":"r"},{"url":"http://x/other","valueBoolean":true}]}`
	observation = `{"resourceType":"Observation","id":"o1","status":"final",
		"code":{"coding":[{"system":"http://loinc.org","code":"8302-2"}],"text":"Height"},
		"subject":{"reference":"Patient/p1"},
		"encounter":{"reference":"Encounter?identifier=urn:x|1"},
		"performer":[{"reference":"urn:uuid:1","type":"Practitioner"},{"reference":"x","type":"http://hl7.org/fhir/StructureDefinition/Organization"}],
		"effectiveDateTime":"2020-01-01T10:00:00Z",
		"valueQuantity":{"value":180.5,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"},
		"component":[
			{"code":{"text":"a"},"valueQuantity":{"value":1}},
			{"code":{"text":"b"},"valueCodeableConcept":{"text":"c"}},
			{"code":{"text":"c"},"valueString":"s"}]}`
	encounter = `{"resourceType":"Encounter","id":"e1","class":{"code":"AMB"},"classHistory":[{"class":{"code":"IMP"}}],
		"period":{"start":"2020-01-01","end":"2020-01-02"},"subject":{"reference":"Patient/p1"}}`
	bundle = `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"a"}},{"resource":{"resourceType":"Observation","id":"b"}}]}`
	dead   = `{"resourceType":"Patient","deceasedDateTime":"2020-01-01"}`
	alive  = `{"resourceType":"Patient"}`
)

func TestEval(t *testing.T) {
	for _, tc := range []struct {
		res, expr, want string
	}{
		// Navigation, flattening, leading type, Resource.
		{patient, "Patient.id", `"p1"`},
		{patient, "id", `"p1"`},
		{patient, "Resource.id", `"p1"`},
		{patient, "DomainResource.id", `"p1"`},
		{patient, "Observation.id", ``},
		{patient, "Patient.name.given", `"Peter" "James" "Jim"`},
		{patient, "Patient.name.family", `"Chalmers"`},
		{patient, "Patient.identifier.value", `"1" "2"`},
		{patient, "Patient.meta.profile", `"http://x/p"`},
		{patient, "Patient.meta.tag.code", `"t"`},
		{patient, "Patient.nope.nope", ``},
		{patient, "Patient.birthDate", `"1974-12-25"`},
		{patient, "Patient.active", `true`},
		{patient, "Patient", `Patient:` + ``}, // replaced below
		// Indexer.
		{patient, "Patient.name[0].given", `"Peter" "James"`},
		{patient, "Patient.name[1].given[0]", `"Jim"`},
		{patient, "Patient.name[5]", ``},
		{bundle, "Bundle.entry[0].resource.id", `"a"`},
		{bundle, "Bundle.entry.resource.ofType(Observation).id", `"b"`},
		// Union: order kept, duplicates dropped.
		{patient, "Patient.name.given | Patient.name[0].given", `"Peter" "James" "Jim"`},
		{patient, "Patient.gender | Patient.id | Patient.gender", `"male" "p1"`},
		{patient, "Patient.telecom.system | {}", `"phone" "email"`},
		{patient, "(Patient.name | Patient.name).count()", `2`},
		// where, equality.
		{patient, "Patient.telecom.where(system='phone').value", `"555" "556"`},
		{patient, "Patient.telecom.where(system = 'email')", `{"system":"email","value":"a@b"}`},
		{patient, "Patient.name.where(use='official' and given.exists()).family", `"Chalmers"`},
		{patient, "Patient.name.where($this.use = 'usual').given", `"Jim"`},
		{patient, "Patient.name.where(given = 'Jim').use", `"usual"`},
		{patient, "Patient.name.where(nope = 'x')", ``},
		{patient, "Patient.gender = 'male'", `true`},
		{patient, "Patient.gender != 'male'", `false`},
		{patient, "Patient.gender = Patient.nope", ``},
		{patient, "Patient.multipleBirth = 2.0", `true`},
		{patient, "Patient.name.given = 'Peter'", `false`}, // 3 items vs 1
		{patient, "Patient.identifier[0] = Patient.identifier[0]", `true`},
		{patient, "Patient.identifier[0] = Patient.identifier[1]", `false`},
		// exists, empty, not, count, first, last, tail.
		{patient, "Patient.name.exists()", `true`},
		{patient, "Patient.photo.exists()", `false`},
		{patient, "Patient.name.exists(use = 'usual')", `true`},
		{patient, "Patient.name.exists(use = 'old')", `false`},
		{patient, "Patient.photo.empty()", `true`},
		{patient, "Patient.active.not()", `false`},
		{patient, "Patient.nope.not()", ``},
		{patient, "Patient.telecom.count()", `3`},
		{patient, "Patient.telecom.first().value | Patient.telecom.last().value", `"555" "556"`},
		{patient, "Patient.telecom.tail().value", `"a@b" "556"`},
		// and / or / xor / implies with empty.
		{patient, "Patient.active and Patient.nope", ``},
		{patient, "Patient.active.not() and Patient.nope", `false`},
		{patient, "Patient.nope or Patient.active", `true`},
		{patient, "Patient.active xor Patient.active", `false`},
		{patient, "Patient.nope implies Patient.active", `true`},
		{patient, "Patient.active.not() implies Patient.nope", `true`},
		// Choice types.
		{patient, "Patient.deceased", `boolean:false`},
		{patient, "Patient.multipleBirth", `integer:2`},
		{patient, "Patient.deceased.exists() and Patient.deceased != false", `false`},
		{dead, "Patient.deceased.exists() and Patient.deceased != false", `true`},
		{alive, "Patient.deceased.exists() and Patient.deceased != false", `false`},
		{dead, "(Patient.deceased as dateTime)", `dateTime:"2020-01-01"`},
		{dead, "Patient.deceased.as(DateTime)", `dateTime:"2020-01-01"`},
		{dead, "Patient.deceased is dateTime", `true`},
		{dead, "Patient.deceased is boolean", `false`},
		{observation, "Observation.value as Quantity", `Quantity:{"code":"cm","system":"http://unitsofmeasure.org","unit":"cm","value":180.5}`},
		{observation, "(Observation.value as Quantity).value", `180.5`},
		{observation, "(Observation.value as CodeableConcept)", ``},
		{observation, "Observation.value.ofType(Quantity).unit", `"cm"`},
		{observation, "Observation.effective", `dateTime:"2020-01-01T10:00:00Z"`},
		{observation, "(Observation.effective as Period)", ``},
		{observation, "(Observation.component.value as CodeableConcept)", `CodeableConcept:{"text":"c"}`},
		{observation, "(Observation.component.value as Quantity) | (Observation.component.value as SampledData)", `Quantity:{"value":1}`},
		{observation, "(Observation.value as string) | (Observation.value as CodeableConcept).text", ``},
		{observation, "Observation.component.value", `Quantity:{"value":1} CodeableConcept:{"text":"c"} string:"s"`},
		{observation, "Observation.component.value as string", `string:"s"`},
		{observation, "Observation.component.value.where($this is CodeableConcept).text", `"c"`},
		{observation, "Observation | Observation.component", ``}, // replaced below
		// Not a choice element: class must not find classHistory.
		{encounter, "Encounter.class.code", `"AMB"`},
		{`{"resourceType":"Encounter","classHistory":[{"class":{"code":"IMP"}}]}`, "Encounter.class", ``},
		{encounter, "Encounter.period", `{"end":"2020-01-02","start":"2020-01-01"}`},
		// resolve().
		{observation, "Observation.subject.where(resolve() is Patient).reference", `"Patient/p1"`},
		{observation, "Observation.subject.where(resolve() is Group)", ``},
		{observation, "Observation.encounter.resolve() is Encounter", `true`},
		{observation, "Observation.performer.where(resolve() is Practitioner).type", `"Practitioner"`},
		{observation, "Observation.performer.where(resolve() is Organization).reference", `"x"`},
		{patient, "Patient.generalPractitioner.where(resolve() is Practitioner).reference", `"Practitioner/7"`},
		{patient, "Patient.generalPractitioner.where(resolve() is Organization).reference", `"#org1" "https://h.example/fhir/Organization/9/_history/2"`},
		{patient, "Patient.generalPractitioner.resolve().name", `"Inner"`},
		{patient, "Patient.managingOrganization.where(resolve() is Organization)", ``},
		{patient, "Patient.generalPractitioner.resolve().count()", `3`},
		// Type tests on resources and primitives.
		{patient, "Patient.contained.ofType(Organization).name", `"Inner"`},
		{patient, "Patient.contained is Resource", `true`},
		{patient, "Patient.contained is Patient", `false`},
		{patient, "Patient.gender is string", `true`},
		{patient, "Patient.gender is System.String", `true`},
		{patient, "Patient.active is Boolean", `true`},
		{patient, "Patient.name[0] is HumanName", `false`},
		{patient, "Patient.nope is string", ``},
		// extension().
		{patient, "Patient.extension('http://x/race').value", `string:"r"`},
		{patient, "Patient.extension('http://x/none')", ``},
		{patient, "Patient.extension.where(url = 'http://x/other').value", `boolean:true`},
		// Environment and literals.
		{patient, "%resource.id", `"p1"`},
		{patient, "%context.gender", `"male"`},
		{patient, "'x' | 1 | 2.50 | true | -3", `"x" 1 2.50 true -3`},
		{patient, "{}", ``},
		{patient, "Patient.name.given.hasValue()", `false`},
		{patient, "Patient.gender.hasValue()", `true`},
		// Keywords as member names after a dot.
		{`{"resourceType":"ValueSet","expansion":{"contains":[{"code":"a"},{"code":"b"}]}}`, "ValueSet.expansion.contains.code", `"a" "b"`},
	} {
		e, err := Compile(tc.expr)
		if err != nil {
			t.Errorf("Compile(%q): %v", tc.expr, err)
			continue
		}
		r := doc(t, tc.res)
		got, err := e.Eval(r)
		if err != nil {
			t.Errorf("%s on %s: %v", tc.expr, r["resourceType"], err)
			continue
		}
		want := tc.want
		switch tc.expr {
		case "Patient":
			want = "Patient:" + render(t, []Value{{Node: r}})
		case "Observation | Observation.component":
			want = "Observation:" + render(t, []Value{{Node: r}})
			for _, c := range r["component"].([]any) {
				want += " " + render(t, []Value{{Node: c}})
			}
		}
		if g := render(t, got); g != want {
			t.Errorf("%s on %s:\n got %s\nwant %s", tc.expr, r["resourceType"], g, want)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	r := doc(t, patient)
	for _, tc := range []struct{ expr, msg string }{
		{"Patient.name.given and true", "and: operand has 3 items, want at most 1"},
		{"true or Patient.telecom", "or: operand has 3 items"},
		{"Patient.name is HumanName", "is: operand has 2 items"},
		{"Patient.name.is(HumanName)", "is(): input has 2 items"},
		{"Patient.name.where(given)", "where() criterion: operand has 2 items"},
		{"Patient.name.given.not()", "not(): operand has 3 items"},
	} {
		_, err := MustCompile(tc.expr).Eval(r)
		var ee *EvalError
		if !errors.As(err, &ee) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want EvalError containing %q", tc.expr, err, tc.msg)
			continue
		}
		// No values from the resource in the message.
		for _, phi := range []string{"Peter", "Chalmers", "555"} {
			if strings.Contains(err.Error(), phi) {
				t.Errorf("%s: error %q leaks a value", tc.expr, err)
			}
		}
	}
}

func TestEvalAt(t *testing.T) {
	r := doc(t, observation)
	comps, err := MustCompile("Observation.component").Eval(r)
	if err != nil || len(comps) != 3 {
		t.Fatalf("components: %v, %v", comps, err)
	}
	code, value := MustCompile("code"), MustCompile("value.as(Quantity)")
	var got []string
	for _, c := range comps {
		cv, err1 := code.EvalAt(r, c)
		vv, err2 := value.EvalAt(r, c)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		got = append(got, render(t, cv)+"="+render(t, vv))
	}
	if want := `{"text":"a"}=Quantity:{"value":1} {"text":"b"}= {"text":"c"}=`; strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
	res, err := MustCompile("%resource.id | %context.text").EvalAt(r, comps[0])
	if err != nil || render(t, res) != `"o1"` {
		t.Errorf("%%resource from a component = %s, %v", render(t, res), err)
	}
}

// TestAppendEvalReuses checks that results are appended and the evaluator
// does not keep references: the output survives later evaluations.
func TestAppendEvalReuses(t *testing.T) {
	r := doc(t, patient)
	e := MustCompile("Patient.name.given")
	out, _ := e.AppendEval([]Value{{Node: "x"}}, r)
	if render(t, out) != `"x" "Peter" "James" "Jim"` {
		t.Fatalf("AppendEval = %s", render(t, out))
	}
	_, _ = MustCompile("Patient.identifier.value").Eval(r)
	if render(t, out) != `"x" "Peter" "James" "Jim"` {
		t.Fatalf("result changed by a later evaluation: %s", render(t, out))
	}
}

func TestEvalAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	r := doc(t, observation)
	exprs := []*Expr{
		MustCompile("Observation.subject.where(resolve() is Patient)"),
		MustCompile("(Observation.value as Quantity) | (Observation.value as SampledData)"),
		MustCompile("Observation.code | Observation.component.code"),
		MustCompile("Observation.effective"),
		MustCompile("Observation.performer.where(resolve() is Practitioner)"),
	}
	var buf []Value
	for _, e := range exprs {
		buf, _ = e.AppendEval(buf[:0], r) // warm up the pool and buf
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, e := range exprs {
			buf, _ = e.AppendEval(buf[:0], r)
		}
	})
	if allocs > 0 {
		t.Errorf("AppendEval allocates %.1f times per round", allocs)
	}
}
