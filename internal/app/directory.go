package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/store"
)

// This file is the identity administration of the one-shot commands
// (ward users, clients, tenants): the commands parse flags and print, and
// reach users, clients and tenants only through a Directory, so that
// cmd/ward imports no store, authn, authz or audit. Every change is one
// unit of work with its ledger record, written by the audit recorder.

// Directory administers the users, clients and tenants of an existing
// database.
type Directory struct{ st store.Store }

// cliActor makes command-line changes in the ledger.
var cliActor = authn.Actor{ID: "cli", Role: "system"}

// OpenDirectory opens the existing database of cfg (never a new one).
func OpenDirectory(ctx context.Context, cfg config.Config) (*Directory, error) {
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Directory{st: st}, nil
}

// Close closes the database.
func (d *Directory) Close() error { return d.st.Close() }

// Roles lists the user roles, as the flags spell them.
const Roles = "admin, privacy-officer, physician, nurse, user"

// CheckRole reports whether role names a user role.
func CheckRole(role string) bool { _, ok := authz.ParseRole(role); return ok }

// RoleFollowsCare reports whether a role's access follows the care
// relationships of a Practitioner (physicians and nurses), so that an
// account of it without a linked Practitioner sees no patients.
func RoleFollowsCare(role string) bool {
	r, _ := authz.ParseRole(role)
	return r == authz.RolePhysician || r == authz.RoleNurse
}

// CheckUserLink checks the FHIR resource a user of role is linked to, by
// the rules the admin API applies too, and returns its type and id.
func CheckUserLink(role, practitioner, patient string) (typ, id string, err error) {
	r, _ := authz.ParseRole(role)
	return authn.CheckUserLink(r, practitioner, patient)
}

// CheckClearances checks security label codes a user may be cleared for.
func CheckClearances(codes []string) error { return authn.CheckClearances(codes) }

// HashNewPassword checks a new password against the policy and returns
// its hash.
func HashNewPassword(username, password string) (string, error) {
	if err := authn.CheckPassword(username, password); err != nil {
		return "", err
	}
	return authn.HashPassword(password)
}

// GenerateClientSecret returns a new random client secret.
func GenerateClientSecret() (string, error) { return authn.GenerateClientSecret() }

// IsLedgerBroken reports whether err says the ledger's hash chain is
// broken (as opposed to unreadable).
func IsLedgerBroken(err error) bool {
	var be *audit.BreakError
	return errors.As(err, &be)
}

// NewUser is a user the commands add; PasswordHash is from HashNewPassword.
type NewUser struct {
	Tenant, Username, Role string
	Practitioner, Patient  string
	Clearances             []string
	PasswordHash           string
	LinkType, LinkID       string // from CheckUserLink
}

// AddUser creates a user in an existing tenant and returns its id.
func (d *Directory) AddUser(ctx context.Context, nu NewUser) (string, error) {
	if _, err := d.st.TenantByID(ctx, nu.Tenant); errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("--tenant: no tenant %q; create it first with ward tenants add --name %s", nu.Tenant, nu.Tenant)
	} else if err != nil {
		return "", err
	}
	if nu.LinkType != "" {
		if v, err := d.st.Current(ctx, nu.Tenant, nu.LinkType, nu.LinkID); err != nil || v.Deleted {
			return "", fmt.Errorf("--%s: there is no %s/%s in tenant %s", strings.ToLower(nu.LinkType), nu.LinkType, nu.LinkID, nu.Tenant)
		}
	}
	now := time.Now().UTC()
	u := &store.User{ID: uuid.NewString(), Tenant: nu.Tenant, Username: nu.Username, Role: nu.Role, PasswordHash: nu.PasswordHash, Created: now,
		Practitioner: nu.Practitioner, Patient: nu.Patient, Clearances: nu.Clearances}
	err := store.NewRecorder(d.st).Commit(ctx, &store.Unit{Parts: []store.Part{store.NewUser{User: u}}}, &audit.Record{
		Time: now, Tenant: nu.Tenant, Actor: cliActor.ID, Role: cliActor.Role, Action: "user-add", Entities: authn.UserEntities(u), Detail: "role:" + nu.Role,
	})
	if errors.Is(err, store.ErrConflict) {
		return "", fmt.Errorf("a user named %q already exists", nu.Username)
	}
	if err != nil {
		return "", err
	}
	return u.ID, nil
}

// UserRow is a user as `ward users list` shows it (no secret).
type UserRow struct {
	ID, Username, Role string
	Created            time.Time
	Disabled           bool
	LockedUntil        time.Time
	TOTP               bool
}

