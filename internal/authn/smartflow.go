package authn

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// The steps of an authorization after the login page (SMART App Launch
// 2.x): the patient picker, when the app asks for launch/patient and the
// user may see more than one patient; the consent screen, unless the user
// allowed this app the same (or a wider) scope before; then the code. The
// state between the pages is the login form's sealed handle, resealed
// with what each step added, and bound to the same browser cookie.

// Step is what the browser is shown after a page of the authorization:
// exactly one of Redirect (to the app), Picker or Consent.
type Step struct {
	Redirect string
	Picker   *PickerPage
	Consent  *ConsentPage
}

// PickerPage asks the user to choose the patient the app opens with.
type PickerPage struct {
	Handle, ClientID string
}

// ConsentPage asks the user to allow or deny the app.
type ConsentPage struct {
	Handle, ClientID string
	// Scopes are the scopes to be granted, in plain words.
	Scopes []string
	// Patient is the patient context ("" : none); the page shows the
	// patient's name, read by the API through the records path.
	Patient string
}

// Interaction is a picker or consent page submitted by the browser.
type Interaction struct {
	RequestID       string
	Handle, Binding string
}

// CompleteAuthorize checks the credentials typed into the login page (the
// same checks, lockout and ledger records as the password grant) and
// returns the next step: the picker, the consent screen, or the redirect
// carrying a new authorization code and the state. Wrong credentials are
// ErrInvalidGrant (show the page again).
func (s *Service) CompleteAuthorize(ctx context.Context, lf LoginForm) (Step, error) {
	p, err := s.openLogin(lf.Handle, lf.Binding)
	if err != nil {
		return Step{}, err
	}
	c, err := s.st.ClientByID(ctx, p.ClientID)
	if errors.Is(err, store.ErrNotFound) || err == nil && c.Disabled {
		return p.deny("unauthorized_client", "the app has been disabled"), nil
	}
	if err != nil {
		return Step{}, err
	}
	u, unit, rec, err := s.checkLogin(ctx, loginAttempt{RequestID: lf.RequestID, Tenant: p.Tenant, Username: lf.Username, Password: lf.Password, TOTP: lf.TOTP, Address: lf.Address})
	if err != nil {
		return Step{}, err
	}
	rec.Detail = "app-login"
	rec.Entities = append(rec.Entities, "client/"+c.ID)
	if p.Launch != "" {
		l, why, err := s.launchFor(ctx, p, c, u)
		if err != nil {
			return Step{}, err
		}
		if why != "" {
			rec.Outcome, rec.Detail = audit.OutcomeMinor, why
			if err := s.ledger().Commit(ctx, unit, rec); err != nil {
				return Step{}, err
			}
			desc := "the launch has expired or was used; launch the app again from Ward"
			if why == "launch-user-mismatch" {
				desc = "the launch was created by another user"
			}
			return p.deny("access_denied", desc), nil
		}
		p.Patient, p.Encounter = l.Patient, l.Encounter
	}
	if err := s.ledger().Commit(ctx, unit, rec); err != nil {
		return Step{}, err
	}
	p.User = u.ID
	return s.advance(ctx, lf.RequestID, p, u)
}

// launchFor checks that the EHR launch of p is still usable by user u,
// or says why not (a ledger detail).
func (s *Service) launchFor(ctx context.Context, p pendingLogin, c *store.Client, u *store.User) (*store.Launch, string, error) {
	// The launch context is the user's who created it: another user
	// signing in does not get its patient.
	l, err := s.st.LaunchByID(ctx, p.Launch)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, "", err
	}
	switch {
	case l == nil || l.Used || !s.o.Now().Before(l.Expires) || l.Tenant != u.Tenant || l.ClientID != c.ID:
		return nil, "launch-unusable", nil
	case l.UserID != u.ID:
		return nil, "launch-user-mismatch", nil
	}
	return l, "", nil
}

func (p pendingLogin) deny(code, desc string) Step {
	return Step{Redirect: (&AuthorizeError{RedirectURI: p.RedirectURI, State: p.State, Code: code, Description: desc}).Redirect()}
}

