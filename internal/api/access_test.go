package api_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/store"
)

// accessWorld is the fixture of TestAccessByRole, written by an admin:
//
//	gp      names the physician as generalPractitioner (and has a consent
//	        denying the physician her Conditions)
//	team    has an active CareTeam with the nurse
//	enc     had an Encounter with the physician ten days ago
//	oldEnc  had one two years ago (outside the 90-day window)
//	other   is nobody's patient
//	me      is the patient-user account's own record (apptest.Links)
type accessWorld struct {
	ids map[string]string
}

// Names in the fixture: none of them may ever appear in the ledger.
var accessNames = []string{"Gpson", "Teamster", "Encountra", "Oldham", "Otherby", "Myself"}

func patientNamed(family string, extra string) string {
	return `{"resourceType":"Patient","name":[{"family":"` + family + `"}],"gender":"other"` + extra + `}`
}

func obsFor(pid, extra string) string {
	return `{"resourceType":"Observation","status":"final",` +
		`"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],` +
		`"code":{"text":"pulse"},"subject":{"reference":"Patient/` + pid + `"}` + extra + `}`
}

func setupAccess(t *testing.T, w *apptest.Ward) accessWorld {
	t.Helper()
	ids := map[string]string{}
	mk := func(name, body string) { ids[name] = w.Create(t, authz.RoleAdmin, body) }
	put := func(path, body string) {
		if r := w.Do(t, "PUT", "/fhir/"+path, w.Tokens[authz.RoleAdmin], []byte(body)); r.Status != 201 && r.Status != 200 {
			t.Fatalf("put %s: %d %s", path, r.Status, r.Body)
		}
	}
	put("Practitioner/pract-physician", `{"resourceType":"Practitioner","id":"pract-physician","active":true}`)
	put("Practitioner/pract-nurse", `{"resourceType":"Practitioner","id":"pract-nurse","active":true}`)
	put("Patient/patient-user", strings.Replace(patientNamed("Myself", ""), `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"patient-user",`, 1))
	ids["me"] = "patient-user"
	mk("gp", patientNamed("Gpson", `,"generalPractitioner":[{"reference":"Practitioner/pract-physician"}]`))
	mk("team", patientNamed("Teamster", ""))
	mk("enc", patientNamed("Encountra", ""))
	mk("oldEnc", patientNamed("Oldham", ""))
	mk("other", patientNamed("Otherby", ""))
	mk("careTeam", `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/`+ids["team"]+`"},"participant":[{"member":{"reference":"Practitioner/pract-nurse"}}]}`)
	enc := func(pid string, ago time.Duration) string {
		start := time.Now().Add(-ago).UTC()
		return `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},` +
			`"subject":{"reference":"Patient/` + pid + `"},"participant":[{"individual":{"reference":"Practitioner/pract-physician"}}],` +
			`"period":{"start":"` + start.Format(time.RFC3339) + `","end":"` + start.Add(time.Hour).Format(time.RFC3339) + `"}}`
	}
	mk("encounter", enc(ids["enc"], 10*24*time.Hour))
	mk("oldEncounter", enc(ids["oldEnc"], 2*365*24*time.Hour))
	mk("obsGP", obsFor(ids["gp"], ""))
	// Writing a labelled resource needs the clearance too (the writer is
	// shown what it wrote).
	apptest.AddLinkedUser(t, w.App.Store, "default", "cleared-admin", authz.RoleAdmin, &store.User{Clearances: []string{"HIV"}})
	r := w.Do(t, "POST", "/fhir/Observation", w.Login(t, "cleared-admin", apptest.Password),
		[]byte(obsFor(ids["gp"], `,"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"HIV"}]}`)))
	if r.Status != 201 {
		t.Fatalf("labelled create: %d %s", r.Status, r.Body)
	}
	ids["obsGPHIV"] = r.JSON(t)["id"].(string)
	if r := w.Do(t, "POST", "/fhir/Observation", w.Tokens[authz.RoleAdmin],
		[]byte(obsFor(ids["gp"], `,"meta":{"security":[{"code":"HIV"}]}`))); r.Status != 403 {
		t.Fatalf("uncleared labelled create: %d %s", r.Status, r.Body)
	}
	mk("obsTeam", obsFor(ids["team"], ""))
	mk("obsEnc", obsFor(ids["enc"], ""))
	mk("obsOther", obsFor(ids["other"], ""))
	mk("obsMe", obsFor("patient-user", ""))
	mk("condGP", `{"resourceType":"Condition","subject":{"reference":"Patient/`+ids["gp"]+`"},"code":{"text":"asthma"}}`)
	mk("consentGP", `{"resourceType":"Consent","status":"active",`+
		`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},`+
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/`+ids["gp"]+`"},`+
		`"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]},`+
		`"provision":{"type":"permit","provision":[{"type":"deny","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Practitioner/pract-physician"}}],`+
		`"class":[{"system":"http://hl7.org/fhir/resource-types","code":"Condition"}]}]}}`)
	return accessWorld{ids: ids}
}

