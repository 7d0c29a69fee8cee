package records

import (
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/authz"
)

// defaultFactTTL bounds how stale a cached fact may be: a write on this
// node invalidates at once, and so does a write on another node when the
// nodes share an invalidation bus (Options.Peers); without one (or when
// the writing node is cut off from it), and for time moving an Encounter
// out of the window, a change is seen within the TTL.
const defaultFactTTL = 5 * time.Second

// maxCachedFacts bounds each cache map; a full map is cleared.
const maxCachedFacts = 100000

// relationshipTypes are the types whose writes can change a care
// relationship.
var relationshipTypes = map[string]bool{"Patient": true, "CareTeam": true, "Encounter": true, "PractitionerRole": true}

// Facts names kinds of cached facts, as a set.
type Facts uint8

// The kinds of facts.
const (
	// Relationships: care relationships, a clinician's organizations and
	// care sets (written by Patient, CareTeam, Encounter, PractitionerRole).
	Relationships Facts = 1 << iota
	// Consents: patients' Consents.
	Consents
)

// factsOf is what writes of type t can change.
func factsOf(t string) Facts {
	switch {
	case relationshipTypes[t]:
		return Relationships
	case t == "Consent":
		return Consents
	}
	return 0
}

// factCache keeps loaded facts per tenant. Each entry remembers the
// tenant's generation when it was loaded; a write of a relationship type
// (or of a Consent) bumps the generation, so the next decision reloads.
// The epoch is bumped by reset, for every tenant at once.
type factCache struct {
	ttl time.Duration
	// live, when set, says whether the cache may be used now (a cluster
	// node that may have missed an invalidation must not).
	live Live

	mu         sync.Mutex
	epoch      uint64
	relGen     map[string]uint64 // tenant -> generation of relationship facts
	consentGen map[string]uint64 // tenant -> generation of consents
	related    map[relKey]cached[bool]
	orgs       map[relKey]cached[[]string]
	careSets   map[relKey]cached[[]string]
	consents   map[relKey]cached[[]authz.Consent]
}

type relKey struct{ tenant, who, patient string }

type cached[T any] struct {
	gen stamp
	at  time.Time
	v   T
}

// stamp is the generation a fact was loaded at.
type stamp struct{ epoch, gen uint64 }

func newFactCache(ttl time.Duration, live Live) *factCache {
	return &factCache{ttl: ttl, live: live, relGen: map[string]uint64{}, consentGen: map[string]uint64{},
		related: map[relKey]cached[bool]{}, orgs: map[relKey]cached[[]string]{},
		careSets: map[relKey]cached[[]string]{}, consents: map[relKey]cached[[]authz.Consent]{}}
}

// wrote invalidates what writes of these types can change and returns it.
func (c *factCache) wrote(tenant string, types ...string) Facts {
	var f Facts
	for _, t := range types {
		f |= factsOf(t)
	}
	c.invalidate(tenant, f)
	return f
}

// invalidate bumps the generations of f for tenant.
func (c *factCache) invalidate(tenant string, f Facts) {
	if f == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if f&Relationships != 0 {
		c.relGen[tenant]++
	}
	if f&Consents != 0 {
		c.consentGen[tenant]++
	}
}

// reset invalidates every fact of every tenant.
func (c *factCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	clear(c.related)
	clear(c.orgs)
	clear(c.careSets)
	clear(c.consents)
}

func getFact[T any](c *factCache, m map[relKey]cached[T], gens map[string]uint64, k relKey, now time.Time) (T, bool) {
	var zero T
	if c.live != nil && !c.live.Live() {
		return zero, false // an invalidation may have been missed: load afresh
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := m[k]
	if !ok || e.gen != (stamp{c.epoch, gens[k.tenant]}) || now.Sub(e.at) > c.ttl || now.Before(e.at) {
		return zero, false
	}
	return e.v, true
}

// putFact stores v as loaded at generation gen (read before loading, so
// that a write or a reset racing the load leaves the entry stale, never
// wrong).
func putFact[T any](c *factCache, m map[relKey]cached[T], k relKey, gen stamp, now time.Time, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m) >= maxCachedFacts {
		clear(m)
	}
	m[k] = cached[T]{gen: gen, at: now, v: v}
}

func (c *factCache) gen(gens map[string]uint64, tenant string) stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return stamp{c.epoch, gens[tenant]}
}