// advance returns the next step of a signed-in authorization.
func (s *Service) advance(ctx context.Context, requestID string, p pendingLogin, u *store.User) (Step, error) {
	if slices.Contains(strings.Fields(p.Scope), "launch/patient") && p.Patient == "" {
		role, _ := authz.ParseRole(u.Role)
		if role == authz.RoleUser {
			// A person signed in for their own record: that is the
			// patient; no picker.
			if u.Patient == "" {
				return p.deny("access_denied", "your account is not linked to a patient record"), nil
			}
			p.Patient = u.Patient
		} else {
			h, err := s.seal(p)
			return Step{Picker: &PickerPage{Handle: h, ClientID: p.ClientID}}, err
		}
	}
	if !p.Consented {
		g, err := s.st.GrantOf(ctx, u.ID, p.ClientID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return Step{}, err
		}
		if g == nil || !grantCovers(g.Scope, p.Scope) {
			h, err := s.seal(p)
			return Step{Consent: &ConsentPage{Handle: h, ClientID: p.ClientID, Scopes: authz.DescribeScopes(p.Scope), Patient: p.Patient}}, err
		}
	}
	return s.issueCode(ctx, requestID, p, u, nil)
}

// grantCovers reports whether a remembered grant covers every scope of
// want.
func grantCovers(granted, want string) bool {
	g, err1 := authz.ParseScopes(granted)
	w, err2 := authz.ParseScopes(want)
	if err1 != nil || err2 != nil {
		return false
	}
	for _, r := range w {
		if !slices.ContainsFunc(g, func(x authz.Scope) bool { return authz.Covers(x, r) }) {
			return false
		}
	}
	return true
}

