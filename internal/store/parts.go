package store

import (
	"time"

	"github.com/wardhealth/ward/internal/events"
)

// Part is one change of a Unit besides its resource versions: a user, a
// token, a client, a tenant, an authorization code, a launch or a key.
// The set is sealed: only the types of this package are parts (the store
// refuses any other with an error that is not ErrConflict).
//
// A part's precondition (a taken username, a used refresh token...) is
// checked with every other precondition of the unit before anything of
// the unit is written; a failed one is ErrConflict.
type Part interface{ part() }

// Users.

// NewUser creates a user; a username taken in its tenant is ErrConflict.
type NewUser struct{ User *User }

// *LoginState, *TOTPEnrollment and *UserUpdate are parts too (a
// UserUpdate of an unknown id is ErrConflict).

func (NewUser) part()         {}
func (*LoginState) part()     {}
func (*TOTPEnrollment) part() {}
func (*UserUpdate) part()     {}

// Tokens.

// NewRefresh stores a refresh token. Expired ones are purged as a side
// effect.
type NewRefresh struct{ Refresh *Refresh }

// UseRefresh marks the refresh token with this id used; one unknown, used
// or revoked is ErrConflict.
type UseRefresh struct{ ID string }

// RevokeFamily revokes every refresh token of a family.
type RevokeFamily struct{ Family string }

// RevokeToken records a revoked access token (revoking twice is no
// conflict). Expired revocations are purged as a side effect.
type RevokeToken JTI

// UseJTI records a client assertion id; one seen before (and not yet
// expired) is ErrConflict. Expired ids are purged as a side effect.
type UseJTI JTI

func (NewRefresh) part()   {}
func (UseRefresh) part()   {}
func (RevokeFamily) part() {}
func (RevokeToken) part()  {}
func (UseJTI) part()       {}

// Tenants, clients, codes and launches.

// NewTenant creates a tenant; a taken id is ErrConflict.
type NewTenant struct{ Tenant *Tenant }

// NewClient registers a client; a taken id is ErrConflict.
type NewClient struct{ Client *Client }

// NewCode stores an authorization code. Expired codes are purged as a side
// effect.
type NewCode struct{ Code *Code }

// NewLaunch stores an EHR launch context. Expired ones are purged as a
// side effect.
type NewLaunch struct{ Launch *Launch }

// UseLaunch marks the launch context with this id used; one unknown,
// already used or expired is ErrConflict.
type UseLaunch struct{ ID string }

// PutGrant remembers (or replaces) what a user allowed an app.
type PutGrant struct{ Grant *Grant }

// RevokeGrant forgets what a user allowed an app; none is ErrConflict.
type RevokeGrant struct{ UserID, ClientID string }

// *ClientUpdate (an unknown id is ErrConflict) and *CodeUse (a code
// unknown, already used or expired is ErrConflict) are parts too.

func (NewTenant) part()     {}
func (NewClient) part()     {}
func (*ClientUpdate) part() {}
func (NewCode) part()       {}
func (*CodeUse) part()      {}
func (NewLaunch) part()     {}
func (UseLaunch) part()     {}
func (PutGrant) part()      {}
func (RevokeGrant) part()   {}

// Keys.

// NewKey stores a wrapped or sealed key; a taken id is ErrConflict.
type NewKey struct{ Key *Key }

// RewrapKey replaces a key's wrapped form (a KEK rotation) if it still is
// Old: a key re-wrapped meanwhile by someone else is left as it is, which
// is no conflict (the rotation looks at it again).
type RewrapKey struct {
	ID       string
	Old, New []byte
	KEK      string
}

// RetireKey marks a data key retiring: from the commit of the unit on, a
// write whose body is sealed under it fails with ErrKeyRetired, so that
// a pass that starts after this commit sees every version it sealed.
// An unknown id is no conflict.
type RetireKey struct{ ID string }

// DestroyKey erases a wrapped key (crypto-shredding what it sealed) and
// leaves a tombstone: the id stays taken and writes sealed under it fail
// with ErrKeyRetired. An unknown id is no conflict.
type DestroyKey struct{ ID string }

// ResealVersion replaces the sealed body of a stored resource version
// (and of the current row when it is that version) if it still is Old:
// a data-key rotation's re-seal. A body changed meanwhile is left as it
// is, which is no conflict.
type ResealVersion struct {
	Tenant, Type, ID string
	Version          int64
	Old, New         []byte
}

// Erasure and legal holds.

// SetHold places a patient under a legal hold (Reason: a SHA-256 of the
// reason given); one already held is ErrConflict.
type SetHold struct {
	Tenant, Patient string
	Reason          []byte
	At              time.Time
}

// ReleaseHold lifts a patient's legal hold; none is ErrConflict.
type ReleaseHold struct{ Tenant, Patient string }

// ErasePatient deletes the index rows of the resources named, marks them
// deleted, and writes Shredded over the body of every stored version of
// them (those sealed under a tenant key before per-patient keys too):
// Shredded is an envelope framed under the patient's data key, which a
// DestroyKey of the same unit shreds, that no key opens
// (seal.Shredded). A patient under a legal hold is ErrHeld.
type ErasePatient struct {
	Tenant, Patient string
	Resources       []Ref
	Shredded        []byte
}

func (SetHold) part()      {}
func (ReleaseHold) part()  {}
func (ErasePatient) part() {}

func (NewKey) part()        {}
func (RewrapKey) part()     {}
func (RetireKey) part()     {}
func (DestroyKey) part()    {}
func (ResealVersion) part() {}

// Events.

// Outbox appends domain events to the outbox, in the unit's transaction
// and in order: nothing is published that was not committed, and nothing
// committed is lost (internal/events, internal/dispatch). Records of a
// security event (refusal, break-glass, failed login, new key) get theirs
// from AddAudit.
type Outbox struct{ Events []events.Event }

func (Outbox) part() {}

// NewWebhook registers a webhook; a taken id is ErrConflict.
type NewWebhook struct{ Hook *Webhook }

// RemoveWebhook deletes the webhook with this id; an unknown one is
// ErrConflict.
type RemoveWebhook struct{ ID string }

func (NewWebhook) part()    {}
func (RemoveWebhook) part() {}

// SubscriptionOwner records who owns a FHIR Subscription (the subject
// that last wrote it), in the transaction of the Subscription version.
// Owner is JSON of ids and codes only; a later one replaces it.
type SubscriptionOwner struct {
	Tenant, ID string
	Owner      []byte
	At         time.Time
}

func (SubscriptionOwner) part() {}
