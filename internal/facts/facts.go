// Package facts loads what an access decision needs to know besides the
// resource itself: a clinician's care relationships, organizations and
// care set, and patients' consents. It keeps them in a cache that every
// write invalidates for what it can change.
//
// Its guarantee: a fact is never used after a write that can change it
// was committed through this node (or announced by another node, while
// Live says no announcement may have been missed), nor longer than the
// TTL; a fact that cannot be loaded is an error, never an empty answer,
// and a Consent that cannot be applied counts as a deny (fail closed).
// It reads, never writes, and never discloses: what it loads is not
// audited as a disclosure because it leaves only as a decision.
package facts

import (
	"context"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/store"
)

// Store is what facts reads: the searches it plans for itself.
type Store interface {
	Search(ctx context.Context, q store.SearchQuery) ([]store.Hit, error)
	Exists(ctx context.Context, groups ...[]store.SearchQuery) ([]bool, error)
}

// Live reports whether cached facts may be used now: false while this
// node may have missed another node's invalidation.
type Live interface {
	Live() bool
}

// Config configures a Source.
type Config struct {
	Store Store
	// Keyer is the tenant's index key, Open the opener of a sealed body.
	Keyer func(ctx context.Context, tenant string) (search.Keyer, error)
	Open  func(v *store.Version) ([]byte, error)
	// Search plans the questions (the same options as the caller's
	// searches, without their restriction).
	Search search.Options
	Now    func() time.Time
	// EncounterWindow is how far back an Encounter makes a care
	// relationship (negative: Encounters make none).
	EncounterWindow time.Duration
	// AdminPHI lets admins reach patient data (authz.Facts.AdminPHI).
	AdminPHI bool
	// TTL bounds how long a cached fact is used (0: 5 s); Live, when set,
	// keeps the cache out of use while invalidations may be missed.
	TTL  time.Duration
	Live Live
}

// Source loads and caches facts; one per process, shared by every
// request.
type Source struct {
	st        Store
	keyer     func(ctx context.Context, tenant string) (search.Keyer, error)
	open      func(v *store.Version) ([]byte, error)
	search    search.Options
	now       func() time.Time
	encWindow time.Duration
	adminPHI  bool
	facts     *factCache
	factPlans *factPlans
}

// New returns a Source.
func New(c Config) *Source {
	if c.TTL <= 0 {
		c.TTL = defaultFactTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &Source{st: c.Store, keyer: c.Keyer, open: c.Open, search: c.Search, now: c.Now,
		encWindow: c.EncounterWindow, adminPHI: c.AdminPHI,
		facts: newFactCache(c.TTL, c.Live), factPlans: newFactPlans()}
}

// For returns the Loader of one request of subj.
func (s *Source) For(subj authz.Subject) *Loader {
	return &Loader{s: s, subj: subj}
}

// Loader loads the facts of one request (one caller), each at most once:
// a search or transaction asks the same questions many times.
type Loader struct {
	s    *Source
	subj authz.Subject
	acc  access
}

// Register notes that patient p was created earlier in this request: the
// subject is registering them, they have no record to protect yet.
func (r *Loader) Register(p string) { r.acc.created = append(r.acc.created, p) }

// Registered reports whether patient p was created earlier in this
// request (Register).
func (r *Loader) Registered(p string) bool { return slices.Contains(r.acc.created, p) }

// Wrote forgets what this request learnt in passing (a prefetch): the
// request wrote, and what it wrote may change it.
func (r *Loader) Wrote() { r.acc.pre = nil }

// Wrote invalidates, tenant-wide, what writes of these types can change,
// and returns it, for other nodes.
func (s *Source) Wrote(tenant string, types ...string) Kinds { return s.facts.wrote(tenant, types...) }

// Created invalidates what creating a resource of typ in the compartments
// of patients can change; it returns what other nodes must forget, and
// whether that is of these patients alone.
func (s *Source) Created(tenant, typ string, patients []string) (Kinds, bool) {
	return s.facts.created(tenant, typ, patients)
}

// Changed drops the cached facts f of tenant, of the named patients alone
// or, with none, tenant-wide: another node committed a write that may
// have changed them.
func (s *Source) Changed(tenant string, f Kinds, patients []string) {
	if len(patients) > 0 {
		s.facts.patientsChanged(tenant, f, patients)
		return
	}
	s.facts.invalidate(tenant, f)
}

// Reset drops every cached fact (invalidations may have been lost).
func (s *Source) Reset() { s.facts.reset() }

func (r *Loader) open(v *store.Version) ([]byte, error) { return r.s.open(v) }

func (r *Loader) clinician() bool {
	return r.subj.Role == authz.RolePhysician || r.subj.Role == authz.RoleNurse
}
