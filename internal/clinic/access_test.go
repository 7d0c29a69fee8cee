package clinic_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/clinic"
)

// TestFacadeRefusesWhatFHIRRefuses sends the same request of the same
// subject on the same resource through the facade and through the FHIR
// API, for every role, and requires the same outcome: the facade adds no
// access and takes none away.
func TestFacadeRefusesWhatFHIRRefuses(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			P, A := w.Tokens[authz.RolePhysician], w.Tokens[authz.RoleAdmin]
			mk := func(path, token string, v any) string {
				body, _ := json.Marshal(v)
				r := w.Do(t, "POST", path, token, body, "Content-Type: application/json")
				if r.Status != 201 {
					t.Fatalf("%s: %d %s", path, r.Status, r.Body)
				}
				id, _ := r.JSON(t)["id"].(string)
				return id
			}
			pat := mk("/patients", P, clinic.Patient{FirstName: "Ada", LastName: "Lovelace", DateOfBirth: "1980-12-10", MRN: "MRN-ACC-1"})
			imm := mk("/immunizations", P, clinic.Immunization{PatientID: pat, VaccineCode: "03", OccurredOn: "2020-01-01"})
			mk("/consents", A, clinic.Consent{PatientID: pat, Type: "marketing", LegalBasis: "gdpr-consent"})
			ct, form := multipartForm(t, map[string]string{"patient_id": pat}, "application/pdf", pdf)
			r := w.Do(t, "POST", "/documents", P, form, "Content-Type: "+ct)
			if r.Status != 201 {
				t.Fatalf("upload: %d %s", r.Status, r.Body)
			}
			doc, _ := r.JSON(t)["id"].(string)
			// Each role's update is a real change of the name (a write
			// that changes nothing would be a mere relabelling).
			patientJSON, _ := json.Marshal(clinic.Patient{FirstName: "Ada", LastName: "Byron-{role}", DateOfBirth: "1980-12-10"})
			fhirPatient := `{"resourceType":"Patient","id":"` + pat + `","active":true,"name":[{"family":"Byron-{role}-fhir","given":["Ada"]}],"birthDate":"1980-12-10"}`
			consentJSON, _ := json.Marshal(clinic.Consent{PatientID: pat, Type: "research", LegalBasis: "other"})
			fhirConsent := `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"research"}]},` +
				`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/` + pat + `"}}`
			doseJSON, _ := json.Marshal(clinic.Immunization{PatientID: pat, VaccineCode: "08", OccurredOn: "2021-01-01"})
			fhirDose := `{"resourceType":"Immunization","status":"completed","patient":{"reference":"Patient/` + pat + `"},` +
				`"vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"08"}]},"occurrenceDateTime":"2021-01-01"}`
			doseUpdateJSON, _ := json.Marshal(clinic.Immunization{PatientID: pat, VaccineCode: "03", OccurredOn: "2020-01-01", LotNumber: "LOT-{role}"})
			fhirDoseUpdate := `{"resourceType":"Immunization","id":"` + imm + `","status":"completed","patient":{"reference":"Patient/` + pat + `"},` +
				`"vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"03"}]},"occurrenceDateTime":"2020-01-01","lotNumber":"LOT-{role}-fhir"}`
			cases := []struct {
				name                 string
				method, facade, fhir string
				fhirMethod           string // when the FHIR interaction's differs
				facadeBody, fhirBody string
				headers              []string
			}{
				{name: "read patient", method: "GET", facade: "/patients/" + pat, fhir: "/fhir/Patient/" + pat},
				{name: "read unknown patient", method: "GET", facade: "/patients/no-such-one", fhir: "/fhir/Patient/no-such-one"},
				{name: "consent status", method: "GET", facade: "/patients/" + pat + "/consent-status", fhir: "/fhir/Patient/" + pat},
				{name: "read dose", method: "GET", facade: "/immunizations/" + imm, fhir: "/fhir/Immunization/" + imm},
				{name: "read document", method: "GET", facade: "/documents/" + doc, fhir: "/fhir/DocumentReference/" + doc},
				{name: "update patient", method: "PUT", facade: "/patients/" + pat, fhir: "/fhir/Patient/" + pat, facadeBody: string(patientJSON), fhirBody: fhirPatient},
				{name: "grant consent", method: "POST", facade: "/consents", fhir: "/fhir/Consent", facadeBody: string(consentJSON), fhirBody: fhirConsent},
				{name: "read consent list", method: "GET", facade: "/consents?patient_id=" + pat, fhir: "/fhir/Consent?patient=Patient/" + pat},
				{name: "break glass read", method: "GET", facade: "/patients/" + pat, fhir: "/fhir/Patient/" + pat, headers: []string{"X-Break-Glass: unconscious patient in ER"}},
				{name: "research read", method: "GET", facade: "/patients/" + pat, fhir: "/fhir/Patient/" + pat, headers: []string{"X-Purpose-Of-Use: HRESCH"}},
				{name: "record dose", method: "POST", facade: "/immunizations", fhir: "/fhir/Immunization", facadeBody: string(doseJSON), fhirBody: fhirDose},
				{name: "update dose", method: "PUT", facade: "/immunizations/" + imm, fhir: "/fhir/Immunization/" + imm, facadeBody: string(doseUpdateJSON), fhirBody: fhirDoseUpdate},
				{name: "research extract", method: "POST", facade: "/anonymize", fhir: "/fhir/Patient/$export?_deidentify=safe-harbor&_deidentifyProject=p1", fhirMethod: "GET",
					facadeBody: `{"project":"p1"}`, headers: []string{"X-Purpose-Of-Use: HRESCH", "Prefer: respond-async"}},
				{name: "extract without research purpose", method: "POST", facade: "/anonymize", fhir: "/fhir/Patient/$export?_deidentify=safe-harbor&_deidentifyProject=p1", fhirMethod: "GET",
					facadeBody: `{"project":"p1"}`, headers: []string{"Prefer: respond-async"}},
			}
			for _, c := range cases {
				for _, role := range authz.Roles {
					tok := w.Tokens[role]
					send := func(method, path, body, ct string) int {
						var b []byte
						h := append([]string{}, c.headers...)
						if body != "" {
							b = []byte(strings.ReplaceAll(body, "{role}", string(role)))
							h = append(h, "Content-Type: "+ct)
						}
						return w.Do(t, method, path, tok, b, h...).Status
					}
					fm := c.fhirMethod
					if fm == "" {
						fm = c.method
					}
					fs := send(c.method, c.facade, c.facadeBody, "application/json")
					hs := send(fm, c.fhir, c.fhirBody, "application/fhir+json")
					// A FHIR search answers 200 with what the caller may see;
					// compare the class of outcome (allowed, refused, absent).
					if class(fs) != class(hs) {
						t.Errorf("%s as %s: facade %d, FHIR %d", c.name, role, fs, hs)
					}
				}
			}
			// Without a token, both refuse alike.
			if f, h := w.Do(t, "GET", "/patients/"+pat, "", nil).Status, w.Do(t, "GET", "/fhir/Patient/"+pat, "", nil).Status; f != 401 || h != 401 {
				t.Errorf("no token: facade %d, FHIR %d", f, h)
			}
		})
	}
}

func class(status int) string {
	switch {
	case status < 300:
		return "allowed"
	case status == 401 || status == 403:
		return "refused"
	case status == 404 || status == 410:
		return "absent"
	}
	return "status " + string(rune('0'+status/100)) + "xx"
}