// searchIDs returns the ids of a searchset's matches and its total.
func searchIDs(t *testing.T, r *apptest.Response) (ids []string, total float64) {
	t.Helper()
	var b struct {
		Total float64
		Entry []struct {
			Resource struct{ ID string }
			Search   struct{ Mode string }
		}
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("%v: %.300s", err, r.Body)
	}
	for _, e := range b.Entry {
		if e.Search.Mode == "match" {
			ids = append(ids, e.Resource.ID)
		}
	}
	return ids, b.Total
}

// TestAccessByRole: each role through the HTTP API, on both databases:
// care relationships (generalPractitioner, CareTeam, Encounter window),
// the patient compartment, consent, security labels, purpose of use,
// break-the-glass, search restricted in SQL (totals and paging), and the
// ledger of every refusal and emergency.
func TestAccessByRole(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		x := setupAccess(t, w).ids
		P, N, U, A := authz.RolePhysician, authz.RoleNurse, authz.RoleUser, authz.RoleAdmin
		get := func(name, path string, role authz.Role, status int, headers ...string) scenario {
			return scenario{name: name, method: "GET", path: path, role: role, status: status, headers: headers}
		}
		denied := func(name, path string, role authz.Role, headers ...string) scenario {
			sc := get(name, path, role, 403, headers...)
			sc.want = []string{"access denied by policy"}
			sc.notWant = append([]string{"not-found", "deleted"}, accessNames...)
			return sc
		}
		for _, sc := range []scenario{
			// Physician: generalPractitioner and a recent Encounter.
			get("physician reads the patient naming them GP", "/fhir/Patient/"+x["gp"], P, 200),
			get("physician reads that patient's observation", "/fhir/Observation/"+x["obsGP"], P, 200),
			get("physician reads a recent encounter's patient", "/fhir/Patient/"+x["enc"], P, 200),
			get("physician reads its observation", "/fhir/Observation/"+x["obsEnc"], P, 200),
			denied("physician: encounter outside the window", "/fhir/Patient/"+x["oldEnc"], P),
			denied("physician: the nurse's care team patient", "/fhir/Patient/"+x["team"], P),
			denied("physician: nobody's patient", "/fhir/Patient/"+x["other"], P),
			denied("physician: nobody's observation", "/fhir/Observation/"+x["obsOther"], P),
			denied("physician: an unknown id is refused like an existing one", "/fhir/Observation/no-such-id", P),
			denied("physician: HIV label without clearance", "/fhir/Observation/"+x["obsGPHIV"], P),
			denied("physician: consent denies her Conditions to him", "/fhir/Condition/"+x["condGP"], P),
			get("physician: break-glass overrides the consent", "/fhir/Condition/"+x["condGP"], P, 200, "X-Break-Glass: patient unconscious, Gpson family asked"),
			get("physician: break-glass overrides no relationship", "/fhir/Patient/"+x["other"], P, 200, "X-Break-Glass: ETREAT"),
			denied("physician: break-glass does not lift a label", "/fhir/Observation/"+x["obsGPHIV"], P, "X-Break-Glass: ETREAT"),
			denied("physician: research needs a research consent", "/fhir/Observation/"+x["obsGP"], P, "X-Purpose-Of-Use: HRESCH"),
			get("physician: treatment purpose stated", "/fhir/Observation/"+x["obsGP"], P, 200, "X-Purpose-Of-Use: TREAT"),
			{name: "unknown purpose of use", method: "GET", path: "/fhir/Observation/" + x["obsGP"], role: P, headers: []string{"X-Purpose-Of-Use: SNOOP"}, status: 400, want: []string{"X-Purpose-Of-Use"}},
			{name: "over-long break-glass reason", method: "GET", path: "/fhir/Patient/" + x["other"], role: P, headers: []string{"X-Break-Glass: " + strings.Repeat("Gpson ", 50)}, status: 400,
				want: []string{"X-Break-Glass"}, notWant: []string{"Gpson"}},
			{name: "physician: type history holds only patients in care", method: "GET", path: "/fhir/Patient/_history", role: P, status: 200,
				want: []string{"Gpson", "Encountra"}, notWant: []string{"Otherby", "Teamster", "Oldham", "Myself"}},
			get("physician: instance history of a related patient", "/fhir/Patient/"+x["gp"]+"/_history", P, 200),
			denied("physician: instance history of another", "/fhir/Patient/"+x["other"]+"/_history", P),
			get("physician reads a Practitioner", "/fhir/Practitioner/pract-nurse", P, 200),
			{name: "physician writes for a related patient", method: "POST", path: "/fhir/Observation", role: P, body: obsFor(x["gp"], ""), status: 201},
			{name: "physician may not write for another", method: "POST", path: "/fhir/Observation", role: P, body: obsFor(x["other"], ""), status: 403},
			{name: "physician may not move a record to another patient", method: "PUT", path: "/fhir/Observation/" + x["obsGP"], role: P,
				body: strings.Replace(obsFor(x["other"], ""), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+x["obsGP"]+`",`, 1), status: 403},
			{name: "physician may not write a Practitioner", method: "PUT", path: "/fhir/Practitioner/pract-nurse", role: P, body: `{"resourceType":"Practitioner","id":"pract-nurse"}`, status: 403},
			{name: "physician registers a new patient", method: "POST", path: "/fhir/Patient", role: P, body: patientNamed("Newborn", ""), status: 201},

			// Nurse: the active CareTeam.
			get("nurse reads her care team's patient", "/fhir/Patient/"+x["team"], N, 200),
			get("nurse reads its observation", "/fhir/Observation/"+x["obsTeam"], N, 200),
			denied("nurse: not her patient", "/fhir/Patient/"+x["gp"], N),
			denied("nurse may not break the glass", "/fhir/Patient/"+x["gp"], N, "X-Break-Glass: ETREAT"),
			{name: "nurse records vital signs for her patient", method: "POST", path: "/fhir/Observation", role: N, body: obsFor(x["team"], ""), status: 201},
			{name: "nurse may not record for another", method: "POST", path: "/fhir/Observation", role: N, body: obsFor(x["gp"], ""), status: 403},
			{name: "nurse may not write a Condition", method: "POST", path: "/fhir/Condition", role: N,
				body: `{"resourceType":"Condition","subject":{"reference":"Patient/` + x["team"] + `"},"code":{"text":"x"}}`, status: 403},

			// Patient: their own compartment.
			get("patient reads their own record", "/fhir/Patient/patient-user", U, 200),
			get("patient reads their own observation", "/fhir/Observation/"+x["obsMe"], U, 200),
			denied("patient: another patient", "/fhir/Patient/"+x["gp"], U),
			denied("patient: another's observation", "/fhir/Observation/"+x["obsGP"], U),
			denied("patient: unknown id", "/fhir/Observation/no-such-id", U),
			get("patient reads their practitioner", "/fhir/Practitioner/pract-physician", U, 200),
			{name: "patient may not write", method: "POST", path: "/fhir/Observation", role: U, body: obsFor("patient-user", ""), status: 403},

			// Admin: every patient of the tenant (default), labels still apply.
			get("admin reads any patient", "/fhir/Patient/"+x["other"], A, 200),
			denied("admin needs a clearance too", "/fhir/Observation/"+x["obsGPHIV"], A),
		} {
			sc.run(t, w)
		}

		// Searches are restricted in SQL: the total counts only what the
		// caller may see, and paging walks only that.
		for _, c := range []struct {
			name  string
			role  authz.Role
			path  string
			want  []string
			total float64
		}{
			// "+": the Newborn the physician registered above (its
			// registration CareTeam).
			{"physician's patients", P, "/fhir/Patient?_total=accurate&_count=50", []string{"gp", "enc", "+"}, 3},
			{"physician's observations (no HIV, consented)", P, "/fhir/Observation?_total=accurate&_count=50", []string{"obsGP", "obsEnc", "+"}, 3},
			{"nurse's observations", N, "/fhir/Observation?_total=accurate&_count=50", []string{"obsTeam", "+"}, 2},
			{"patient's observations", U, "/fhir/Observation?_total=accurate&_count=50", []string{"obsMe"}, 1},
			{"patient's patients", U, "/fhir/Patient?_total=accurate", []string{"me"}, 1},
			{"physician's conditions (consent)", P, "/fhir/Condition?_total=accurate", nil, 0},
			{"admin's conditions", A, "/fhir/Condition?_total=accurate", []string{"condGP"}, 1},
			{"patient's system search", U, "/fhir?_type=Observation,Patient&_total=accurate", []string{"obsMe", "me"}, 2},
			{"physician's system search", P, "/fhir?_type=Patient,Condition&_total=accurate", []string{"gp", "enc", "+"}, 3},
		} {
			r := w.Do(t, "GET", c.path, w.Tokens[c.role], nil)
			if r.Status != 200 {
				t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
				continue
			}
			got, total := searchIDs(t, r)
			if total != c.total || len(got) != int(c.total) {
				t.Errorf("%s: total %v, %d matches %v; want %v", c.name, total, len(got), got, c.total)
			}
			for _, name := range c.want {
				if name != "+" && !contains(got, x[name]) {
					t.Errorf("%s: %s missing from %v", c.name, name, got)
				}
			}
			for _, bad := range []string{"obsOther", "obsGPHIV", "other", "oldEnc", "team"} {
				if c.role != authz.RoleNurse && contains(got, x[bad]) || c.role == authz.RoleNurse && bad != "team" && contains(got, x[bad]) {
					t.Errorf("%s: %s leaked: %v", c.name, bad, got)
				}
			}
		}
		// Paging: one per page, as many pages as the total says.
		r := w.Do(t, "GET", "/fhir/Patient?_count=1&_total=accurate", w.Tokens[P], nil)
		pages, seen := 0, map[string]bool{}
		for r.Status == 200 && pages < 10 {
			pages++
			ids, _ := searchIDs(t, r)
			for _, id := range ids {
				seen[id] = true
			}
			var b struct {
				Link []struct{ Relation, URL string }
			}
			json.Unmarshal(r.Body, &b)
			next := ""
			for _, l := range b.Link {
				if l.Relation == "next" {
					next = l.URL
				}
			}
			if next == "" {
				break
			}
			r = w.Do(t, "GET", strings.TrimPrefix(next, w.Server.URL), w.Tokens[P], nil)
		}
		if len(seen) != 3 || !seen[x["gp"]] || !seen[x["enc"]] {
			t.Errorf("paging as the physician saw %v", seen)
		}
		// _include does not bring in what the caller may not read.
		r = w.Do(t, "GET", "/fhir/Encounter?_include=Encounter:subject", w.Tokens[P], nil)
		if body := string(r.Body); r.Status != 200 || !strings.Contains(body, x["enc"]) || strings.Contains(body, x["oldEnc"]) {
			t.Errorf("_include: %d %.500s", r.Status, r.Body)
		}

		// The ledger: every refusal with its reasons, break-the-glass as an
		// emergency with a code, never a name or the free-text reason.
		var refusals, emergencies int
		for _, rec := range w.Ledger(t) {
			line := fmt.Sprintf("%+v", *rec)
			for _, name := range append(accessNames, "unconscious", "asthma") {
				if strings.Contains(line, name) {
					t.Errorf("ledger holds %q: %s", name, line)
				}
			}
			if strings.HasPrefix(rec.Detail, "denied") {
				refusals++
				if rec.Outcome != audit.OutcomeMinor || len(strings.Split(rec.Detail, ":")) < 2 {
					t.Errorf("refusal without reasons: %+v", rec)
				}
			}
			if rec.Emergency {
				emergencies++
				if rec.Role != "physician" || !strings.Contains(rec.Detail, "break-glass:") || rec.Outcome != audit.OutcomeSuccess {
					t.Errorf("emergency record %+v", rec)
				}
			}
		}
		if refusals < 20 || emergencies != 2 {
			t.Errorf("%d refusals, %d emergencies audited; want >= 20 and 2", refusals, emergencies)
		}
		var codes []string
		for _, rec := range w.Ledger(t) {
			if rec.Emergency {
				codes = append(codes, rec.Detail)
			}
		}
		if len(codes) == 2 && (!strings.Contains(codes[0], "break-glass:text-") || !strings.Contains(codes[0], "consent-deny") ||
			!strings.Contains(codes[1], "break-glass:ETREAT") || !strings.Contains(codes[1], "no-care-relationship")) {
			t.Errorf("emergency details %q", codes)
		}
		for _, rec := range w.Ledger(t) {
			if rec.Actor == w.UserIDs[P] && rec.Action == "read" && rec.Outcome == audit.OutcomeSuccess && rec.Purpose != "TREAT" {
				t.Errorf("physician read without purpose TREAT: %+v", rec)
			}
		}
	})
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// TestClearanceAndAdminPHIConfig: a physician cleared for HIV sees the
// labelled result; with WARD_ADMIN_PHI_ACCESS=false an admin manages the
// directory but reads no patient.
func TestClearanceAndAdminPHIConfig(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	x := setupAccess(t, w).ids
	apptest.AddLinkedUser(t, w.App.Store, "default", "cleared-dr", authz.RolePhysician, &store.User{Practitioner: "pract-physician", Clearances: []string{"HIV"}})
	tok := w.Login(t, "cleared-dr", apptest.Password)
	for _, sc := range []scenario{
		{name: "cleared physician reads the HIV result", method: "GET", path: "/fhir/Observation/" + x["obsGPHIV"], token: tok, status: 200},
		{name: "the uncleared one does not", method: "GET", path: "/fhir/Observation/" + x["obsGPHIV"], role: authz.RolePhysician, status: 403},
	} {
		sc.run(t, w)
	}
	r := w.Do(t, "GET", "/fhir/Observation?_total=accurate", tok, nil)
	if ids, total := searchIDs(t, r); total != 3 || !contains(ids, x["obsGPHIV"]) {
		t.Errorf("cleared search: %v %v", total, ids)
	}

	off := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.AdminPHIAccess = false })
	pid := off.Create(t, authz.RolePhysician, patient)
	for _, sc := range []scenario{
		{name: "admin without PHI access reads no patient", method: "GET", path: "/fhir/Patient/" + pid, role: authz.RoleAdmin, status: 403, notWant: []string{"Quillfeather"}},
		{name: "nor searches them", method: "GET", path: "/fhir/Patient", role: authz.RoleAdmin, status: 403},
		{name: "but writes the directory", method: "PUT", path: "/fhir/Practitioner/p9", role: authz.RoleAdmin, body: `{"resourceType":"Practitioner","id":"p9"}`, status: 201},
		{name: "and an Organization", method: "POST", path: "/fhir/Organization", role: authz.RoleAdmin, body: `{"resourceType":"Organization","name":"Ward General"}`, status: 201},
		{name: "the physician still reads their patient", method: "GET", path: "/fhir/Patient/" + pid, role: authz.RolePhysician, status: 200},
	} {
		sc.run(t, off)
	}
}

