package api_test

import (
	"context"
	"encoding/base64"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/config"
)

// FuzzTokenEndpoint sends hostile form values to /oauth2/token through the
// real handler chain: never a panic or a 5xx, always an OAuth2 JSON answer,
// and a token only for the real password.
func FuzzTokenEndpoint(f *testing.F) {
	w := apptest.Start(f, apptest.SQLite, noAuthLimit) // see fuzzWard
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

// FuzzTokenClientAuth sends hostile client credentials with the
// authorization code grant: an Authorization header (client_secret_basic,
// whose parts are form-urlencoded), client_id, client_secret and a
// private_key_jwt assertion. Never a panic or a 5xx, always an OAuth2 JSON
// answer, never a token (no code is valid), and a 401 for a Basic header
// always names the Basic scheme.
func FuzzTokenClientAuth(f *testing.F) {
	w := apptest.Start(f, apptest.SQLite, noAuthLimit) // see fuzzWard
	if _, err := authn.AddClient(context.Background(), w.App.Store, authn.Actor{ID: "test", Role: "system"}, authn.NewClient{ID: "conf-app", Tenant: "default",
		Scope: "openid user/*.rs", RedirectURIs: []string{"https://app.example/cb"}, Secret: strings.Repeat("s", 40)}); err != nil {
		f.Fatal(err)
	}
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}
	f.Add(basic("conf-app", strings.Repeat("s", 40)), "", "", "", "code")                  // the right secret, a made-up code
	f.Add(basic("conf%2Dapp", "%ZZ"), "", "", "", "code")                                  // a bad escape in the secret
	f.Add(basic("conf-app", "x"), "conf-app", "", "", "code")                              // Basic and client_id agree
	f.Add(basic("conf-app", "x"), "other", "y", "", "code")                                // and disagree, with a secret in the form too
	f.Add("Basic !!!not-base64", "", "", "", "code")                                       // not base64
	f.Add("Basic "+base64.StdEncoding.EncodeToString([]byte("no-colon")), "", "", "", "c") // no colon
	f.Add("Bearer x", "conf-app", "", "", "code")                                          // another scheme
	f.Add("", "conf-app", strings.Repeat("s", 40), "", "code")                             // client_secret_post
	f.Add("", "", "", "eyJhbGciOiJub25lIn0.eyJpc3MiOiJjb25mLWFwcCJ9.", "code")             // alg none, client_id from iss
	f.Add("", "conf-app", "", "a.b.c", "")                                                 // no code
	f.Fuzz(func(t *testing.T, authorization, clientID, secret, assertion, code string) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {clientID}, "client_secret": {secret},
			"redirect_uri": {"https://app.example/cb"}, "code_verifier": {strings.Repeat("v", 43)}}
		if assertion != "" {
			form.Set("client_assertion_type", authn.ClientAssertionType)
			form.Set("client_assertion", assertion)
		}
		req := httptest.NewRequest("POST", "/oauth2/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		w.App.Handler.ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code >= 500 || rec.Code == 200 {
			t.Fatalf("%d %s", rec.Code, body)
		}
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") || !strings.Contains(body, `"error"`) {
			t.Fatalf("not an OAuth2 JSON error: %d %q", rec.Code, body)
		}
		if rec.Code == 401 && req.Header.Get("Authorization") != "" && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("401 to a Basic attempt without WWW-Authenticate: %q", body)
		}
	})
}

// noAuthLimit turns the per-address OAuth limit off (fuzzing only: see
// fuzzWard).
func noAuthLimit(c *config.Config) { c.AuthRate = 0 }
