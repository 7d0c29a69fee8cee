package api

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/query"
)

// The pages of a SMART authorization after the login (patient picker,
// consent screen) and the remembered grants (/oauth2/grants). The pages
// post back the sealed handle the previous page carried; the browser
// cookie of the login page binds them to the same browser.

// SMARTFlow is the part of authn the pages after the login need.
type SMARTFlow interface {
	PickerSubject(ctx context.Context, in authn.Interaction) (authz.Subject, error)
	ChoosePatient(ctx context.Context, in authn.Interaction, patient string) (authn.Step, error)
	ConsentFor(ctx context.Context, in authn.Interaction) (authn.ConsentPage, error)
	Decide(ctx context.Context, in authn.Interaction, allow bool) (string, error)
	Grants(ctx context.Context, tenant, userID string) ([]authn.AppGrant, error)
	RevokeGrant(ctx context.Context, requestID string, subj authz.Subject, userID, clientID string) error
}

var _ SMARTFlow = (*authn.Service)(nil)

func (s *Server) smartFlow() SMARTFlow {
	f, _ := s.tokens.(SMARTFlow)
	return f
}

func (s *Server) routeSMART(mux *http.ServeMux) {
	mux.HandleFunc("POST /oauth2/authorize/patient", s.limitAuth(false, s.handlePicker))
	mux.HandleFunc("POST /oauth2/authorize/consent", s.limitAuth(false, s.handleConsent))
	mux.HandleFunc("GET /oauth2/grants", s.handleGrants)
	mux.HandleFunc("DELETE /oauth2/grants/{client}", s.handleRevokeGrant)
}

// smartPage answers a posted picker or consent page: the flow and the
// interaction it continues, or false once the error is written.
func (s *Server) smartPage(w http.ResponseWriter, r *http.Request) (SMARTFlow, authn.Interaction, bool) {
	flow := s.smartFlow()
	if flow == nil {
		s.writeError(w, r, problem.New(problem.ErrNotFound, "not-supported", "the authorization code flow is not enabled"))
		return nil, authn.Interaction{}, false
	}
	in, ok := s.interaction(w, r)
	return flow, in, ok
}

// interaction reads a page's form: its handle and the browser binding.
func (s *Server) interaction(w http.ResponseWriter, r *http.Request) (authn.Interaction, bool) {
	if err := r.ParseForm(); err != nil || r.URL.RawQuery != "" {
		s.writeError(w, r, problem.New(problem.ErrInvalid, "invalid", "the page is posted as application/x-www-form-urlencoded without a query string"))
		return authn.Interaction{}, false
	}
	in := authn.Interaction{RequestID: requestID(r.Context()), Handle: r.PostForm.Get("handle")}
	if c, err := r.Cookie(loginCookie); err == nil {
		in.Binding = c.Value
	}
	return in, true
}

// renderStep shows the next step of an authorization.
func (s *Server) renderStep(w http.ResponseWriter, r *http.Request, st authn.Step) {
	switch {
	case st.Picker != nil:
		s.renderPage(w, http.StatusOK, pickerTemplate, pickerView{Handle: st.Picker.Handle, ClientID: st.Picker.ClientID})
	case st.Consent != nil:
		s.showConsent(w, r, *st.Consent)
	default:
		// The form is used up on this browser.
		http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/oauth2/authorize", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, st.Redirect, http.StatusSeeOther)
	}
}

// patientRow is a patient as the picker and the consent page show it.
type patientRow struct{ ID, Name, BirthDate string }

