package app_test

// Hostile access: the paths by which a clinician or a patient reached
// records they do not belong to (issue 22: consent withdrawal, writes into
// other compartments, claiming orphaned records, existence oracles,
// exports that never finished).

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// seq makes ids unique across cases that share one server.
var seq atomic.Int64

func uniq(prefix string) string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }

const (
	physicianRef = "Practitioner/pract-physician"
	privacyScope = `"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},` +
		`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}]`
)

// put writes body as role under its type and id and wants 200 or 201.
func put(t *testing.T, w *apptest.Ward, role authz.Role, typ, id, body string) {
	t.Helper()
	r := w.Do(t, "PUT", "/fhir/"+typ+"/"+id, w.Tokens[role], []byte(body))
	if r.Status != 200 && r.Status != 201 {
		t.Fatalf("setup PUT %s/%s: %d %s", typ, id, r.Status, r.Body)
	}
}

// patientOf creates a Patient whose generalPractitioner is gp ("" : none).
func patientOf(t *testing.T, w *apptest.Ward, id, gp string) {
	t.Helper()
	body := `{"resourceType":"Patient","id":"` + id + `","name":[{"family":"Hostile"}]`
	if gp != "" {
		body += `,"generalPractitioner":[{"reference":"` + gp + `"}]`
	}
	put(t, w, authz.RoleAdmin, "Patient", id, body+`}`)
}

// obsBody is an Observation of pid with code text, extra inserted first.
func obsBody(id, pid, text, extra string) string {
	return `{"resourceType":"Observation","id":"` + id + `",` + extra + `"status":"final","code":{"text":"` + text + `"},"subject":{"reference":"Patient/` + pid + `"}}`
}

