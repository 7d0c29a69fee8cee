package authn

import (
	"context"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// User and Client are the identity records the administration shows.
type (
	User   = store.User
	Client = store.Client
)

// Admin is the administration of users and clients that the HTTP layer
// may do: named operations, each audited, and no raw storage write (the
// Directory's Commit stays inside authn).
type Admin struct{ d Directory }

// NewAdmin returns the administration over d.
func NewAdmin(d Directory) *Admin { return &Admin{d: d} }

// Users lists the tenant's users. Not audited: the caller records the
// listing with RecordAdmin once it has succeeded.
func (x *Admin) Users(ctx context.Context, tenant string) ([]User, error) {
	return x.d.Users(ctx, tenant)
}

// Clients lists the tenant's clients; see Users.
func (x *Admin) Clients(ctx context.Context, tenant string) ([]Client, error) {
	return x.d.Clients(ctx, tenant)
}

// AddUser is AddUser over the administration's directory.
func (x *Admin) AddUser(ctx context.Context, a Actor, nu NewUser) (*User, error) {
	return AddUser(ctx, x.d, a, nu)
}

// SetUserDisabled is SetUserDisabled over the administration's directory.
func (x *Admin) SetUserDisabled(ctx context.Context, a Actor, tenant, userID string, disabled bool) error {
	return SetUserDisabled(ctx, x.d, a, tenant, userID, disabled)
}

// AddClient is AddClient over the administration's directory.
func (x *Admin) AddClient(ctx context.Context, a Actor, nc NewClient) (*Client, error) {
	return AddClient(ctx, x.d, a, nc)
}

// SetClientDisabled is SetClientDisabled over the administration's
// directory.
func (x *Admin) SetClientDisabled(ctx context.Context, a Actor, tenant, clientID string, disabled bool) error {
	return SetClientDisabled(ctx, x.d, a, tenant, clientID, disabled)
}

// RecordAdmin is RecordAdmin over the administration's directory.
func (x *Admin) RecordAdmin(ctx context.Context, a Actor, tenant, action, refusal string) error {
	return RecordAdmin(ctx, x.d, a, tenant, action, refusal)
}

// Record appends rec alone to the ledger, detached from ctx's
// cancellation and bounded by within (an event the HTTP layer observes,
// such as a throttled request).
func (x *Admin) Record(ctx context.Context, within time.Duration, rec *audit.Record) error {
	return store.NewRecorder(x.d).Within(within).Record(ctx, rec)
}
