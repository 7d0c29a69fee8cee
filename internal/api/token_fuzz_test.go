package api_test

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
)

// FuzzTokenEndpoint sends hostile form values to /oauth2/token through the
// real handler chain: never a panic or a 5xx, always an OAuth2 JSON answer,
// and a token only for the real password.
func FuzzTokenEndpoint(f *testing.F) {
	w := apptest.Start(f, apptest.SQLite)
	f.Add("password", "physician-user", "wrong", "", "", "")
	f.Add("client_credentials", "", "", "user/*.rs", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("client_credentials", "", "", "", "x", "a.b.c")
	f.Add("password", "\x00", "\xff", "system/*.*?x", "", "")
	f.Add("", "", "", "", "", "")
	f.Add("authorization_code", "a", "b", "openid", "", "")
	f.Fuzz(func(t *testing.T, grant, user, pass, scope, assertionType, assertion string) {
		if grant == "password" && user != "" && !strings.HasPrefix(user, "physician") {
			user = "nobody" // unknown users cost a full argon2id hash each; keep the fuzzer moving
		}
		form := url.Values{"grant_type": {grant}, "username": {user}, "password": {pass}, "scope": {scope},
			"client_assertion_type": {assertionType}, "client_assertion": {assertion}}
		req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		w.App.Handler.ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code >= 500 {
			t.Fatalf("%d %s", rec.Code, body)
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") || !strings.Contains(body, `"`) {
			t.Fatalf("not an OAuth2 JSON answer: %d %q", rec.Code, body)
		}
		if rec.Code == 200 && (grant != "password" || pass != apptest.Password) {
			t.Fatalf("token issued for %q/%q/%q", grant, user, pass)
		}
	})
}
