package fhirxml

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
)

// The XML fixtures come back as the JSON of json.html, and that JSON
// converts back to XML and JSON again unchanged.
func TestXMLFixtures(t *testing.T) {
	cases := map[string]string{
		"testdata/xml/patient-extensions.xml": `{"resourceType":"Patient","id":"xml-1",
			"contained":[{"resourceType":"Organization","id":"org1","name":"Example Clinic & Lab"}],
			"active":true,
			"name":[{"family":"Tester","given":["Alpha",null,"Gamma"],
				"_given":[null,{"id":"g2","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/data-absent-reason","valueCode":"masked"}]},null]}],
			"birthDate":"1970-03-30",
			"_birthDate":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthTime","valueDateTime":"1970-03-30T14:35:45-05:00"}]},
			"multipleBirthInteger":2,
			"managingOrganization":{"reference":"#org1"}}`,
		"testdata/xml/observation.xml": `{"resourceType":"Observation","id":"obs-xml",
			"text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Weight <b>72.50</b> kg &amp; stable</p></div>"},
			"status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
			"subject":{"reference":"Patient/xml-1"},"effectiveDateTime":"2024-01-02T10:00:00Z",
			"valueQuantity":{"value":72.50,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`,
	}
	for file, want := range cases {
		t.Run(file, func(t *testing.T) {
			x, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			j, err := ToJSON(x, fhir.Limits{})
			if err != nil {
				t.Fatalf("ToJSON: %v", err)
			}
			got, exp := decodeJSON(t, j), decodeJSON(t, []byte(want))
			if !reflect.DeepEqual(got, exp) {
				t.Fatalf("got %s", j)
			}
			if !strings.Contains(string(j), "72.50") && strings.Contains(file, "observation") {
				t.Fatalf("the decimal lost its digits: %s", j)
			}
			x2, err := FromJSON(j)
			if err != nil {
				t.Fatalf("FromJSON: %v", err)
			}
			j2, err := ToJSON(x2, fhir.Limits{})
			if err != nil {
				t.Fatalf("ToJSON again: %v\n%s", err, x2)
			}
			if !reflect.DeepEqual(decodeJSON(t, j2), exp) {
				t.Fatalf("second round trip differs: %s", j2)
			}
		})
	}
}

