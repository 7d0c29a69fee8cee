package facts

import (
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/authz"
)

// defaultFactTTL bounds how stale a cached fact may be: a write on this
// node invalidates at once, and so does a write on another node when the
// nodes share an invalidation bus (records.Options.Peers); without one (or when
// the writing node is cut off from it), and for time moving an Encounter
// out of the window, a change is seen within the TTL.
const defaultFactTTL = 5 * time.Second

// maxCachedFacts bounds each cache map; a full map is cleared.
const maxCachedFacts = 100000

// relationshipTypes are the types whose writes can change a care
// relationship.
var relationshipTypes = map[string]bool{"Patient": true, "CareTeam": true, "Encounter": true, "PractitionerRole": true}

// Kinds names kinds of facts as other nodes hear of them, as a set.
type Kinds uint8

// The kinds of facts.
const (
	// Relationships: care relationships, a clinician's organizations and
	// care sets (written by Patient, CareTeam, Encounter, PractitionerRole).
	Relationships Kinds = 1 << iota
	// Consents: patients' Consents.
	Consents
)

// factsOf is what writes of type t can change.
func factsOf(t string) Kinds {
	switch {
	case relationshipTypes[t]:
		return Relationships
	case t == "Consent":
		return Consents
	}
	return 0
}

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
	ttl time.Duration
	// live, when set, says whether the cache may be used now (a cluster
	// node that may have missed an invalidation must not).
	live Live

	mu sync.Mutex
	// epoch changes when the per-patient generations are cleared or the
	// cache is reset, so that no entry outlives the generation it was
	// checked against.
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

func newFactCache(ttl time.Duration, live Live) *factCache {
	c := &factCache{ttl: ttl, live: live, patientGen: map[relKey]uint64{},
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

// wrote invalidates, tenant-wide, what writes of these types can change,
// and returns it.
func (c *factCache) wrote(tenant string, types ...string) Kinds {
	var f Kinds
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range types {
		f |= factsOf(t)
		for _, k := range kindsOf(t) {
			c.tenantGen[k][tenant]++
		}
	}
	return f
}

// invalidate bumps, tenant-wide, the generations of every kind of fact in
// f (another node's write, whose patients this node does not know).
func (c *factCache) invalidate(tenant string, f Kinds) {
	var types []string
	if f&Relationships != 0 {
		types = append(types, "PractitionerRole") // every relationship kind
	}
	if f&Consents != 0 {
		types = append(types, "Consent")
	}
	c.wrote(tenant, types...)
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

// created invalidates what creating a resource of typ in the compartments
// of patients can change: those patients' facts and the tenant-wide sets.
// Without patients it is wrote. It returns what other nodes must forget,
// and whether that is of these patients alone.
func (c *factCache) created(tenant, typ string, patients []string) (f Kinds, perPatient bool) {
	kinds := kindsOf(typ)
	if len(kinds) == 0 {
		return 0, false
	}
	if len(patients) == 0 || typ == "PractitionerRole" {
		return c.wrote(tenant, typ), false
	}
	c.bump(tenant, kinds, patients)
	return factsOf(typ), true
}

// patientsChanged is created for another node's create: the facts f of
// patients changed.
func (c *factCache) patientsChanged(tenant string, f Kinds, patients []string) {
	var kinds []factKind
	if f&Relationships != 0 {
		kinds = append(kinds, kindsOf("Encounter")...) // a patient's relationships and the care sets
	}
	if f&Consents != 0 {
		kinds = append(kinds, kindsOf("Consent")...)
	}
	c.bump(tenant, kinds, patients)
}

// bump raises the generations of kinds: per patient for the per-patient
// kinds, tenant-wide for the others.
func (c *factCache) bump(tenant string, kinds []factKind, patients []string) {
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
	var zero T
	if c.live != nil && !c.live.Live() {
		return zero, false // an invalidation may have been missed: load afresh
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := m[k]
	if !ok || e.st != c.stampLocked(kind, k) || now.Sub(e.at) > c.ttl || now.Before(e.at) {
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
