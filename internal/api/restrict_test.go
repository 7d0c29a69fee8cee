package api_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// TestChainsAndHasStayInCare: a chain hop or a _has subquery matches only
// through resources the caller may search (care, compartment, labels,
// consent), on both databases; an admin's chains and _has still match
// through every patient.
func TestChainsAndHasStayInCare(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		x := setupAccess(t, w).ids
		mk := func(name, body string) { x[name] = w.Create(t, authz.RoleAdmin, body) }
		focus := func(pid string) string { return `,"focus":[{"reference":"Patient/` + pid + `"}]` }
		// In the physician's care (subject gp), about a patient outside it.
		mk("gpFocusOther", obsFor(x["gp"], focus(x["other"])))
		// Outside the physician's care (subject other), about gp.
		mk("otherFocusGP", obsFor(x["other"], focus(x["gp"])))
		// The nurse's patient, about gp; the patient's own, about other.
		mk("teamFocusGP", obsFor(x["team"], focus(x["gp"])))
		mk("meFocusOther", obsFor("patient-user", focus(x["other"])))
		// The patient's own, about a Questionnaire: a type the patient role
		// may not search.
		mk("questionnaire", `{"resourceType":"Questionnaire","status":"active","name":"screening"}`)
		mk("meFocusQ", obsFor("patient-user", `,"focus":[{"reference":"Questionnaire/`+x["questionnaire"]+`"}]`))
		clearedAdmin := w.Login(t, "cleared-admin", apptest.Password)
		P, N, U, A := w.Tokens[authz.RolePhysician], w.Tokens[authz.RoleNurse], w.Tokens[authz.RoleUser], w.Tokens[authz.RoleAdmin]
		for _, c := range []struct {
			name, token, path string
			want              []string
		}{
			// Chains: the hop's Patient must be one the caller may see.
			{"physician: chain through a patient outside care", P, "/fhir/Observation?focus:Patient.name=Otherby", nil},
			{"admin: the same chain", A, "/fhir/Observation?focus:Patient.name=Otherby", []string{"gpFocusOther", "meFocusOther"}},
			{"physician: chain through a patient in care", P, "/fhir/Observation?subject:Patient.name=Gpson&focus:Patient=" + x["other"], []string{"gpFocusOther"}},
			{"nurse: chain through a patient outside care", N, "/fhir/Observation?focus:Patient.name=Gpson", nil},
			{"admin: the nurse's chain", A, "/fhir/Observation?focus:Patient.name=Gpson", []string{"otherFocusGP", "teamFocusGP"}},
			{"patient: chain through another patient", U, "/fhir/Observation?focus:Patient.name=Otherby", nil},
			{"patient: chain through their own record", U, "/fhir/Observation?subject:Patient.name=Myself&_count=50", []string{"obsMe", "meFocusOther", "meFocusQ"}},
			{"patient: chain through a type they may not search", U, "/fhir/Observation?focus:Questionnaire.name=screening", nil},
			{"admin: the same", A, "/fhir/Observation?focus:Questionnaire.name=screening", []string{"meFocusQ"}},
			// _has: the referring resources must be ones the caller may see.
			{"physician: _has through an observation outside care", P, "/fhir/Patient?_has:Observation:focus:status=final", nil},
			{"admin: the same _has", A, "/fhir/Patient?_has:Observation:focus:status=final", []string{"gp", "other"}},
			{"physician: _has through an observation in care", P, "/fhir/Patient?_has:Observation:subject:status=final", []string{"gp", "enc"}},
			{"physician: _has through an HIV-labelled observation", P, "/fhir/Patient?_has:Observation:subject:_security=HIV", nil},
			{"uncleared admin: the same", A, "/fhir/Patient?_has:Observation:subject:_security=HIV", nil},
			{"cleared admin: the same", clearedAdmin, "/fhir/Patient?_has:Observation:subject:_security=HIV", []string{"gp"}},
			{"physician: _has through a consent-denied condition", P, "/fhir/Patient?_has:Condition:subject:code:text=asthma", nil},
			{"admin: the same", A, "/fhir/Patient?_has:Condition:subject:code:text=asthma", []string{"gp"}},
		} {
			r := w.Do(t, "GET", c.path, c.token, nil)
			if r.Status != 200 {
				t.Errorf("%s: %d %.300s", c.name, r.Status, r.Body)
				continue
			}
			got, _ := searchIDs(t, r)
			var want []string
			for _, n := range c.want {
				want = append(want, x[n])
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %v, want %v (%s)", c.name, got, want, strings.Join(c.want, ", "))
			}
		}
		// Conditions are searched the same way: the physician's
		// If-None-Exist does not match through the patient outside care.
		r := w.Do(t, "POST", "/fhir/Observation", P, []byte(obsFor(x["gp"], "")), "If-None-Exist: focus:Patient.name=Otherby")
		if r.Status != 201 || strings.Contains(string(r.Body), x["gpFocusOther"]) {
			t.Errorf("conditional create through a chain: %d %.300s", r.Status, r.Body)
		}
	})
}

