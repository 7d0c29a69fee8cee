package authn

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// Directory is what the administration of tenants, users and clients
// needs from storage.
type Directory interface {
	UserByName(ctx context.Context, tenant, username string) (*store.User, error)
	UserByID(ctx context.Context, id string) (*store.User, error)
	Users(ctx context.Context, tenant string) ([]store.User, error)
	ClientByID(ctx context.Context, id string) (*store.Client, error)
	store.IdentityReader
	Commit(ctx context.Context, u *store.Unit) error
}

// Actor is who makes an administrative change, for the ledger: an admin
// user (REST) or the command line ("cli", role "system").
type Actor struct {
	ID, Role, RequestID string
}

// TenantPattern is what a tenant id looks like.
var TenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// AddTenant creates a tenant. Audited.
func AddTenant(ctx context.Context, d Directory, a Actor, id string) error {
	if !TenantPattern.MatchString(id) {
		return problem.New(problem.ErrInvalid, "invalid", "a tenant id is 1 to 63 characters: lower-case letters, digits and '-', not starting with '-'")
	}
	now := time.Now().UTC()
	err := store.NewRecorder(d).Commit(ctx, &store.Unit{Parts: []store.Part{store.NewTenant{Tenant: &store.Tenant{ID: id, Created: now}}}}, &audit.Record{Time: now, Tenant: id, RequestID: a.RequestID, Actor: a.ID, Role: a.Role, Action: "tenant-add", Entities: []string{"tenant/" + id}})
	if errors.Is(err, store.ErrConflict) {
		return problem.New(problem.ErrConflict, "duplicate", "the tenant already exists")
	}
	return err
}

// requireTenant refuses a tenant that does not exist.
func requireTenant(ctx context.Context, d Directory, tenant string) error {
	_, err := d.TenantByID(ctx, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return problem.New(problem.ErrInvalid, "invalid", "no such tenant; create it first with ward tenants add")
	}
	return err
}

// NewUser is a user to create.
type NewUser struct {
	Tenant, Username, Role, Password string
	// Practitioner is the Practitioner a physician or nurse is; Patient
	// the Patient a user-role account is or acts for (required for that
	// role). Both are ids of existing resources of the tenant.
	Practitioner, Patient string
	// Clearances are security label codes the user may see.
	Clearances []string
}

// ResourceChecker finds the current version of a resource; AddUser uses it
// to refuse a link to a resource that does not exist in the tenant.
type ResourceChecker interface {
	Current(ctx context.Context, tenant, typ, id string) (*store.Version, error)
}

// CheckUserLink checks the FHIR resource a user of role r is linked to: a
// physician or nurse may be a Practitioner, a user-role account must be
// (or act for) a Patient, an admin is linked to nothing. It returns the
// linked type and id ("" when none), or a problem naming the field
// (practitioner or patient).
func CheckUserLink(r authz.Role, practitioner, patient string) (typ, id string, err error) {
	switch {
	case practitioner != "" && patient != "":
		return "", "", problem.New(problem.ErrInvalid, "invalid", "give practitioner or patient, not both")
	case practitioner != "" && r != authz.RolePhysician && r != authz.RoleNurse:
		return "", "", problem.At(problem.ErrInvalid, "invalid", "practitioner", "practitioner links a physician or nurse")
	case patient != "" && r != authz.RoleUser:
		return "", "", problem.At(problem.ErrInvalid, "invalid", "patient", "patient links a user-role account (a patient or their proxy)")
	case r == authz.RoleUser && patient == "":
		return "", "", problem.At(problem.ErrInvalid, "required", "patient", "a user-role account needs patient: the id of the Patient it is or acts for")
	case practitioner != "":
		typ, id = "Practitioner", practitioner
	case patient != "":
		typ, id = "Patient", patient
	default:
		return "", "", nil
	}
	if !fhirID.MatchString(id) {
		return "", "", problem.At(problem.ErrInvalid, "invalid", strings.ToLower(typ), strings.ToLower(typ)+" must be a FHIR id (1 to 64 of A-Z a-z 0-9 - .)")
	}
	return typ, id, nil
}

