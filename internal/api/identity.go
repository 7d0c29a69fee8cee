package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// routeIdentity registers the identity endpoints: the admin API, the
// authorization endpoint and its login page, and OpenID discovery.
func (s *Server) routeIdentity(mux *http.ServeMux) {
	s.routeAdmin(mux)
	mux.HandleFunc("GET /oauth2/authorize", s.handleAuthorize)
	mux.HandleFunc("POST /oauth2/authorize", s.limitAuth(false, s.handleLogin))
	mux.HandleFunc("POST /oauth2/launch", s.handleLaunch)
	s.routeSMART(mux)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.handleOpenIDConfig)
	mux.HandleFunc("GET /fhir/.well-known/openid-configuration", s.handleOpenIDConfig)
}

// Authorizer is the authorization code flow, as the API needs it.
type Authorizer interface {
	StartAuthorize(ctx context.Context, ar authn.AuthorizeRequest) (authn.LoginPage, error)
	PageFor(handle, binding string) (authn.LoginPage, error)
	CompleteAuthorize(ctx context.Context, lf authn.LoginForm) (authn.Step, error)
	AuthorizationCodeGrant(ctx context.Context, cr authn.CodeRequest) (authn.Token, error)
	CreateLaunch(ctx context.Context, subj authz.Subject, nl authn.NewLaunch) (authn.CreatedLaunch, error)
}

// loginCookie holds the random value that binds a login form to the
// browser it was shown to: a form posted from elsewhere (CSRF) lacks it.
const loginCookie = "ward_login"

func (s *Server) authorizer() Authorizer {
	a, _ := s.tokens.(Authorizer)
	return a
}

// handleAuthorize is the authorization endpoint: it checks the request and
// shows the login page. Errors before the client and redirect URI are
// trusted are OperationOutcomes; after, OAuth errors at the redirect URI.
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	az := s.authorizer()
	if az == nil {
		s.writeError(w, r, problem.New(problem.ErrNotFound, "not-supported", "the authorization code flow is not enabled"))
		return
	}
	q := r.URL.Query()
	for _, k := range []string{"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method", "aud", "launch"} {
		if len(q[k]) > 1 {
			s.writeError(w, r, problem.At(problem.ErrInvalid, "invalid", k, k+" is given more than once"))
			return
		}
	}
	if q.Get("password") != "" || q.Get("username") != "" {
		s.writeError(w, r, problem.New(problem.ErrInvalid, "invalid", "credentials never go in a URL; the login page posts them"))
		return
	}
	b := make([]byte, 24)
	rand.Read(b)
	binding := base64.RawURLEncoding.EncodeToString(b)
	page, err := az.StartAuthorize(r.Context(), authn.AuthorizeRequest{
		ResponseType: q.Get("response_type"), ClientID: q.Get("client_id"), RedirectURI: q.Get("redirect_uri"),
		Scope: q.Get("scope"), State: q.Get("state"), CodeChallenge: q.Get("code_challenge"),
		CodeChallengeMethod: q.Get("code_challenge_method"), Aud: q.Get("aud"), Launch: q.Get("launch"),
		Audience: s.base(r), Binding: binding,
	})
	var ae *authn.AuthorizeError
	switch {
	case errors.As(err, &ae):
		http.Redirect(w, r, ae.Redirect(), http.StatusFound)
		return
	case err != nil:
		s.writeError(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: binding, Path: "/oauth2/authorize", MaxAge: int(authn.LoginFormTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil || strings.HasPrefix(s.opts.BaseURL, "https://"), SameSite: http.SameSiteStrictMode})
	s.renderLogin(w, http.StatusOK, page, "")
}

// handleLogin takes the login page's form: on success the browser goes to
// the app's redirect URI with the code and state; wrong credentials show
// the page again.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	az := s.authorizer()
	if az == nil {
		s.writeError(w, r, problem.New(problem.ErrNotFound, "not-supported", "the authorization code flow is not enabled"))
		return
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.writeError(w, r, problem.New(problem.ErrTooLarge, "too-costly", "request body too large"))
			return
		}
		s.writeError(w, r, problem.New(problem.ErrInvalid, "invalid", "the login form must be posted as application/x-www-form-urlencoded"))
		return
	}
	if r.URL.RawQuery != "" {
		s.writeError(w, r, problem.New(problem.ErrInvalid, "invalid", "the login form is posted without a query string"))
		return
	}
	binding := ""
	if c, err := r.Cookie(loginCookie); err == nil {
		binding = c.Value
	}
	f := r.PostForm
	lf := authn.LoginForm{RequestID: requestID(r.Context()), Handle: f.Get("handle"), Binding: binding,
		Username: f.Get("username"), Password: f.Get("password"), TOTP: f.Get("totp"), Address: s.addressTag(r)}
	if lf.Username == "" || lf.Password == "" || len(lf.Username) > 256 || len(lf.Password) > 1024 || len(lf.TOTP) > 16 {
		page, err := az.PageFor(lf.Handle, binding)
		if err != nil {
			s.writeError(w, r, problem.New(problem.ErrInvalid, "invalid", authn.ErrLoginForm.Error()))
			return
		}
		s.renderLogin(w, http.StatusBadRequest, page, "Enter your username and password.")
		return
	}
	st, err := az.CompleteAuthorize(r.Context(), lf)
	switch {
	case errors.Is(err, authn.ErrLoginForm):
		s.writeError(w, r, problem.New(problem.ErrInvalid, "invalid", err.Error()))
	case errors.Is(err, authn.ErrInvalidGrant):
		page, perr := az.PageFor(lf.Handle, binding)
		if perr != nil {
			s.writeError(w, r, problem.New(problem.ErrInvalid, "invalid", authn.ErrLoginForm.Error()))
			return
		}
		s.renderLogin(w, http.StatusUnauthorized, page, "Invalid username, password or authenticator code.")
	case err != nil:
		s.writeError(w, r, err)
	default:
		s.renderStep(w, r, st)
	}
}