func patientRowOf(id string, doc []byte) patientRow {
	var p struct {
		Name []struct {
			Text   string   `json:"text"`
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
		BirthDate string `json:"birthDate"`
	}
	row := patientRow{ID: id}
	if json.Unmarshal(doc, &p) == nil {
		row.BirthDate = p.BirthDate
		if len(p.Name) > 0 {
			n := p.Name[0]
			row.Name = n.Text
			if row.Name == "" {
				row.Name = strings.TrimSpace(strings.Join(append(n.Given, n.Family), " "))
			}
		}
	}
	if row.Name == "" {
		row.Name = "(no name)"
	}
	return row
}

type pickerView struct {
	Handle, ClientID string
	Name, BirthDate  string
	Searched         bool
	Results          []patientRow
	Message          string
}

// handlePicker is the patient picker: action=search finds patients by
// name prefix and birth date (over the blind indexes, through the records
// path as the signed-in user: only patients in the user's care, audited);
// action=choose opens the app with one of them, after the same access
// decision as a read.
func (s *Server) handlePicker(w http.ResponseWriter, r *http.Request) {
	flow, in, ok := s.smartPage(w, r)
	if !ok {
		return
	}
	subj, err := flow.PickerSubject(r.Context(), in)
	if err != nil {
		s.writeError(w, r, problem.New(problem.ErrInvalid, "invalid", authn.ErrLoginForm.Error()))
		return
	}
	f := r.PostForm
	view := pickerView{Handle: in.Handle, Name: strings.TrimSpace(f.Get("name")), BirthDate: strings.TrimSpace(f.Get("birthdate"))}
	repo := s.repoFor(r, subj)
	switch f.Get("action") {
	case "choose":
		id := f.Get("patient")
		if !fhir.IsID(id) {
			view.Message = "Choose a patient from the list."
			s.renderPage(w, http.StatusBadRequest, pickerTemplate, view)
			return
		}
		// The same decision (role, care relationship, consent) as a read.
		if _, err := repo.Read(r.Context(), "Patient", id); err != nil {
			s.writeError(w, r, err)
			return
		}
		st, err := flow.ChoosePatient(r.Context(), in, id)
		if err != nil {
			s.writeFlowError(w, r, err)
			return
		}
		s.renderStep(w, r, st)
	case "search":
		status := http.StatusOK
		if view.Results, view.Message, err = s.pickerSearch(r, repo, view.Name, view.BirthDate); err != nil {
			s.writeError(w, r, err)
			return
		}
		if view.Message != "" {
			status = http.StatusBadRequest
		}
		view.Searched = view.Message == ""
		s.renderPage(w, status, pickerTemplate, view)
	default:
		view.Message = "Search for a patient by name and birth date."
		s.renderPage(w, http.StatusBadRequest, pickerTemplate, view)
	}
}

// pickerSearch searches patients by name prefix and birth date; message
// explains a search that was not run.
func (s *Server) pickerSearch(r *http.Request, repo *records.Repo, name, birthDate string) ([]patientRow, string, error) {
	if name == "" && birthDate == "" {
		return nil, "Give a name, a birth date, or both.", nil
	}
	if len(name) > 64 {
		return nil, "The name is longer than 64 characters.", nil
	}
	v := url.Values{"_count": {"20"}}
	if name != "" {
		v.Set("name", name)
	}
	if birthDate != "" {
		if _, err := time.Parse("2006-01-02", birthDate); err != nil {
			return nil, "The birth date is a date such as 1961-07-14.", nil
		}
		v.Set("birthdate", birthDate)
	}
	q, err := query.Parse("Patient", v, query.Options{Strict: true, DefaultCount: 20, MaxCount: 20, Supported: search.Supported})
	if err != nil {
		return nil, "The search could not be run: " + err.Error(), nil
	}
	page, err := repo.Search(r.Context(), q, nil)
	if err != nil {
		return nil, "", err
	}
	rows := make([]patientRow, 0, len(page.Resources))
	for _, res := range page.Resources {
		rows = append(rows, patientRowOf(res.ID, res.JSON))
	}
	return rows, "", nil
}

type consentView struct {
	authn.ConsentPage
	Patient *patientRow
}

// showConsent renders the consent screen: the app, the scopes in plain
// words and the patient (read through the records path as the user).
func (s *Server) showConsent(w http.ResponseWriter, r *http.Request, cp authn.ConsentPage) {
	view := consentView{ConsentPage: cp}
	if cp.Patient != "" {
		row := patientRow{ID: cp.Patient, Name: "(a patient you may not read)"}
		if subj, err := s.smartFlow().PickerSubject(r.Context(), authn.Interaction{Handle: cp.Handle, Binding: bindingOf(r)}); err == nil {
			if res, err := s.repoFor(r, subj).Read(r.Context(), "Patient", cp.Patient); err == nil {
				row = patientRowOf(cp.Patient, res.JSON)
			}
		}
		view.Patient = &row
	}
	s.renderPage(w, http.StatusOK, consentTemplate, view)
}

// bindingOf is the login cookie's value, or the one set on this response
// (the login page's own answer sets it before the consent page shows).
func bindingOf(r *http.Request) string {
	if c, err := r.Cookie(loginCookie); err == nil {
		return c.Value
	}
	return ""
}

// handleConsent takes the consent screen's allow or deny.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	flow, in, ok := s.smartPage(w, r)
	if !ok {
		return
	}
	var allow bool
	switch r.PostForm.Get("decision") {
	case "allow":
		allow = true
	case "deny":
	default:
		cp, err := flow.ConsentFor(r.Context(), in)
		if err != nil {
			s.writeFlowError(w, r, err)
			return
		}
		s.showConsent(w, r, cp)
		return
	}
	to, err := flow.Decide(r.Context(), in, allow)
	if err != nil {
		s.writeFlowError(w, r, err)
		return
	}
	s.renderStep(w, r, authn.Step{Redirect: to})
}

func (s *Server) writeFlowError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, authn.ErrLoginForm) {
		err = problem.New(problem.ErrInvalid, "invalid", authn.ErrLoginForm.Error())
	}
	s.writeError(w, r, err)
}