// Facts are cached per node, and a write that changes them takes effect
// on the next request: losing the relationship or a new deny consent
// refuses at once.
func TestAccessFactsFollowWrites(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	gp := `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`
	pid := w.Create(t, authz.RoleAdmin, gp)
	oid := w.Create(t, authz.RoleAdmin, obsFor(pid, ""))
	read := func(path string) int { return w.Do(t, "GET", path, w.Tokens[authz.RolePhysician], nil).Status }
	if s := read("/fhir/Observation/" + oid); s != 200 {
		t.Fatalf("before: %d", s)
	}
	consent := `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/` + pid + `"},` +
		`"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTOUT"}]},"provision":{"type":"deny"}}`
	cid := w.Create(t, authz.RoleAdmin, consent)
	if s := read("/fhir/Observation/" + oid); s != 403 {
		t.Fatalf("after a deny consent: %d", s)
	}
	// The admin, who reaches every patient, is bound by it too, and the
	// search total does not count what it hides.
	if r := w.Do(t, "GET", "/fhir/Observation?_total=accurate", w.Tokens[authz.RoleAdmin], nil); !strings.Contains(string(r.Body), `"total":0`) {
		t.Fatalf("admin search under a deny consent: %.300s", r.Body)
	}
	if r := w.Do(t, "DELETE", "/fhir/Consent/"+cid, w.Tokens[authz.RoleAdmin], nil); r.Status != 200 {
		t.Fatalf("delete consent: %d", r.Status)
	}
	if s := read("/fhir/Observation/" + oid); s != 200 {
		t.Fatalf("after the consent was withdrawn: %d", s)
	}
	noGP := strings.Replace(`{"resourceType":"Patient","id":"PID","gender":"female"}`, "PID", pid, 1)
	if r := w.Do(t, "PUT", "/fhir/Patient/"+pid, w.Tokens[authz.RoleAdmin], []byte(noGP)); r.Status != 200 {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	if s := read("/fhir/Observation/" + oid); s != 403 {
		t.Fatalf("after the relationship ended: %d", s)
	}
	if r := w.Do(t, "GET", "/fhir/Observation?_total=accurate", w.Tokens[authz.RolePhysician], nil); !strings.Contains(string(r.Body), `"total":0`) {
		t.Fatalf("search after the relationship ended: %.300s", r.Body)
	}
}

// TestAccessFactsFollowMoves: cached facts follow creates of the one
// patient concerned and updates that move a relationship or a consent from
// one patient to another, at once, on both databases, through every write
// path (create, update, transaction).
func TestAccessFactsFollowMoves(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		A, P := authz.RoleAdmin, authz.RolePhysician
		if r := w.Do(t, "PUT", "/fhir/Practitioner/pract-physician", w.Tokens[A], []byte(`{"resourceType":"Practitioner","id":"pract-physician"}`)); r.Status != 201 && r.Status != 200 {
			t.Fatalf("practitioner: %d", r.Status)
		}
		pa, pb := w.Create(t, A, patientNamed("Movera", "")), w.Create(t, A, patientNamed("Moverb", ""))
		oa, ob := w.Create(t, A, obsFor(pa, "")), w.Create(t, A, obsFor(pb, ""))
		expect := func(step string, a, b int) {
			t.Helper()
			// Twice: the second read is answered from the cache.
			for range 2 {
				ga := w.Do(t, "GET", "/fhir/Observation/"+oa, w.Tokens[P], nil).Status
				gb := w.Do(t, "GET", "/fhir/Observation/"+ob, w.Tokens[P], nil).Status
				if ga != a || gb != b {
					t.Fatalf("%s: patient a %d (want %d), patient b %d (want %d)", step, ga, a, gb, b)
				}
			}
		}
		expect("no relationship", 403, 403)
		team := func(pid string) string {
			return `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/` + pid + `"},` +
				`"participant":[{"member":{"reference":"Practitioner/pract-physician"}}]}`
		}
		ct := w.Create(t, A, team(pa))
		expect("a CareTeam of a created", 200, 403)
		body := strings.Replace(team(pb), `{"resourceType":"CareTeam",`, `{"resourceType":"CareTeam","id":"`+ct+`",`, 1)
		if r := w.Do(t, "PUT", "/fhir/CareTeam/"+ct, w.Tokens[A], []byte(body)); r.Status != 200 {
			t.Fatalf("move the CareTeam: %d %s", r.Status, r.Body)
		}
		expect("the CareTeam moved to b", 403, 200)
		// An Encounter created in a transaction relates a too.
		enc := `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"Patient/` + pa + `"},` +
			`"participant":[{"individual":{"reference":"Practitioner/pract-physician"}}],"period":{"start":"` + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + `"}}`
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:6f1c2a8e-0b7d-4e0a-9a43-1d2f3e4a5b6c","resource":` + enc + `,"request":{"method":"POST","url":"Encounter"}}]}`
		if r := w.Do(t, "POST", "/fhir", w.Tokens[A], []byte(tx)); r.Status != 200 {
			t.Fatalf("transaction: %d %s", r.Status, r.Body)
		}
		expect("an Encounter of a", 200, 200)
		consent := func(pid string) string {
			return `{"resourceType":"Consent","status":"active","scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
				`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/` + pid + `"},` +
				`"provision":{"type":"deny"}}`
		}
		cid := w.Create(t, A, consent(pb))
		expect("b denies", 200, 403)
		body = strings.Replace(consent(pa), `{"resourceType":"Consent",`, `{"resourceType":"Consent","id":"`+cid+`",`, 1)
		if r := w.Do(t, "PUT", "/fhir/Consent/"+cid, w.Tokens[A], []byte(body)); r.Status != 200 {
			t.Fatalf("move the consent: %d %s", r.Status, r.Body)
		}
		expect("the consent moved to a", 403, 200)
	})
}

