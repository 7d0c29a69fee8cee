package authn

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// Authorization code flow (RFC 6749 4.1) with PKCE (RFC 7636, S256 only),
// as SMART App Launch uses it for standalone launches of public apps.
const (
	// CodeTTL is how long an authorization code may be exchanged.
	CodeTTL = 60 * time.Second
	// LoginFormTTL is how long a login form may be submitted.
	LoginFormTTL = 10 * time.Minute
	maxStateLen  = 1024
)

// AuthorizeRequest is the query of GET /oauth2/authorize.
type AuthorizeRequest struct {
	ResponseType, ClientID, RedirectURI, Scope, State string
	CodeChallenge, CodeChallengeMethod, Aud, Launch   string
	// Audience is the FHIR base URL that aud must name.
	Audience string
	// Binding is a random value the browser holds in a cookie; the login
	// form is accepted only from a browser that presents it (CSRF).
	Binding string
}

// AuthorizeError is an OAuth2 error sent back to the client's (registered,
// checked) redirect URI (RFC 6749 4.1.2.1).
type AuthorizeError struct {
	RedirectURI, State, Code, Description string
}

func (e *AuthorizeError) Error() string { return e.Code + ": " + e.Description }

// Redirect is the URL to send the browser to.
func (e *AuthorizeError) Redirect() string {
	v := url.Values{"error": {e.Code}, "error_description": {e.Description}}
	if e.State != "" {
		v.Set("state", e.State)
	}
	return withQuery(e.RedirectURI, v)
}

func withQuery(base string, v url.Values) string {
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + v.Encode()
}

// pendingLogin is what the login form carries, sealed: the checked
// authorization request.
type pendingLogin struct {
	ClientID    string `json:"c"`
	RedirectURI string `json:"r"`
	Scope       string `json:"s"`
	State       string `json:"st"`
	Challenge   string `json:"pk"`
	Tenant      string `json:"t"`
	Binding     string `json:"b"` // SHA-256 of the cookie value
	Expires     int64  `json:"e"`
	// Launch is the stored id (hash) of the EHR launch context, if any.
	Launch string `json:"l,omitempty"`
	// After the login: the user, the patient context (from the EHR launch,
	// the user's own record or the picker), the encounter, and whether the
	// user allowed the app on the consent screen.
	User      string `json:"u,omitempty"`
	Patient   string `json:"p,omitempty"`
	Encounter string `json:"en,omitempty"`
	Consented bool   `json:"ok,omitempty"`
}

// LoginPage is what the login page shows and carries.
type LoginPage struct {
	// Handle is the sealed authorization request, for a hidden field.
	Handle   string
	ClientID string
	Tenant   string
	Scopes   []string
}

func loginAAD() []byte { return []byte("ward/login-form/v1") }

func bindingHash(b string) string {
	sum := sha256.Sum256([]byte("ward/login-binding/v1\x00" + b))
	return hex.EncodeToString(sum[:])
}

// validChallenge: an S256 challenge is the unpadded base64url of 32 bytes.
func validChallenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == 32
}

