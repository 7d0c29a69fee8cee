package clinic_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/clinic"
)

// The identifiers planted in the scenario's patient: none may appear in a
// de-identified extract, a log line or an error.
var planted = []string{"Quillfeather", "Oswin", "MRN-4711-XQ", "+1-617-555-0187", "oswin.q@example.org", "1958-02-23",
	"77 Larkspur", "Cambridgeport", "02139", "LOT-ZX-991", "hives on left forearm"}

// pdf is a small document.
var pdf = []byte("%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")

type problemBody struct {
	Type, Title, Detail, Field, Instance string
	Status                               int
	Errors                               []struct{ Field, Detail string }
}

// TestClinicScenario runs the front-end's scenario on both databases
// through a real listener, every request and answer checked against the
// published OpenAPI document: register, two doses (one with a reaction),
// a PDF, a research consent granted then revoked, search, list,
// de-identify.
func TestClinicScenario(t *testing.T) {
	for _, b := range apptest.Backends {
		t.Run(string(b), func(t *testing.T) {
			w := apptest.Start(t, b)
			scenario(t, w)
		})
	}
}

func scenario(t *testing.T, w *apptest.Ward) {
	c := newContract(t, w)
	if r := c.do("GET", "/api/openapi.json", "", "", nil); r.Status != 200 {
		t.Fatalf("openapi.json: %d", r.Status)
	}
	P, A, N := w.Tokens[authz.RolePhysician], w.Tokens[authz.RoleAdmin], w.Tokens[authz.RoleNurse]

	// Register three patients (the physician gets a care relationship).
	var pat clinic.Patient
	r := c.json("POST", "/patients", P, clinic.Patient{FirstName: "Oswin", LastName: "Quillfeather", DateOfBirth: "1958-02-23", Sex: "male",
		MRN: "MRN-4711-XQ", Phone: "+1-617-555-0187", Email: "oswin.q@example.org",
		Address: &clinic.Address{Line1: "77 Larkspur Way", City: "Cambridgeport", State: "MA", PostalCode: "02139", Country: "US"}})
	if r.Status != 201 {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	r.json(t, &pat)
	if pat.ID == "" || pat.LastName != "Quillfeather" || pat.Address == nil || pat.Address.PostalCode != "02139" || pat.Active == nil || !*pat.Active {
		t.Fatalf("registered patient: %s", r.Body)
	}
	if loc := r.Header.Get("Location"); loc != "/patients/"+pat.ID {
		t.Errorf("Location %q", loc)
	}
	var others []string
	for _, n := range [][2]string{{"Abigail", "Zimmer"}, {"Bruno", "Abernathy"}} {
		var p clinic.Patient
		r := c.json("POST", "/patients", P, clinic.Patient{FirstName: n[0], LastName: n[1], DateOfBirth: "1990-01-01"})
		if r.Status != 201 {
			t.Fatalf("register: %d %s", r.Status, r.Body)
		}
		r.json(t, &p)
		others = append(others, p.ID)
	}

	// Two doses, the second with a reaction.
	var dose1, dose2 clinic.Immunization
	r = c.json("POST", "/immunizations", P, clinic.Immunization{PatientID: pat.ID, VaccineCode: "208", VaccineName: "COVID-19 mRNA", OccurredOn: "2021-03-04",
		LotNumber: "LOT-ZX-991", Site: "LA", Route: "IM", DoseML: 0.3, Performer: "pract-physician"})
	if r.Status != 201 {
		t.Fatalf("dose 1: %d %s", r.Status, r.Body)
	}
	r.json(t, &dose1)
	r = c.json("POST", "/immunizations", P, clinic.Immunization{PatientID: pat.ID, VaccineCode: "208", OccurredOn: "2021-03-25", LotNumber: "LOT-ZX-991",
		Site: "RA", Route: "IM", Reactions: []clinic.Reaction{{Date: "2021-03-26", Description: "hives on left forearm", Reported: true}}})
	if r.Status != 201 {
		t.Fatalf("dose 2: %d %s", r.Status, r.Body)
	}
	r.json(t, &dose2)
	if len(dose2.Reactions) != 1 || dose2.Reactions[0].Description != "hives on left forearm" || dose2.Site != "RA" || dose2.Status != "completed" {
		t.Errorf("dose 2: %s", r.Body)
	}
	r = c.json("GET", "/immunizations/"+dose1.ID, P, nil)
	var got clinic.Immunization
	r.json(t, &got)
	if r.Status != 200 || got.LotNumber != "LOT-ZX-991" || got.DoseML != 0.3 || got.Performer != "pract-physician" || got.VaccineName != "COVID-19 mRNA" {
		t.Errorf("read dose 1: %d %s", r.Status, r.Body)
	}
	got.LotNumber = "LOT-ZX-992"
	ver := got.Version
	got.ID, got.Status, got.Version, got.UpdatedAt = "", "", "", ""
	r = c.json("PUT", "/immunizations/"+dose1.ID, P, got, `If-Match: W/"`+ver+`"`)
	if r.Status != 200 || !strings.Contains(string(r.Body), "LOT-ZX-992") {
		t.Errorf("update dose 1: %d %s", r.Status, r.Body)
	}
	r = c.json("PUT", "/immunizations/"+dose1.ID, P, got, `If-Match: W/"1"`)
	if r.Status != 412 {
		t.Errorf("stale If-Match: %d %s", r.Status, r.Body)
	}
	// A third dose recorded by mistake, then retracted.
	var dose3 clinic.Immunization
	c.json("POST", "/immunizations", P, clinic.Immunization{PatientID: pat.ID, VaccineCode: "141", OccurredOn: "2022-10-01"}).json(t, &dose3)
	r = c.json("DELETE", "/immunizations/"+dose3.ID+"?reason=wrong-patient", P, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"status":"entered-in-error"`) || !strings.Contains(string(r.Body), `"error_reason":"wrong-patient"`) {
		t.Errorf("retract: %d %s", r.Status, r.Body)
	}
	var list clinic.ImmunizationList
	r = c.json("GET", "/immunizations?patient_id="+pat.ID+"&vaccine_code=208&from=2021-03-01&to=2021-03-31", P, nil)
	r.json(t, &list)
	if r.Status != 200 || len(list.Items) != 2 {
		t.Errorf("list doses: %d %s", r.Status, r.Body)
	}
	// Paged one by one: every dose once.
	seen := map[string]bool{}
	for cursor, n := "", 0; ; n++ {
		q := "/immunizations?patient_id=" + pat.ID + "&limit=1"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var l clinic.ImmunizationList
		c.json("GET", q, P, nil).json(t, &l)
		for _, it := range l.Items {
			if seen[it.ID] {
				t.Errorf("dose %s on two pages", it.ID)
			}
			seen[it.ID] = true
		}
		if cursor = l.NextCursor; cursor == "" || n > 5 {
			break
		}
	}
	if len(seen) != 3 {
		t.Errorf("paged doses: %d, want 3", len(seen))
	}

	// A PDF.
	ct, form := multipartForm(t, map[string]string{"patient_id": pat.ID, "title": "Signed intake", "category": "consent-form"}, "application/pdf", pdf)
	r = c.do("POST", "/documents", P, ct, form)
	if r.Status != 201 {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}
	var doc clinic.Document
	r.json(t, &doc)
	if doc.Size != len(pdf) || doc.ContentType != "application/pdf" || doc.PatientID != pat.ID || doc.SHA1 == "" {
		t.Errorf("uploaded: %s", r.Body)
	}
	r = c.json("GET", "/documents/"+doc.ID, P, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"title":"Signed intake"`) {
		t.Errorf("metadata: %d %s", r.Status, r.Body)
	}
	r = c.do("GET", "/documents/"+doc.ID, P, "", nil, "Accept: application/pdf")
	if r.Status != 200 || !bytes.Equal(r.Body, pdf) || r.Header.Get("Content-Type") != "application/pdf" {
		t.Errorf("content by Accept: %d %q", r.Status, r.Header.Get("Content-Type"))
	}
	r = c.do("GET", doc.ContentURL, P, "", nil)
	if r.Status != 200 || !bytes.Equal(r.Body, pdf) {
		t.Errorf("content by link: %d", r.Status)
	}
	var docs clinic.DocumentList
	c.json("GET", "/documents?patient_id="+pat.ID, P, nil).json(t, &docs)
	if len(docs.Items) != 1 || docs.Items[0].ID != doc.ID {
		t.Errorf("documents: %+v", docs)
	}

	// Research: nothing before consent.
	extract := func(token string) (int, string) {
		r := c.json("POST", "/anonymize", token, clinic.AnonymizeRequest{Project: "flu-study"}, "X-Purpose-Of-Use: HRESCH")
		return r.Status, string(r.Body)
	}
	if st, body := extract(A); st != 200 || strings.TrimSpace(body) != "" {
		t.Errorf("extract without consent: %d %q", st, body)
	}
	// Grant a research consent (admins manage consents, as in FHIR).
	var consent clinic.Consent
	r = c.json("POST", "/consents", A, clinic.Consent{PatientID: pat.ID, Type: "research", LegalBasis: "hipaa-authorization", Witness: "Nurse Ratchet",
		SignedForm: &clinic.Attachment{ContentType: "application/pdf", Data: "JVBERi0xLjQK", Title: "research form"}})
	if r.Status != 201 {
		t.Fatalf("grant: %d %s", r.Status, r.Body)
	}
	r.json(t, &consent)
	if consent.Status != "active" || consent.Witness != "Nurse Ratchet" || consent.SignedForm == nil || consent.SignedForm.Size != 9 || consent.Start == "" {
		t.Errorf("granted: %s", r.Body)
	}
	if r := c.json("POST", "/consents", P, clinic.Consent{PatientID: pat.ID, Type: "research", LegalBasis: "gdpr-consent"}); r.Status != 403 {
		t.Errorf("physician granting a consent: %d, want 403 as in FHIR", r.Status)
	}
	c.json("POST", "/consents", A, clinic.Consent{PatientID: pat.ID, Type: "treatment", LegalBasis: "other", End: "2099-12-31"})
	var status clinic.ConsentStatus
	c.json("GET", "/patients/"+pat.ID+"/consent-status", P, nil).json(t, &status)
	if !status.Uses["research"].Permitted || status.Uses["research"].Until != "" || !status.Uses["treatment"].Permitted || status.Uses["treatment"].Until != "2099-12-31" || status.Uses["marketing"].Permitted {
		t.Errorf("consent status: %+v", status)
	}
	var consents clinic.ConsentList
	c.json("GET", "/consents?patient_id="+pat.ID, A, nil).json(t, &consents)
	if len(consents.Items) != 2 {
		t.Errorf("consents: %+v", consents)
	}

	// De-identify: the consenting patient only, no identifier.
	if st, _ := extract(P); st != 200 {
		t.Errorf("physician with HRESCH: %d", st)
	}
	if r := c.json("POST", "/anonymize", A, clinic.AnonymizeRequest{Project: "flu-study"}); r.Status != 403 {
		t.Errorf("extract without purpose HRESCH: %d", r.Status)
	}
	st, body := extract(A)
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if st != 200 || len(lines) != 4 { // the patient and three doses
		t.Fatalf("extract: %d %d lines\n%s", st, len(lines), body)
	}
	var first map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	if first["resourceType"] != "Patient" || first["birthDate"] != "1958" || first["id"] == pat.ID {
		t.Errorf("de-identified patient: %s", lines[0])
	}
	if !strings.Contains(lines[0], `"postalCode":"021"`) {
		t.Errorf("ZIP not generalised: %s", lines[0])
	}
	for _, id := range append(append([]string{}, planted...), pat.ID, dose1.ID, dose2.ID, doc.ID) {
		if strings.Contains(body, id) {
			t.Errorf("extract holds planted identifier %q", id)
		}
	}
	for _, o := range others {
		if strings.Contains(body, `"Patient"`) && strings.Count(body, `"resourceType":"Patient"`) != 1 {
			t.Errorf("a patient without research consent (%s) is in the extract", o)
		}
	}
	// Stable within the project, unlinkable across projects.
	_, again := extract(A)
	if strings.Split(again, "\n")[0] != lines[0] {
		t.Error("pseudonyms differ between two extracts of one project")
	}
	r = c.json("POST", "/anonymize", A, clinic.AnonymizeRequest{Project: "other-study", Format: "bundle", DateShift: true}, "X-Purpose-Of-Use: HRESCH")
	var bundle struct {
		ResourceType string
		Entry        []struct{ Resource map[string]any }
	}
	r.json(t, &bundle)
	if bundle.ResourceType != "Bundle" || len(bundle.Entry) != 4 || bundle.Entry[0].Resource["id"] == first["id"] {
		t.Errorf("bundle extract of another project: %s", r.Body)
	}
	// The ledger names the method and the patient.
	found := false
	for _, rec := range w.Ledger(t) {
		if rec.Action == "deidentified-disclosure" && strings.Contains(rec.Detail, "method:safe-harbor") && slices.Contains(rec.Entities, "Patient/"+pat.ID) {
			found = true
			if slices.Contains(rec.Entities, "Patient/"+others[0]) {
				t.Error("the disclosure names a patient without research consent")
			}
		}
	}
	if !found {
		t.Error("no ledger disclosure naming the method and the patient")
	}

	// Revoke: the next extract leaves the patient out at once.
	r = c.json("POST", "/consents/"+consent.ID+"/revoke", A, clinic.Revocation{Reason: "patient withdrew by phone"})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"status":"inactive"`) || !strings.Contains(string(r.Body), `"revoked_at"`) {
		t.Errorf("revoke: %d %s", r.Status, r.Body)
	}
	if r := c.json("POST", "/consents/"+consent.ID+"/revoke", A, clinic.Revocation{Reason: "again"}); r.Status != 409 {
		t.Errorf("revoking twice: %d", r.Status)
	}
	if st, body := extract(A); st != 200 || strings.TrimSpace(body) != "" {
		t.Errorf("extract after revocation: %d %q", st, body)
	}
	c.json("GET", "/patients/"+pat.ID+"/consent-status", P, nil).json(t, &status)
	if status.Uses["research"].Permitted {
		t.Errorf("research still permitted after revocation: %+v", status)
	}

	// Search over the blind indexes.
	for _, q := range []string{"name=quill", "last_name=Quillf", "mrn=MRN-4711-XQ", "date_of_birth=1958-02-23", "phone=" + url.QueryEscape("+1-617-555-0187"), "name=Oswin&date_of_birth=1958-02-23"} {
		var l clinic.PatientList
		r := c.json("GET", "/patients/search?"+q, P, nil)
		r.json(t, &l)
		if r.Status != 200 || len(l.Items) != 1 || l.Items[0].ID != pat.ID {
			t.Errorf("search %s: %d %s", q, r.Status, r.Body)
		}
	}
	for _, q := range []clinic.PatientQuery{{MRN: "MRN-4711-XQ"}, {Name: "oswi", DateOfBirth: "1958-02-23"}, {Phone: "+1-617-555-0187", Limit: 5}} {
		var l clinic.PatientList
		r := c.json("POST", "/patients/search", P, q)
		r.json(t, &l)
		if r.Status != 200 || len(l.Items) != 1 || l.Items[0].ID != pat.ID {
			t.Errorf("search by body %+v: %d %s", q, r.Status, r.Body)
		}
	}
	if r := c.json("GET", "/patients/search?name=q", P, nil); r.Status != 400 {
		t.Errorf("one-letter prefix: %d", r.Status)
	}

	// The list, sorted by last name, paged by sealed cursors.
	var names []string
	for cursor, n := "", 0; n < 10; n++ {
		q := "/patients?limit=1"
		if cursor != "" {
			q += "&cursor=" + url.QueryEscape(cursor)
		}
		var l clinic.PatientList
		r := c.json("GET", q, P, nil)
		r.json(t, &l)
		for _, p := range l.Items {
			names = append(names, p.LastName)
		}
		if strings.Contains(l.NextCursor, "Quill") || strings.Contains(l.NextCursor, "Zimmer") {
			t.Error("a cursor shows a name")
		}
		if cursor = l.NextCursor; cursor == "" {
			break
		}
	}
	if !slices.Equal(names, []string{"Abernathy", "Quillfeather", "Zimmer"}) {
		t.Errorf("sorted list: %v", names)
	}

	// Update, deactivate.
	pat.Phone = "+1-617-555-0000"
	if r := c.json("PUT", "/patients/"+pat.ID, P, pat); r.Status != 400 || !strings.Contains(string(r.Body), "read-only") {
		t.Errorf("read-only fields in a request: %d %s", r.Status, r.Body)
	}
	pid := pat.ID
	pat.ID, pat.Active, pat.Version, pat.UpdatedAt = "", nil, "", ""
	r = c.json("PUT", "/patients/"+pid, P, pat)
	pat.ID = pid
	if r.Status != 200 || !strings.Contains(string(r.Body), "555-0000") {
		t.Errorf("update: %d %s", r.Status, r.Body)
	}
	r = c.json("DELETE", "/patients/"+pat.ID, P, nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"active":false`) {
		t.Errorf("deactivate: %d %s", r.Status, r.Body)
	}
	var l clinic.PatientList
	c.json("GET", "/patients", P, nil).json(t, &l)
	if len(l.Items) != 2 {
		t.Errorf("active list after deactivation: %d", len(l.Items))
	}
	c.json("GET", "/patients?active=false", P, nil).json(t, &l)
	if len(l.Items) != 1 || l.Items[0].ID != pat.ID {
		t.Errorf("inactive list: %+v", l)
	}
	if r := c.json("GET", "/patients/"+pat.ID, P, nil); r.Status != 200 {
		t.Errorf("a deactivated patient is still readable: %d", r.Status)
	}
	if r := w.Do(t, "GET", "/fhir/Patient/"+pat.ID+"/_history", P, nil); r.Status != 200 || strings.Count(string(r.Body), `"fullUrl"`) < 3 {
		t.Errorf("history kept: %d", r.Status)
	}

	// Validation stores nothing.
	r = c.do("POST", "/fhir/validate", P, "application/fhir+json", []byte(`{"resourceType":"Patient","birthDate":"not-a-date","gender":"robot"}`))
	if r.Status != 200 || strings.Count(string(r.Body), `"severity":"error"`) < 2 {
		t.Errorf("validate: %d %s", r.Status, r.Body)
	}
	r = c.do("POST", "/fhir/validate", P, "application/fhir+json", []byte(`{"resourceType":"Patient","birthDate":"1970-01-01"}`))
	if r.Status != 200 || strings.Contains(string(r.Body), `"severity":"error"`) {
		t.Errorf("validate a valid Patient: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "POST", "/fhir/Patient/$validate", P, []byte(`{"resourceType":"Parameters","parameter":[{"name":"mode","valueCode":"create"},{"name":"resource","resource":{"resourceType":"Patient","gender":"robot"}}]}`)); r.Status != 200 || !strings.Contains(string(r.Body), `"severity":"error"`) {
		t.Errorf("$validate: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "POST", "/fhir/Patient/"+pat.ID+"/$validate?mode=delete", P, nil); r.Status != 200 || !strings.Contains(string(r.Body), "information") {
		t.Errorf("$validate delete: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "POST", "/fhir/Patient/"+pat.ID+"/$validate?mode=delete", N, nil); r.Status != 403 {
		t.Errorf("$validate delete by a nurse outside the care team: %d", r.Status)
	}

	// Errors: problem+json, the field at fault, no value echoed.
	r = c.json("POST", "/patients", P, map[string]any{"first_name": "Secretname", "date_of_birth": "23/02/1958", "email": "not-an-email-Secretmail"})
	var pb problemBody
	r.json(t, &pb)
	if r.Status != 400 || pb.Type != clinic.ProblemBase+"invalid-field" || pb.Field != "last_name" || len(pb.Errors) != 3 || r.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("invalid patient: %d %s", r.Status, r.Body)
	}
	if strings.Contains(string(r.Body), "Secret") || strings.Contains(string(r.Body), "23/02") {
		t.Errorf("an error echoes a value: %s", r.Body)
	}
	r = c.do("POST", "/patients", P, "application/json", []byte(`{"first_name":"A","last_name":"B","date_of_birth":"2000-01-01","shoe_size":44}`))
	r.json(t, &pb)
	if r.Status != 400 || pb.Field != "shoe_size" {
		t.Errorf("unknown field: %d %s", r.Status, r.Body)
	}
	r = c.json("GET", "/patients?cursor=AAAA", P, nil)
	r.json(t, &pb)
	if r.Status != 400 || pb.Type != clinic.ProblemBase+"invalid-cursor" {
		t.Errorf("forged cursor: %d %s", r.Status, r.Body)
	}
	r = c.json("GET", "/patients/"+pat.ID, "", nil)
	r.json(t, &pb)
	if r.Status != 401 || pb.Type != clinic.ProblemBase+"unauthorized" {
		t.Errorf("no token: %d %s", r.Status, r.Body)
	}
	r = c.json("GET", "/immunizations/no-such-dose", P, nil)
	r.json(t, &pb)
	if r.Status != 403 && r.Status != 404 {
		t.Errorf("unknown dose: %d %s", r.Status, r.Body)
	}
	if r := c.json("GET", "/ready", "", nil); r.Status != 200 {
		t.Errorf("ready: %d", r.Status)
	}

	// No PHI in the server's log.
	logs := logWithoutStamps(t, w.Log.String())
	for _, id := range planted {
		if strings.Contains(logs, id) {
			t.Errorf("the log holds %q", id)
		}
	}
	c.everyOperation()
}

// logWithoutStamps is the JSON log with each line's time and request id
// removed, once checked to be only a timestamp and a UUID: their random
// digits can spell a planted ZIP code ("02139" in ".102139851Z"), which
// is no disclosure.
func logWithoutStamps(t *testing.T, log string) string {
	t.Helper()
	var out strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			out.WriteString(line + "\n") // not JSON: grep it whole
			continue
		}
		if ts, ok := rec["time"].(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
				t.Fatalf("log time %q is not a timestamp", ts)
			}
			delete(rec, "time")
		}
		if id, ok := rec["request_id"].(string); ok {
			if !uuidRE.MatchString(id) {
				t.Fatalf("log request_id %q is not a UUID", id)
			}
			delete(rec, "request_id")
		}
		b, _ := json.Marshal(rec)
		out.Write(append(b, '\n'))
	}
	return out.String()
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