// Break-the-glass on a search lifts the relationship restriction for that
// request only, and the search is an emergency in the ledger.
func TestBreakGlassSearch(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	pid := w.Create(t, authz.RoleAdmin, patientNamed("Strangerson", ""))
	oid := w.Create(t, authz.RoleAdmin, obsFor(pid, ""))
	tok := w.Tokens[authz.RolePhysician]
	if ids, total := searchIDs(t, w.Do(t, "GET", "/fhir/Observation?_total=accurate", tok, nil)); total != 0 || len(ids) != 0 {
		t.Fatalf("without break-glass: %v %v", total, ids)
	}
	r := w.Do(t, "GET", "/fhir/Observation?subject=Patient/"+pid, tok, nil, "X-Break-Glass: ETREAT")
	if ids, _ := searchIDs(t, r); r.Status != 200 || len(ids) != 1 || ids[0] != oid {
		t.Fatalf("with break-glass: %d %v", r.Status, ids)
	}
	if ids, total := searchIDs(t, w.Do(t, "GET", "/fhir/Observation?_total=accurate", tok, nil)); total != 0 || len(ids) != 0 {
		t.Fatalf("break-glass outlived its request: %v %v", total, ids)
	}
	recs := w.Ledger(t)
	var found bool
	for _, rec := range recs {
		if rec.Action == "search-type" && rec.Emergency {
			found = true
			if !strings.Contains(rec.Detail, "break-glass:ETREAT") || len(rec.Entities) != 1 || !strings.HasPrefix(rec.Entities[0], "Observation/"+oid) {
				t.Errorf("emergency search record %+v", rec)
			}
		}
	}
	if !found {
		t.Fatal("the break-glass search is not an emergency in the ledger")
	}
}