// Output follows the StructureDefinition order whatever the JSON order,
// with ids and Extension.url as attributes.
func TestOrderAndAttributes(t *testing.T) {
	j := `{"gender":"male","name":[{"given":["A"],"family":"B","id":"n1"}],"resourceType":"Patient","extension":[{"valueBoolean":true,"url":"http://example.org/x"}],"id":"p"}`
	x, err := FromJSON([]byte(j))
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?><Patient xmlns="http://hl7.org/fhir"><id value="p"/><extension url="http://example.org/x"><valueBoolean value="true"/></extension><name id="n1"><family value="B"/><given value="A"/></name><gender value="male"/></Patient>`
	if string(x) != want {
		t.Fatalf("got  %s\nwant %s", x, want)
	}
}

func TestFromJSONRefuses(t *testing.T) {
	for name, j := range map[string]string{
		"unknown element":       `{"resourceType":"Patient","nickname":"x"}`,
		"boolean as string":     `{"resourceType":"Patient","active":"true"}`,
		"number as string":      `{"resourceType":"Patient","multipleBirthInteger":"2"}`,
		"array for a single":    `{"resourceType":"Patient","gender":["male"]}`,
		"single for an array":   `{"resourceType":"Patient","name":{"family":"x"}}`,
		"null primitive":        `{"resourceType":"Patient","name":[{"given":[null]}]}`,
		"control character":     `{"resourceType":"Patient","gender":"a\u0001"}`,
		"div not xhtml":         `{"resourceType":"Patient","text":{"status":"generated","div":"<div>x</div>"}}`,
		"div with entity":       `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">&nbsp;</div>"}}`,
		"integer with fraction": `{"resourceType":"Patient","multipleBirthInteger":2.0}`,
		"null single":           `{"resourceType":"Patient","gender":null}`,
		"null twin":             `{"resourceType":"Patient","gender":"male","_gender":null}`,
		"twin of nulls":         `{"resourceType":"Patient","name":[{"given":["a"],"_given":[null]}]}`,
		"values of nulls":       `{"resourceType":"Patient","name":[{"given":[null],"_given":[{"id":"x"}]}]}`,
		"twin length":           `{"resourceType":"Patient","name":[{"given":["a","b"],"_given":[{"id":"x"}]}]}`,
		"nested unknown type":   `{"resourceType":"Patient","contained":[{"resourceType":"Nope"}]}`,
		"unknown type":          `{"resourceType":"Nope"}`,
	} {
		t.Run(name, func(t *testing.T) {
			if x, err := FromJSON([]byte(j)); err == nil {
				t.Fatalf("accepted: %s", x)
			}
		})
	}
}

func TestToJSONRefuses(t *testing.T) {
	const p = `<Patient xmlns="http://hl7.org/fhir">`
	for name, tc := range map[string]struct {
		xml, code string
		lim       fhir.Limits
	}{
		"xxe":                    {`<?xml version="1.0"?><!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + p + `<id value="&xxe;"/></Patient>`, "security", fhir.Limits{}},
		"dtd":                    {`<!DOCTYPE Patient SYSTEM "http://example.org/p.dtd">` + p + `</Patient>`, "security", fhir.Limits{}},
		"entity without dtd":     {p + `<gender value="&lol;"/></Patient>`, "structure", fhir.Limits{}},
		"billion laughs":         {`<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>` + p + `<gender value="&lol2;"/></Patient>`, "security", fhir.Limits{}},
		"processing instruction": {p + `<?evil data?></Patient>`, "security", fhir.Limits{}},
		"stylesheet pi":          {`<?xml version="1.0"?><?xml-stylesheet href="x.xsl"?>` + p + `</Patient>`, "security", fhir.Limits{}},
		"unknown element":        {p + `<nickname value="x"/></Patient>`, "structure", fhir.Limits{}},
		"unknown attribute":      {p + `<gender value="male" foo="x"/></Patient>`, "structure", fhir.Limits{}},
		"wrong namespace":        {`<Patient xmlns="http://example.org"></Patient>`, "structure", fhir.Limits{}},
		"no namespace":           {`<Patient></Patient>`, "structure", fhir.Limits{}},
		"unknown type":           {`<Nope xmlns="http://hl7.org/fhir"></Nope>`, "not-supported", fhir.Limits{}},
		"bad boolean":            {p + `<active value="yes"/></Patient>`, "value", fhir.Limits{}},
		"bad integer":            {p + `<multipleBirthInteger value="2.0"/></Patient>`, "value", fhir.Limits{}},
		"bad decimal":            {`<Observation xmlns="http://hl7.org/fhir"><valueQuantity><value value="1,5"/></valueQuantity></Observation>`, "value", fhir.Limits{}},
		"text content":           {p + `<gender>male</gender></Patient>`, "structure", fhir.Limits{}},
		"empty primitive":        {p + `<gender/></Patient>`, "structure", fhir.Limits{}},
		"repeated single":        {p + `<gender value="male"/><gender value="female"/></Patient>`, "structure", fhir.Limits{}},
		"two choice types":       {p + `<deceasedBoolean value="true"/><deceasedDateTime value="2020"/></Patient>`, "structure", fhir.Limits{}},
		"not well-formed":        {p + `<gender value="male"></Patient>`, "structure", fhir.Limits{}},
		"two roots":              {p + `</Patient>` + p + `</Patient>`, "structure", fhir.Limits{}},
		"latin1":                 {`<?xml version="1.0" encoding="ISO-8859-1"?>` + p + `</Patient>`, "structure", fhir.Limits{}},
		"div without namespace":  {p + `<text><status value="generated"/><div>x</div></text></Patient>`, "structure", fhir.Limits{}},
		"div foreign element":    {p + `<text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><x:script xmlns:x="urn:x"/></div></text></Patient>`, "structure", fhir.Limits{}},
		"elements":               {p + `<name><given value="a"/><given value="b"/><given value="c"/></name></Patient>`, "too-costly", fhir.Limits{Elements: 3}},
		"depth":                  {p + strings.Repeat(`<extension url="u">`, fhir.MaxDepth+1) + strings.Repeat(`</extension>`, fhir.MaxDepth+1) + `</Patient>`, "too-costly", fhir.Limits{}},
	} {
		t.Run(name, func(t *testing.T) {
			j, err := ToJSON([]byte(tc.xml), tc.lim)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %s, %v; want an *Error", j, err)
			}
			if e.Code != tc.code {
				t.Fatalf("code %q (%v), want %q", e.Code, err, tc.code)
			}
			for _, secret := range []string{"passwd", "lol", "male", "evil", "nickname", "yes", "1,5"} {
				if strings.Contains(e.Msg, secret) && !strings.Contains(tc.xml, "<"+secret) {
					t.Fatalf("the message quotes the body: %v", err)
				}
			}
		})
	}
}

// A JSON number's digits survive both ways (no float64 in between).
func TestDecimalsExact(t *testing.T) {
	j := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1.50000000000000000001e3}}`
	x, err := FromJSON([]byte(j))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(x), `<value value="1.50000000000000000001e3"/>`) {
		t.Fatalf("XML: %s", x)
	}
	back, err := ToJSON(x, fhir.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	json.Unmarshal(back, &m)
	if !strings.Contains(string(m["valueQuantity"]), `1.50000000000000000001e3`) {
		t.Fatalf("JSON: %s", back)
	}
}

func TestTableCoversResources(t *testing.T) {
	tb := loadTable()
	for _, rt := range []string{"Patient", "Observation", "Bundle", "OperationOutcome", "CapabilityStatement", "Parameters"} {
		if !tb.resources[rt] {
			t.Errorf("%s missing", rt)
		}
	}
	if k := tb.parts["Bundle.entry"].keys["resource"]; k.typ != "Resource" {
		t.Errorf("Bundle.entry.resource is %q", k.typ)
	}
	if !tb.parts["Extension"].keys["url"].el.attr || !tb.parts["HumanName"].keys["id"].el.attr || tb.parts["Patient"].keys["id"].el.attr {
		t.Error("xmlAttr flags wrong")
	}
	// Every resource type of the XML table is one fhir knows, and back.
	for rt := range tb.resources {
		if !fhir.IsResourceType(rt) {
			t.Errorf("%s is not an R4 resource type for fhir", rt)
		}
	}
}