// historyEntries returns a history Bundle's entries as "id@version"
// ("id@version-deleted" for a deletion) and its next link.
func historyEntries(t *testing.T, r *apptest.Response) (entries []string, next string) {
	t.Helper()
	var b struct {
		Link  []struct{ Relation, URL string }
		Entry []struct {
			FullURL  string
			Request  struct{ Method string }
			Response struct{ Etag string }
		}
	}
	if err := json.Unmarshal(r.Body, &b); err != nil {
		t.Fatalf("%v: %.300s", err, r.Body)
	}
	for _, e := range b.Entry {
		id := e.FullURL[strings.LastIndex(e.FullURL, "/")+1:]
		v := strings.TrimSuffix(strings.TrimPrefix(e.Response.Etag, `W/"`), `"`)
		s := id + "@" + v
		if e.Request.Method == "DELETE" {
			s += "-deleted"
		}
		entries = append(entries, s)
	}
	for _, l := range b.Link {
		if l.Relation == "next" {
			next = l.URL
		}
	}
	return entries, next
}

// TestTypeAndSystemHistoryStayInCare: type and system history list, for
// each role, only versions of resources the caller may see, each decided
// on its own body (a record moved between patients shows only the
// versions about one the caller may see), deletions only when the version
// before them is visible; paging walks only that; an admin's history is
// unchanged. On both databases.
func TestTypeAndSystemHistoryStayInCare(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		x := setupAccess(t, w).ids
		A := w.Tokens[authz.RoleAdmin]
		mk := func(name, body string) { x[name] = w.Create(t, authz.RoleAdmin, body) }
		put := func(name, pid string) {
			body := strings.Replace(obsFor(pid, ""), `{"resourceType":"Observation",`, `{"resourceType":"Observation","id":"`+x[name]+`",`, 1)
			if r := w.Do(t, "PUT", "/fhir/Observation/"+x[name], A, []byte(body)); r.Status != 200 {
				t.Fatalf("update %s: %d %s", name, r.Status, r.Body)
			}
		}
		del := func(name string) {
			if r := w.Do(t, "DELETE", "/fhir/Observation/"+x[name], A, nil); r.Status != 204 && r.Status != 200 {
				t.Fatalf("delete %s: %d %s", name, r.Status, r.Body)
			}
		}
		mk("moveIn", obsFor(x["other"], "")) // v1 about other, v2 about gp
		put("moveIn", x["gp"])
		mk("moveOut", obsFor(x["gp"], "")) // v1 about gp, v2 about other
		put("moveOut", x["other"])
		mk("delGP", obsFor(x["gp"], ""))
		del("delGP")
		mk("delOther", obsFor(x["other"], ""))
		del("delOther")
		v := func(name, version string) string { return x[name] + "@" + version }
		for _, c := range []struct {
			name string
			role authz.Role
			path string
			want []string
			not  []string
		}{
			{"physician: observation history", authz.RolePhysician, "/fhir/Observation/_history?_count=100",
				[]string{v("obsGP", "1"), v("obsEnc", "1"), v("moveIn", "2"), v("delGP", "1"), v("delGP", "2-deleted")},
				[]string{x["obsOther"], x["obsGPHIV"], x["obsTeam"], x["obsMe"], v("moveIn", "1"), x["moveOut"], x["delOther"]}},
			{"physician: patient history", authz.RolePhysician, "/fhir/Patient/_history?_count=100",
				[]string{v("gp", "1"), v("enc", "1")}, []string{x["other"], x["team"], x["oldEnc"], "patient-user"}},
			{"physician: system history", authz.RolePhysician, "/fhir/_history?_count=200",
				[]string{v("gp", "1"), v("obsGP", "1"), v("encounter", "1"), "pract-physician@1", v("moveIn", "2")},
				[]string{x["other"], x["obsOther"], x["obsGPHIV"], x["team"], x["obsTeam"], v("moveIn", "1"), x["moveOut"], x["delOther"], x["careTeam"]}},
			{"nurse: observation history", authz.RoleNurse, "/fhir/Observation/_history?_count=100",
				[]string{v("obsTeam", "1")}, []string{x["obsGP"], x["obsOther"], x["obsMe"], x["moveIn"], x["delGP"], x["delOther"]}},
			{"nurse: system history", authz.RoleNurse, "/fhir/_history?_count=200",
				[]string{v("team", "1"), v("obsTeam", "1"), v("careTeam", "1")}, []string{x["gp"], x["obsGP"], x["other"], x["obsOther"]}},
			{"patient: observation history", authz.RoleUser, "/fhir/Observation/_history?_count=100",
				[]string{v("obsMe", "1")}, []string{x["obsGP"], x["obsOther"], x["obsTeam"], x["moveIn"], x["delGP"]}},
			{"patient: patient history", authz.RoleUser, "/fhir/Patient/_history?_count=100",
				[]string{"patient-user@1"}, []string{x["gp"], x["other"]}},
			{"admin: observation history", authz.RoleAdmin, "/fhir/Observation/_history?_count=100",
				[]string{v("obsGP", "1"), v("obsOther", "1"), v("moveIn", "1"), v("moveIn", "2"), v("moveOut", "1"), v("moveOut", "2"), v("delOther", "1"), v("delOther", "2-deleted"), v("obsMe", "1")},
				[]string{x["obsGPHIV"]}},
		} {
			r := w.Do(t, "GET", c.path, w.Tokens[c.role], nil)
			if r.Status != 200 {
				t.Errorf("%s: %d %.300s", c.name, r.Status, r.Body)
				continue
			}
			got, _ := historyEntries(t, r)
			for _, s := range c.want {
				if !slices.Contains(got, s) {
					t.Errorf("%s: %s missing from %v", c.name, s, got)
				}
			}
			for _, s := range c.not {
				if slices.ContainsFunc(got, func(e string) bool { return strings.HasPrefix(e, s) }) {
					t.Errorf("%s: %s leaked: %v", c.name, s, got)
				}
			}
		}
		// A patient's system history stays refused by role (like a system
		// search without _type: the role does not read every type).
		if r := w.Do(t, "GET", "/fhir/_history", w.Tokens[authz.RoleUser], nil); r.Status != 403 {
			t.Errorf("patient: system history: %d %.300s", r.Status, r.Body)
		}
		// Paging one version at a time walks exactly what one page shows.
		P := w.Tokens[authz.RolePhysician]
		all, _ := historyEntries(t, w.Do(t, "GET", "/fhir/Observation/_history?_count=100", P, nil))
		var walked []string
		r := w.Do(t, "GET", "/fhir/Observation/_history?_count=1", P, nil)
		for pages := 0; r.Status == 200 && pages < 50; pages++ {
			got, next := historyEntries(t, r)
			walked = append(walked, got...)
			if next == "" {
				break
			}
			r = w.Do(t, "GET", strings.TrimPrefix(next, w.Server.URL), P, nil)
		}
		if !slices.Equal(walked, all) {
			t.Errorf("paging walked %v, one page holds %v", walked, all)
		}
		// The ledger names only what was shown.
		for _, rec := range w.Ledger(t) {
			if rec.Actor == w.UserIDs[authz.RolePhysician] && strings.HasPrefix(rec.Action, "history") {
				for _, e := range rec.Entities {
					if strings.Contains(e, x["obsOther"]) || strings.Contains(e, x["other"]) || strings.Contains(e, x["delOther"]) {
						t.Errorf("ledger of %s names %s", rec.Action, e)
					}
				}
			}
		}
	})
}