// TestTotalsCountOnlyWhatIsShown: where a patient's consent decides per
// resource (a provision naming one resource, or a security label), or the
// purpose of use is research, the search total and _summary=count still
// count only the matches the caller is shown, for an admin and for a
// physician, on both databases.
func TestTotalsCountOnlyWhatIsShown(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		A, P := authz.RoleAdmin, authz.RolePhysician
		gp := `,"generalPractitioner":[{"reference":"Practitioner/pract-physician"}]`
		if r := w.Do(t, "PUT", "/fhir/Practitioner/pract-physician", w.Tokens[A], []byte(`{"resourceType":"Practitioner","id":"pract-physician"}`)); r.Status != 201 && r.Status != 200 {
			t.Fatalf("practitioner: %d", r.Status)
		}
		withData := w.Create(t, A, patientNamed("Dataconsent", gp))
		hidden := w.Create(t, A, obsFor(withData, ""))
		shown := w.Create(t, A, obsFor(withData, ""))
		researchOK := w.Create(t, A, patientNamed("Researchyes", gp))
		noConsent := w.Create(t, A, patientNamed("Researchno", gp))
		inStudy := w.Create(t, A, obsFor(researchOK, ""))
		w.Create(t, A, obsFor(noConsent, ""))
		privacy := `"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
			`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}]`
		w.Create(t, A, `{"resourceType":"Consent","status":"active",`+privacy+`,"patient":{"reference":"Patient/`+withData+`"},`+
			`"provision":{"type":"permit","provision":[{"type":"deny","data":[{"meaning":"instance","reference":{"reference":"Observation/`+hidden+`"}}]}]}}`)
		w.Create(t, A, `{"resourceType":"Consent","status":"active",`+
			`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"research"}]},`+
			`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/`+researchOK+`"},`+
			`"provision":{"type":"deny","provision":[{"type":"permit","purpose":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActReason","code":"HRESCH"}]}]}}`)
		// A chain or _has never passes through a resource that only the
		// per-resource decision could refuse.
		for _, role := range []authz.Role{A, P} {
			r := w.Do(t, "GET", "/fhir/Patient?_id="+withData+"&_has:Observation:patient:_id="+hidden, w.Tokens[role], nil)
			if ids, _ := searchIDs(t, r); r.Status != 200 || len(ids) != 0 {
				t.Errorf("%s: _has through the consent-hidden Observation: %d %v", role, r.Status, ids)
			}
			r = w.Do(t, "GET", "/fhir/Observation?_id="+hidden+"&subject:Patient._id="+withData, w.Tokens[role], nil)
			if ids, _ := searchIDs(t, r); r.Status != 200 || len(ids) != 0 {
				t.Errorf("%s: the consent-hidden Observation itself: %d %v", role, r.Status, ids)
			}
		}
		for _, c := range []struct {
			name   string
			role   authz.Role
			path   string
			header string
			want   []string
		}{
			{"admin, a consent hiding one resource", A, "/fhir/Observation?patient=" + withData, "", []string{shown}},
			{"physician, a consent hiding one resource", P, "/fhir/Observation?patient=" + withData, "", []string{shown}},
			{"admin, research", A, "/fhir/Observation?patient=" + researchOK + "," + noConsent, "X-Purpose-Of-Use: HRESCH", []string{inStudy}},
			{"physician, research", P, "/fhir/Observation?patient=" + researchOK + "," + noConsent, "X-Purpose-Of-Use: HRESCH", []string{inStudy}},
		} {
			var hs []string
			if c.header != "" {
				hs = append(hs, c.header)
			}
			r := w.Do(t, "GET", c.path+"&_total=accurate", w.Tokens[c.role], nil, hs...)
			if r.Status != 200 {
				t.Fatalf("%s: %d %s", c.name, r.Status, r.Body)
			}
			ids, total := searchIDs(t, r)
			if !slices.Equal(ids, c.want) || total != float64(len(c.want)) {
				t.Errorf("%s: shown %v, total %v; want %v", c.name, ids, total, c.want)
			}
			r = w.Do(t, "GET", c.path+"&_summary=count", w.Tokens[c.role], nil, hs...)
			if _, total := searchIDs(t, r); r.Status != 200 || total != float64(len(c.want)) {
				t.Errorf("%s: _summary=count %d %v, want %d", c.name, r.Status, total, len(c.want))
			}
			// Without _total, the only page's total is what it shows.
			r = w.Do(t, "GET", c.path, w.Tokens[c.role], nil, hs...)
			if ids, total := searchIDs(t, r); r.Status != 200 || !slices.Equal(ids, c.want) || total != float64(len(c.want)) {
				t.Errorf("%s: default total %d %v %v, want %v", c.name, r.Status, ids, total, c.want)
			}
		}
	})
}