// handleLaunch creates a SMART EHR launch context: a signed-in user asks
// to open app client_id for a patient (and optionally an encounter of
// that patient). The patient (and encounter) must be readable by the user
// — the records repository decides, and audits the read — and the answer
// carries the opaque, single-use launch value and iss for the app's
// launch URL.
//
//	POST /oauth2/launch {"client_id","patient"[,"encounter"]}
//	→ 201 {"launch","iss","client_id","expires_in"}
func (s *Server) handleLaunch(w http.ResponseWriter, r *http.Request) {
	az := s.authorizer()
	if az == nil {
		s.writeError(w, r, problem.New(problem.ErrNotFound, "not-supported", "the authorization code flow is not enabled"))
		return
	}
	subj, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// No break-the-glass or purpose headers: a launch needs an ordinary
	// right to read the patient.
	var in struct {
		ClientID  string `json:"client_id"`
		Patient   string `json:"patient"`
		Encounter string `json:"encounter"`
	}
	if err := decodeAdmin(r, &in); err != nil {
		s.writeError(w, r, err)
		return
	}
	if subj.Role == authz.RoleClient {
		s.writeError(w, r, problem.New(problem.ErrForbidden, "forbidden", "an EHR launch is created by a user signed in to Ward"))
		return
	}
	if !fhir.IsID(in.Patient) {
		s.writeError(w, r, problem.At(problem.ErrInvalid, "invalid", "patient", "patient must be a Patient id"))
		return
	}
	if in.Encounter != "" && !fhir.IsID(in.Encounter) {
		s.writeError(w, r, problem.At(problem.ErrInvalid, "invalid", "encounter", "encounter must be an Encounter id"))
		return
	}
	// The launching user must be allowed to read the patient: the same
	// decision (role, scopes, care relationship, consent) as a FHIR read.
	repo := s.repoFor(r, subj)
	if _, err := repo.Read(r.Context(), "Patient", in.Patient); err != nil {
		s.writeError(w, r, err)
		return
	}
	if in.Encounter != "" {
		enc, err := repo.Read(r.Context(), "Encounter", in.Encounter)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		var e struct {
			Subject struct {
				Reference string `json:"reference"`
			} `json:"subject"`
		}
		if json.Unmarshal(enc.JSON, &e) != nil || e.Subject.Reference != "Patient/"+in.Patient {
			s.writeError(w, r, problem.At(problem.ErrInvalid, "invalid", "encounter", "the encounter is not one of this patient"))
			return
		}
	}
	l, err := az.CreateLaunch(r.Context(), subj, authn.NewLaunch{RequestID: requestID(r.Context()), ClientID: in.ClientID, Patient: in.Patient, Encounter: in.Encounter})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	out := map[string]any{"launch": l.Launch, "iss": s.base(r), "client_id": in.ClientID, "expires_in": int(authn.LaunchTTL.Seconds())}
	if l.LaunchURI != "" {
		// Where the EHR opens the app: its registered launch_uri with iss
		// and launch (SMART EHR launch).
		out["launch_url"] = l.LaunchURI + sepOf(l.LaunchURI) + url.Values{"iss": {s.base(r)}, "launch": {l.Launch}}.Encode()
	}
	writeJSON(w, http.StatusCreated, out)
}

func sepOf(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Sign in to Ward</title></head>
<body>
<main>
<h1>Sign in to Ward</h1>
<p>The app <strong>{{.ClientID}}</strong> asks to act for you in {{.Tenant}} with:</p>
<ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>
{{if .Message}}<p role="alert"><strong>{{.Message}}</strong></p>{{end}}
<form method="post" action="/oauth2/authorize" autocomplete="on">
<input type="hidden" name="handle" value="{{.Handle}}">
<p><label for="username">Username</label><br><input id="username" name="username" autocomplete="username" required maxlength="256"></p>
<p><label for="password">Password</label><br><input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024"></p>
<p><label for="totp">Authenticator code (if you enrolled one)</label><br><input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" maxlength="16"></p>
<p><button type="submit">Sign in</button></p>
</form>
</main>
</body>
</html>
`))

func (s *Server) renderLogin(w http.ResponseWriter, status int, page authn.LoginPage, message string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	// No script, style or frame; the form posts to this server only.
	h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	if err := loginTemplate.Execute(w, struct {
		authn.LoginPage
		Message string
	}{page, message}); err != nil {
		s.log.LogAttrs(context.Background(), slog.LevelError, "render login page", slog.String("error", err.Error()))
	}
}