// validVerifier: RFC 7636 4.1, 43 to 128 unreserved characters.
func validVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// StartAuthorize checks an authorization request and returns the login
// page to show. Until the client and its redirect URI are known to match,
// errors are problem errors shown to the user (never a redirect to an
// unchecked URI); after that they are *AuthorizeError, for the client.
func (s *Service) StartAuthorize(ctx context.Context, ar AuthorizeRequest) (LoginPage, error) {
	if ar.ClientID == "" {
		return LoginPage{}, problem.At(problem.ErrInvalid, "required", "client_id", "client_id is required")
	}
	c, err := s.st.ClientByID(ctx, ar.ClientID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (c.Disabled || len(c.RedirectURIs) == 0) {
		return LoginPage{}, problem.At(problem.ErrInvalid, "invalid", "client_id", "client_id does not name an enabled app registered for the authorization code flow")
	}
	if err != nil {
		return LoginPage{}, err
	}
	if ar.RedirectURI == "" || !slices.Contains(c.RedirectURIs, ar.RedirectURI) {
		return LoginPage{}, problem.At(problem.ErrInvalid, "invalid", "redirect_uri", "redirect_uri is required and must be one the app registered, exactly")
	}
	fail := func(code, desc string) (LoginPage, error) {
		return LoginPage{}, &AuthorizeError{RedirectURI: ar.RedirectURI, State: ar.State, Code: code, Description: desc}
	}
	switch {
	case len(ar.State) > maxStateLen:
		return fail("invalid_request", fmt.Sprintf("state is longer than %d characters", maxStateLen))
	case ar.ResponseType != "code":
		return fail("unsupported_response_type", "response_type must be code")
	case ar.CodeChallengeMethod != "S256":
		return fail("invalid_request", "PKCE is required: code_challenge_method must be S256 (plain is not accepted)")
	case !validChallenge(ar.CodeChallenge):
		return fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)")
	case strings.TrimSuffix(ar.Aud, "/") != strings.TrimSuffix(ar.Audience, "/") || ar.Aud == "":
		return fail("invalid_request", "aud must be this server's FHIR base URL")
	}
	scope := ar.Scope
	if scope == "" {
		scope = c.Scope
	}
	req, err := authz.ParseScopes(scope)
	if err != nil || len(req) == 0 {
		return fail("invalid_scope", "scope must be SMART scopes such as launch/patient patient/*.rs")
	}
	reg, _ := authz.ParseScopes(c.Scope)
	// The subset the app is registered for and a user may be granted;
	// the token response's scope says which.
	granted := authz.Negotiate(authz.Negotiate(req, reg), authz.UserScopes())
	if len(granted) == 0 {
		return fail("invalid_scope", "none of the requested scopes may be granted to this app")
	}
	// launch is granted only to apps registered for it, and only with the
	// launch parameter of an EHR launch: a standalone launch that asks for
	// it (many apps use one scope list for both) is granted the rest.
	askedLaunch := slices.ContainsFunc(granted, func(r authz.Scope) bool { return r.Raw == "launch" })
	if askedLaunch && ar.Launch == "" {
		granted = slices.DeleteFunc(granted, func(r authz.Scope) bool { return r.Raw == "launch" })
		askedLaunch = false
		if len(granted) == 0 {
			return fail("invalid_scope", "scope launch is for an EHR launch (send the launch parameter the app was opened with); nothing else was asked for")
		}
	}
	launchID := ""
	switch {
	case ar.Launch != "" && !askedLaunch:
		return fail("invalid_scope", "an EHR launch (the launch parameter) asks for scope launch")
	case ar.Launch != "":
		l, why, err := s.checkLaunch(ctx, c, ar.Launch)
		if err != nil {
			return LoginPage{}, err
		}
		if l == nil {
			return fail("invalid_request", why)
		}
		launchID = l.ID
	}
	if ar.Binding == "" {
		return LoginPage{}, errors.New("authorize: no browser binding")
	}
	p := pendingLogin{Launch: launchID, ClientID: c.ID, RedirectURI: ar.RedirectURI, Scope: authz.JoinScopes(granted), State: ar.State,
		Challenge: ar.CodeChallenge, Tenant: c.Tenant, Binding: bindingHash(ar.Binding), Expires: s.o.Now().Add(LoginFormTTL).Unix()}
	plain, err := json.Marshal(p)
	if err != nil {
		return LoginPage{}, err
	}
	sealed, err := s.sealer.Seal(s.o.SealKeyID, plain, loginAAD())
	if err != nil {
		return LoginPage{}, fmt.Errorf("seal login form: %w", err)
	}
	return LoginPage{Handle: base64.RawURLEncoding.EncodeToString(sealed), ClientID: c.ID, Tenant: c.Tenant, Scopes: strings.Fields(p.Scope)}, nil
}

// ErrLoginForm: the login form's handle is missing, malformed, expired,
// or was not issued to this browser.
var ErrLoginForm = errors.New("the login form has expired or was not opened in this browser; start again from the app")

// LoginForm is a submitted login page.
type LoginForm struct {
	RequestID                string
	Handle, Binding          string
	Username, Password, TOTP string
	Address                  string // keyed tag of the client address (PasswordRequest.Address)
}

// openLogin opens and checks a login form's handle.
func (s *Service) openLogin(handle, binding string) (pendingLogin, error) {
	var p pendingLogin
	if handle == "" || len(handle) > 8192 || binding == "" {
		return p, ErrLoginForm
	}
	sealed, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil {
		return p, ErrLoginForm
	}
	plain, err := s.sealer.Open(sealed, loginAAD())
	if err != nil || json.Unmarshal(plain, &p) != nil {
		return p, ErrLoginForm
	}
	if subtle.ConstantTimeCompare([]byte(p.Binding), []byte(bindingHash(binding))) != 1 || s.o.Now().Unix() > p.Expires {
		return p, ErrLoginForm
	}
	return p, nil
}

