package deid

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestSafeHarborAcrossTypes plants each Safe Harbor identifier in the
// element of another resource type that carries it, and checks the output
// element by element: what must go is absent (and its value nowhere in the
// output), what is kept has the generalized form.
func TestSafeHarborAcrossTypes(t *testing.T) {
	d := must(t, Options{ProjectKey: []byte("project-key-0123456789"), Now: now})
	cases := []struct {
		name     string
		in       string
		planted  []string          // values that must be nowhere in the output
		want     map[string]string // top-level element -> exact JSON
		absentEl []string          // top-level elements that must be gone
	}{
		{"(A,D,E,F,K) Practitioner names, phone, fax, e-mail, licence",
			`{"resourceType":"Practitioner","id":"pr1","name":[{"family":"Okonkwo","given":["Adaeze"],"prefix":["Dr."]}],
			"telecom":[{"system":"phone","value":"617-555-0101"},{"system":"fax","value":"617-555-0102"},{"system":"email","value":"ada@hosp.example"}],
			"qualification":[{"identifier":[{"value":"LIC-99812"}],"code":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0360","code":"MD"}],"text":"Doctor of Medicine, Lagos"}}],
			"gender":"female","address":[{"line":["4 Elm Court"],"city":"Quincy","postalCode":"05901","state":"VT"}]}`,
			[]string{"Okonkwo", "Adaeze", "617-555", "ada@hosp", "LIC-99812", "Lagos", "Elm Court", "Quincy", "05901"},
			map[string]string{"gender": `"female"`, "address": `[{"postalCode":"000","state":"VT"}]`,
				"qualification": `[{"code":{"coding":[{"code":"MD","system":"http://terminology.hl7.org/CodeSystem/v2-0360"}]}}]`},
			[]string{"name", "telecom"}},
		{"(C) dates of an encounter to the year; (R) free text",
			`{"resourceType":"Encounter","id":"e1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"},
			"period":{"start":"2019-06-03T08:00:00+02:00","end":"2019-06-04T09:30:00+02:00"},"subject":{"reference":"Patient/p1","display":"Adaeze Okonkwo"},
			"reasonCode":[{"text":"fell off the roof at 12 Elm Court"}],"text":{"status":"generated","div":"<div>Adaeze seen</div>"}}`,
			[]string{"2019-06", "Okonkwo", "roof", "ambulatory", "Adaeze", "p1\""},
			map[string]string{"status": `"finished"`, "period": `{"end":"2019","start":"2019"}`,
				"subject": `{"reference":"Patient/` + d.Pseudonym("Patient", "p1") + `"}`,
				"class":   `{"code":"AMB","system":"http://terminology.hl7.org/CodeSystem/v3-ActCode"}`},
			[]string{"reasonCode", "text"}},
		{"ages over 89 to 90+",
			`{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p1"},"onsetAge":{"value":94,"unit":"years","system":"http://unitsofmeasure.org","code":"a"},
			"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003"}]},"note":[{"text":"lives with daughter Ngozi"}]}`,
			[]string{"94", "Ngozi"},
			map[string]string{"onsetAge": `{"code":"a","comparator":"\u003e=","system":"http://unitsofmeasure.org","unit":"a","value":90}`},
			[]string{"note"}},
		{"ages of 89 and less are kept",
			`{"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p1"},"onsetAge":{"value":1000,"unit":"months","system":"http://unitsofmeasure.org","code":"mo"}}`,
			nil,
			map[string]string{"onsetAge": `{"code":"mo","system":"http://unitsofmeasure.org","unit":"months","value":1000}`},
			nil},
		{"an age in years in an observation value",
			`{"resourceType":"Observation","id":"o1","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"30525-0"}]},"subject":{"reference":"Patient/p1"},
			"valueQuantity":{"value":97,"unit":"yr","system":"http://unitsofmeasure.org","code":"a"},"issued":"2020-02-02T10:00:00.123Z","effectiveDateTime":"2020-02-01"}`,
			[]string{"97", "2020-02"},
			map[string]string{"valueQuantity": `{"code":"a","comparator":"\u003e=","system":"http://unitsofmeasure.org","unit":"a","value":90}`,
				"issued": `"2020"`, "effectiveDateTime": `"2020"`},
			nil},
		{"(I,J) health plan and account numbers",
			`{"resourceType":"Coverage","id":"cov1","status":"active","subscriberId":"SUB-4471","identifier":[{"value":"PLAN-8812"}],
			"beneficiary":{"reference":"Patient/p1"},"payor":[{"reference":"Organization/payer1","display":"Blue Shield"}],"dependent":"02","relationship":{"coding":[{"code":"self"}]}}`,
			[]string{"SUB-4471", "PLAN-8812", "Blue Shield", "payer1"},
			map[string]string{"status": `"active"`, "payor": `[{"reference":"Organization/` + d.Pseudonym("Organization", "payer1") + `"}]`},
			[]string{"subscriberId", "identifier", "dependent"}},
		{"(L,M) device identifiers and serial numbers",
			`{"resourceType":"Device","id":"dev1","udiCarrier":[{"deviceIdentifier":"00844588003288","carrierHRF":"(01)00844588003288(17)141120"}],
			"serialNumber":"SN-55-1289","lotNumber":"LOT-7-Q","manufactureDate":"2014-11-20","patient":{"reference":"Patient/p1"},
			"type":{"coding":[{"system":"http://snomed.info/sct","code":"72506001"}]}}`,
			[]string{"00844588003288", "SN-55-1289", "LOT-7-Q", "2014-11"},
			map[string]string{"manufactureDate": `"2014"`},
			[]string{"udiCarrier", "serialNumber", "lotNumber"}},
		{"(N,O) URLs and IP addresses",
			`{"resourceType":"AuditEvent","id":"ae1","type":{"system":"http://dicom.nema.org/resources/ontology/DCM","code":"110110"},"recorded":"2021-05-05T05:05:05Z",
			"agent":[{"requestor":true,"who":{"reference":"Patient/p1"},"network":{"address":"192.168.17.42","type":"2"},"policy":["https://consent.example/p1"]}],
			"source":{"observer":{"reference":"Device/dev1"},"site":"ward-node-7"}}`,
			[]string{"192.168.17.42", "consent.example", "ward-node-7", "2021-05"},
			map[string]string{"recorded": `"2021"`},
			nil},
		{"(B) a location's coordinates and street go, its state stays",
			`{"resourceType":"Location","id":"loc1","status":"active","name":"Harbour Clinic","position":{"latitude":42.3601,"longitude":-71.0589},
			"address":{"line":["1 Quay St"],"city":"Boston","state":"MA","postalCode":"02110"}}`,
			[]string{"42.3601", "71.0589", "Harbour", "Quay", "Boston", "02110"},
			map[string]string{"status": `"active"`, "address": `{"postalCode":"021","state":"MA"}`},
			[]string{"position", "name"}},
		{"(P,Q) photos, scans and biometrics",
			`{"resourceType":"Media","id":"m1","status":"completed","subject":{"reference":"Patient/p1"},
			"content":{"contentType":"image/jpeg","data":"RkFDRVBIT1RP","url":"https://pacs.example/face.jpg","title":"face of Adaeze"},
			"bodySite":{"coding":[{"system":"http://snomed.info/sct","code":"89545001"}]}}`,
			[]string{"RkFDRVBIT1RP", "pacs.example", "Adaeze"},
			map[string]string{"status": `"completed"`},
			[]string{"content"}},
		{"(R) extensions keep codes, lose strings and addresses below the state",
			`{"resourceType":"Patient","id":"p9","birthDate":"1990-01-02",
			"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName","valueString":"Eze"},
			{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueAddress":{"city":"Enugu","state":"EN","country":"NG"}},
			{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"}]}`,
			[]string{"\"Eze\"", "Enugu", "1990-01"},
			map[string]string{"birthDate": `"1990"`, "extension": `[{"url":"http://hl7.org/fhir/StructureDefinition/patient-birthPlace","valueAddress":{"country":"NG","state":"EN"}},{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex","valueCode":"F"}]`},
			nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in map[string]any
			if err := json.Unmarshal([]byte(c.in), &in); err != nil {
				t.Fatal(err)
			}
			out, err := d.Resource(in, "p1")
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := json.Marshal(out)
			for _, p := range c.planted {
				if strings.Contains(string(raw), p) {
					t.Errorf("planted %q in output %s", p, raw)
				}
			}
			for k, v := range c.want {
				b, _ := json.Marshal(out[k])
				if string(b) != v {
					t.Errorf("%s = %s, want %s", k, b, v)
				}
			}
			for _, k := range c.absentEl {
				if _, ok := out[k]; ok {
					t.Errorf("%s kept", k)
				}
			}
			checkSafeHarbor(t, out["resourceType"].(string), "", out)
		})
	}
}
