package search

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/search/fhirpath"
)

// loadSample returns the resources of testdata: a sample of Synthea
// patients (see testdata/README.md) and hand-written resources of types
// Synthea does not produce.
func loadSample(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	raw, err := os.ReadFile("testdata/synthea-sample.ndjson.gz")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		r, err := fhir.Parse(sc.Bytes())
		if err != nil {
			t.Fatalf("sample line %d: %v", len(out)+1, err)
		}
		out = append(out, r.Doc)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	hand, err := os.ReadFile("testdata/handmade.json")
	if err != nil {
		t.Fatal(err)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(hand, &list); err != nil {
		t.Fatal(err)
	}
	for i, m := range list {
		r, err := fhir.Parse(m)
		if err != nil {
			t.Fatalf("handmade.json #%d: %v", i, err)
		}
		out = append(out, r.Doc)
	}
	return out
}

func TestExtractorForEveryType(t *testing.T) {
	total := 0
	for _, rt := range fhir.ResourceTypes() {
		x, err := ExtractorFor(rt)
		if err != nil {
			t.Fatal(err)
		}
		total += len(x.Params())
		for _, c := range x.Params() {
			if c.Expr == nil && c.Param.Expression != "" {
				t.Errorf("%s %s: expression %q has no part for the type", rt, c.Param.Code, c.Param.Expression)
			}
			if len(c.Components) != len(c.Param.Components) {
				t.Errorf("%s %s: %d components compiled of %d", rt, c.Param.Code, len(c.Components), len(c.Param.Components))
			}
		}
	}
	t.Logf("%d resource types, %d (type, parameter) extractors", len(fhir.ResourceTypes()), total)
	if _, err := ExtractorFor("Nope"); err == nil {
		t.Error("ExtractorFor(Nope) succeeded")
	}
	x, _ := ExtractorFor("Patient")
	if err := x.Extract(map[string]any{"resourceType": "Observation"}, nil); err == nil {
		t.Error("Extract accepted a resource of another type")
	}
}

// TestExtractSample evaluates every parameter (and composite component) of
// each sample resource's type on it: no errors, no panics.
func TestExtractSample(t *testing.T) {
	res := loadSample(t)
	types := map[string]int{}
	evals, nonEmpty, compEvals := 0, 0, 0
	hit := map[string]bool{} // type/code with at least one value
	for _, r := range res {
		rt := r["resourceType"].(string)
		types[rt]++
		x, err := ExtractorFor(rt)
		if err != nil {
			t.Fatal(err)
		}
		err = x.Extract(r, func(c *Compiled, vals []fhirpath.Value) error {
			evals++
			if len(vals) > 0 {
				nonEmpty++
				hit[rt+"/"+c.Param.Code] = true
			}
			for _, v := range vals {
				for _, ce := range c.Components {
					compEvals++
					if _, err := ce.EvalAt(r, v); err != nil {
						t.Errorf("%s/%s: component %s: %v", rt, r["id"], ce, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("%s/%s: %v", rt, r["id"], err)
		}
	}
	t.Logf("%d resources of %d types; %d evaluations (%d non-empty, %d type/param pairs with values), %d component evaluations, 0 errors",
		len(res), len(types), evals, nonEmpty, len(hit), compEvals)
	if len(res) != 339 || len(types) < 36 {
		t.Errorf("sample has %d resources of %d types, want 339 of 36+", len(res), len(types))
	}
	// Parameters that must find values in this sample.
	for _, k := range []string{
		"Patient/birthdate", "Patient/family", "Patient/identifier", "Patient/gender", "Patient/_id", "Patient/_profile",
		"Patient/address-city", "Patient/phone", "Patient/deceased",
		"Observation/code", "Observation/subject", "Observation/patient", "Observation/value-quantity", "Observation/date",
		"Observation/encounter", "Observation/code-value-quantity", "Observation/combo-code-value-quantity",
		"Encounter/date", "Encounter/patient", "Encounter/class", "Encounter/practitioner", "Encounter/service-provider",
		"Condition/onset-date", "Condition/code", "MedicationRequest/medication", "MedicationRequest/authoredon",
		"Immunization/vaccine-code", "Procedure/date", "DiagnosticReport/result", "Claim/patient",
		"ExplanationOfBenefit/patient", "CarePlan/category", "CareTeam/participant", "DocumentReference/type",
		"Provenance/target", "Practitioner/name", "Organization/name", "Location/address", "PractitionerRole/practitioner",
		"ImagingStudy/modality", "AllergyIntolerance/code", "Goal/lifecycle-status", "SupplyDelivery/status",
		"Appointment/patient", "Appointment/practitioner", "Appointment/location", "Person/patient", "Person/practitioner",
		"Person/relatedperson", "Person/email", "MolecularSequence/chromosome-variant-coordinate",
		"Group/characteristic-value", "Composition/related-id", "Composition/related-ref", "Condition/onset-age",
		"Condition/abatement-string", "ActivityDefinition/context-type-quantity", "ActivityDefinition/depends-on",
		"Bundle/composition", "Bundle/identifier", "ValueSet/code", "InsurancePlan/name", "AuditEvent/patient",
		"Task/owner", "Task/patient", "Specimen/patient", "RiskAssessment/date", "RiskAssessment/probability",
		"Medication/ingredient", "Medication/ingredient-code", "Substance/substance-reference",
	} {
		if !hit[k] {
			t.Errorf("%s: no values found in the sample", k)
		}
	}
}

// eval evaluates the parameter code of r's type on r.
func eval(t *testing.T, r map[string]any, code string) []fhirpath.Value {
	t.Helper()
	x, err := ExtractorFor(r["resourceType"].(string))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range x.Params() {
		if c.Param.Code == code {
			v, err := c.Expr.Eval(r)
			if err != nil {
				t.Fatalf("%s: %v", code, err)
			}
			return v
		}
	}
	t.Fatalf("%s has no parameter %s", r["resourceType"], code)
	return nil
}

func nodes(vs []fhirpath.Value) []any {
	var out []any
	for _, v := range vs {
		out = append(out, v.Node)
	}
	return out
}

func asList(v any) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	return []any{v}
}

// TestKnownValues checks extracted values against the JSON of each sample
// resource, read directly: what the expression should find.
func TestKnownValues(t *testing.T) {
	res := loadSample(t)
	seen := map[string]int{}
	for _, r := range res {
		rt := r["resourceType"].(string)
		switch rt {
		case "Patient":
			seen[rt]++
			if got := nodes(eval(t, r, "birthdate")); !reflect.DeepEqual(got, []any{r["birthDate"]}) {
				t.Errorf("Patient birthdate = %v, want %v", got, r["birthDate"])
			}
			var fams []any
			for _, n := range asList(r["name"]) {
				if f, ok := n.(map[string]any)["family"]; ok && !slices.Contains(fams, f) {
					fams = append(fams, f)
				}
			}
			if got := nodes(eval(t, r, "family")); !reflect.DeepEqual(got, fams) {
				t.Errorf("Patient family = %v, want %v", got, fams)
			}
			if got, want := len(eval(t, r, "identifier")), len(asList(r["identifier"])); got != want || want == 0 {
				t.Errorf("Patient identifier count = %d, want %d", got, want)
			}
			if got := nodes(eval(t, r, "_id")); !reflect.DeepEqual(got, []any{r["id"]}) {
				t.Errorf("Patient _id = %v", got)
			}
			// deceased: true iff deceasedDateTime or deceasedBoolean true.
			_, dt := r["deceasedDateTime"]
			want := dt || r["deceasedBoolean"] == true
			if got := nodes(eval(t, r, "deceased")); !reflect.DeepEqual(got, []any{want}) {
				t.Errorf("Patient deceased = %v, want %v", got, want)
			}
			if dt {
				seen["deceased"]++
			}
		case "Observation":
			seen[rt]++
			if got := nodes(eval(t, r, "code")); !reflect.DeepEqual(got, []any{r["code"]}) {
				t.Errorf("Observation code = %v", got)
			}
			if got := nodes(eval(t, r, "subject")); !reflect.DeepEqual(got, []any{r["subject"]}) {
				t.Errorf("Observation subject = %v", got)
			}
			ref := r["subject"].(map[string]any)["reference"].(string)
			pat := nodes(eval(t, r, "patient"))
			if strings.HasPrefix(ref, "Patient/") != (len(pat) == 1) {
				t.Errorf("Observation patient = %v for subject %s", pat, ref)
			}
			vq := eval(t, r, "value-quantity")
			if q, ok := r["valueQuantity"]; ok {
				if len(vq) != 1 || vq[0].Type != "Quantity" || !reflect.DeepEqual(vq[0].Node, q) {
					t.Errorf("Observation value-quantity = %v, want %v", vq, q)
				}
				seen["valueQuantity"]++
			} else if len(vq) != 0 {
				t.Errorf("Observation value-quantity = %v without valueQuantity", vq)
			}
			d := eval(t, r, "date")
			if e, ok := r["effectiveDateTime"]; ok && (len(d) != 1 || d[0].Node != e || d[0].Type != "dateTime") {
				t.Errorf("Observation date = %v, want dateTime %v", d, e)
			}
			// Components: combo-code covers the Observation code and each
			// component's code.
			want := []any{r["code"]}
			for _, c := range asList(r["component"]) {
				if cc := c.(map[string]any)["code"]; !slices.ContainsFunc(want, func(w any) bool { return reflect.DeepEqual(w, cc) }) {
					want = append(want, cc)
				}
			}
			if got := nodes(eval(t, r, "combo-code")); !reflect.DeepEqual(got, want) {
				t.Errorf("Observation combo-code = %d values, want %d", len(got), len(want))
			}
		case "Encounter":
			seen[rt]++
			d := eval(t, r, "date")
			if len(d) != 1 || !reflect.DeepEqual(d[0].Node, r["period"]) {
				t.Errorf("Encounter date = %v, want the period %v", d, r["period"])
			}
			if _, ok := d[0].Node.(map[string]any)["start"]; !ok {
				t.Errorf("Encounter date %v is not a Period", d[0].Node)
			}
			if got := nodes(eval(t, r, "class")); !reflect.DeepEqual(got, []any{r["class"]}) {
				t.Errorf("Encounter class = %v", got)
			}
		}
	}
	if seen["Patient"] != 4 || seen["deceased"] != 1 || seen["Observation"] != 24 || seen["Encounter"] != 24 || seen["valueQuantity"] == 0 {
		t.Errorf("sample coverage changed: %v", seen)
	}
}

// TestHandmade checks the constructs Synthea does not exercise, on
// testdata/handmade.json.
func TestHandmade(t *testing.T) {
	byID := map[string]map[string]any{}
	for _, r := range loadSample(t) {
		if id, _ := r["id"].(string); id != "" {
			byID[r["resourceType"].(string)+"/"+id] = r
		}
	}
	str := func(vs []fhirpath.Value) string {
		var parts []string
		for _, v := range vs {
			b, _ := json.Marshal(v.Node)
			s := string(b)
			if v.Type != "" {
				s = v.Type + ":" + s
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " ")
	}
	for _, tc := range []struct{ res, code, want string }{
		{"Appointment/ap1", "patient", `{"reference":"Patient/p1"}`},
		{"Appointment/ap1", "practitioner", `{"reference":"Practitioner/d1"}`},
		{"Appointment/ap1", "location", `{"reference":"Location/l1"}`},
		{"Person/pe1", "patient", `{"reference":"Patient/p1"}`},
		{"Person/pe1", "relatedperson", `{"reference":"RelatedPerson/r1"}`},
		{"Person/pe1", "practitioner", `{"reference":"https://other.example/fhir/Practitioner/d9"}`},
		{"Person/pe1", "email", `{"system":"email","value":"jo@example.org"}`},
		{"Person/pe1", "phone", ``},
		{"Group/g1", "value", `CodeableConcept:{"coding":[{"code":"female"}]} boolean:true`},
		{"Composition/c1", "related-id", `Identifier:{"system":"urn:x","value":"old"}`},
		{"Composition/c1", "related-ref", `Reference:{"reference":"Composition/c0"}`},
		{"Condition/cd1", "onset-age", `Age:{"code":"a","system":"http://unitsofmeasure.org","unit":"a","value":42}`},
		{"Condition/cd1", "onset-date", ``},
		{"Condition/cd1", "abatement-string", `string:"in remission"`},
		{"ActivityDefinition/ad1", "context-quantity", `Range:{"high":{"value":65},"low":{"value":18}}`},
		{"ActivityDefinition/ad1", "context", `CodeableConcept:{"text":"diabetes"}`},
		{"ActivityDefinition/ad1", "depends-on", `"http://x/Library/l1" "http://x/Library/l2"`},
		{"Bundle/b1", "composition", `{"author":[{"reference":"Practitioner/d1"}],"date":"2024-01-01","id":"c2","resourceType":"Composition","status":"final","title":"T","type":{"text":"t"}}`},
		{"ValueSet/vs1", "code", `"a" "c" "b"`},
		{"InsurancePlan/ip1", "name", `"Gold" "G" "Au"`},
		{"AuditEvent/ae1", "patient", `{"reference":"Patient/p1"}`},
		{"Task/t1", "patient", `{"reference":"Patient/p1"}`},
		{"Task/t1", "owner", `{"reference":"#org"}`},
		{"Specimen/sp1", "patient", `{"identifier":{"value":"mrn1"},"type":"Patient"}`},
		{"RiskAssessment/ra1", "date", `dateTime:"2024-01-01"`},
		{"RiskAssessment/ra1", "probability", `decimal:0.25`},
		{"Medication/m1", "ingredient", `Reference:{"reference":"Substance/s1"}`},
		{"Medication/m1", "ingredient-code", `CodeableConcept:{"text":"i1"}`},
		{"Substance/s1", "substance-reference", `Reference:{"reference":"Substance/s2"}`},
		{"Substance/s1", "code", `{"text":"s"} CodeableConcept:{"text":"a"}`},
	} {
		r := byID[tc.res]
		if r == nil {
			t.Fatalf("no %s in the sample", tc.res)
		}
		if got := str(eval(t, r, tc.code)); got != tc.want {
			t.Errorf("%s %s:\n got %s\nwant %s", tc.res, tc.code, got, tc.want)
		}
	}

	// A composite whose components use %resource.
	r := byID["MolecularSequence/ms1"]
	x, _ := ExtractorFor("MolecularSequence")
	var rows []string
	for _, c := range x.Params() {
		if c.Param.Code != "chromosome-variant-coordinate" {
			continue
		}
		vals, err := c.Expr.Eval(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vals {
			var row []string
			for _, ce := range c.Components {
				cv, err := ce.EvalAt(r, v)
				if err != nil {
					t.Fatal(err)
				}
				row = append(row, str(cv))
			}
			rows = append(rows, strings.Join(row, ";"))
		}
	}
	sort.Strings(rows)
	want := []string{
		`{"coding":[{"code":"1","system":"http://terminology.hl7.org/CodeSystem/chromosome-human"}]};120;121`,
		`{"coding":[{"code":"1","system":"http://terminology.hl7.org/CodeSystem/chromosome-human"}]};150;151`,
	}
	if !slices.Equal(rows, want) {
		t.Errorf("chromosome-variant-coordinate rows:\n got %q\nwant %q", rows, want)
	}
}