// CheckClearances checks security label codes a user is cleared for.
func CheckClearances(codes []string) error {
	for _, c := range codes {
		if !authz.NeedsClearance(c) {
			return problem.At(problem.ErrInvalid, "invalid", "clearance", "a listed code is not a security label that needs a clearance (one of "+strings.Join(authz.ClearanceLabels(), ", ")+")")
		}
	}
	return nil
}

// CheckUsername is the rule for usernames: staff login names, 1 to 128
// characters without spaces or control characters.
func CheckUsername(username string) error {
	if username == "" || len(username) > 128 || strings.IndexFunc(username, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return problem.At(problem.ErrInvalid, "invalid", "username", "username is required: 1 to 128 characters, no spaces")
	}
	return nil
}

// AddUser creates a user in an existing tenant, checking the password
// policy. Audited (with the new user's id, never the username).
func AddUser(ctx context.Context, d Directory, a Actor, nu NewUser) (*store.User, error) {
	if err := CheckUsername(nu.Username); err != nil {
		return nil, err
	}
	role, ok := authz.ParseRole(nu.Role)
	if !ok {
		return nil, problem.At(problem.ErrInvalid, "invalid", "role", "role must be one of admin, privacy-officer, physician, nurse, user")
	}
	linkType, linkID, err := CheckUserLink(role, nu.Practitioner, nu.Patient)
	if err != nil {
		return nil, err
	}
	if err := CheckClearances(nu.Clearances); err != nil {
		return nil, err
	}
	if err := CheckPassword(nu.Username, nu.Password); err != nil {
		return nil, problem.At(problem.ErrInvalid, "invalid", "password", err.Error())
	}
	if err := requireTenant(ctx, d, nu.Tenant); err != nil {
		return nil, err
	}
	if linkType != "" {
		rc, ok := d.(ResourceChecker)
		if !ok {
			return nil, errors.New("add user: the directory cannot check linked resources")
		}
		if v, err := rc.Current(ctx, nu.Tenant, linkType, linkID); errors.Is(err, store.ErrNotFound) || err == nil && v.Deleted {
			return nil, problem.At(problem.ErrInvalid, "invalid", strings.ToLower(linkType), fmt.Sprintf("there is no %s with this id in the tenant", linkType))
		} else if err != nil {
			return nil, err
		}
	}
	hash, err := HashPassword(nu.Password)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	u := &store.User{ID: uuid.NewString(), Tenant: nu.Tenant, Username: nu.Username, Role: string(role), PasswordHash: hash, Created: now,
		Practitioner: nu.Practitioner, Patient: nu.Patient, Clearances: nu.Clearances}
	err = store.NewRecorder(d).Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: u}}}, &audit.Record{
		Time: now, Tenant: nu.Tenant, RequestID: a.RequestID, Actor: a.ID, Role: a.Role, Action: "user-add", Entities: UserEntities(u), Detail: "role:" + string(role),
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, problem.At(problem.ErrConflict, "duplicate", "username", "a user with this username already exists in the tenant")
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// UserEntities are the ledger entities of a user record: its id and the
// resource it is linked to.
func UserEntities(u *store.User) []string {
	out := []string{"user/" + u.ID}
	if u.Practitioner != "" {
		out = append(out, "Practitioner/"+u.Practitioner)
	}
	if u.Patient != "" {
		out = append(out, "Patient/"+u.Patient)
	}
	return out
}

// SetUserDisabled disables or enables a user of tenant (a user of another
// tenant is not found). The user's tokens are refused once the token
// service reloads its disabled subjects (Service.SubjectsChanged, or within
// its RevocationRefresh). Audited.
func SetUserDisabled(ctx context.Context, d Directory, a Actor, tenant, userID string, disabled bool) error {
	u, err := d.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) || err == nil && u.Tenant != tenant {
		return problem.New(problem.ErrNotFound, "not-found", "no such user in this tenant")
	}
	if err != nil {
		return err
	}
	verb := "user-enable"
	if disabled {
		verb = "user-disable"
	}
	return store.NewRecorder(d).Commit(ctx, &store.Unit{Parts: []store.Part{&store.UserUpdate{UserID: u.ID, Disabled: &disabled}}}, &audit.Record{
		Time: time.Now().UTC(), Tenant: tenant, RequestID: a.RequestID, Actor: a.ID, Role: a.Role, Action: verb, Entities: []string{"user/" + u.ID},
	})
}

