package records

import (
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/authz"
)

// factTTL bounds how stale a cached fact may be: a write on this node
// invalidates at once; a write on another node (or time moving an
// Encounter out of the window) is seen within factTTL.
const factTTL = 5 * time.Second

// maxCachedFacts bounds each cache map; a full map is cleared.
const maxCachedFacts = 100000

// relationshipTypes are the types whose writes can change a care
// relationship.
var relationshipTypes = map[string]bool{"Patient": true, "CareTeam": true, "Encounter": true, "PractitionerRole": true}

// factCache keeps loaded facts per tenant. Each entry remembers the
// tenant's generation when it was loaded; a write of a relationship type
// (or of a Consent) bumps the generation, so the next decision reloads.
type factCache struct {
	mu         sync.Mutex
	relGen     map[string]uint64 // tenant -> generation of relationship facts
	orgGen     map[string]uint64 // tenant -> generation of PractitionerRoles (organizations)
	consentGen map[string]uint64 // tenant -> generation of consents
	related    map[relKey]cached[bool]
	orgs       map[relKey]cached[[]string]
	careSets   map[relKey]cached[[]string]
	consents   map[relKey]cached[[]authz.Consent]
}

type relKey struct{ tenant, who, patient string }

type cached[T any] struct {
	gen uint64
	at  time.Time
	v   T
}

func newFactCache() *factCache {
	return &factCache{relGen: map[string]uint64{}, orgGen: map[string]uint64{}, consentGen: map[string]uint64{},
		related: map[relKey]cached[bool]{}, orgs: map[relKey]cached[[]string]{},
		careSets: map[relKey]cached[[]string]{}, consents: map[relKey]cached[[]authz.Consent]{}}
}

// wrote invalidates what writes of these types can change.
func (c *factCache) wrote(tenant string, types ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range types {
		switch {
		case relationshipTypes[t]:
			c.relGen[tenant]++
			if t == "PractitionerRole" {
				// A clinician's organizations come from PractitionerRoles
				// alone: other relationship writes (an Encounter, a
				// CareTeam) leave them cached.
				c.orgGen[tenant]++
			}
		case t == "Consent":
			c.consentGen[tenant]++
		}
	}
}

func getFact[T any](c *factCache, m map[relKey]cached[T], gens map[string]uint64, k relKey, now time.Time) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := m[k]
	if !ok || e.gen != gens[k.tenant] || now.Sub(e.at) > factTTL || now.Before(e.at) {
		var zero T
		return zero, false
	}
	return e.v, true
}

// putFact stores v as loaded at generation gen (read before loading, so
// that a write racing the load leaves the entry stale, never wrong).
func putFact[T any](c *factCache, m map[relKey]cached[T], k relKey, gen uint64, now time.Time, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m) >= maxCachedFacts {
		clear(m)
	}
	m[k] = cached[T]{gen: gen, at: now, v: v}
}

func (c *factCache) gen(gens map[string]uint64, tenant string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return gens[tenant]
}
