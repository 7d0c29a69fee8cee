package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
)

// The admin API: admin role only (refusals audited), JSON in and out,
// OperationOutcome errors, scoped to the admin's tenant, no hashes or
// secrets in answers, every change in the ledger.
func TestAdminAPI(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		js := []string{"Content-Type: application/json"}
		for _, sc := range []scenario{
			{name: "no token", method: "GET", path: "/admin/users", status: 401, want: []string{"OperationOutcome", "bearer token"}},
			{name: "nurse refused", method: "GET", path: "/admin/users", role: authz.RoleNurse, status: 403, want: []string{"OperationOutcome", "admin role only"}},
			{name: "physician refused a change", method: "POST", path: "/admin/users", role: authz.RolePhysician, body: `{}`, headers: js, status: 403},
			{name: "list users", method: "GET", path: "/admin/users", role: authz.RoleAdmin, status: 200,
				want: []string{`"username":"nurse-user"`, `"role":"nurse"`, `"state":"active"`}, notWant: []string{"argon2", "password"}},
			{name: "unknown field", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"x","role":"nurse","password":"a long enough password","admin":true}`, want: []string{"unknown field", `\"admin\"`}},
			{name: "not JSON", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, body: `username=x`, status: 400, want: []string{"not a JSON object"}},
			{name: "wrong type", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, body: `{"username":7}`, status: 400, want: []string{"wrong JSON type for username"}},
			{name: "form body", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: []string{"Content-Type: application/x-www-form-urlencoded"}, body: `a=b`, status: 415},
			{name: "weak password", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"newnurse","role":"nurse","password":"short"}`, want: []string{"at least 12"}, notWant: []string{"short"}},
			{name: "bad role", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"newnurse","role":"root","password":"a long enough password"}`, want: []string{"role must be one of"}},
			{name: "add user", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 201,
				body: `{"username":"newnurse","role":"nurse","password":"a long enough password"}`, want: []string{`"username":"newnurse"`, `"tenant":"default"`}, notWant: []string{"argon2", "long enough"}},
			{name: "duplicate user", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 409,
				body: `{"username":"newnurse","role":"nurse","password":"a long enough password"}`, want: []string{"already exists"}},
			{name: "disable unknown user", method: "POST", path: "/admin/users/0b0e6a2c-0000-4000-8000-000000000000/disable", role: authz.RoleAdmin, status: 404, want: []string{"no such user"}},
			{name: "bad verb", method: "POST", path: "/admin/users/" + w.UserIDs[authz.RoleNurse] + "/delete", role: authz.RoleAdmin, status: 404},
			{name: "private JWKS refused", method: "POST", path: "/admin/clients", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"client_id":"b1","scope":"system/Patient.rs","jwks":{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}]}}`,
				want: []string{"private key"}, notWant: []string{"870MB6"}},
			{name: "backend client", method: "POST", path: "/admin/clients", role: authz.RoleAdmin, headers: js, status: 201,
				body: `{"client_id":"b1","scope":"system/Patient.rs","jwks":{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM"}]}}`,
				want: []string{`"kind":"backend"`}},
			{name: "app with a plain http redirect", method: "POST", path: "/admin/clients", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"client_id":"app1","scope":"openid launch/patient","redirect_uris":["http://app.example/cb"]}`, want: []string{"must use https"}},
			{name: "public app", method: "POST", path: "/admin/clients", role: authz.RoleAdmin, headers: js, status: 201,
				body: `{"client_id":"app1","scope":"openid launch/patient user/*.rs","redirect_uris":["https://app.example/cb"]}`, want: []string{`"kind":"app"`, "https://app.example/cb"}},
			{name: "duplicate client", method: "POST", path: "/admin/clients", role: authz.RoleAdmin, headers: js, status: 409,
				body: `{"client_id":"app1","scope":"openid","redirect_uris":["https://app.example/cb"]}`},
			{name: "disable client", method: "POST", path: "/admin/clients/app1/disable", role: authz.RoleAdmin, status: 200, want: []string{`"disabled":true`}},
			{name: "list clients", method: "GET", path: "/admin/clients", role: authz.RoleAdmin, status: 200,
				want: []string{`"client_id":"app1"`, `"disabled":true`, `"client_id":"b1"`, `"kty":"EC"`}},
			{name: "client admin refused", method: "GET", path: "/admin/clients", role: authz.RoleUser, status: 403},
			{name: "unknown admin endpoint", method: "GET", path: "/admin/nothing", role: authz.RoleAdmin, status: 404, want: []string{"OperationOutcome"}},
		} {
			sc.run(t, w)
		}
		// Disabling a user through the API ends their logins.
		uid := ""
		for _, u := range w.Do(t, "GET", "/admin/users", w.Tokens[authz.RoleAdmin], nil).JSON(t)["users"].([]any) {
			if m := u.(map[string]any); m["username"] == "newnurse" {
				uid = m["id"].(string)
			}
		}
		w.Login(t, "newnurse", "a long enough password")
		if r := w.Do(t, "POST", "/admin/users/"+uid+"/disable", w.Tokens[authz.RoleAdmin], nil); r.Status != 200 {
			t.Fatalf("disable: %d %s", r.Status, r.Body)
		}
		resp, err := http.PostForm(w.Server.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {"newnurse"}, "password": {"a long enough password"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Fatalf("disabled user logged in: %d", resp.StatusCode)
		}
		// The ledger has the changes by the admin's id and the refusals.
		want := map[string]bool{"user-add": false, "user-disable": false, "client-add": false, "client-disable": false, "user-list": false, "denied": false}
		for _, rec := range w.Ledger(t) {
			if rec.Actor == w.UserIDs[authz.RoleAdmin] && rec.Outcome == audit.OutcomeSuccess {
				if _, ok := want[rec.Action]; ok {
					want[rec.Action] = true
				}
			}
			if rec.Actor == w.UserIDs[authz.RoleNurse] && rec.Action == "user-list" && strings.HasPrefix(rec.Detail, "denied:") {
				want["denied"] = true
			}
			if strings.Contains(rec.Detail, "newnurse") || strings.Contains(strings.Join(rec.Entities, " "), "newnurse") {
				t.Errorf("a username is in the ledger: %+v", rec)
			}
		}
		for k, seen := range want {
			if !seen {
				t.Errorf("ledger lacks %s", k)
			}
		}
	})
}

// POST /admin/users takes the links `ward users add` takes (practitioner,
// patient, clearance) with the same rules, GET shows them, and a
// physician created over REST with a Practitioner link gets that
// Practitioner's care relationships.
func TestAdminUserLinks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		admin := w.Tokens[authz.RoleAdmin]
		put := func(path, body string) {
			if r := w.Do(t, "PUT", "/fhir/"+path, admin, []byte(body)); r.Status != 201 && r.Status != 200 {
				t.Fatalf("put %s: %d %s", path, r.Status, r.Body)
			}
		}
		put("Practitioner/pract-rest", `{"resourceType":"Practitioner","id":"pract-rest","active":true}`)
		mine := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"female","generalPractitioner":[{"reference":"Practitioner/pract-rest"}]}`)
		theirs := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"male","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
		js := []string{"Content-Type: application/json"}
		pw := `"password":"a long enough password"`
		for _, sc := range []scenario{
			{name: "practitioner for a user-role account", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"u1","role":"user","practitioner":"pract-rest","patient":"` + mine + `",` + pw + `}`, want: []string{"OperationOutcome", "not both"}},
			{name: "user-role account without a patient", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"u1","role":"user",` + pw + `}`, want: []string{"needs patient"}},
			{name: "patient for a nurse", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"u1","role":"nurse","patient":"` + mine + `",` + pw + `}`, want: []string{"patient links a user-role account"}},
			{name: "practitioner for an admin", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"u1","role":"admin","practitioner":"pract-rest",` + pw + `}`, want: []string{"practitioner links a physician or nurse"}},
			{name: "malformed practitioner id", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"u1","role":"physician","practitioner":"a/b",` + pw + `}`, want: []string{"must be a FHIR id"}},
			{name: "unknown practitioner", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"u1","role":"physician","practitioner":"nobody",` + pw + `}`, want: []string{"no Practitioner with this id"}},
			{name: "unknown clearance", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 400,
				body: `{"username":"u1","role":"physician","clearance":["TOPSECRET"],` + pw + `}`, want: []string{"needs a clearance"}},
			{name: "linked physician", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 201,
				body: `{"username":"rest-doc","role":"physician","practitioner":"pract-rest","clearance":["HIV"],` + pw + `}`,
				want: []string{`"practitioner":"pract-rest"`, `"clearance":["HIV"]`}},
			{name: "linked patient account", method: "POST", path: "/admin/users", role: authz.RoleAdmin, headers: js, status: 201,
				body: `{"username":"rest-patient","role":"user","patient":"` + mine + `",` + pw + `}`, want: []string{`"patient":"` + mine + `"`}},
			{name: "listed with links", method: "GET", path: "/admin/users", role: authz.RoleAdmin, status: 200,
				want: []string{`"username":"rest-doc"`, `"practitioner":"pract-rest"`, `"clearance":["HIV"]`, `"patient":"` + mine + `"`}},
		} {
			sc.run(t, w)
		}
		doc := w.Login(t, "rest-doc", "a long enough password")
		if s := w.Do(t, "GET", "/fhir/Patient/"+mine, doc, nil).Status; s != 200 {
			t.Errorf("REST-created physician reads the patient naming their Practitioner: %d", s)
		}
		if s := w.Do(t, "GET", "/fhir/Patient/"+theirs, doc, nil).Status; s != 403 {
			t.Errorf("REST-created physician reads another's patient: %d", s)
		}
		pat := w.Login(t, "rest-patient", "a long enough password")
		if s := w.Do(t, "GET", "/fhir/Patient/"+mine, pat, nil).Status; s != 200 {
			t.Errorf("REST-created patient account reads its patient: %d", s)
		}
		if s := w.Do(t, "GET", "/fhir/Patient/"+theirs, pat, nil).Status; s != 403 {
			t.Errorf("REST-created patient account reads another patient: %d", s)
		}
		// The ledger names the linked resources by id.
		found := false
		for _, rec := range w.Ledger(t) {
			if rec.Action == "user-add" && rec.Actor == w.UserIDs[authz.RoleAdmin] && strings.Contains(strings.Join(rec.Entities, " "), "Practitioner/pract-rest") {
				found = true
			}
		}
		if !found {
			t.Error("ledger lacks the link of the REST-created user")
		}
	})
}
