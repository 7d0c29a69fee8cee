package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/store"
)

// post submits one of the authorization's pages like the browser would.
func (a *smartApp) post(path string, form url.Values) (*http.Response, string) {
	a.t.Helper()
	resp, err := a.browser.PostForm(a.w.Server.URL+path, form)
	if err != nil {
		a.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func handleOf(t *testing.T, body string) string {
	t.Helper()
	m := handleField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no handle in %.300s", body)
	}
	return strings.ReplaceAll(m[1], "&#43;", "+")
}

// The patient picker shows only patients in the signed-in user's care,
// searched by name prefix and birth date through the records path; a
// patient outside the care cannot be chosen; the consent screen names
// the app, the scopes in plain words and the patient; deny sends the app
// access_denied; allow is remembered until revoked at /oauth2/grants
// (self-service and admin); each grant and revocation is in the ledger;
// introspection shows the token's context.
func TestSMARTPickerConsentGrants(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		pid := w.Create(t, authz.RolePhysician, patient)
		w.Create(t, authz.RolePhysician, `{"resourceType":"Patient","name":[{"family":"Quillon"}],"birthDate":"1990-01-02","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
		stranger := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Quillby"}],"birthDate":"1961-07-14"}`)
		app := newSMARTApp(t, w, "picker-app", "openid fhirUser launch/patient patient/*.rs")
		verifier := strings.Repeat("p1ck3r-", 7)
		scope := func(q url.Values) { q.Set("scope", "openid fhirUser launch/patient patient/Observation.rs") }

		start := func() string {
			_, handle, page := app.openLogin(app.authorizeURL(scope, verifier))
			if handle == "" {
				t.Fatalf("no login page: %.300s", page)
			}
			resp, body := app.submit(handle, "physician-user", apptest.Password, "")
			if resp.StatusCode != 200 || !strings.Contains(body, "Choose a patient") {
				t.Fatalf("no picker: %d %.300s", resp.StatusCode, body)
			}
			return handleOf(t, body)
		}
		h := start()
		for _, c := range []struct {
			name      string
			form      url.Values
			status    int
			want, not []string
		}{
			{"name prefix", url.Values{"action": {"search"}, "name": {"Quill"}}, 200, []string{"Quillfeather", "Quillon"}, []string{"Quillby"}},
			{"name and birth date", url.Values{"action": {"search"}, "name": {"quill"}, "birthdate": {"1961-07-14"}}, 200, []string{"Quillfeather"}, []string{"Quillon", "Quillby"}},
			{"birth date only", url.Values{"action": {"search"}, "birthdate": {"1961-07-14"}}, 200, []string{"Quillfeather"}, []string{"Quillby"}},
			{"nobody", url.Values{"action": {"search"}, "name": {"Zed"}}, 200, []string{"No patient in your care matches"}, []string{"Quill"}},
			{"no terms", url.Values{"action": {"search"}}, 400, []string{"Give a name, a birth date"}, nil},
			{"bad date", url.Values{"action": {"search"}, "birthdate": {"14/07/1961"}}, 400, []string{"a date such as"}, nil},
			{"not in care", url.Values{"action": {"choose"}, "patient": {stranger}}, 403, []string{"OperationOutcome"}, []string{"Quillby"}},
		} {
			c.form.Set("handle", h)
			resp, body := app.post("/oauth2/authorize/patient", c.form)
			if resp.StatusCode != c.status {
				t.Errorf("%s: %d %.300s", c.name, resp.StatusCode, body)
			}
			for _, s := range c.want {
				if !strings.Contains(body, s) {
					t.Errorf("%s: lacks %q: %.400s", c.name, s, body)
				}
			}
			for _, s := range c.not {
				if strings.Contains(body, s) {
					t.Errorf("%s: has %q", c.name, s)
				}
			}
		}
		// A picker page without the login: refused.
		if resp, _ := app.post("/oauth2/authorize/patient", url.Values{"handle": {"forged"}, "action": {"search"}, "name": {"Q"}}); resp.StatusCode != 400 {
			t.Errorf("forged picker handle: %d", resp.StatusCode)
		}

		// Choose, then deny: the app gets access_denied and the state.
		resp, body := app.post("/oauth2/authorize/patient", url.Values{"handle": {h}, "action": {"choose"}, "patient": {pid}})
		for _, want := range []string{"picker-app", "Oriel Quillfeather", "Read and search observation records of the chosen patient", `value="deny"`} {
			if resp.StatusCode != 200 || !strings.Contains(body, want) {
				t.Errorf("consent page lacks %q: %d %.500s", want, resp.StatusCode, body)
			}
		}
		app.post("/oauth2/authorize/consent", url.Values{"handle": {handleOf(t, body)}, "decision": {"deny"}})
		if got := app.received(); got.Get("error") != "access_denied" || got.Get("state") != "st-picker-app" || got.Get("code") != "" {
			t.Errorf("deny: app got %v", got)
		}
		// Allow: code; remembered.
		h = start()
		_, body = app.post("/oauth2/authorize/patient", url.Values{"handle": {h}, "action": {"choose"}, "patient": {pid}})
		app.post("/oauth2/authorize/consent", url.Values{"handle": {handleOf(t, body)}, "decision": {"allow"}})
		code := app.received().Get("code")
		status, tok := app.exchange(code, verifier)
		if status != 200 || tok["patient"] != pid || tok["scope"] != "openid fhirUser launch/patient patient/Observation.rs" || tok["need_patient_banner"] != true {
			t.Fatalf("token: %d %v", status, tok)
		}
		if id := jwtClaims(t, tok["id_token"].(string)); id["fhirUser"] != w.URL+"/Practitioner/pract-physician" {
			t.Errorf("id_token fhirUser: %v", id)
		}
		intro := w.Do(t, "POST", "/oauth2/introspect", w.Tokens[authz.RoleAdmin], []byte(url.Values{"token": {tok["access_token"].(string)}}.Encode()), "Content-Type: application/x-www-form-urlencoded").JSON(t)
		if intro["active"] != true || intro["patient"] != pid || intro["client_id"] != "picker-app" || intro["fhirUser"] != "Practitioner/pract-physician" {
			t.Errorf("introspection: %v", intro)
		}
		h = start()
		resp, _ = app.post("/oauth2/authorize/patient", url.Values{"handle": {h}, "action": {"choose"}, "patient": {pid}})
		if app.received().Get("code") == "" {
			t.Fatalf("remembered consent: the consent screen again (%d)", resp.StatusCode)
		}

		// Grants: self-service and admin.
		doc, nurse, admin := w.Tokens[authz.RolePhysician], w.Tokens[authz.RoleNurse], w.Tokens[authz.RoleAdmin]
		docID := w.UserIDs[authz.RolePhysician]
		if g := w.Do(t, "GET", "/oauth2/grants", doc, nil); g.Status != 200 || !strings.Contains(string(g.Body), `"client_id":"picker-app"`) {
			t.Errorf("own grants: %d %s", g.Status, g.Body)
		}
		if g := w.Do(t, "GET", "/oauth2/grants", nurse, nil); g.Status != 200 || strings.Contains(string(g.Body), "picker-app") {
			t.Errorf("another user's grants: %d %s", g.Status, g.Body)
		}
		if g := w.Do(t, "GET", "/oauth2/grants", admin, nil); g.Status != 200 || !strings.Contains(string(g.Body), docID) {
			t.Errorf("admin grants: %d %s", g.Status, g.Body)
		}
		if g := w.Do(t, "GET", "/oauth2/grants", "", nil); g.Status != 401 {
			t.Errorf("grants without a token: %d", g.Status)
		}
		if r := w.Do(t, "DELETE", "/oauth2/grants/picker-app?user_id="+docID, nurse, nil); r.Status != 403 {
			t.Errorf("nurse revokes the physician's grant: %d %s", r.Status, r.Body)
		}
		if r := w.Do(t, "DELETE", "/oauth2/grants/picker-app", doc, nil); r.Status != 204 {
			t.Errorf("revoke own grant: %d %s", r.Status, r.Body)
		}
		if r := w.Do(t, "DELETE", "/oauth2/grants/picker-app", doc, nil); r.Status != 404 {
			t.Errorf("revoke twice: %d %s", r.Status, r.Body)
		}
		// Revoked: the consent screen again.
		h = start()
		if _, body = app.post("/oauth2/authorize/patient", url.Values{"handle": {h}, "action": {"choose"}, "patient": {pid}}); !strings.Contains(body, `value="allow"`) {
			t.Errorf("after revocation, no consent screen: %.300s", body)
		}
		app.post("/oauth2/authorize/consent", url.Values{"handle": {handleOf(t, body)}, "decision": {"allow"}})
		if r := w.Do(t, "DELETE", "/oauth2/grants/picker-app?user_id="+docID, admin, nil); r.Status != 204 {
			t.Errorf("admin revokes: %d %s", r.Status, r.Body)
		}

		// The ledger: two grants, one denial, two revocations; the picker's
		// searches are audited searches; no name typed into it.
		n := map[string]int{}
		for _, rec := range w.Ledger(t) {
			switch {
			case rec.Action == "app-grant" && strings.HasPrefix(rec.Detail, "allowed;"):
				n["grant"]++
			case rec.Action == "app-grant" && rec.Detail == "denied":
				n["deny"]++
			case rec.Action == "app-grant-revoke" && slices.Contains(rec.Entities, "user/"+docID):
				n["revoke"]++
			case rec.Action == "search-type" && rec.Actor == docID:
				n["search"]++
			}
			if strings.Contains(strings.Join(append(rec.Entities, rec.Detail), " "), "Quill") {
				t.Errorf("a typed name in the ledger: %+v", rec)
			}
		}
		if n["grant"] != 2 || n["deny"] != 1 || n["revoke"] != 2 || n["search"] < 4 {
			t.Errorf("ledger: %v", n)
		}
	}, func(c *config.Config) {
		// Each sign-in here is four or five requests to the per-address
		// OAuth limit (login, picker, consent); the test is not about it.
		c.AuthBurst = 1000
	})
}

