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