type grantJSON struct {
	UserID   string `json:"user_id"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	Created  string `json:"created"`
}

// handleGrants lists remembered consents: a user's own; an admin's
// tenant's (all, or ?user_id=).
func (s *Server) handleGrants(w http.ResponseWriter, r *http.Request) {
	flow, subj, ok := s.grantCaller(w, r)
	if !ok {
		return
	}
	user := subj.ID
	if subj.Role == authz.RoleAdmin {
		user = r.URL.Query().Get("user_id")
	}
	gs, err := flow.Grants(r.Context(), subj.Tenant, user)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]grantJSON, 0, len(gs))
	for _, g := range gs {
		out = append(out, grantJSON{UserID: g.UserID, ClientID: g.ClientID, Scope: g.Scope, Created: g.Created.Format(time.RFC3339)})
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"grants": out})
}

// handleRevokeGrant forgets a consent: the caller's own for app {client},
// or (an admin) user_id's. The next authorization shows the consent
// screen again.
func (s *Server) handleRevokeGrant(w http.ResponseWriter, r *http.Request) {
	flow, subj, ok := s.grantCaller(w, r)
	if !ok {
		return
	}
	user := subj.ID
	if u := r.URL.Query().Get("user_id"); u != "" && u != subj.ID {
		if subj.Role != authz.RoleAdmin {
			s.writeError(w, r, problem.New(problem.ErrForbidden, "forbidden", "only an admin revokes another user's grants"))
			return
		}
		user = u
	}
	if err := flow.RevokeGrant(r.Context(), requestID(r.Context()), subj, user, r.PathValue("client")); err != nil {
		s.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// grantCaller authenticates a /oauth2/grants request: a person signed in
// to Ward (not a backend client, not an app's token).
func (s *Server) grantCaller(w http.ResponseWriter, r *http.Request) (SMARTFlow, authz.Subject, bool) {
	flow := s.smartFlow()
	if flow == nil {
		s.writeError(w, r, problem.New(problem.ErrNotFound, "not-supported", "the authorization code flow is not enabled"))
		return nil, authz.Subject{}, false
	}
	subj, err := s.authenticate(r)
	if err != nil {
		s.writeError(w, r, err)
		return nil, authz.Subject{}, false
	}
	if subj.Role == authz.RoleClient || strings.HasPrefix(subj.ID, "ext/") {
		s.writeError(w, r, problem.New(problem.ErrForbidden, "forbidden", "grants are managed by users signed in to Ward"))
		return nil, authz.Subject{}, false
	}
	return flow, subj, true
}

// renderPage writes one of the authorization's HTML pages: no script,
// style or frame; forms post to this server only.
func (s *Server) renderPage(w http.ResponseWriter, status int, t *template.Template, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; frame-ancestors 'none';")
	w.WriteHeader(status)
	if err := t.Execute(w, data); err != nil {
		s.log.LogAttrs(context.Background(), slog.LevelError, "render authorization page", slog.String("error", err.Error()))
	}
}

var pickerTemplate = template.Must(template.New("picker").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Choose a patient</title></head>
<body>
<main>
<h1>Choose a patient</h1>
<p>The app opens with one patient. Search the patients in your care by the start of a name, a birth date, or both.</p>
{{if .Message}}<p role="alert"><strong>{{.Message}}</strong></p>{{end}}
<form method="post" action="/oauth2/authorize/patient" autocomplete="off">
<input type="hidden" name="handle" value="{{.Handle}}">
<input type="hidden" name="action" value="search">
<p><label for="name">Name starts with</label><br><input id="name" name="name" value="{{.Name}}" maxlength="64"></p>
<p><label for="birthdate">Birth date</label><br><input id="birthdate" name="birthdate" type="date" value="{{.BirthDate}}"></p>
<p><button type="submit" id="search">Search</button></p>
</form>
{{if .Searched}}{{if .Results}}
<form method="post" action="/oauth2/authorize/patient">
<input type="hidden" name="handle" value="{{.Handle}}">
<input type="hidden" name="action" value="choose">
<fieldset><legend>Patients found</legend>
{{range $i, $p := .Results}}<p><input type="radio" name="patient" id="p{{$i}}" value="{{$p.ID}}"{{if eq $i 0}} checked{{end}}> <label for="p{{$i}}">{{$p.Name}}, born {{$p.BirthDate}}</label></p>
{{end}}</fieldset>
<p><button type="submit" id="choose">Open the app with this patient</button></p>
</form>
{{else}}<p role="status">No patient in your care matches.</p>{{end}}{{end}}
</main>
</body>
</html>
`))

var consentTemplate = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Allow {{.ClientID}}?</title></head>
<body>
<main>
<h1>Allow the app <strong>{{.ClientID}}</strong>?</h1>
{{if .Patient}}<p>Patient: <strong id="patient">{{.Patient.Name}}</strong>{{if .Patient.BirthDate}}, born {{.Patient.BirthDate}}{{end}}</p>{{end}}
<p>The app asks to:</p>
<ul>{{range .Scopes}}<li>{{.}}</li>{{end}}</ul>
<p>Ward remembers your answer for this app until you revoke it (Ward's grants page, <code>/oauth2/grants</code>).</p>
<form method="post" action="/oauth2/authorize/consent">
<input type="hidden" name="handle" value="{{.Handle}}">
<p><button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button></p>
</form>
</main>
</body>
</html>
`))