// PageFor rebuilds the login page of a handle (to show it again after a
// failed login).
func (s *Service) PageFor(handle, binding string) (LoginPage, error) {
	p, err := s.openLogin(handle, binding)
	if err != nil {
		return LoginPage{}, err
	}
	return LoginPage{Handle: handle, ClientID: p.ClientID, Tenant: p.Tenant, Scopes: strings.Fields(p.Scope)}, nil
}

// CodeRequest is a grant_type=authorization_code token request. A public
// app sends only its client_id; a confidential app authenticates with its
// secret (HTTP Basic or the form's client_secret) or a private_key_jwt
// assertion.
type CodeRequest struct {
	RequestID, Code, RedirectURI, ClientID, CodeVerifier string
	// ClientSecret is the secret of client_secret_basic or
	// client_secret_post ("" : none sent).
	ClientSecret string
	// AssertionType and Assertion are private_key_jwt's.
	AssertionType, Assertion string
	// Audience is this server's token endpoint URL (an assertion's aud).
	Audience string
	// FHIRBase is this server's FHIR base URL (the id_token's fhirUser
	// is a URL under it).
	FHIRBase string
}

// AuthorizationCodeGrant exchanges an authorization code for tokens. The
// code must be unused, unexpired, issued to this client for this redirect
// URI, and the verifier must hash to its PKCE challenge. Any failed
// exchange of a known code uses the code up. Every attempt is audited.
func (s *Service) AuthorizationCodeGrant(ctx context.Context, cr CodeRequest) (Token, error) {
	now := s.o.Now().UTC()
	rec := &audit.Record{Time: now, RequestID: cr.RequestID, Action: "code-exchange"}
	fail := func(detail string, unit *store.Unit) (Token, error) {
		rec.Outcome, rec.Detail = audit.OutcomeMinor, detail
		if unit == nil {
			unit = &store.Unit{}
		}
		if err := s.ledger().Commit(ctx, unit, rec); err != nil && !errors.Is(err, store.ErrConflict) {
			return Token{}, err
		}
		return Token{}, ErrInvalidGrant
	}
	if cr.ClientID == "" && cr.Assertion != "" {
		// RFC 7523 3: with an assertion, client_id may be left out; the
		// assertion's issuer names the client (and is verified below).
		var unverified jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(cr.Assertion, &unverified); err == nil {
			cr.ClientID = unverified.Issuer
		}
	}
	if cr.Code == "" || len(cr.Code) > 256 {
		return fail("code-malformed", nil)
	}
	// The client authenticates before the code is looked at: a client that
	// fails does not use the code up.
	if detail, err := s.authenticateApp(ctx, cr.clientAuth(), rec); err != nil {
		if detail == "" {
			return Token{}, err
		}
		rec.Outcome, rec.Detail = audit.OutcomeMinor, detail
		if cerr := s.ledger().Record(ctx, rec); cerr != nil {
			return Token{}, cerr
		}
		return Token{}, err
	}
	c, err := s.st.CodeByID(ctx, refreshID(cr.Code))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fail("code-unknown", nil)
	case err != nil:
		return Token{}, err
	}
	rec.Tenant, rec.Actor = c.Tenant, c.UserID
	rec.Entities = []string{"client/" + c.ClientID}
	burn := &store.Unit{Parts: []store.Part{&store.CodeUse{ID: c.ID}}}
	if c.Used {
		// A code presented twice was intercepted, or the app is broken:
		// revoke what its first exchange issued (RFC 6749 4.1.2).
		if c.TokenID == "" {
			return fail("code-reuse", nil)
		}
		_, err := fail("code-reuse;tokens-revoked", &store.Unit{Parts: []store.Part{store.RevokeToken{JTI: c.TokenID, Expires: c.TokenExpires}, store.RevokeFamily{Family: c.Family}}})
		if errors.Is(err, ErrInvalidGrant) {
			s.markRevoked(c.TokenID)
			if s.o.Peers != nil {
				s.o.Peers.TokensChanged(Change{Tenant: c.Tenant, JTI: c.TokenID})
			}
		}
		return Token{}, err
	}
	if detail, burnIt := codeMismatch(c, cr, now); detail != "" {
		if burnIt {
			return fail(detail, burn)
		}
		return fail(detail, nil)
	}
	u, detail, err := s.codeHolder(ctx, c, now)
	if err != nil {
		return Token{}, err
	}
	if detail != "" {
		return fail(detail, burn)
	}
	rec.Role, rec.Detail = u.Role, "token-issued"
	return s.issueForCode(ctx, c, u, rec, now, cr.FHIRBase)
}