// Discovery lists exactly what Ward supports.
func TestSMARTDiscovery(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	d := w.Do(t, "GET", "/fhir/.well-known/smart-configuration", "", nil).JSON(t)
	caps := fmt.Sprint(d["capabilities"])
	for _, c := range []string{"launch-standalone", "launch-ehr", "context-standalone-patient", "context-ehr-patient", "context-ehr-encounter", "context-banner",
		"permission-v1", "permission-v2", "permission-patient", "permission-user", "sso-openid-connect", "client-public"} {
		if !strings.Contains(caps, c) {
			t.Errorf("capabilities lack %s: %s", c, caps)
		}
	}
	// Not implemented, so not listed: no standalone encounter picker, no
	// style unless configured, no authorize by POST.
	for _, c := range []string{"context-standalone-encounter", "context-style", "authorize-post"} {
		if strings.Contains(caps, c) {
			t.Errorf("capabilities list %s", c)
		}
	}
	if d["management_endpoint"] != w.Server.URL+"/oauth2/grants" || fmt.Sprint(d["code_challenge_methods_supported"]) != "[S256]" {
		t.Errorf("discovery: %v", d)
	}
	styled := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.SMARTStyleURL = "https://ehr.example/style.json" })
	if caps := fmt.Sprint(styled.Do(t, "GET", "/.well-known/smart-configuration", "", nil).JSON(t)["capabilities"]); !strings.Contains(caps, "context-style") {
		t.Errorf("styled: %s", caps)
	}
}

