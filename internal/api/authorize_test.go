package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
)

// smartApp is a public SMART app: a redirect endpoint on its own listener
// and a browser (a client with a cookie jar that follows redirects).
type smartApp struct {
	t        *testing.T
	w        *apptest.Ward
	id       string
	redirect string
	browser  *http.Client
	mu       sync.Mutex
	got      url.Values // the query the redirect endpoint last received
	pick     string     // the name the picker searches for (through)
}

func newSMARTApp(t *testing.T, w *apptest.Ward, id, scope string) *smartApp {
	t.Helper()
	a := &smartApp{t: t, w: w, id: id}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.got = r.URL.Query()
		a.mu.Unlock()
		io.WriteString(rw, "app received the redirect")
	}))
	t.Cleanup(srv.Close)
	a.redirect = srv.URL + "/cb"
	if _, err := authn.AddClient(context.Background(), w.App.Store, authn.Actor{ID: "test", Role: "system"},
		authn.NewClient{ID: id, Tenant: "default", Scope: scope, RedirectURIs: []string{a.redirect}}); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	a.browser = &http.Client{Jar: jar, Timeout: 30 * time.Second}
	return a
}

func pkce(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// authorizeURL is the URL an app sends the browser to.
func (a *smartApp) authorizeURL(mod func(url.Values), verifier string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {a.id}, "redirect_uri": {a.redirect},
		"scope": {"openid launch/patient user/*.rs offline_access"}, "state": {"st-" + a.id},
		"code_challenge": {pkce(verifier)}, "code_challenge_method": {"S256"}, "aud": {a.w.URL}}
	if mod != nil {
		mod(q)
	}
	return a.w.Server.URL + "/oauth2/authorize?" + q.Encode()
}

var handleField = regexp.MustCompile(`name="handle" value="([^"]+)"`)