func (s *Service) seal(p pendingLogin) (string, error) {
	p.Expires = s.o.Now().Add(LoginFormTTL).Unix()
	plain, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	sealed, err := s.sealer.Seal(s.o.SealKeyID, plain, loginAAD())
	if err != nil {
		return "", fmt.Errorf("seal login form: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// signedIn opens a handle of a step after the login, and loads its user
// (ErrLoginForm if the handle is not one, or the user can no longer sign
// in).
func (s *Service) signedIn(ctx context.Context, in Interaction) (pendingLogin, *store.User, error) {
	p, err := s.openLogin(in.Handle, in.Binding)
	if err != nil || p.User == "" {
		return p, nil, ErrLoginForm
	}
	u, err := s.st.UserByID(ctx, p.User)
	if errors.Is(err, store.ErrNotFound) || err == nil && (u.Disabled || s.o.Now().Before(u.LockedUntil) || u.Tenant != p.Tenant) {
		return p, nil, ErrLoginForm
	}
	return p, u, err
}

// PickerSubject is the subject the patient picker searches (and the
// consent page reads the patient) as: the
// signed-in user, with the right to search and read patients only (the
// role, care relationships and consents then decide which).
func (s *Service) PickerSubject(ctx context.Context, in Interaction) (authz.Subject, error) {
	_, u, err := s.signedIn(ctx, in)
	if err != nil {
		return authz.Subject{}, err
	}
	return subjectOf(u, "user/Patient.rs"), nil
}

// ChoosePatient sets the patient the app opens with and returns the next
// step. The caller has checked, through the records path as the picker
// subject, that the user may read that patient.
func (s *Service) ChoosePatient(ctx context.Context, in Interaction, patient string) (Step, error) {
	p, u, err := s.signedIn(ctx, in)
	if err != nil {
		return Step{}, err
	}
	if p.Patient != "" || !fhirID.MatchString(patient) {
		return Step{}, ErrLoginForm
	}
	p.Patient = patient
	return s.advance(ctx, in.RequestID, p, u)
}

// ConsentFor rebuilds the consent page of a handle (to show it after the
// picker, or again).
func (s *Service) ConsentFor(ctx context.Context, in Interaction) (ConsentPage, error) {
	p, _, err := s.signedIn(ctx, in)
	if err != nil {
		return ConsentPage{}, err
	}
	return ConsentPage{Handle: in.Handle, ClientID: p.ClientID, Scopes: authz.DescribeScopes(p.Scope), Patient: p.Patient}, nil
}

// Decide takes the consent screen's answer. Allow remembers the grant for
// the user and app (a ledger event, in the same unit as the code) and
// redirects with the code; deny redirects with access_denied and is
// recorded.
func (s *Service) Decide(ctx context.Context, in Interaction, allow bool) (string, error) {
	p, u, err := s.signedIn(ctx, in)
	if err != nil {
		return "", err
	}
	needsPatient := slices.Contains(strings.Fields(p.Scope), "launch/patient")
	if needsPatient && p.Patient == "" {
		return "", ErrLoginForm
	}
	now := s.o.Now().UTC()
	rec := &audit.Record{Time: now, Tenant: u.Tenant, RequestID: in.RequestID, Actor: u.ID, Role: u.Role, Action: "app-grant",
		Entities: []string{"client/" + p.ClientID}}
	if !allow {
		rec.Outcome, rec.Detail = audit.OutcomeMinor, "denied"
		if err := s.ledger().Record(ctx, rec); err != nil {
			return "", err
		}
		return p.deny("access_denied", "the user denied the app access").Redirect, nil
	}
	p.Consented = true
	rec.Detail = "allowed;scope=" + p.Scope
	grant := store.PutGrant{Grant: &store.Grant{Tenant: u.Tenant, UserID: u.ID, ClientID: p.ClientID, Scope: p.Scope, Created: now}}
	st, err := s.issueCode(ctx, in.RequestID, p, u, &consent{part: grant, rec: rec})
	return st.Redirect, err
}

type consent struct {
	part store.Part
	rec  *audit.Record
}

// issueCode issues the authorization code of a finished authorization:
// one unit with the code, the launch's use, the consent given now (if
// any), and their ledger records.
func (s *Service) issueCode(ctx context.Context, requestID string, p pendingLogin, u *store.User, given *consent) (Step, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Step{}, err
	}
	code := base64.RawURLEncoding.EncodeToString(b)
	now := s.o.Now().UTC()
	nc := &store.Code{ID: refreshID(code), ClientID: p.ClientID, RedirectURI: p.RedirectURI, CodeChallenge: p.Challenge,
		UserID: u.ID, Tenant: u.Tenant, Scope: p.Scope, Expires: now.Add(CodeTTL), Patient: p.Patient, Encounter: p.Encounter, EHRLaunch: p.Launch != ""}
	unit := &store.Unit{Parts: []store.Part{store.NewCode{Code: nc}}}
	rec := &audit.Record{Time: now, Tenant: u.Tenant, RequestID: requestID, Actor: u.ID, Role: u.Role, Action: "code-issue",
		Detail: "standalone", Entities: []string{"client/" + p.ClientID}}
	if p.Launch != "" {
		unit.Parts = append(unit.Parts, store.UseLaunch{ID: p.Launch})
		rec.Detail = "ehr-launch"
	}
	if p.Patient != "" {
		rec.Entities = append(rec.Entities, "Patient/"+p.Patient)
	}
	recs := []*audit.Record{rec}
	if given != nil {
		unit.Parts = append(unit.Parts, given.part)
		recs = append(recs, given.rec)
	}
	if err := s.ledger().Commit(ctx, unit, recs...); errors.Is(err, store.ErrConflict) && p.Launch != "" {
		// The launch was used concurrently (or expired in between).
		return p.deny("access_denied", "the launch has expired or was used; launch the app again from Ward"), nil
	} else if err != nil {
		return Step{}, err
	}
	v := url.Values{"code": {code}}
	if p.State != "" {
		v.Set("state", p.State)
	}
	return Step{Redirect: withQuery(p.RedirectURI, v)}, nil
}

// AppGrant is a remembered consent, as /oauth2/grants lists it.
type AppGrant = store.Grant

// Grants lists the grants of a tenant (userID "" : every user's).
func (s *Service) Grants(ctx context.Context, tenant, userID string) ([]AppGrant, error) {
	return s.st.Grants(ctx, tenant, userID)
}

// RevokeGrant forgets what user userID allowed app clientID, so that the
// consent screen is shown again; by subj (the user, or an admin of the
// tenant). A ledger event. Unknown: a problem.ErrNotFound.
func (s *Service) RevokeGrant(ctx context.Context, requestID string, subj authz.Subject, userID, clientID string) error {
	none := problem.New(problem.ErrNotFound, "not-found", "no grant of this app by this user")
	g, err := s.st.GrantOf(ctx, userID, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return none
	}
	if err != nil {
		return err
	}
	if g.Tenant != subj.Tenant {
		return none
	}
	err = s.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.RevokeGrant{UserID: userID, ClientID: clientID}}}, &audit.Record{
		Time: s.o.Now().UTC(), Tenant: subj.Tenant, RequestID: requestID, Actor: subj.ID, Role: string(subj.Role), Action: "app-grant-revoke",
		Entities: []string{"client/" + clientID, "user/" + userID},
	})
	if errors.Is(err, store.ErrConflict) {
		return none
	}
	return err
}
