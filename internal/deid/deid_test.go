package deid

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)

func must(t *testing.T, o Options) *Deidentifier {
	t.Helper()
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// planted is a Patient with every Safe Harbor identifier an EHR holds.
const planted = `{"resourceType":"Patient","id":"pat-123","meta":{"versionId":"3","lastUpdated":"2026-01-02T03:04:05Z"},
"text":{"status":"generated","div":"<div>Zebulon Quixote</div>"},
"identifier":[{"system":"https://wardhealth.org/fhir/sid/mrn","value":"MRN-778899"},{"system":"http://hl7.org/fhir/sid/us-ssn","value":"123-45-6789"}],
"active":true,"name":[{"family":"Quixote","given":["Zebulon"]}],
"telecom":[{"system":"phone","value":"+1-555-0142"},{"system":"email","value":"zeb@example.org"},{"system":"url","value":"https://zeb.example.org"}],
"gender":"male","birthDate":"1961-04-17",
"address":[{"line":["12 Windmill Lane"],"city":"Springfieldia","district":"Northcounty","state":"MA","postalCode":"02139-4301","country":"US"}],
"maritalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"Married"}],"text":"married to Dulcinea"},
"photo":[{"contentType":"image/png","data":"aGVsbG8="}],
"contact":[{"name":{"family":"Panza"},"telecom":[{"system":"phone","value":"+1-555-0199"}]}],
"generalPractitioner":[{"reference":"Practitioner/dr-who"}],"managingOrganization":{"reference":"Organization/clinic-x"}}`

const plantedImm = `{"resourceType":"Immunization","id":"imm-9","status":"completed",
"vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"208","display":"COVID-19 vaccine"}],"text":"Pfizer for Zebulon"},
"patient":{"reference":"Patient/pat-123"},"occurrenceDateTime":"2021-03-04T10:11:12Z","primarySource":true,
"lotNumber":"LOT-SECRET-1","expirationDate":"2022-01-01",
"site":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActSite","code":"LA"}],"text":"left arm near tattoo"},
"route":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration","code":"IM"}]},
"performer":[{"actor":{"reference":"Practitioner/dr-who","display":"Dr Strangeway"}}],
"note":[{"text":"patient Zebulon fainted"}],
"reaction":[{"date":"2021-03-05","detail":{"reference":"Observation/obs-1"},"reported":true}],
"doseQuantity":{"value":0.3,"unit":"mL","system":"http://unitsofmeasure.org","code":"mL"}}`

var identifiers = []string{"pat-123", "imm-9", "MRN-778899", "123-45-6789", "Quixote", "Zebulon", "555-0142", "zeb@example.org", "zeb.example.org",
	"Windmill", "Springfieldia", "Northcounty", "02139", "0213", "1961-04-17", "04-17", "Dulcinea", "aGVsbG8=", "Panza", "555-0199", "dr-who",
	"clinic-x", "2026-01-02", "LOT-SECRET-1", "tattoo", "Strangeway", "fainted", "obs-1", "2021-03-04", "2021-03-05", "2022-01-01", "Married"}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func run(t *testing.T, d *Deidentifier, s, patient string) (map[string]any, string) {
	t.Helper()
	out, err := d.Resource(decode(t, s), patient)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(out)
	return out, string(b)
}

// TestSafeHarborPatientFields checks the output Patient element by
// element against the Safe Harbor list.
func TestSafeHarborPatientFields(t *testing.T) {
	d := must(t, Options{ProjectKey: []byte("project-key-0123456789"), Now: now})
	out, raw := run(t, d, planted, "pat-123")
	want := map[string]string{
		"resourceType":  `"Patient"`,
		"id":            `"` + d.Pseudonym("Patient", "pat-123") + `"`,
		"gender":        `"male"`, // not an identifier
		"active":        `true`,
		"birthDate":     `"1961"`,                                             // (C) dates to the year
		"address":       `[{"country":"US","postalCode":"021","state":"MA"}]`, // (B) ZIP to 3 digits; street, city, district gone
		"maritalStatus": `{"coding":[{"code":"M","system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"}]}`,
		// references to other resources become their pseudonyms
		"generalPractitioner":  `[{"reference":"Practitioner/` + d.Pseudonym("Practitioner", "dr-who") + `"}]`,
		"managingOrganization": `{"reference":"Organization/` + d.Pseudonym("Organization", "clinic-x") + `"}`,
	}
	for k, v := range want {
		b, _ := json.Marshal(out[k])
		if string(b) != v {
			t.Errorf("%s = %s, want %s", k, b, v)
		}
	}
	// (A) names, (D-G) telephone, fax, e-mail, (H-K) identifiers, (N) URLs,
	// (Q) photos, (R) any other identifying element, narrative and meta.
	// The contact (a relative) keeps nothing: name and telephone go.
	for _, k := range []string{"name", "telecom", "identifier", "photo", "contact", "text", "meta", "extension"} {
		if _, ok := out[k]; ok {
			t.Errorf("%s kept", k)
		}
	}
	if len(out) != len(want) {
		t.Errorf("unexpected elements: %s", raw)
	}
	for _, id := range identifiers {
		if strings.Contains(raw, id) {
			t.Errorf("planted identifier %q in output %s", id, raw)
		}
	}
}

func TestSafeHarborImmunizationFields(t *testing.T) {
	d := must(t, Options{ProjectKey: []byte("project-key-0123456789"), Now: now})
	out, raw := run(t, d, plantedImm, "pat-123")
	want := map[string]string{
		"resourceType":       `"Immunization"`,
		"id":                 `"` + d.Pseudonym("Immunization", "imm-9") + `"`,
		"status":             `"completed"`,
		"primarySource":      `true`,
		"vaccineCode":        `{"coding":[{"code":"208","system":"http://hl7.org/fhir/sid/cvx"}]}`,
		"patient":            `{"reference":"Patient/` + d.Pseudonym("Patient", "pat-123") + `"}`,
		"occurrenceDateTime": `"2021"`,
		"site":               `{"coding":[{"code":"LA","system":"http://terminology.hl7.org/CodeSystem/v3-ActSite"}]}`,
		"route":              `{"coding":[{"code":"IM","system":"http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"}]}`,
		"reaction":           `[{"date":"2021","detail":{"reference":"Observation/` + d.Pseudonym("Observation", "obs-1") + `"},"reported":true}]`,
		"expirationDate":     `"2022"`,
		"performer":          `[{"actor":{"reference":"Practitioner/` + d.Pseudonym("Practitioner", "dr-who") + `"}}]`,
		"doseQuantity":       `{"code":"mL","system":"http://unitsofmeasure.org","unit":"mL","value":0.3}`,
	}
	for k, v := range want {
		b, _ := json.Marshal(out[k])
		if string(b) != v {
			t.Errorf("%s = %s, want %s", k, b, v)
		}
	}
	for _, k := range []string{"lotNumber", "note"} {
		if _, ok := out[k]; ok {
			t.Errorf("%s kept", k)
		}
	}
	if len(out) != len(want) {
		t.Errorf("unexpected elements: %s", raw)
	}
	for _, id := range identifiers {
		if strings.Contains(raw, id) {
			t.Errorf("planted identifier %q in output %s", id, raw)
		}
	}
}

func TestAgeOver89(t *testing.T) {
	d := must(t, Options{ProjectKey: []byte("project-key-0123456789"), Now: now})
	for _, c := range []struct {
		birth string
		group bool
	}{
		{"1936-12-08", false}, // 89 until tomorrow
		{"1936-12-07", true},  // 90 today
		{"1920-01-01", true},
		{"1936", true}, // a year alone counts from Jan 1: 90 in 2026
		{"1937", false},
		{"bogus", true},
	} {
		out, raw := run(t, d, `{"resourceType":"Patient","id":"p","birthDate":"`+c.birth+`"}`, "p")
		_, hasBD := out["birthDate"]
		if c.group && (hasBD || !strings.Contains(raw, `"valueString":"90+"`)) {
			t.Errorf("%s: want 90+ and no birth date, got %s", c.birth, raw)
		}
		if !c.group && (!hasBD || strings.Contains(raw, "90+")) {
			t.Errorf("%s: want the birth year, got %s", c.birth, raw)
		}
	}
}

func TestZIP3(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"02139", "021"}, {"02139-4301", "021"}, {" 10001 ", "100"},
		{"03601", "000"}, {"05901", "000"}, {"06390", "000"}, {"10200", "000"}, {"20301", "000"}, {"55601", "000"},
		{"69201", "000"}, {"79001", "000"}, {"82101", "000"}, {"82301", "000"}, {"83001", "000"}, {"83101", "000"},
		{"87801", "000"}, {"87901", "000"}, {"88401", "000"}, {"89001", "000"}, {"89301", "000"},
		{"SW1A 1AA", ""}, {"12", ""}, {"", ""},
	} {
		if got := ZIP3(c.in); got != c.want {
			t.Errorf("ZIP3(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if len(SparseZIP3) != 17 {
		t.Errorf("HHS lists 17 sparse prefixes, have %d", len(SparseZIP3))
	}
}

// TestPseudonyms: stable within a project, unlinkable across projects.
func TestPseudonyms(t *testing.T) {
	a := must(t, Options{ProjectKey: []byte("project-A-key-0123456"), Now: now})
	a2 := must(t, Options{ProjectKey: []byte("project-A-key-0123456"), Now: now.Add(time.Hour)})
	b := must(t, Options{ProjectKey: []byte("project-B-key-0123456"), Now: now})
	if a.Pseudonym("Patient", "x") != a2.Pseudonym("Patient", "x") {
		t.Error("pseudonym not stable within a project")
	}
	if a.Pseudonym("Patient", "x") == b.Pseudonym("Patient", "x") {
		t.Error("pseudonym linkable across projects")
	}
	if a.Pseudonym("Patient", "x") == a.Pseudonym("Patient", "y") || a.Pseudonym("Patient", "x") == a.Pseudonym("Immunization", "x") {
		t.Error("pseudonyms collide")
	}
	if _, err := New(Options{ProjectKey: []byte("short"), Now: now}); err == nil {
		t.Error("short key accepted")
	}
}

// TestDateShiftKeepsIntervals: every date of one patient moves by the same
// offset, so intervals survive; the offset differs by patient.
func TestDateShiftKeepsIntervals(t *testing.T) {
	d := must(t, Options{ProjectKey: []byte("project-key-0123456789"), Now: now, ShiftDates: true})
	if d.Method() != MethodSafeHarborShift {
		t.Fatal(d.Method())
	}
	out, raw := run(t, d, plantedImm, "pat-123")
	occ, _ := time.Parse(time.RFC3339, out["occurrenceDateTime"].(string))
	rea, _ := time.Parse("2006-01-02", out["reaction"].([]any)[0].(map[string]any)["date"].(string))
	if rea.Sub(occ.Truncate(24*time.Hour)) != 24*time.Hour {
		t.Errorf("interval not kept: %s", raw)
	}
	shift := d.ShiftDays("pat-123")
	if shift == 0 || shift < -MaxShiftDays || shift > MaxShiftDays {
		t.Fatalf("shift %d", shift)
	}
	// The time of day is kept: intervals stay exact to the second.
	if want := time.Date(2021, 3, 4, 10, 11, 12, 0, time.UTC).AddDate(0, 0, shift); !occ.Equal(want) {
		t.Errorf("occurrence %s, want %s", occ, want)
	}
	differs := false
	for _, p := range []string{"a", "b", "c", "d", "e"} {
		if d.ShiftDays(p) != shift {
			differs = true
		}
	}
	if !differs {
		t.Error("every patient gets the same shift")
	}
}

func TestUnsupportedTypeDropped(t *testing.T) {
	d := must(t, Options{ProjectKey: []byte("project-key-0123456789"), Now: now})
	if _, err := d.Resource(map[string]any{"resourceType": "Observation", "id": "o"}, "p"); err != nil {
		t.Fatalf("Observation: %v", err)
	}
	if _, err := d.Resource(map[string]any{"resourceType": "NotAType", "id": "o"}, "p"); err != ErrUnsupported {
		t.Fatalf("err = %v", err)
	}
}