// A backend client registered for system/*.rs is granted system/Patient.rs
// (a subset), and told so in scope; a scope outside its registration is
// invalid_scope.
func TestClientCredentialsSubsetScopes(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"r1","n":%q,"e":%q}]}`, b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	if err := w.App.Store.Commit(context.Background(), &store.Unit{Parts: []store.Part{store.NewClient{Client: &store.Client{
		ID: "sys-client", Tenant: "default", JWKS: jwks, Scope: "system/*.rs", Created: time.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		scope, status, want string
	}{
		{"system/Patient.rs", "200", "system/Patient.rs"},
		{"system/Patient.read system/Observation.cruds", "200", "system/Patient.read system/Observation.rs"},
		{"system/Patient.rs?category=x", "200", "system/Patient.rs?category=x"},
		{"system/Patient.c", "400", "invalid_scope"},
		{"user/Patient.rs", "400", "invalid_scope"},
	} {
		a := jwt.NewWithClaims(jwt.SigningMethodRS384, jwt.RegisteredClaims{Issuer: "sys-client", Subject: "sys-client",
			Audience: jwt.ClaimStrings{w.Server.URL + "/oauth2/token"}, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Minute)), ID: fmt.Sprintf("jti-%d", i)})
		a.Header["kid"] = "r1"
		signed, _ := a.SignedString(key)
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {c.scope}, "client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {signed}}
		r := w.Do(t, "POST", "/oauth2/token", "", []byte(form.Encode()), "Content-Type: application/x-www-form-urlencoded")
		var m map[string]any
		json.Unmarshal(r.Body, &m)
		got := fmt.Sprint(m["scope"])
		if c.status != "200" {
			got = fmt.Sprint(m["error"])
		}
		if fmt.Sprint(r.Status) != c.status || got != c.want {
			t.Errorf("scope %q: %d %s", c.scope, r.Status, r.Body)
		}
	}
}