// TestClinicianConditionalDelete: a clinician's conditional delete removes
// only the matches they may delete (care, labels, consent down to the one
// resource) and names only those; the others are neither deleted nor
// revealed. The cap counts the matches the caller may see. Break-the-glass
// deletes outside care as an audited emergency. On both databases.
func TestClinicianConditionalDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		x := setupAccess(t, w).ids
		A := w.Tokens[authz.RoleAdmin]
		clearedAdmin := w.Login(t, "cleared-admin", apptest.Password)
		batch := func(n string) string { return `,"identifier":[{"system":"urn:cd","value":"` + n + `"}]` }
		mk := func(name, tok, body string) {
			r := w.Do(t, "POST", "/fhir/Observation", tok, []byte(body))
			if r.Status != 201 {
				t.Fatalf("create %s: %d %s", name, r.Status, r.Body)
			}
			x[name] = r.JSON(t)["id"].(string)
		}
		mk("cdGP", A, obsFor(x["gp"], batch("one")))
		mk("cdEnc", A, obsFor(x["enc"], batch("one")))
		mk("cdEncDenied", A, obsFor(x["enc"], batch("one")))
		mk("cdOther", A, obsFor(x["other"], batch("one")))
		mk("cdTeam", A, obsFor(x["team"], batch("one")))
		mk("cdMe", A, obsFor("patient-user", batch("one")))
		mk("cdGPHIV", clearedAdmin, obsFor(x["gp"], batch("one")+`,"meta":{"security":[{"code":"HIV"}]}`))
		// enc's consent denies the physician that one Observation: the SQL
		// restriction keeps enc, the decision on the resource refuses it.
		w.Create(t, authz.RoleAdmin, `{"resourceType":"Consent","status":"active",`+
			`"scope":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/consentscope","code":"patient-privacy"}]},`+
			`"category":[{"coding":[{"system":"http://loinc.org","code":"59284-0"}]}],"patient":{"reference":"Patient/`+x["enc"]+`"},`+
			`"policyRule":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"OPTIN"}]},`+
			`"provision":{"type":"permit","provision":[{"type":"deny","actor":[{"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PRCP"}]},"reference":{"reference":"Practitioner/pract-physician"}}],`+
			`"data":[{"meaning":"instance","reference":{"reference":"Observation/`+x["cdEncDenied"]+`"}}]}]}}`)
		alive := func(name string, want int) {
			t.Helper()
			tok := A
			if name == "cdGPHIV" {
				tok = clearedAdmin
			}
			if r := w.Do(t, "GET", "/fhir/Observation/"+x[name], tok, nil); r.Status != want {
				t.Errorf("%s reads %d, want %d", name, r.Status, want)
			}
		}
		others := []string{x["cdOther"], x["cdTeam"], x["cdMe"], x["cdGPHIV"], x["cdEncDenied"]}
		one := "/fhir/Observation?identifier=" + url.QueryEscape("urn:cd|one")

		// Seven match in the tenant, three in the physician's search (the
		// cap is 3): the two he may delete are deleted.
		r := w.Do(t, "DELETE", one, w.Tokens[authz.RolePhysician], nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), "2 Observation resources deleted") {
			t.Fatalf("physician's conditional delete: %d %s", r.Status, r.Body)
		}
		for _, id := range others {
			if strings.Contains(string(r.Body), id) {
				t.Errorf("the answer names %s: %s", id, r.Body)
			}
		}
		alive("cdGP", 410)
		alive("cdEnc", 410)
		for _, n := range []string{"cdEncDenied", "cdOther", "cdTeam", "cdMe", "cdGPHIV"} {
			alive(n, 200)
		}
		// Nothing left he may delete: nothing deleted, nothing said.
		if r := w.Do(t, "DELETE", one, w.Tokens[authz.RolePhysician], nil); r.Status != 204 || len(r.Body) != 0 {
			t.Errorf("physician's second conditional delete: %d %s", r.Status, r.Body)
		}
		alive("cdEncDenied", 200)
		// The nurse deletes her CareTeam patient's one.
		if r := w.Do(t, "DELETE", one, w.Tokens[authz.RoleNurse], nil); r.Status != 200 || !strings.Contains(string(r.Body), "1 Observation resources deleted") {
			t.Errorf("nurse's conditional delete: %d %s", r.Status, r.Body)
		}
		alive("cdTeam", 410)
		alive("cdOther", 200)
		// More matches in care than the cap: 412, nothing deleted.
		for _, n := range []string{"cdGP2", "cdGP3", "cdEnc2", "cdGP4"} {
			pid := x["gp"]
			if n == "cdEnc2" {
				pid = x["enc"]
			}
			mk(n, A, obsFor(pid, batch("two")))
		}
		if r := w.Do(t, "DELETE", "/fhir/Observation?identifier="+url.QueryEscape("urn:cd|two"), w.Tokens[authz.RolePhysician], nil); r.Status != 412 {
			t.Errorf("over the cap: %d %s", r.Status, r.Body)
		}
		for _, n := range []string{"cdGP2", "cdGP3", "cdEnc2", "cdGP4"} {
			alive(n, 200)
		}
		// Break-the-glass: outside care and the consent are overridden (the
		// label is not), recorded as an emergency.
		if r := w.Do(t, "DELETE", one, w.Tokens[authz.RolePhysician], nil, "X-Break-Glass: ETREAT"); r.Status != 200 || !strings.Contains(string(r.Body), "3 Observation resources deleted") {
			t.Errorf("break-glass conditional delete: %d %s", r.Status, r.Body)
		}
		for _, n := range []string{"cdEncDenied", "cdOther", "cdMe"} {
			alive(n, 410)
		}
		alive("cdGPHIV", 200)
		// The ledger: each delete names what it deleted, nothing else.
		var deletes []string
		for _, rec := range w.Ledger(t) {
			if rec.Action != "delete" || !strings.HasPrefix(rec.Detail, "conditional") {
				continue
			}
			ents := strings.Join(rec.Entities, " ")
			deletes = append(deletes, fmt.Sprintf("%s %v %d", rec.Role, rec.Emergency, len(rec.Entities)))
			if rec.Role == "physician" && !rec.Emergency && (strings.Contains(ents, x["cdOther"]) || strings.Contains(ents, x["cdEncDenied"]) || strings.Contains(ents, x["cdGPHIV"])) {
				t.Errorf("the physician's delete record names what it did not delete: %v", rec.Entities)
			}
			if rec.Emergency && !strings.Contains(rec.Detail, "break-glass:ETREAT") {
				t.Errorf("emergency delete record: %+v", rec)
			}
		}
		if want := []string{"physician false 2", "physician false 0", "nurse false 1", "physician true 3"}; !slices.Equal(deletes, want) {
			t.Errorf("conditional delete records %v, want %v", deletes, want)
		}
	}, func(c *config.Config) { c.ConditionalDeleteMax = 3 })
}
