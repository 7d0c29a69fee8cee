package store

import (
	"context"
	"time"
)

// Tenant is an isolated set of users, clients and data.
type Tenant struct {
	ID      string
	Created time.Time
}

// ClientUpdate enables or disables a registered client.
type ClientUpdate struct {
	ClientID string
	Disabled bool
}

// Code is an OAuth2 authorization code, known by the SHA-256 of its value.
// It is bound to the client, the redirect URI and the PKCE S256 challenge
// of the authorization request, and is used once.
type Code struct {
	ID            string // hex SHA-256 of the code
	ClientID      string
	RedirectURI   string
	CodeChallenge string
	UserID        string
	Tenant        string
	Scope         string
	Expires       time.Time
	Used          bool
	// What the code's exchange issued, so that a replay of the code can
	// revoke it: the access token's id and expiry, the refresh family.
	TokenID      string
	TokenExpires time.Time
	Family       string
	// Patient and Encounter are the EHR launch context the code carries
	// ("" : none).
	Patient, Encounter string
	// EHRLaunch: the context came from an EHR launch (the EHR shows the
	// patient banner), not from the patient picker.
	EHRLaunch bool
}

// Launch is a SMART EHR launch context, known by the SHA-256 of its
// opaque launch value: created by a user for one app, used once.
type Launch struct {
	ID        string // hex SHA-256 of the launch value
	Tenant    string
	UserID    string
	ClientID  string
	Patient   string
	Encounter string
	Expires   time.Time
	Used      bool
}

// Grant is what a user allowed an app on the consent screen: remembered
// per user and app until revoked, so the screen is not shown again for
// the same (or a narrower) scope.
type Grant struct {
	Tenant, UserID, ClientID string
	Scope                    string
	Created                  time.Time
}

// CodeUse marks a code used and records what its exchange issued.
type CodeUse struct {
	ID           string
	TokenID      string
	TokenExpires time.Time
	Family       string
}

// IdentityReader reads tenants, clients and authorization codes.
type IdentityReader interface {
	// Tenants lists every tenant by id.
	Tenants(ctx context.Context) ([]Tenant, error)
	// TenantByID finds a tenant (ErrNotFound if none).
	TenantByID(ctx context.Context, id string) (*Tenant, error)
	// Clients lists a tenant's clients by id.
	Clients(ctx context.Context, tenant string) ([]Client, error)
	// CodeByID finds an authorization code by the hash of its value.
	CodeByID(ctx context.Context, id string) (*Code, error)
	// LaunchByID finds an EHR launch context by the hash of its value.
	LaunchByID(ctx context.Context, id string) (*Launch, error)
	// GrantOf finds what a user allowed an app (ErrNotFound if nothing).
	GrantOf(ctx context.Context, userID, clientID string) (*Grant, error)
	// Grants lists a tenant's grants, of one user if userID is not "",
	// by user and app.
	Grants(ctx context.Context, tenant, userID string) ([]Grant, error)
}