// openLogin GETs the authorization URL and returns the response and the
// login form's handle.
func (a *smartApp) openLogin(u string) (*http.Response, string, string) {
	a.t.Helper()
	resp, err := a.browser.Get(u)
	if err != nil {
		a.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := handleField.FindStringSubmatch(string(body))
	if m == nil {
		return resp, "", string(body)
	}
	return resp, html.UnescapeString(m[1]), string(body)
}

// submit posts the login form like the browser would.
func (a *smartApp) submit(handle, username, password, code string) (*http.Response, string) {
	a.t.Helper()
	a.mu.Lock()
	a.got = nil
	a.mu.Unlock()
	resp, err := a.browser.PostForm(a.w.Server.URL+"/oauth2/authorize", url.Values{"handle": {handle}, "username": {username}, "password": {password}, "totp": {code}})
	if err != nil {
		a.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

var patientChoice = regexp.MustCompile(`name="patient" id="p0" value="([^"]+)"`)

// through answers the pages after the login like a user would: on the
// patient picker it searches for a.pick (default Quill) and chooses the first patient
// found, on the consent screen it allows. It returns the last answer.
func (a *smartApp) through(resp *http.Response, body string) (*http.Response, string) {
	name := a.pick
	if name == "" {
		name = "Quill"
	}
	a.t.Helper()
	post := func(path string, form url.Values) {
		var err error
		if resp, err = a.browser.PostForm(a.w.Server.URL+path, form); err != nil {
			a.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
	}
	for range 4 {
		m := handleField.FindStringSubmatch(body)
		switch {
		case m == nil:
			return resp, body
		case strings.Contains(body, `name="action" value="search"`) && !strings.Contains(body, `value="choose"`):
			post("/oauth2/authorize/patient", url.Values{"handle": {html.UnescapeString(m[1])}, "action": {"search"}, "name": {name}})
		case strings.Contains(body, `value="choose"`):
			p := patientChoice.FindStringSubmatch(body)
			if p == nil {
				a.t.Fatalf("picker found no patient: %.500s", body)
			}
			post("/oauth2/authorize/patient", url.Values{"handle": {html.UnescapeString(m[1])}, "action": {"choose"}, "patient": {p[1]}})
		case strings.Contains(body, `value="allow"`):
			post("/oauth2/authorize/consent", url.Values{"handle": {html.UnescapeString(m[1])}, "decision": {"allow"}})
		default:
			return resp, body
		}
	}
	return resp, body
}

func (a *smartApp) received() url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got
}

// exchange runs the token request of the code grant.
func (a *smartApp) exchange(code, verifier string) (int, map[string]any) {
	a.t.Helper()
	resp, err := http.PostForm(a.w.Server.URL+"/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"client_id": {a.id}, "redirect_uri": {a.redirect}, "code_verifier": {verifier}})
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// The whole SMART standalone launch: authorize, login page, redirect with
// code and state, code + PKCE verifier for tokens, FHIR read with the
// token; then what must fail.
func TestAuthorizationCodeFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		pid := w.Create(t, authz.RolePhysician, patient)
		app := newSMARTApp(t, w, "app-1", "openid fhirUser launch/patient user/*.rs offline_access")
		verifier := strings.Repeat("v3rifier-", 6)

		resp, handle, page := app.openLogin(app.authorizeURL(nil, verifier))
		if resp.StatusCode != 200 || handle == "" {
			t.Fatalf("authorize: %d %.500s", resp.StatusCode, page)
		}
		for h, want := range map[string]string{"Content-Type": "text/html", "Content-Security-Policy": "default-src 'none'", "X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
			if !strings.Contains(resp.Header.Get(h), want) {
				t.Errorf("login page header %s = %q", h, resp.Header.Get(h))
			}
		}
		if strings.Contains(page, "<script") || !strings.Contains(page, `type="password"`) || !strings.Contains(page, "app-1") {
			t.Errorf("login page: %s", page)
		}

		// Wrong password: the page again, 401, nothing sent to the app.
		if resp, body := app.submit(handle, "physician-user", "not the password", ""); resp.StatusCode != 401 || !strings.Contains(body, "Invalid username") || app.received() != nil {
			t.Fatalf("wrong password: %d %.300s %v", resp.StatusCode, body, app.received())
		}
		// The right one: the patient picker (the physician may see more
		// than one patient), the consent screen, then redirected to the
		// app with a code and the state.
		resp, body := app.submit(handle, "physician-user", apptest.Password, "")
		if !strings.Contains(body, "Choose a patient") || app.received() != nil {
			t.Fatalf("after login: %d %.300s", resp.StatusCode, body)
		}
		resp, _ = app.through(resp, body)
		got := app.received()
		if resp.StatusCode != 200 || got.Get("state") != "st-app-1" || got.Get("code") == "" {
			t.Fatalf("login: %d, app got %v", resp.StatusCode, got)
		}
		code := got.Get("code")

		status, tok := app.exchange(code, verifier)
		if status != 200 || tok["access_token"] == nil || tok["refresh_token"] == nil || tok["id_token"] == nil || tok["scope"] != "openid launch/patient user/*.rs offline_access" {
			t.Fatalf("exchange: %d %v", status, tok)
		}
		// The picker's patient is the launch context; the app shows the
		// banner (standalone launch).
		if tok["patient"] != pid || tok["need_patient_banner"] != true || tok["encounter"] != nil {
			t.Errorf("launch context: %v", tok)
		}
		if ttl := tok["expires_in"].(float64); ttl > 15*60 || ttl < 60 {
			t.Errorf("expires_in %v", ttl)
		}
		access := tok["access_token"].(string)
		claims := jwtClaims(t, access)
		if claims["sub"] != w.UserIDs[authz.RolePhysician] || claims["tenant"] != "default" || claims["role"] != "physician" {
			t.Errorf("access token claims %v", claims)
		}
		if id := jwtClaims(t, tok["id_token"].(string)); id["aud"] != "app-1" && !strings.Contains(jsonString(id["aud"]), "app-1") || id["sub"] != w.UserIDs[authz.RolePhysician] {
			t.Errorf("id_token claims %v", id)
		}
		for _, sc := range []scenario{
			{name: "the app reads with its token", method: "GET", path: "/fhir/Patient/" + pid, token: access, status: 200, want: []string{"Quillfeather"}},
			{name: "its scope has no write", method: "POST", path: "/fhir/Patient", token: access, body: patient, status: 403},
			{name: "the id_token is no access token", method: "GET", path: "/fhir/Patient/" + pid, token: tok["id_token"].(string), status: 401},
		} {
			sc.run(t, w)
		}
		// The refresh token works (and rotates).
		refresh := func(rt string) *apptest.Response {
			return w.Do(t, "POST", "/oauth2/token", "", []byte(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode()), "Content-Type: application/x-www-form-urlencoded")
		}
		r := refresh(tok["refresh_token"].(string))
		if r.Status != 200 {
			t.Fatalf("refresh: %d %s", r.Status, r.Body)
		}
		rotated := r.JSON(t)["refresh_token"].(string)
		// The code is single-use, and presenting it again revokes what it
		// gave: the access token and the whole refresh family.
		if status, m := app.exchange(code, verifier); status != 400 || m["error"] != "invalid_grant" {
			t.Errorf("code reused: %d %v", status, m)
		}
		if r := w.Do(t, "GET", "/fhir/Patient/"+pid, access, nil); r.Status != 401 {
			t.Errorf("access token of a replayed code still works: %d", r.Status)
		}
		if r := refresh(rotated); r.Status != 400 {
			t.Errorf("refresh family of a replayed code still works: %d %s", r.Status, r.Body)
		}

		// A wrong verifier is refused and uses the code up.
		_, handle, _ = app.openLogin(app.authorizeURL(nil, verifier))
		app.through(app.submit(handle, "nurse-user", apptest.Password, ""))
		code2 := app.received().Get("code")
		if status, m := app.exchange(code2, strings.Repeat("x", 43)); status != 400 || m["error"] != "invalid_grant" {
			t.Errorf("wrong verifier: %d %v", status, m)
		}
		if status, _ := app.exchange(code2, verifier); status != 400 {
			t.Errorf("code still usable after a wrong verifier: %d", status)
		}

		// Authorization requests refused back to the app (the redirect URI
		// is trusted), and ones shown to the user (it is not).
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, c := range []struct {
			name   string
			mod    func(url.Values)
			status int
			want   string // in the Location (redirects) or the body
		}{
			{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, 302, "error=invalid_request"},
			{"no PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, 302, "code_challenge_method+must+be+S256"},
			{"short challenge", func(q url.Values) { q.Set("code_challenge", "abc") }, 302, "error=invalid_request"},
			{"token response type", func(q url.Values) { q.Set("response_type", "token") }, 302, "error=unsupported_response_type"},
			{"no aud", func(q url.Values) { q.Del("aud") }, 302, "aud+must+be"},
			{"other aud", func(q url.Values) { q.Set("aud", "https://evil.example/fhir") }, 302, "aud+must+be"},
			{"unregistered scope", func(q url.Values) { q.Set("scope", "patient/*.rs") }, 302, "error=invalid_scope"},
			{"system scope", func(q url.Values) { q.Set("scope", "system/*.rs") }, 302, "error=invalid_scope"},
			{"launch without scope launch", func(q url.Values) { q.Set("launch", "xyz") }, 302, "error=invalid_scope"},
			{"scope launch, not registered", func(q url.Values) { q.Set("scope", "launch") }, 302, "error=invalid_scope"},
			{"launch, scope launch not registered", func(q url.Values) { q.Set("scope", "launch user/*.rs"); q.Set("launch", "xyz") }, 302, "error=invalid_scope"},
			{"state comes back", func(q url.Values) { q.Set("response_type", "x") }, 302, "state=st-app-1"},
			{"unknown client", func(q url.Values) { q.Set("client_id", "nope") }, 400, "client_id does not name"},
			{"unregistered redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }, 400, "redirect_uri is required and must be one the app registered"},
			{"redirect with extra path", func(q url.Values) { q.Set("redirect_uri", app.redirect+"/x") }, 400, "redirect_uri"},
			{"client twice", func(q url.Values) { q.Add("client_id", "app-1") }, 400, "more than once"},
			{"password in URL", func(q url.Values) { q.Set("password", "x") }, 400, "never go in a URL"},
		} {
			resp, err := noFollow.Get(app.authorizeURL(c.mod, verifier))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			loc := resp.Header.Get("Location")
			if resp.StatusCode != c.status || !strings.Contains(loc+string(body), c.want) {
				t.Errorf("%s: %d %q %.300s", c.name, resp.StatusCode, loc, body)
			}
			if c.status == 302 && !strings.HasPrefix(loc, app.redirect+"?") {
				t.Errorf("%s: redirected to %q", c.name, loc)
			}
			if c.status == 400 && (loc != "" || !strings.Contains(string(body), "OperationOutcome")) {
				t.Errorf("%s: an untrusted request was redirected or not an OperationOutcome: %q", c.name, loc)
			}
		}

		// CSRF: a form posted from a browser that was not shown it (no
		// cookie) is refused, whatever the credentials.
		_, handle, _ = app.openLogin(app.authorizeURL(nil, verifier))
		other := &smartApp{t: t, w: w, browser: &http.Client{}}
		if resp, body := other.submit(handle, "physician-user", apptest.Password, ""); resp.StatusCode != 400 || !strings.Contains(body, "not opened in this browser") {
			t.Errorf("form without its cookie: %d %.300s", resp.StatusCode, body)
		}
		if resp, body := app.submit("garbage", "physician-user", apptest.Password, ""); resp.StatusCode != 400 || !strings.Contains(body, "OperationOutcome") {
			t.Errorf("forged handle: %d %.300s", resp.StatusCode, body)
		}
		// A disabled app gets no more codes.
		if err := authn.SetClientDisabled(context.Background(), w.App.Store, authn.Actor{ID: "test", Role: "system"}, "default", "app-1", true); err != nil {
			t.Fatal(err)
		}
		if resp, _, body := app.openLogin(app.authorizeURL(nil, verifier)); resp.StatusCode != 400 || !strings.Contains(body, "client_id") {
			t.Errorf("disabled app: %d %.300s", resp.StatusCode, body)
		}

		// The ledger: a failed and a successful login, code issue and
		// exchange, the refused reuse; never a username or password.
		seen := map[string]bool{}
		for _, rec := range w.Ledger(t) {
			if rec.Action == "login" || rec.Action == "code-exchange" || rec.Action == "code-issue" || rec.Action == "app-grant" {
				seen[rec.Action+":"+rec.Detail] = true
			}
			for _, s := range append(rec.Entities, rec.Detail, rec.RequestID) {
				if strings.Contains(s, "physician-user") || strings.Contains(s, apptest.Password) || strings.Contains(s, "not the password") {
					t.Errorf("credentials in the ledger: %+v", rec)
				}
			}
			if rec.Action == "code-exchange" && rec.Detail == "token-issued" && rec.Outcome != audit.OutcomeSuccess {
				t.Errorf("exchange record %+v", rec)
			}
		}
		for _, k := range []string{"login:invalid-credentials", "login:app-login", "code-issue:standalone", "app-grant:allowed;scope=openid launch/patient user/*.rs offline_access", "code-exchange:token-issued", "code-exchange:code-reuse;tokens-revoked", "code-exchange:pkce-mismatch"} {
			if !seen[k] {
				t.Errorf("ledger lacks %s (has %v)", k, seen)
			}
		}
		// Logs never carry the query string (code, state, challenge).
		if strings.Contains(w.Log.String(), code) || strings.Contains(w.Log.String(), "st-app-1") {
			t.Error("the log has the code or state")
		}
	})
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A user enrolled in TOTP needs the current code on the login page too.
func TestAuthorizationCodeWithTOTP(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	app := newSMARTApp(t, w, "app-totp", "openid user/*.rs")
	uri, err := w.App.Tokens.EnrollTOTP(context.Background(), "nurse-user")
	if err != nil {
		t.Fatal(err)
	}
	key, err := otp.NewKeyFromURL(uri)
	if err != nil {
		t.Fatal(err)
	}
	verifier := strings.Repeat("t", 64)
	mod := func(q url.Values) { q.Set("scope", "openid user/*.rs") }
	_, handle, _ := app.openLogin(app.authorizeURL(mod, verifier))
	if resp, _ := app.submit(handle, "nurse-user", apptest.Password, ""); resp.StatusCode != 401 || app.received() != nil {
		t.Fatalf("no TOTP code: %d", resp.StatusCode)
	}
	if resp, _ := app.submit(handle, "nurse-user", apptest.Password, "000000x"); resp.StatusCode != 401 {
		t.Fatalf("bad TOTP code: %d", resp.StatusCode)
	}
	c, _ := totp.GenerateCodeCustom(key.Secret(), time.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	resp, body := app.submit(handle, "nurse-user", apptest.Password, c)
	if resp, _ = app.through(resp, body); resp.StatusCode != 200 || app.received().Get("code") == "" {
		t.Fatalf("with TOTP: %d %v", resp.StatusCode, app.received())
	}
	if status, tok := app.exchange(app.received().Get("code"), verifier); status != 200 || tok["refresh_token"] != nil {
		t.Fatalf("exchange: %d %v", status, tok)
	}
}
