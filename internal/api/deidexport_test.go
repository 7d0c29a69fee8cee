package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
)

// deidSeed is two patients, each with two Observations and a dose; only
// the first gives a research consent (through the clinic API, as a
// front-end would). It returns the ids and the identifying values planted.
func deidSeed(t *testing.T, w *apptest.Ward) (consenting, other string, planted []string) {
	t.Helper()
	planted = []string{"Quillonbright", "Ysolde", "MRN-448812", "617-555-0177", "ysolde@example.org", "88 Harbour Row", "Marbleton",
		"03601", "1962-07-14", "2021-03-04", "2021-03-11", "LOT-XK-42", "felt faint in the car park", "Dr Penhallow"}
	mk := func(family string) string {
		return w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+family+`","given":["Ysolde"]}],
			"identifier":[{"system":"https://wardhealth.org/fhir/sid/mrn","value":"MRN-448812"}],
			"telecom":[{"system":"phone","value":"617-555-0177"},{"system":"email","value":"ysolde@example.org"}],
			"address":[{"line":["88 Harbour Row"],"city":"Marbleton","state":"NH","postalCode":"03601"}],
			"gender":"female","birthDate":"1962-07-14","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Ysolde Quillonbright</div>"}}`)
	}
	consenting, other = mk("Quillonbright"), mk("Quillonbright")
	for _, p := range []string{consenting, other} {
		for _, d := range []string{"2021-03-04T09:00:00Z", "2021-03-11T09:00:00Z"} {
			w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","subject":{"reference":"Patient/`+p+`"},
				"code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}],"text":"pulse of Ysolde"},"effectiveDateTime":"`+d+`",
				"valueQuantity":{"value":72,"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"},"note":[{"text":"felt faint in the car park"}]}`)
		}
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Immunization","status":"completed","patient":{"reference":"Patient/`+p+`"},
			"vaccineCode":{"coding":[{"system":"http://hl7.org/fhir/sid/cvx","code":"208"}]},"occurrenceDateTime":"2021-03-04","lotNumber":"LOT-XK-42",
			"performer":[{"actor":{"display":"Dr Penhallow"}}]}`)
	}
	body, _ := json.Marshal(map[string]any{"patient_id": consenting, "type": "research", "legal_basis": "hipaa-authorization"})
	if r := w.Do(t, "POST", "/consents", w.Tokens[authz.RoleAdmin], body, "Content-Type: application/json"); r.Status != 201 {
		t.Fatalf("research consent: %d %s", r.Status, r.Body)
	}
	return consenting, other, append(planted, consenting, other)
}

// deidExport runs a de-identified export as the admin with purpose of use
// HRESCH and returns its lines by type.
func deidExport(t *testing.T, w *apptest.Ward, query string) map[string][]string {
	t.Helper()
	r := w.Do(t, "GET", "/fhir/$export?"+query, w.Tokens[authz.RoleAdmin], nil, "Prefer: respond-async", "X-Purpose-Of-Use: HRESCH")
	if r.Status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", query, r.Status, r.Body)
	}
	m := awaitManifest(t, w, authz.RoleAdmin, strings.TrimPrefix(r.Header.Get("Content-Location"), w.Server.URL))
	if !strings.Contains(m.Request, "_deidentify=") {
		t.Errorf("manifest request does not say it is de-identified: %s", m.Request)
	}
	return download(t, w, authz.RoleAdmin, m)
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