// codeMismatch names why cr may not exchange the unused code c ("" : it
// may), and whether the attempt uses the code up: a wrong client,
// redirect URI or verifier does, an expired code has nothing left to use.
func codeMismatch(c *store.Code, cr CodeRequest, now time.Time) (detail string, burn bool) {
	sum := sha256.Sum256([]byte(cr.CodeVerifier))
	switch {
	case !now.Before(c.Expires):
		return "code-expired", false
	case cr.ClientID != c.ClientID:
		return "code-client-mismatch", true
	case cr.RedirectURI != c.RedirectURI:
		return "code-redirect-mismatch", true
	case !validVerifier(cr.CodeVerifier) ||
		subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(c.CodeChallenge)) != 1:
		return "pkce-mismatch", true
	}
	return "", false
}

// codeHolder loads the user a code was issued to; detail is non-empty
// when the code's client or user can no longer be given tokens.
func (s *Service) codeHolder(ctx context.Context, c *store.Code, now time.Time) (*store.User, string, error) {
	cl, err := s.st.ClientByID(ctx, c.ClientID)
	if errors.Is(err, store.ErrNotFound) || err == nil && cl.Disabled {
		return nil, "client-disabled", nil
	}
	if err != nil {
		return nil, "", err
	}
	u, err := s.st.UserByID(ctx, c.UserID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (u.Disabled || now.Before(u.LockedUntil)) {
		return nil, "user-unavailable", nil
	}
	if err != nil {
		return nil, "", err
	}
	if _, ok := authz.ParseRole(u.Role); !ok {
		return nil, "user-unavailable", nil
	}
	return u, "", nil
}

// issueForCode issues the tokens of an exchanged code and commits the
// code's use, the refresh token and rec in one unit.
func (s *Service) issueForCode(ctx context.Context, c *store.Code, u *store.User, rec *audit.Record, now time.Time, fhirBase string) (Token, error) {
	// Signed first so that the code's row can name what it issued; if the
	// commit fails the token is never handed out.
	subj := subjectOf(u, c.Scope)
	if c.Patient != "" {
		// The launch's (or the picker's) patient is the token's patient
		// context.
		subj.Patient = c.Patient
	}
	tok, err := s.issueFor(subj, s.o.TTL, appContext{ClientID: c.ClientID, Encounter: c.Encounter})
	if err != nil {
		return Token{}, err
	}
	tok.Patient, tok.Encounter = c.Patient, c.Encounter
	scopes := strings.Fields(c.Scope)
	if c.Patient != "" || slices.Contains(scopes, "launch") || slices.Contains(scopes, "launch/patient") {
		tok.LaunchContext, tok.NeedPatientBanner, tok.StyleURL = true, !c.EHRLaunch, s.o.StyleURL
	}
	use := &store.CodeUse{ID: c.ID, TokenID: tok.jti, TokenExpires: tok.expires}
	unit := &store.Unit{Parts: []store.Part{use}}
	var nr *store.Refresh
	if tok.RefreshToken, nr, err = newRefresh(u, c.Scope, "", now); err != nil {
		return Token{}, err
	}
	if nr != nil {
		nr.Patient, nr.Encounter = c.Patient, c.Encounter
		nr.ClientID = c.ClientID
		use.Family = nr.Family
		unit.Parts = append(unit.Parts, store.NewRefresh{Refresh: nr})
	}
	if err := s.ledger().Commit(ctx, unit, rec); errors.Is(err, store.ErrConflict) {
		// Exchanged concurrently, or expired in between: the second
		// exchange loses (its record is in the ledger as a conflict).
		return Token{}, ErrInvalidGrant
	} else if err != nil {
		return Token{}, err
	}
	if slices.Contains(strings.Fields(c.Scope), "openid") {
		if tok.IDToken, err = s.idToken(u, c.ClientID, c.Scope, fhirBase); err != nil {
			return Token{}, err
		}
	}
	return tok, nil
}
