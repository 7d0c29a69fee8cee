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

// The kinds of cached fact, each invalidated by its own generations.
type factKind int

const (
	factRelated        factKind = iota // a clinician's relationship with one patient
	factOrgs                           // a clinician's organizations
	factCareSet                        // every patient in a clinician's care
	factConsents                       // one patient's consents
	factTenantConsents                 // every consent of the tenant
)

// factCache keeps loaded facts. Each entry remembers the generations it
// was loaded under; a write bumps the generations of what it can change,
// so the next decision reloads. A write that creates a resource whose
// patients are known bumps only those patients' generations (and the
// tenant-wide sets, which any such write can change); any other write
// (an update, a delete, a PractitionerRole) bumps the tenant's. Updates
// are tenant-wide because the version they replace may have named other
// patients.
type factCache struct {
	mu sync.Mutex
	// epoch changes when the per-patient generations are cleared, so that
	// no entry outlives the generation it was checked against.
	epoch uint64
	// tenant -> generation, per kind
	tenantGen [5]map[string]uint64
	// (tenant, patient) -> generation, for factRelated and factConsents
	patientGen map[relKey]uint64
	related    map[relKey]cached[bool]
	orgs       map[relKey]cached[[]string]
	careSets   map[relKey]cached[[]string]
	consents   map[relKey]cached[[]authz.Consent]
}

type relKey struct{ tenant, who, patient string }

// stamp is the generations a fact was loaded under.
type stamp struct{ epoch, tenant, patient uint64 }

type cached[T any] struct {
	st stamp
	at time.Time
	v  T
}

func newFactCache() *factCache {
	c := &factCache{patientGen: map[relKey]uint64{},
		related: map[relKey]cached[bool]{}, orgs: map[relKey]cached[[]string]{},
		careSets: map[relKey]cached[[]string]{}, consents: map[relKey]cached[[]authz.Consent]{}}
	for i := range c.tenantGen {
		c.tenantGen[i] = map[string]uint64{}
	}
	return c
}

// kindsOf are the kinds of fact a write of typ can change.
func kindsOf(typ string) []factKind {
	switch {
	case typ == "PractitionerRole":
		return []factKind{factRelated, factOrgs, factCareSet}
	case relationshipTypes[typ]:
		return []factKind{factRelated, factCareSet}
	case typ == "Consent":
		return []factKind{factConsents, factTenantConsents}
	}
	return nil
}

// perPatient reports whether a kind is cached per patient.
func perPatient(k factKind) bool { return k == factRelated || k == factConsents }

// wrote invalidates, tenant-wide, what writes of these types can change.
func (c *factCache) wrote(tenant string, types ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range types {
		for _, k := range kindsOf(t) {
			c.tenantGen[k][tenant]++
		}
	}
}

// created invalidates what creating a resource of typ in the compartments
// of patients can change: those patients' facts and the tenant-wide sets.
// Without patients it is wrote.
func (c *factCache) created(tenant, typ string, patients []string) {
	kinds := kindsOf(typ)
	if len(kinds) == 0 {
		return
	}
	if len(patients) == 0 || typ == "PractitionerRole" {
		c.wrote(tenant, typ)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.patientGen)+len(patients) > maxCachedFacts {
		// Forgetting generations could make a stale entry look fresh
		// again: a new epoch retires every entry instead.
		clear(c.patientGen)
		c.epoch++
	}
	for _, k := range kinds {
		if perPatient(k) {
			for _, p := range patients {
				c.patientGen[relKey{tenant, kindName(k), p}]++
			}
		} else {
			c.tenantGen[k][tenant]++
		}
	}
}

func kindName(k factKind) string {
	if k == factRelated {
		return "related"
	}
	return "consents"
}

// stampOf is the current stamp of kind for k; read it before loading a
// fact, so that a write racing the load leaves the entry stale, never
// wrong.
func (c *factCache) stampOf(kind factKind, k relKey) stamp {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stampLocked(kind, k)
}

func (c *factCache) stampLocked(kind factKind, k relKey) stamp {
	s := stamp{epoch: c.epoch, tenant: c.tenantGen[kind][k.tenant]}
	if perPatient(kind) {
		s.patient = c.patientGen[relKey{k.tenant, kindName(kind), k.patient}]
	}
	return s
}

func getFact[T any](c *factCache, m map[relKey]cached[T], kind factKind, k relKey, now time.Time) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := m[k]
	if !ok || e.st != c.stampLocked(kind, k) || now.Sub(e.at) > factTTL || now.Before(e.at) {
		var zero T
		return zero, false
	}
	return e.v, true
}

// putFact stores v as loaded under st (taken with stampOf before loading).
func putFact[T any](c *factCache, m map[relKey]cached[T], k relKey, st stamp, now time.Time, v T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m) >= maxCachedFacts {
		clear(m)
	}
	m[k] = cached[T]{st: st, at: now, v: v}
}