// NewClient is a client to register: a SMART Backend Services client (a
// JWKS of public keys and system/ scopes) or a public app using the
// authorization code flow with PKCE (redirect URIs and user/, patient/,
// launch and identity scopes).
//
// An app is confidential when it is registered with a client secret
// (Secret: stored only as its argon2id hash) or a JWKS (private_key_jwt);
// it then authenticates at the token endpoint.
type NewClient struct {
	ID, Tenant, JWKS, Scope string
	RedirectURIs            []string
	// LaunchURI is where an EHR launch opens the app ("" : none); it is
	// checked like a redirect URI.
	LaunchURI string
	// Secret is a confidential app's client secret (see
	// GenerateClientSecret, CheckClientSecret); "" : none.
	Secret string
}

// CheckRedirectURI accepts an absolute https URI, or http on a loopback
// host (native apps, RFC 8252), without a fragment.
func CheckRedirectURI(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || strings.Contains(s, "#") || len(s) > 512 || u.User != nil {
		return errors.New("a redirect URI is an absolute URL without a fragment or user info, at most 512 characters")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return errors.New("a redirect URI must use https (http only on a loopback host)")
}

// AddClient registers a client in an existing tenant. Audited.
func AddClient(ctx context.Context, d Directory, a Actor, nc NewClient) (*store.Client, error) {
	if nc.ID == "" || len(nc.ID) > 128 || strings.IndexFunc(nc.ID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return nil, problem.At(problem.ErrInvalid, "invalid", "client_id", "client id is required: 1 to 128 printable ASCII characters, no spaces")
	}
	scopes, err := authz.ParseScopes(nc.Scope)
	if err != nil || len(scopes) == 0 {
		return nil, problem.At(problem.ErrInvalid, "invalid", "scope", fmt.Sprintf("give the scopes the client may be granted, such as system/Patient.rs (%v)", err))
	}
	switch {
	case nc.Secret != "" && len(nc.RedirectURIs) == 0:
		return nil, problem.At(problem.ErrInvalid, "invalid", "client_secret", "a client secret is for an app of the authorization code flow (give redirect URIs); backend services authenticate with keys")
	case nc.Secret != "" && nc.JWKS != "":
		return nil, problem.New(problem.ErrInvalid, "invalid", "a confidential app authenticates with a client secret or with keys (a JWKS), not both")
	case nc.Secret != "":
		if err := CheckClientSecret(nc.Secret); err != nil {
			return nil, problem.At(problem.ErrInvalid, "invalid", "client_secret", err.Error())
		}
	}
	switch {
	case nc.JWKS != "" && len(nc.RedirectURIs) > 0:
		// A confidential app with keys (private_key_jwt).
		if _, err := ParseJWKS([]byte(nc.JWKS)); err != nil {
			return nil, problem.At(problem.ErrInvalid, "invalid", "jwks", err.Error())
		}
		if err := checkAppRegistration(nc.RedirectURIs, scopes); err != nil {
			return nil, err
		}
	case nc.JWKS != "":
		if _, err := ParseJWKS([]byte(nc.JWKS)); err != nil {
			return nil, problem.At(problem.ErrInvalid, "invalid", "jwks", err.Error())
		}
		for _, sc := range scopes {
			if sc.Context != "system" {
				return nil, problem.At(problem.ErrInvalid, "invalid", "scope", sc.Raw+" is not a system/ scope; backend clients get system/ scopes only")
			}
		}
	case len(nc.RedirectURIs) > 0:
		if err := checkAppRegistration(nc.RedirectURIs, scopes); err != nil {
			return nil, err
		}
	default:
		return nil, problem.New(problem.ErrInvalid, "invalid", "give a JWKS (backend service) or redirect URIs (public app)")
	}
	if nc.LaunchURI != "" {
		if len(nc.RedirectURIs) == 0 {
			return nil, problem.At(problem.ErrInvalid, "invalid", "launch_uri", "a launch URI is for an app of the authorization code flow (give redirect URIs)")
		}
		if err := CheckRedirectURI(nc.LaunchURI); err != nil {
			return nil, problem.At(problem.ErrInvalid, "invalid", "launch_uri", strings.Replace(err.Error(), "a redirect URI", "a launch URI", 1))
		}
	}
	if err := requireTenant(ctx, d, nc.Tenant); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	c := &store.Client{ID: nc.ID, Tenant: nc.Tenant, JWKS: nc.JWKS, Scope: strings.Join(strings.Fields(nc.Scope), " "), Created: now, RedirectURIs: nc.RedirectURIs, LaunchURI: nc.LaunchURI}
	if nc.Secret != "" {
		if c.SecretHash, err = HashPassword(nc.Secret); err != nil {
			return nil, err
		}
	}
	err = store.NewRecorder(d).Commit(ctx, &store.Unit{Parts: []store.Part{store.NewClient{Client: c}}}, &audit.Record{Time: now, Tenant: nc.Tenant, RequestID: a.RequestID, Actor: a.ID, Role: a.Role, Action: "client-add", Entities: []string{"client/" + nc.ID}})
	if errors.Is(err, store.ErrConflict) {
		return nil, problem.At(problem.ErrConflict, "duplicate", "client_id", "a client with this id is already registered")
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// checkAppRegistration checks an app's redirect URIs and scopes.
func checkAppRegistration(redirects []string, scopes []authz.Scope) error {
	if len(redirects) > 10 {
		return problem.At(problem.ErrInvalid, "invalid", "redirect_uris", "at most 10 redirect URIs")
	}
	for _, r := range redirects {
		if err := CheckRedirectURI(r); err != nil {
			return problem.At(problem.ErrInvalid, "invalid", "redirect_uris", err.Error())
		}
	}
	for _, sc := range scopes {
		if sc.Context == "system" {
			return problem.At(problem.ErrInvalid, "invalid", "scope", sc.Raw+" is a system/ scope; an app acts for a user and gets user/, patient/, launch and identity scopes")
		}
	}
	return nil
}

// SetClientDisabled disables or enables a client of tenant. A disabled
// client gets no new tokens, and the tokens it holds are refused once the
// token service reloads its disabled subjects (Service.SubjectsChanged, or
// within its RevocationRefresh). Audited.
func SetClientDisabled(ctx context.Context, d Directory, a Actor, tenant, clientID string, disabled bool) error {
	c, err := d.ClientByID(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) || err == nil && c.Tenant != tenant {
		return problem.New(problem.ErrNotFound, "not-found", "no such client in this tenant")
	}
	if err != nil {
		return err
	}
	verb := "client-enable"
	if disabled {
		verb = "client-disable"
	}
	return store.NewRecorder(d).Commit(ctx, &store.Unit{Parts: []store.Part{&store.ClientUpdate{ClientID: c.ID, Disabled: disabled}}}, &audit.Record{Time: time.Now().UTC(), Tenant: tenant, RequestID: a.RequestID, Actor: a.ID, Role: a.Role, Action: verb, Entities: []string{"client/" + c.ID}})
}

// RecordAdmin writes one ledger record for an administrative read or a
// refused administrative request (outcome minor, with the reason).
func RecordAdmin(ctx context.Context, d Directory, a Actor, tenant, action, refusal string) error {
	rec := &audit.Record{Time: time.Now().UTC(), Tenant: tenant, RequestID: a.RequestID, Actor: a.ID, Role: a.Role, Action: action}
	if refusal != "" {
		rec.Outcome, rec.Detail = audit.OutcomeMinor, refusal
	}
	return store.NewRecorder(d).Record(ctx, rec)
}
