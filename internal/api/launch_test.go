package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// launchFor creates an EHR launch as the holder of token.
func launchFor(t *testing.T, w *apptest.Ward, token, clientID, patient, encounter string) *apptest.Response {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"client_id": clientID, "patient": patient, "encounter": encounter})
	return w.Do(t, "POST", "/oauth2/launch", token, body, "Content-Type: application/json")
}

// codeFor runs the browser part of an authorization request (with mod
// applied) as username and returns the code, or the error the app got.
func (a *smartApp) codeFor(mod func(url.Values), verifier, username string) (code string, got url.Values) {
	a.t.Helper()
	a.mu.Lock()
	a.got = nil
	a.mu.Unlock()
	resp, handle, _ := a.openLogin(a.authorizeURL(mod, verifier))
	if resp.StatusCode != 200 || handle == "" {
		// Refused back to the app: the browser followed the redirect.
		return "", a.received()
	}
	resp, _ = a.through(a.submit(handle, username, apptest.Password, ""))
	got = a.received()
	if resp.StatusCode != 200 {
		a.t.Fatalf("login: %d", resp.StatusCode)
	}
	return got.Get("code"), got
}

// The SMART EHR launch end to end: a physician creates a launch for a
// patient they care for, the app authorizes with it, the token response
// and the token carry that patient, patient/ scopes reach that patient
// only; launches are single-use, bound to the app and the user, and need
// the right to read the patient.
func TestEHRLaunch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		gp := `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`
		pid := w.Create(t, authz.RoleAdmin, gp)
		pid2 := w.Create(t, authz.RoleAdmin, gp) // also the physician's, but not in the launch
		other := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"male"}`)
		obs := w.Create(t, authz.RoleAdmin, obsFor(pid, ""))
		obs2 := w.Create(t, authz.RoleAdmin, obsFor(pid2, ""))
		enc := w.Create(t, authz.RoleAdmin, `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`+pid+`"}}`)
		enc2 := w.Create(t, authz.RoleAdmin, `{"resourceType":"Encounter","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"subject":{"reference":"Patient/`+pid2+`"}}`)
		app := newSMARTApp(t, w, "ehr-app", "launch openid fhirUser patient/*.rs offline_access")
		newSMARTApp(t, w, "no-launch-app", "openid patient/*.rs")
		doc := w.Tokens[authz.RolePhysician]

		// Creating launches: the user must be allowed to read the patient.
		for _, c := range []struct {
			name                       string
			token, client, pat, encntr string
			status                     int
			want                       string
		}{
			{"no token", "", "ehr-app", pid, "", 401, "bearer token"},
			{"no care relationship", doc, "ehr-app", other, "", 403, "OperationOutcome"},
			{"nurse without relationship", w.Tokens[authz.RoleNurse], "ehr-app", pid, "", 403, "OperationOutcome"},
			{"patient account, another patient", w.Tokens[authz.RoleUser], "ehr-app", pid, "", 403, "OperationOutcome"},
			{"unknown patient", doc, "ehr-app", "nope", "", 403, "OperationOutcome"},
			{"bad patient id", doc, "ehr-app", "a/b", "", 400, "patient must be"},
			{"unknown app", doc, "nope", pid, "", 400, "client_id must name"},
			{"app not registered for launch", doc, "no-launch-app", pid, "", 400, "client_id must name"},
			{"encounter of another patient", doc, "ehr-app", pid, enc2, 400, "not one of this patient"},
		} {
			r := launchFor(t, w, c.token, c.client, c.pat, c.encntr)
			if r.Status != c.status || !strings.Contains(string(r.Body), c.want) {
				t.Errorf("%s: %d %.300s", c.name, r.Status, r.Body)
			}
		}
		r := launchFor(t, w, doc, "ehr-app", pid, enc)
		if r.Status != 201 {
			t.Fatalf("create launch: %d %s", r.Status, r.Body)
		}
		created := r.JSON(t)
		launch, _ := created["launch"].(string)
		if len(launch) < 40 || created["iss"] != w.URL || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("launch answer: %v", created)
		}

		// The app, opened with iss and launch, authorizes with them.
		verifier := strings.Repeat("ehr-launch-", 5)
		withLaunch := func(l string) func(url.Values) {
			return func(q url.Values) {
				q.Set("scope", "launch openid fhirUser patient/*.rs offline_access")
				q.Set("launch", l)
			}
		}
		code, got := app.codeFor(withLaunch(launch), verifier, "physician-user")
		if code == "" {
			t.Fatalf("no code: %v", got)
		}
		status, tok := app.exchange(code, verifier)
		if status != 200 || tok["patient"] != pid || tok["encounter"] != enc || tok["access_token"] == nil {
			t.Fatalf("token: %d %v", status, tok)
		}
		// The EHR shows the banner; the encounter is in fhirContext too.
		if tok["need_patient_banner"] != false || jsonString(tok["fhirContext"]) != `[{"reference":"Encounter/`+enc+`"}]` {
			t.Errorf("launch context: %v", tok)
		}
		at := tok["access_token"].(string)
		read := func(token, path string) int { return w.Do(t, "GET", path, token, nil).Status }
		for path, want := range map[string]int{
			"/fhir/Patient/" + pid:      200,
			"/fhir/Observation/" + obs:  200,
			"/fhir/Patient/" + pid2:     403, // the physician's patient, outside the launch context
			"/fhir/Observation/" + obs2: 403,
			"/fhir/Patient/" + other:    403,
		} {
			if s := read(at, path); s != want {
				t.Errorf("launch token %s: %d, want %d", path, s, want)
			}
		}
		// The physician's own token reaches the other patient they care
		// for: the refusal above is the launch context's.
		if s := read(doc, "/fhir/Patient/"+pid2); s != 200 {
			t.Fatalf("physician reads their other patient: %d", s)
		}
		if r := w.Do(t, "GET", "/fhir/Observation", at, nil); r.Status != 200 || !strings.Contains(string(r.Body), obs) || strings.Contains(string(r.Body), obs2) {
			t.Errorf("search with the launch token: %d %.500s", r.Status, r.Body)
		}
		// A refreshed token keeps the launch's patient context.
		resp, err := http.PostForm(w.Server.URL+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}})
		if err != nil {
			t.Fatal(err)
		}
		var ref map[string]any
		json.NewDecoder(resp.Body).Decode(&ref)
		resp.Body.Close()
		if resp.StatusCode != 200 || ref["patient"] != pid {
			t.Fatalf("refresh: %d %v", resp.StatusCode, ref)
		}
		if s := read(ref["access_token"].(string), "/fhir/Patient/"+pid2); s != 403 {
			t.Errorf("refreshed token outside the context: %d", s)
		}
		if s := read(ref["access_token"].(string), "/fhir/Patient/"+pid); s != 200 {
			t.Errorf("refreshed token in the context: %d", s)
		}

		// A launch is used once.
		if code, got := app.codeFor(withLaunch(launch), verifier, "physician-user"); code != "" || got.Get("error") != "invalid_request" {
			t.Errorf("launch reused: %q %v", code, got)
		}
		// Unknown launch, a launch without scope launch, scope launch
		// without a launch.
		if code, got := app.codeFor(withLaunch("made-up-launch"), verifier, "physician-user"); code != "" || got.Get("error") != "invalid_request" {
			t.Errorf("unknown launch: %q %v", code, got)
		}
		// Scope launch without a launch (a standalone launch): granted
		// without launch.
		if code, got := app.codeFor(func(q url.Values) { q.Set("scope", "launch patient/*.rs") }, verifier, "physician-user"); code == "" {
			t.Errorf("scope launch without a launch: %v", got)
		} else if status, tok := app.exchange(code, verifier); status != 200 || tok["scope"] != "patient/*.rs" || tok["patient"] != nil {
			t.Errorf("scope launch without a launch: %d %v", status, tok)
		}
		if code, got := app.codeFor(func(q url.Values) { q.Set("scope", "launch") }, verifier, "physician-user"); code != "" || got.Get("error") != "invalid_scope" {
			t.Errorf("only scope launch without a launch: %q %v", code, got)
		}
		if code, got := app.codeFor(func(q url.Values) { q.Set("scope", "patient/*.rs"); q.Set("launch", launch) }, verifier, "physician-user"); code != "" || got.Get("error") != "invalid_scope" {
			t.Errorf("a launch without scope launch: %q %v", code, got)
		}
		// A launch created for one app is refused to another.
		r = launchFor(t, w, doc, "ehr-app", pid, "")
		l2 := r.JSON(t)["launch"].(string)
		app2 := newSMARTApp(t, w, "ehr-app-2", "launch openid fhirUser patient/*.rs offline_access")
		if code, got := app2.codeFor(withLaunch(l2), verifier, "physician-user"); code != "" || got.Get("error") != "invalid_request" || !strings.Contains(got.Get("error_description"), "another app") {
			t.Errorf("launch of another app: %q %v", code, got)
		}
		// Only the user who created the launch gets its patient: the
		// nurse signing in is sent back with access_denied.
		if code, got := app.codeFor(withLaunch(l2), verifier, "nurse-user"); code != "" || got.Get("error") != "access_denied" {
			t.Errorf("launch by another user: %q %v", code, got)
		}
		// That attempt did not use the launch up for its creator.
		if code, got := app.codeFor(withLaunch(l2), verifier, "physician-user"); code == "" {
			t.Errorf("the creator's launch after another user's attempt: %v", got)
		}

		// The ledger: launch creation and the code naming the patient by
		// id, never the launch value.
		seen := map[string]bool{}
		for _, rec := range w.Ledger(t) {
			switch {
			case rec.Action == "launch-create" && rec.Actor == w.UserIDs[authz.RolePhysician]:
				seen["create"] = true
			case rec.Action == "code-issue" && rec.Detail == "ehr-launch" && slices.Contains(rec.Entities, "Patient/"+pid):
				seen["code"] = true
			case rec.Action == "login" && rec.Detail == "launch-user-mismatch":
				seen["mismatch"] = true
			}
			if strings.Contains(strings.Join(append(rec.Entities, rec.Detail), " "), launch) {
				t.Errorf("launch value in the ledger: %+v", rec)
			}
		}
		if len(seen) != 3 {
			t.Errorf("ledger: %v", seen)
		}
	})
}
