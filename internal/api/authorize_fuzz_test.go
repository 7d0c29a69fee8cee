package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
)

const fuzzRedirect = "https://app.example/cb"

// fuzzWard has no per-address limit on the OAuth endpoints: every fuzz
// input comes from httptest.NewRequest's one address, and after the burst
// the fuzzer would explore nothing but 429s.
func fuzzWard(f *testing.F) *apptest.Ward {
	w := apptest.Start(f, apptest.SQLite, noAuthLimit)
	if _, err := authn.AddClient(context.Background(), w.App.Store, authn.Actor{ID: "fuzz", Role: "system"},
		authn.NewClient{ID: "app", Tenant: "default", Scope: "openid launch launch/patient user/*.rs patient/*.rs offline_access", RedirectURIs: []string{fuzzRedirect}}); err != nil {
		f.Fatal(err)
	}
	return w
}

// FuzzAuthorize sends hostile query strings to GET /oauth2/authorize:
// never a panic or a 5xx; a redirect only ever to the registered URI; a
// login page only for a complete, valid request; otherwise an
// OperationOutcome.
func FuzzAuthorize(f *testing.F) {
	w := fuzzWard(f)
	good := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {fuzzRedirect}, "scope": {"openid user/*.rs"},
		"state": {"xyz"}, "code_challenge": {pkce(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"}, "aud": {"http://example.com/fhir"}}
	f.Add(good.Encode())                                      // a valid request (aud of httptest.NewRequest's host)
	f.Add(strings.Replace(good.Encode(), "S256", "plain", 1)) // plain PKCE
	f.Add("client_id=app&redirect_uri=https%3A%2F%2Fevil.example%2Fcb")
	f.Add("client_id=app&client_id=app")
	f.Add("%zz&;;==&client_id=%00")
	f.Add("client_id=app&redirect_uri=" + url.QueryEscape(fuzzRedirect) + "&state=" + strings.Repeat("s", 2000))
	f.Add("")
	// EHR launches: a real launch, a made-up one, one
	// without scope launch, scope launch without one, a huge one, two.
	pid := w.Create(f, authz.RoleAdmin, `{"resourceType":"Patient","generalPractitioner":[{"reference":"Practitioner/pract-physician"}]}`)
	r := w.Do(f, "POST", "/oauth2/launch", w.Tokens[authz.RolePhysician], []byte(`{"client_id":"app","patient":"`+pid+`"}`), "Content-Type: application/json")
	launch, _ := r.JSON(f)["launch"].(string)
	if r.Status != 201 || launch == "" {
		f.Fatalf("launch: %d %s", r.Status, r.Body)
	}
	withLaunch := func(scope, l string) string {
		q := url.Values{}
		for k, v := range good {
			q[k] = v
		}
		q.Set("scope", scope)
		q.Set("launch", l)
		return q.Encode()
	}
	f.Add(withLaunch("launch patient/*.rs", launch))
	f.Add(withLaunch("launch patient/*.rs", "made-up"))
	f.Add(withLaunch("patient/*.rs", launch))
	f.Add(strings.Replace(withLaunch("launch patient/*.rs", launch), "&launch="+launch, "", 1))
	f.Add(withLaunch("launch", strings.Repeat("L", 5000)))
	f.Add(withLaunch("launch", launch) + "&launch=" + launch)
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest("GET", "/oauth2/authorize", nil)
		req.URL.RawQuery = query // as a server would receive it, spaces and all
		rec := httptest.NewRecorder()
		w.App.Handler.ServeHTTP(rec, req)
		body := rec.Body.String()
		switch {
		case rec.Code >= 500:
			t.Fatalf("%d %s", rec.Code, body)
		case rec.Code == http.StatusFound:
			if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, fuzzRedirect+"?") || !strings.Contains(loc, "error=") {
				t.Fatalf("redirected to %q", loc)
			}
		case rec.Code == http.StatusOK:
			q, _ := url.ParseQuery(query)
			if q.Get("client_id") != "app" || q.Get("redirect_uri") != fuzzRedirect || q.Get("code_challenge_method") != "S256" || !strings.Contains(body, `name="handle"`) {
				t.Fatalf("login page for %q", query)
			}
			if strings.Contains(body, "<script") {
				t.Fatal("script in the login page")
			}
		default:
			if rec.Code < 400 || !strings.Contains(body, "OperationOutcome") {
				t.Fatalf("%d %q", rec.Code, body)
			}
		}
	})
}

// FuzzLoginForm posts hostile login forms, with and without the browser
// cookie and the real handle: never a panic or a 5xx; a code only for the
// real password, and only to the registered redirect URI.
func FuzzLoginForm(f *testing.F) {
	w := fuzzWard(f)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	q := url.Values{"response_type": {"code"}, "client_id": {"app"}, "redirect_uri": {fuzzRedirect}, "scope": {"openid user/*.rs"},
		"state": {"xyz"}, "code_challenge": {pkce(strings.Repeat("v", 43))}, "code_challenge_method": {"S256"}, "aud": {w.URL}}
	resp, err := browser.Get(w.Server.URL + "/oauth2/authorize?" + q.Encode())
	if err != nil {
		f.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := handleField.FindStringSubmatch(string(page))
	if m == nil {
		f.Fatalf("no login form: %s", page)
	}
	handle := m[1]
	cookies := jar.Cookies(mustURL(w.Server.URL + "/oauth2/authorize"))
	f.Add(true, true, "", "physician-user", "wrong password", "")
	f.Add(true, true, "", "physician-user", apptest.Password, "123456")
	f.Add(true, false, "", "physician-user", apptest.Password, "")
	f.Add(false, true, "AAAA", "physician-user", apptest.Password, "")
	f.Add(false, true, "%%%", "\x00", "\xff", "\n")
	f.Add(true, true, "", "", "", "")
	f.Fuzz(func(t *testing.T, realHandle, withCookie bool, fakeHandle, user, pass, code string) {
		if user != "" && !strings.HasPrefix(user, "physician") {
			user = "nobody" // unknown users cost a full argon2id hash each; keep the fuzzer moving
		}
		h := fakeHandle
		if realHandle {
			h = handle
		}
		form := url.Values{"handle": {h}, "username": {user}, "password": {pass}, "totp": {code}}
		req := httptest.NewRequest("POST", "/oauth2/authorize", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if withCookie {
			for _, c := range cookies {
				req.AddCookie(c)
			}
		}
		rec := httptest.NewRecorder()
		w.App.Handler.ServeHTTP(rec, req)
		switch {
		case rec.Code >= 500:
			t.Fatalf("%d %s", rec.Code, rec.Body)
		case rec.Code == http.StatusSeeOther:
			loc := rec.Header().Get("Location")
			if !realHandle || !withCookie || pass != apptest.Password || !strings.HasPrefix(loc, fuzzRedirect+"?code=") {
				t.Fatalf("code issued for %v/%v/%q/%q -> %q", realHandle, withCookie, user, pass, loc)
			}
		case rec.Code == http.StatusOK:
			// The next page of a signed-in authorization (consent): only
			// for the right credentials on the real form in its browser.
			if !realHandle || !withCookie || pass != apptest.Password || !strings.Contains(rec.Body.String(), `value="allow"`) {
				t.Fatalf("200 for %v/%v/%q/%q: %.200s", realHandle, withCookie, user, pass, rec.Body)
			}
		case rec.Code < 400:
			t.Fatalf("unexpected %d", rec.Code)
		}
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