// TestDeidentifiedExport: $export?_deidentify needs purpose HRESCH, holds
// only the consenting patient's record, de-identified (pseudonymous ids
// and references, dates to the year, no planted identifier), the
// pseudonyms stable within a project and different across projects,
// dates shifted per patient keeping intervals on request, and each
// downloaded file a ledger disclosure naming the method, the project and
// the patient.
func TestDeidentifiedExport(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		consenting, other, planted := deidSeed(t, w)
		const q = "_type=Patient,Observation,Immunization&_deidentify=safe-harbor&_deidentifyProject=flu-study"

		// Refusals: no research purpose (audited), bad parameters.
		if r := w.Do(t, "GET", "/fhir/$export?"+q, w.Tokens[authz.RoleAdmin], nil, "Prefer: respond-async"); r.Status != 403 ||
			!strings.Contains(string(r.Body), "HRESCH") {
			t.Errorf("without purpose HRESCH: %d %s", r.Status, r.Body)
		}
		for _, bad := range []string{"_deidentify=k-anonymity&_deidentifyProject=x", "_deidentify=safe-harbor", "_deidentifyProject=x",
			"_deidentify=safe-harbor&_deidentifyProject=Has%20Spaces", "_deidentify=safe-harbor&_deidentify=safe-harbor&_deidentifyProject=x"} {
			r := w.Do(t, "GET", "/fhir/$export?"+bad, w.Tokens[authz.RoleAdmin], nil, "Prefer: respond-async", "X-Purpose-Of-Use: HRESCH")
			if r.Status != 400 || !strings.Contains(string(r.Body), "_deidentify") {
				t.Errorf("%s: %d %s", bad, r.Status, r.Body)
			}
		}
		refused := slices.ContainsFunc(w.Ledger(t), func(rec *audit.Record) bool {
			return rec.Action == "export-kickoff" && strings.HasPrefix(rec.Detail, "denied:deidentify-needs-research")
		})
		if !refused {
			t.Error("the refusal is not in the ledger")
		}

		lines := deidExport(t, w, q)
		if len(lines["Patient"]) != 1 || len(lines["Observation"]) != 2 || len(lines["Immunization"]) != 1 {
			t.Fatalf("only the consenting patient's 1+2+1 resources, got %d %d %d", len(lines["Patient"]), len(lines["Observation"]), len(lines["Immunization"]))
		}
		all := strings.Join(slices.Concat(lines["Patient"], lines["Observation"], lines["Immunization"]), "\n")
		for _, p := range planted {
			if strings.Contains(all, p) {
				t.Errorf("planted %q in the de-identified export", p)
			}
		}
		var pat, obs map[string]any
		json.Unmarshal([]byte(lines["Patient"][0]), &pat)
		json.Unmarshal([]byte(lines["Observation"][0]), &obs)
		pid, _ := pat["id"].(string)
		if !hex32.MatchString(pid) || pat["birthDate"] != "1962" || obs["effectiveDateTime"] != "2021" {
			t.Errorf("not de-identified: %s\n%s", lines["Patient"][0], lines["Observation"][0])
		}
		if !strings.Contains(lines["Patient"][0], `"postalCode":"000"`) {
			t.Errorf("sparse ZIP not 000: %s", lines["Patient"][0])
		}
		if ref := obs["subject"].(map[string]any)["reference"]; ref != "Patient/"+pid {
			t.Errorf("reference %v is not the patient's pseudonym %s", ref, pid)
		}

		// Stable within a project, different across projects.
		again := deidExport(t, w, q)
		if again["Patient"][0] != lines["Patient"][0] {
			t.Error("pseudonyms differ between two exports of one project")
		}
		otherProject := deidExport(t, w, strings.Replace(q, "flu-study", "heart-study", 1))
		if strings.Contains(otherProject["Patient"][0], pid) {
			t.Error("the same pseudonym in another project")
		}

		// Date shifting keeps the interval between the two observations.
		shifted := deidExport(t, w, "_type=Observation,Patient&_deidentify=safe-harbor%2Bdate-shift&_deidentifyProject=flu-study")
		var ts []time.Time
		for _, l := range shifted["Observation"] {
			var o struct{ EffectiveDateTime string }
			json.Unmarshal([]byte(l), &o)
			tm, err := time.Parse(time.RFC3339, o.EffectiveDateTime)
			if err != nil {
				t.Fatalf("shifted date: %q", o.EffectiveDateTime)
			}
			ts = append(ts, tm)
		}
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		if len(ts) != 2 || ts[1].Sub(ts[0]) != 7*24*time.Hour || ts[0].Equal(time.Date(2021, 3, 4, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("shifted dates %v: want the 7-day interval, moved", ts)
		}
		// A shift of exactly ±7 days lands one observation on the other's
		// real date (the project key is random, so 2 runs in 730): that
		// date then reveals nothing and is not a leak.
		var shift time.Duration
		if len(ts) == 2 {
			shift = ts[0].Sub(time.Date(2021, 3, 4, 9, 0, 0, 0, time.UTC))
		}
		for _, p := range planted {
			if (shift == 7*24*time.Hour || shift == -7*24*time.Hour) && (p == "2021-03-04" || p == "2021-03-11") {
				continue
			}
			if strings.Contains(strings.Join(slices.Concat(shifted["Patient"], shifted["Observation"]), "\n"), p) {
				t.Errorf("planted %q in the date-shifted export", p)
			}
		}

		// Each download is a disclosure naming method, project, patient.
		var discl []*audit.Record
		for _, rec := range w.Ledger(t) {
			if rec.Action == "deidentified-disclosure" && strings.Contains(rec.Detail, ";job:") {
				discl = append(discl, rec)
			}
		}
		if len(discl) < 3*3+2 {
			t.Fatalf("%d de-identified file disclosures, want one per file", len(discl))
		}
		for _, rec := range discl {
			if !strings.HasPrefix(rec.Detail, "method:safe-harbor") || !strings.Contains(rec.Detail, "project:") || rec.Purpose != authz.PurposeResearch {
				t.Errorf("disclosure detail %q purpose %q", rec.Detail, rec.Purpose)
			}
			if !slices.Contains(rec.Patients, consenting) || slices.Contains(rec.Patients, other) {
				t.Errorf("disclosure patients %v: want %s only", rec.Patients, consenting)
			}
		}
		if !slices.ContainsFunc(discl, func(rec *audit.Record) bool {
			return strings.HasPrefix(rec.Detail, "method:safe-harbor+date-shift;project:flu-study")
		}) {
			t.Error("no disclosure names the date-shift method")
		}
	})
}