func observationOf(t *testing.T, w *apptest.Ward, pid string) string {
	t.Helper()
	return w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"pulse"},"subject":{"reference":"Patient/`+pid+`"}}`)
}

// consentBody denies the physician everything of pid.
func consentBody(id, pid, status string) string {
	return `{"resourceType":"Consent","id":"` + id + `","status":"` + status + `",` + privacyScope + `,"patient":{"reference":"Patient/` + pid + `"},` +
		`"provision":{"type":"permit","provision":[{"type":"deny","actor":[{"role":{"text":"clinician"},"reference":{"reference":"` + physicianRef + `"}}]}]}}`
}

// deniedPatient sets up a patient in the physician's care whose consent
// denies the physician: vars pid, consent, obs.
func deniedPatient(t *testing.T, w *apptest.Ward) map[string]string {
	pid, cid := uniq("denied"), uniq("consent")
	patientOf(t, w, pid, physicianRef)
	obs := observationOf(t, w, pid)
	put(t, w, authz.RoleAdmin, "Consent", cid, consentBody(cid, pid, "active"))
	return map[string]string{"pid": pid, "consent": cid, "obs": obs}
}

// stillDenied checks that the consent is unchanged and active and that the
// physician still cannot read the record.
func stillDenied(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
	t.Helper()
	r := w.Do(t, "GET", "/fhir/Consent/"+vars["consent"], w.Tokens[authz.RoleAdmin], nil)
	if r.Status != 200 || r.JSON(t)["status"] != "active" || r.JSON(t)["meta"].(map[string]any)["versionId"] != "1" {
		t.Fatalf("the consent was changed: %d %s", r.Status, r.Body)
	}
	if r := w.Do(t, "GET", "/fhir/Observation/"+vars["obs"], w.Tokens[authz.RolePhysician], nil); r.Status != 403 {
		t.Fatalf("the physician reads the denied record: %d", r.Status)
	}
}

// ledgerHas wants a successful ledger record of action naming typ/id.
func ledgerHas(t *testing.T, w *apptest.Ward, action, typ, id string) {
	t.Helper()
	for _, rec := range w.Ledger(t) {
		if rec.Action == action && rec.Outcome == 0 && slices.ContainsFunc(rec.Entities, func(e string) bool { return strings.HasPrefix(e, typ+"/"+id+"/") }) {
			return
		}
	}
	t.Fatalf("no %s record of %s/%s in the ledger", action, typ, id)
}

// withVars adapts a check that needs the case's vars.
type varsCheck func(t *testing.T, w *apptest.Ward, r *apptest.Response, vars map[string]string)

// hostileWithVars builds a case whose check sees the setup's vars.
func hostileWithVars(c hostileCase, setup func(t *testing.T, w *apptest.Ward) map[string]string, check varsCheck) hostileCase {
	var vars map[string]string
	c.setup = func(t *testing.T, w *apptest.Ward) map[string]string { vars = setup(t, w); return vars }
	if check != nil {
		c.check = func(t *testing.T, w *apptest.Ward, r *apptest.Response) { check(t, w, r, vars) }
	}
	return c
}

// exportAs runs a Patient-level export as role and returns the NDJSON of
// every file.
func exportAs(t *testing.T, w *apptest.Ward, role authz.Role, path string) string {
	t.Helper()
	tok := w.Tokens[role]
	r := w.Do(t, "GET", path, tok, nil, "Prefer: respond-async")
	if r.Status != 202 {
		t.Fatalf("kick-off: %d %s", r.Status, r.Body)
	}
	status := strings.TrimPrefix(r.Header.Get("Content-Location"), w.Server.URL)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = w.Do(t, "GET", status, tok, nil)
		if r.Status == 200 {
			break
		}
		if r.Status != 202 || time.Now().After(deadline) {
			t.Fatalf("export status: %d %s", r.Status, r.Body)
		}
	}
	var m struct{ Output []struct{ URL string } }
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, o := range m.Output {
		f := w.Do(t, "GET", strings.TrimPrefix(o.URL, w.Server.URL), tok, nil)
		if f.Status != 200 {
			t.Fatalf("download: %d %s", f.Status, f.Body)
		}
		all.Write(f.Body)
	}
	return all.String()
}

func TestHostileAccess(t *testing.T) {
	P, U, A := authz.RolePhysician, authz.RoleUser, authz.RoleAdmin
	var cases []hostileCase

	// 2. A clinician excluded by a Consent cannot withdraw or weaken it,
	// whatever the interaction, also with break-the-glass and inside the
	// transaction that would read what it unlocks.
	for _, c := range []hostileCase{
		{name: "consent-denied physician deletes the consent", method: "DELETE", path: "/fhir/Consent/{{consent}}"},
		{name: "consent-denied physician makes the consent inactive", method: "PUT", path: "/fhir/Consent/{{consent}}",
			body: strings.ReplaceAll(consentBody("{{consent}}", "{{pid}}", "inactive"), `"`+physicianRef+`"`, `"Practitioner/nobody"`)},
		{name: "consent-denied physician patches the consent", method: "PATCH", path: "/fhir/Consent/{{consent}}", headers: []string{jsonPatch},
			body: `[{"op":"replace","path":"/status","value":"inactive"}]`},
		{name: "consent-denied physician breaks the glass to delete the consent", method: "DELETE", path: "/fhir/Consent/{{consent}}",
			headers: []string{"X-Break-Glass: ETREAT"}},
		{name: "consent-denied physician withdraws and reads in one transaction", method: "POST", path: "/fhir",
			body: `{"resourceType":"Bundle","type":"transaction","entry":[` +
				`{"request":{"method":"DELETE","url":"Consent/{{consent}}"}},` +
				`{"request":{"method":"GET","url":"Observation/{{obs}}"}}]}`},
		{name: "consent-denied physician replaces the consent in a transaction", method: "POST", path: "/fhir",
			body: `{"resourceType":"Bundle","type":"transaction","entry":[` +
				`{"resource":` + consentBody("{{consent}}", "{{pid}}", "rejected") + `,"request":{"method":"PUT","url":"Consent/{{consent}}"}},` +
				`{"request":{"method":"GET","url":"Observation/{{obs}}"}}]}`},
		{name: "consent-denied physician withdraws in a batch", method: "POST", path: "/fhir",
			body: `{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"DELETE","url":"Consent/{{consent}}"}}]}`},
	} {
		c.role, c.want, c.notContains = P, 403, []string{"Hostile"}
		if c.name == "consent-denied physician withdraws in a batch" {
			c.want = 200 // a batch answers per entry; the entry is refused
		}
		cases = append(cases, hostileWithVars(c, deniedPatient, stillDenied))
	}
	// Who manages a consent may change it, and the ledger says so.
	for _, role := range []authz.Role{authz.RolePrivacyOfficer, A} {
		cases = append(cases, hostileWithVars(hostileCase{
			name: string(role) + " withdraws a consent, a consent-change in the ledger", method: "PUT", path: "/fhir/Consent/{{consent}}", role: role,
			body: consentBody("{{consent}}", "{{pid}}", "inactive"), want: 200,
		}, deniedPatient, func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
			ledgerHas(t, w, "consent-change", "Consent", vars["consent"])
			if r := w.Do(t, "GET", "/fhir/Observation/"+vars["obs"], w.Tokens[P], nil); r.Status != 200 {
				t.Fatalf("after the withdrawal the physician still cannot read: %d", r.Status)
			}
		}))
	}
	cases = append(cases, hostileWithVars(hostileCase{
		name: "the patient withdraws their own consent", method: "DELETE", path: "/fhir/Consent/{{consent}}", role: U, want: 200,
	}, func(t *testing.T, w *apptest.Ward) map[string]string {
		cid := uniq("own-consent")
		put(t, w, A, "Consent", cid, consentBody(cid, apptest.Links[U].Patient, "active"))
		return map[string]string{"consent": cid}
	}, func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
		ledgerHas(t, w, "consent-change", "Consent", vars["consent"])
	}))
	cases = append(cases, hostileWithVars(hostileCase{
		name: "the patient may not write another patient's consent", method: "PUT", path: "/fhir/Consent/{{consent}}", role: U,
		body: consentBody("{{consent}}", "{{pid}}", "inactive"), want: 403,
	}, deniedPatient, stillDenied))

	// 3. A write must reach only compartments the writer may write to:
	// every patient its content names.
	inCare := func(t *testing.T, w *apptest.Ward) map[string]string {
		mine, other := uniq("mine"), uniq("other")
		patientOf(t, w, mine, physicianRef)
		patientOf(t, w, other, "")
		return map[string]string{"mine": mine, "other": other}
	}
	notInOther := func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
		r := w.Do(t, "GET", "/fhir/Patient/"+vars["other"]+"/$everything", w.Tokens[A], nil)
		if r.Status != 200 {
			t.Fatalf("$everything: %d %s", r.Status, r.Body)
		}
		if n := len(r.JSON(t)["entry"].([]any)); n != 1 {
			t.Fatalf("the other patient's compartment holds %d resources, want only the Patient: %s", n, r.Body)
		}
	}
	for _, c := range []hostileCase{
		{name: "physician records an Observation performed by another patient", method: "POST", path: "/fhir/Observation",
			body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/{{mine}}"},"performer":[{"reference":"Patient/{{other}}"}]}`},
		{name: "physician puts another patient in a care team", method: "POST", path: "/fhir/CareTeam",
			body: `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/{{mine}}"},"participant":[{"member":{"reference":"Patient/{{other}}"}},{"member":{"reference":"` + physicianRef + `"}}]}`},
		{name: "physician names another patient in a transaction", method: "POST", path: "/fhir",
			body: `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Observation","status":"final","code":{"text":"x"},` +
				`"subject":{"reference":"Patient/{{mine}}"},"performer":[{"reference":"Patient/{{other}}"}]},"request":{"method":"POST","url":"Observation"}}]}`},
		{name: "physician names another patient with break-the-glass in a CareTeam", method: "POST", path: "/fhir/CareTeam", headers: []string{"X-Break-Glass: ETREAT"},
			body: `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/{{other}}"},"participant":[{"member":{"reference":"` + physicianRef + `"}}]}`},
	} {
		c.role, c.want = P, 403
		cases = append(cases, hostileWithVars(c, inCare, notInOther))
	}
	cases = append(cases, hostileWithVars(hostileCase{
		name: "physician links his patient to another patient", method: "PUT", path: "/fhir/Patient/{{mine}}", role: P, want: 403,
		body: `{"resourceType":"Patient","id":"{{mine}}","generalPractitioner":[{"reference":"` + physicianRef + `"}],"link":[{"other":{"reference":"Patient/{{other}}"},"type":"seealso"}]}`,
	}, inCare, notInOther))
	cases = append(cases, hostileWithVars(hostileCase{
		name: "physician patches a performer of another patient into his patient's Observation", method: "PATCH", path: "/fhir/Observation/{{obs}}", role: P,
		headers: []string{jsonPatch}, body: `[{"op":"add","path":"/performer","value":[{"reference":"Patient/{{other}}"}]}]`, want: 403,
	}, func(t *testing.T, w *apptest.Ward) map[string]string {
		vars := inCare(t, w)
		vars["obs"] = observationOf(t, w, vars["mine"])
		return vars
	}, notInOther))
	cases = append(cases, hostileWithVars(hostileCase{
		name: "physician writes into two compartments in his care", method: "POST", path: "/fhir/Observation", role: P, want: 201,
		body: `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/{{mine}}"},"performer":[{"reference":"Patient/{{other}}"}]}`,
	}, func(t *testing.T, w *apptest.Ward) map[string]string {
		mine, other := uniq("mine"), uniq("mine-too")
		patientOf(t, w, mine, physicianRef)
		patientOf(t, w, other, physicianRef)
		return map[string]string{"mine": mine, "other": other}
	}, nil))

	// Security labels: only the roles that manage them remove one; a
	// privacy officer changes labels and nothing else.
	labelled := func(t *testing.T, w *apptest.Ward) map[string]string {
		pid, oid := uniq("labelled"), uniq("obs")
		patientOf(t, w, pid, physicianRef)
		put(t, w, A, "Observation", oid, obsBody(oid, pid, "pulse", `"meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"N"}]},`))
		return map[string]string{"pid": pid, "obs": oid}
	}
	cases = append(cases,
		hostileWithVars(hostileCase{name: "physician removes a security label", method: "PUT", path: "/fhir/Observation/{{obs}}", role: P,
			body: obsBody("{{obs}}", "{{pid}}", "pulse", ""), want: 403, code: "forbidden"}, labelled, nil),
		hostileWithVars(hostileCase{name: "privacy officer removes a security label", method: "PUT", path: "/fhir/Observation/{{obs}}", role: authz.RolePrivacyOfficer,
			body: obsBody("{{obs}}", "{{pid}}", "pulse", ""), want: 200}, labelled,
			func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
				ledgerHas(t, w, "label-change", "Observation", vars["obs"])
			}),
		hostileWithVars(hostileCase{name: "privacy officer changes clinical content", method: "PUT", path: "/fhir/Observation/{{obs}}", role: authz.RolePrivacyOfficer,
			body: obsBody("{{obs}}", "{{pid}}", "temperature", ""), want: 403, code: "forbidden"}, labelled, nil),
		hostileWithVars(hostileCase{name: "physician adds himself to his patient's care team, a careteam-change", method: "POST", path: "/fhir/CareTeam", role: P,
			body: `{"resourceType":"CareTeam","status":"active","subject":{"reference":"Patient/{{mine}}"},"participant":[{"member":{"reference":"` + physicianRef + `"}}]}`,
			want: 201}, inCare, func(t *testing.T, w *apptest.Ward, r *apptest.Response, vars map[string]string) {
			id, _ := r.JSON(t)["id"].(string)
			ledgerHas(t, w, "careteam-change", "CareTeam", id)
		}),
	)

	// 4. An id that records already name is not a new patient.
	orphan := func(t *testing.T, w *apptest.Ward) map[string]string {
		pid := uniq("orphan")
		return map[string]string{"pid": pid, "obs": observationOf(t, w, pid)}
	}
	cases = append(cases, hostileWithVars(hostileCase{
		name: "physician claims an orphaned patient id", method: "PUT", path: "/fhir/Patient/{{pid}}", role: P,
		body: `{"resourceType":"Patient","id":"{{pid}}","generalPractitioner":[{"reference":"` + physicianRef + `"}]}`, want: 403,
	}, orphan, func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
		if r := w.Do(t, "GET", "/fhir/Observation/"+vars["obs"], w.Tokens[P], nil); r.Status != 403 {
			t.Fatalf("the physician reads the orphaned record: %d %s", r.Status, r.Body)
		}
		if r := w.Do(t, "GET", "/fhir/Patient/"+vars["pid"], w.Tokens[A], nil); r.Status != 404 {
			t.Fatalf("the Patient was created: %d", r.Status)
		}
	}))
	cases = append(cases, hostileWithVars(hostileCase{
		name: "physician claims an orphaned patient id with break-the-glass", method: "PUT", path: "/fhir/Patient/{{pid}}", role: P,
		headers: []string{"X-Break-Glass: ETREAT"},
		body:    `{"resourceType":"Patient","id":"{{pid}}","generalPractitioner":[{"reference":"` + physicianRef + `"}]}`, want: 403,
	}, orphan, nil))
	cases = append(cases, hostileWithVars(hostileCase{
		name: "physician registers a patient under an unused id", method: "PUT", path: "/fhir/Patient/{{pid}}", role: P,
		body: `{"resourceType":"Patient","id":"{{pid}}","generalPractitioner":[{"reference":"` + physicianRef + `"}]}`, want: 201,
	}, func(t *testing.T, w *apptest.Ward) map[string]string { return map[string]string{"pid": uniq("fresh")} },
		func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
			ledgerHas(t, w, "gp-change", "Patient", vars["pid"])
		}))

	// 7. No existence oracle: an unknown, a deleted and an unrelated
	// patient answer alike on every interaction.
	kinds := func(t *testing.T, w *apptest.Ward) map[string]string {
		unrelated, gone := uniq("unrelated"), uniq("gone")
		patientOf(t, w, unrelated, "")
		patientOf(t, w, gone, "")
		if r := w.Do(t, "DELETE", "/fhir/Patient/"+gone, w.Tokens[A], nil); r.Status >= 300 {
			t.Fatalf("delete: %d", r.Status)
		}
		return map[string]string{"unrelated": unrelated, "gone": gone, "unknown": uniq("unknown")}
	}
	for _, who := range []string{"unrelated", "gone", "unknown"} {
		for _, c := range []hostileCase{
			{name: "$everything", method: "GET", path: "/fhir/Patient/{{" + who + "}}/$everything"},
			{name: "history since long ago", method: "GET", path: "/fhir/Patient/{{" + who + "}}/_history?_since=2000-01-01T00:00:00Z"},
			{name: "history", method: "GET", path: "/fhir/Patient/{{" + who + "}}/_history"},
			{name: "vread", method: "GET", path: "/fhir/Patient/{{" + who + "}}/_history/1"},
			{name: "patch with a stale If-Match", method: "PATCH", path: "/fhir/Patient/{{" + who + "}}",
				headers: []string{jsonPatch, `If-Match: W/"7"`}, body: `[{"op":"add","path":"/active","value":true}]`},
			{name: "delete", method: "DELETE", path: "/fhir/Patient/{{" + who + "}}"},
			{name: "conditional delete", method: "DELETE", path: "/fhir/Patient?_id={{" + who + "}}"},
		} {
			c.name = "physician: " + c.name + " of an " + who + " patient"
			if who == "gone" {
				c.name = strings.Replace(c.name, "an gone", "a deleted", 1)
			}
			c.role = P
			if c.want == 0 {
				c.want, c.code = 403, "forbidden"
			}
			if c.name == "physician: conditional delete of an "+who+" patient" || strings.HasPrefix(c.name, "physician: conditional delete") {
				// Matches the caller may not delete are left alone and
				// not named, as if there were none.
				c.want, c.code = 204, ""
			}
			c.setup = kinds
			cases = append(cases, c)
		}
	}

	// 8. Patient-level export by a linked patient and by a physician.
	cases = append(cases, hostileWithVars(hostileCase{
		name: "patient exports their own compartment", method: "GET", path: "/fhir/metadata", role: U, want: 200,
	}, func(t *testing.T, w *apptest.Ward) map[string]string {
		patientOf(t, w, apptest.Links[U].Patient, "")
		other := uniq("not-mine")
		patientOf(t, w, other, "")
		return map[string]string{"own": observationOf(t, w, apptest.Links[U].Patient), "other": observationOf(t, w, other)}
	}, func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
		out := exportAs(t, w, U, "/fhir/Patient/$export")
		if !strings.Contains(out, vars["own"]) || strings.Contains(out, vars["other"]) {
			t.Fatalf("the export holds %q, want own %s and not %s", out, vars["own"], vars["other"])
		}
	}))
	cases = append(cases, hostileWithVars(hostileCase{
		name: "physician exports the patients in his care", method: "GET", path: "/fhir/metadata", role: P, want: 200,
	}, func(t *testing.T, w *apptest.Ward) map[string]string {
		mine, other := uniq("export-mine"), uniq("export-other")
		patientOf(t, w, mine, physicianRef)
		patientOf(t, w, other, "")
		return map[string]string{"mine": observationOf(t, w, mine), "other": observationOf(t, w, other)}
	}, func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
		for _, path := range []string{"/fhir/Patient/$export", "/fhir/$export?_type=Observation"} {
			out := exportAs(t, w, P, path)
			if !strings.Contains(out, vars["mine"]) || strings.Contains(out, vars["other"]) {
				t.Fatalf("%s holds %q, want %s and not %s", path, out, vars["mine"], vars["other"])
			}
		}
	}))
	cases = append(cases, hostileWithVars(hostileCase{
		name: "physician exports a group of his patients", method: "GET", path: "/fhir/metadata", role: P, want: 200,
	}, func(t *testing.T, w *apptest.Ward) map[string]string {
		mine, other := uniq("group-mine"), uniq("group-other")
		patientOf(t, w, mine, physicianRef)
		patientOf(t, w, other, "")
		g := w.Create(t, A, `{"resourceType":"Group","type":"person","actual":true,"member":[{"entity":{"reference":"Patient/`+mine+`"}},{"entity":{"reference":"Patient/`+other+`"}}]}`)
		return map[string]string{"group": g, "mine": observationOf(t, w, mine), "other": observationOf(t, w, other)}
	}, func(t *testing.T, w *apptest.Ward, _ *apptest.Response, vars map[string]string) {
		out := exportAs(t, w, P, "/fhir/Group/"+vars["group"]+"/$export?_type=Observation")
		if !strings.Contains(out, vars["mine"]) || strings.Contains(out, vars["other"]) {
			t.Fatalf("the group export holds %q, want %s and not %s", out, vars["mine"], vars["other"])
		}
	}))

	runHostile(t, cases)
}