// TestTotalLeftOutBeyondDecisionBound: a total that would need more
// matches decided one by one than WARD_SEARCH_MAX_DECIDED allows is left
// out with a too-costly warning, never replaced by a SQL count that
// includes what the caller may not see; within the bound it is exact.
func TestTotalLeftOutBeyondDecisionBound(t *testing.T) {
	for _, bound := range []int{1, 2} {
		t.Run(fmt.Sprint("bound ", bound), func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
				A, P := authz.RoleAdmin, authz.RolePhysician
				if r := w.Do(t, "PUT", "/fhir/Practitioner/pract-physician", w.Tokens[A], []byte(`{"resourceType":"Practitioner","id":"pract-physician"}`)); r.Status != 201 && r.Status != 200 {
					t.Fatalf("practitioner: %d", r.Status)
				}
				pid := w.Create(t, A, patientNamed("Boundary", `,"generalPractitioner":[{"reference":"Practitioner/pract-physician"}]`))
				hidden := w.Create(t, A, obsFor(pid, ""))
				shown := w.Create(t, A, obsFor(pid, ""))
				w.Create(t, A, `{"resourceType":"Consent","status":"active",`+
					`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},`+
					`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/`+pid+`"},`+
					`"provision":{"type":"permit","provision":[{"type":"deny","data":[{"meaning":"instance","reference":{"reference":"Observation/`+hidden+`"}}]}]}}`)
				// _count=1: not the only page, whose total would be what it
				// shows.
				for _, q := range []string{"&_total=accurate&_count=1", "&_summary=count"} {
					r := w.Do(t, "GET", "/fhir/Observation?patient="+pid+q, w.Tokens[P], nil)
					if r.Status != 200 {
						t.Fatalf("%s: %d %s", q, r.Status, r.Body)
					}
					var b struct {
						Total *int
						Entry []struct {
							Resource struct {
								ID    string
								Issue []struct{ Severity, Code string }
							}
							Search struct{ Mode string }
						}
					}
					if err := json.Unmarshal(r.Body, &b); err != nil {
						t.Fatal(err)
					}
					var ids []string
					warned := false
					for _, e := range b.Entry {
						switch e.Search.Mode {
						case "match":
							ids = append(ids, e.Resource.ID)
						case "outcome":
							warned = len(e.Resource.Issue) == 1 && e.Resource.Issue[0].Code == "too-costly" && e.Resource.Issue[0].Severity == "warning"
						}
					}
					if len(ids) > 1 || len(ids) == 1 && ids[0] != shown {
						t.Errorf("%s: shown %v, want at most %v", q, ids, []string{shown})
					}
					switch {
					case bound < 2 && (b.Total != nil || !warned):
						t.Errorf("%s, bound %d: total %v, warned %v; want no total and a warning", q, bound, b.Total, warned)
					case bound >= 2 && (b.Total == nil || *b.Total != 1 || warned):
						t.Errorf("%s, bound %d: total %v, warned %v; want 1 and no warning", q, bound, b.Total, warned)
					}
				}
			}, func(c *config.Config) { c.SearchMaxDecided = bound })
		})
	}
}