// Users lists the users of tenant.
func (d *Directory) Users(ctx context.Context, tenant string) ([]UserRow, error) {
	users, err := d.st.Users(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]UserRow, len(users))
	for i, u := range users {
		out[i] = UserRow{ID: u.ID, Username: u.Username, Role: u.Role, Created: u.Created, Disabled: u.Disabled, LockedUntil: u.LockedUntil, TOTP: u.TOTPSecret != nil}
	}
	return out, nil
}

// UpdateUser disables or enables a user (verb "disable", "enable") or sets
// its password hash (verb "reset-password"). Audited.
func (d *Directory) UpdateUser(ctx context.Context, tenant, username, verb, passwordHash string) error {
	up := &store.UserUpdate{}
	switch verb {
	case "disable", "enable":
		disabled := verb == "disable"
		up.Disabled = &disabled
	case "reset-password":
		up.PasswordHash = passwordHash
	default:
		return fmt.Errorf("update user: unknown change %q", verb)
	}
	u, err := d.st.UserByName(ctx, tenant, username)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no user named %q", username)
	}
	if err != nil {
		return err
	}
	up.UserID = u.ID
	return store.NewRecorder(d.st).Commit(ctx, &store.Unit{Parts: []store.Part{up}}, &audit.Record{
		Time: time.Now().UTC(), Tenant: tenant, Actor: cliActor.ID, Role: cliActor.Role, Action: "user-" + verb, Entities: []string{"user/" + u.ID},
	})
}

// NewClient is a client the commands register (a backend service with
// JWKS, or an app with redirect URIs and optionally a secret).
type NewClient = authn.NewClient

// AddClient registers a client and returns what kind it is, as the
// commands print it: "backend client", "public app" or "confidential app
// (method)".
func (d *Directory) AddClient(ctx context.Context, nc NewClient) (kind string, err error) {
	c, err := authn.AddClient(ctx, d.st, cliActor, nc)
	if err != nil {
		return "", err
	}
	switch {
	case len(nc.RedirectURIs) > 0 && authn.AppAuthMethod(c) != authn.AuthNone:
		return "confidential app (" + authn.AppAuthMethod(c) + ")", nil
	case len(nc.RedirectURIs) > 0:
		return "public app", nil
	}
	return "backend client", nil
}

// ClientRow is a client as `ward clients list` shows it.
type ClientRow struct {
	ID, Kind, Auth, Scope string
	Disabled              bool
	Created               time.Time
}

// Clients lists the clients of tenant.
func (d *Directory) Clients(ctx context.Context, tenant string) ([]ClientRow, error) {
	cs, err := d.st.Clients(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]ClientRow, len(cs))
	for i := range cs {
		c := &cs[i]
		kind, auth := "backend", authn.AuthPrivateKeyJWT
		if len(c.RedirectURIs) > 0 {
			kind, auth = "app", authn.AppAuthMethod(c)
		}
		out[i] = ClientRow{ID: c.ID, Kind: kind, Auth: auth, Scope: c.Scope, Disabled: c.Disabled, Created: c.Created}
	}
	return out, nil
}

// SetClientDisabled disables or enables a client of tenant. Audited.
func (d *Directory) SetClientDisabled(ctx context.Context, tenant, id string, disabled bool) error {
	return authn.SetClientDisabled(ctx, d.st, cliActor, tenant, id, disabled)
}

// AddTenant creates a tenant. Audited.
func (d *Directory) AddTenant(ctx context.Context, id string) error {
	return authn.AddTenant(ctx, d.st, cliActor, id)
}

// TenantRow is a tenant as `ward tenants list` shows it.
type TenantRow struct {
	ID      string
	Created time.Time
}

// Tenants lists the tenants.
func (d *Directory) Tenants(ctx context.Context) ([]TenantRow, error) {
	ts, err := d.st.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]TenantRow, len(ts))
	for i, t := range ts {
		out[i] = TenantRow{ID: t.ID, Created: t.Created}
	}
	return out, nil
}

// TenantHasAdmin reports whether tenant has an active admin user.
func (a *App) TenantHasAdmin(ctx context.Context, tenant string) (bool, error) {
	users, err := a.Store.Users(ctx, tenant)
	if err != nil {
		return false, err
	}
	for _, u := range users {
		if u.Role == string(authz.RoleAdmin) && !u.Disabled {
			return true, nil
		}
	}
	return false, nil
}
