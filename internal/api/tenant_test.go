package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
)

// loginTenant runs the password grant for a tenant and returns the status
// and the access token.
func loginTenant(t *testing.T, w *apptest.Ward, tenant, username, password string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	if tenant != "" {
		form.Set("tenant", tenant)
	}
	resp, err := http.PostForm(w.Server.URL+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.AccessToken
}

// A user of tenant B logs in to tenant B (the token carries it) and sees
// none of tenant A's data through read, search, history or _include, and
// the other way round.
func TestTenantsAreIsolatedEndToEnd(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		ctx := context.Background()
		if err := authn.AddTenant(ctx, w.App.Store, authn.Actor{ID: "test", Role: "system"}, "clinic-b"); err != nil {
			t.Fatal(err)
		}
		apptest.AddUser(t, w.App.Store, "clinic-b", "doc-b", authz.RoleAdmin)
		// Without tenant the login goes to the default tenant, where doc-b
		// does not exist; an unknown or malformed tenant is just a failed login.
		for _, tenant := range []string{"", "default", "nowhere", "../default", strings.Repeat("x", 100)} {
			if code, _ := loginTenant(t, w, tenant, "doc-b", apptest.Password); code != 400 {
				t.Errorf("doc-b logged in to tenant %q: %d", tenant, code)
			}
		}
		code, tokB := loginTenant(t, w, "clinic-b", "doc-b", apptest.Password)
		if code != 200 {
			t.Fatalf("login to clinic-b: %d", code)
		}
		if claims := jwtClaims(t, tokB); claims["tenant"] != "clinic-b" {
			t.Fatalf("token tenant %v", claims["tenant"])
		}
		pidA := w.Create(t, authz.RoleAdmin, patient)
		obsA := w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+pidA+`"}}`)
		rB := w.Do(t, "POST", "/fhir/Patient", tokB, []byte(`{"resourceType":"Patient","name":[{"family":"Brightwater"}]}`))
		if rB.Status != 201 {
			t.Fatalf("create in clinic-b: %d %s", rB.Status, rB.Body)
		}
		pidB, _ := rB.JSON(t)["id"].(string)
		for _, sc := range []scenario{
			{name: "B reads A's patient", method: "GET", path: "/fhir/Patient/" + pidA, token: tokB, status: 404, notWant: []string{"Quillfeather"}},
			{name: "B reads A's observation", method: "GET", path: "/fhir/Observation/" + obsA, token: tokB, status: 404},
			{name: "B searches", method: "GET", path: "/fhir/Patient?_total=accurate", token: tokB, status: 200, want: []string{"Brightwater", `"total":1`}, notWant: []string{"Quillfeather", pidA}},
			{name: "B searches with _revinclude", method: "GET", path: "/fhir/Patient?_revinclude=Observation:subject", token: tokB, status: 200, notWant: []string{obsA, pidA}},
			{name: "B's history", method: "GET", path: "/fhir/_history", token: tokB, status: 200, notWant: []string{pidA, obsA, "Quillfeather"}},
			{name: "B's instance history of A's patient", method: "GET", path: "/fhir/Patient/" + pidA + "/_history", token: tokB, status: 404, notWant: []string{"Quillfeather"}},
			{name: "A's patient is untouched", method: "GET", path: "/fhir/Patient/" + pidA, role: authz.RoleAdmin, status: 200, want: []string{"Quillfeather", `"versionId":"1"`}},
			{name: "A reads B's patient", method: "GET", path: "/fhir/Patient/" + pidB, role: authz.RoleAdmin, status: 404, notWant: []string{"Brightwater"}},
			{name: "A searches", method: "GET", path: "/fhir/Patient", role: authz.RoleAdmin, status: 200, want: []string{"Quillfeather"}, notWant: []string{"Brightwater", pidB}},
			{name: "B's admin API sees only B", method: "GET", path: "/admin/users", token: tokB, status: 200, want: []string{"doc-b", "clinic-b"}, notWant: []string{"physician-user", `"tenant":"default"`}},
		} {
			sc.run(t, w)
		}
		// The ledger records B's reads under tenant B.
		var sawB bool
		for _, rec := range w.Ledger(t) {
			if rec.Actor != "" && rec.Tenant == "clinic-b" && rec.Action == "search-type" {
				sawB = true
			}
			if rec.Tenant == "default" && strings.Contains(strings.Join(rec.Entities, " "), pidB) {
				t.Errorf("B's patient in a tenant-A record: %+v", rec)
			}
		}
		if !sawB {
			t.Error("no search record under clinic-b")
		}
	})
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := decodeSeg(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
