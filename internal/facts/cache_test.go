package facts

import (
	"testing"
	"time"
)

// TestFactCacheInvalidation: which cached facts each kind of write leaves
// valid. A create invalidates the facts of its own patients and the
// tenant-wide sets only; every other write, the tenant's facts of the
// kinds it can change; nothing crosses tenants; an entry is never valid
// again after the generations it was checked against are forgotten.
func TestFactCacheInvalidation(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	type entry struct {
		name string
		kind factKind
		key  relKey
	}
	entries := []entry{
		{"related a", factRelated, relKey{"t", "pr", "a"}},
		{"related b", factRelated, relKey{"t", "pr", "b"}},
		{"orgs", factOrgs, relKey{"t", "pr", ""}},
		{"care set", factCareSet, relKey{"t", "pr", ""}},
		{"consents a", factConsents, relKey{"t", "", "a"}},
		{"consents b", factConsents, relKey{"t", "", "b"}},
		{"tenant consents", factTenantConsents, relKey{"t", "*", ""}},
		{"other tenant related a", factRelated, relKey{"u", "pr", "a"}},
		{"other tenant consents a", factConsents, relKey{"u", "", "a"}},
	}
	for _, c := range []struct {
		name  string
		write func(c *factCache)
		stale []string
	}{
		{"nothing", func(*factCache) {}, nil},
		{"an Observation", func(c *factCache) { c.wrote("t", "Observation"); c.created("t", "Observation", []string{"a"}) }, nil},
		{"an Encounter of a created", func(c *factCache) { c.created("t", "Encounter", []string{"a"}) }, []string{"related a", "care set"}},
		{"a Patient created", func(c *factCache) { c.created("t", "Patient", []string{"b"}) }, []string{"related b", "care set"}},
		{"a CareTeam updated", func(c *factCache) { c.wrote("t", "CareTeam") }, []string{"related a", "related b", "care set"}},
		{"a created CareTeam without patients", func(c *factCache) { c.created("t", "CareTeam", nil) }, []string{"related a", "related b", "care set"}},
		{"a PractitionerRole created", func(c *factCache) { c.created("t", "PractitionerRole", nil) }, []string{"related a", "related b", "orgs", "care set"}},
		{"a Consent of b created", func(c *factCache) { c.created("t", "Consent", []string{"b"}) }, []string{"consents b", "tenant consents"}},
		{"a Consent updated", func(c *factCache) { c.wrote("t", "Consent") }, []string{"consents a", "consents b", "tenant consents"}},
		{"another node's Encounter of a", func(c *factCache) { c.patientsChanged("t", Relationships, []string{"a"}) }, []string{"related a", "care set"}},
		{"another node's Consent of b", func(c *factCache) { c.patientsChanged("t", Consents, []string{"b"}) }, []string{"consents b", "tenant consents"}},
		{"another node's tenant-wide change", func(c *factCache) { c.invalidate("t", Relationships|Consents) }, []string{"related a", "related b", "orgs", "care set", "consents a", "consents b", "tenant consents"}},
		{"the other tenant's Encounter of a", func(c *factCache) { c.created("u", "Encounter", []string{"a"}) }, []string{"other tenant related a"}},
		{"patient generations forgotten", func(c *factCache) {
			for i := range maxCachedFacts + 1 {
				c.created("v", "Encounter", []string{string(rune('a'+i%26)) + time.Duration(i).String()})
			}
			// A new epoch: every entry of every tenant.
		}, []string{"related a", "related b", "orgs", "care set", "consents a", "consents b", "tenant consents", "other tenant related a", "other tenant consents a"}},
	} {
		fc := newFactCache(defaultFactTTL, nil)
		for _, e := range entries {
			putFact(fc, fc.related, e.key, fc.stampOf(e.kind, e.key), now, true)
		}
		c.write(fc)
		for _, e := range entries {
			_, ok := getFact(fc, fc.related, e.kind, e.key, now)
			want := true
			for _, s := range c.stale {
				if s == e.name {
					want = false
				}
			}
			if ok != want {
				t.Errorf("%s: %s valid %v, want %v", c.name, e.name, ok, want)
			}
		}
	}
	// Time: an entry older than the TTL, or from the future, is stale.
	fc := newFactCache(defaultFactTTL, nil)
	k := relKey{"t", "pr", "a"}
	putFact(fc, fc.related, k, fc.stampOf(factRelated, k), now, true)
	for d, want := range map[time.Duration]bool{0: true, defaultFactTTL: true, defaultFactTTL + 1: false, -1: false} {
		if _, ok := getFact(fc, fc.related, factRelated, k, now.Add(d)); ok != want {
			t.Errorf("after %v: valid %v, want %v", d, ok, want)
		}
	}
	// A load that raced a write stays stale: its stamp was taken before.
	st := fc.stampOf(factRelated, k)
	fc.created("t", "Encounter", []string{"a"})
	putFact(fc, fc.related, k, st, now, true)
	if _, ok := getFact(fc, fc.related, factRelated, k, now); ok {
		t.Error("a fact loaded across a write is valid")
	}
}

type liveFlag bool

func (l *liveFlag) Live() bool { return bool(*l) }

// A fact loaded before an invalidation from another node, a reset or while
// the bus is down is never served as if it were current.
func TestFactCacheLiveAndReset(t *testing.T) {
	now := time.Now()
	live := liveFlag(true)
	c := newFactCache(time.Hour, &live)
	k := relKey{"t1", "pr", "p"}
	put := func(st stamp) { putFact(c, c.related, k, st, now, true) }
	cachedNow := func() bool { _, ok := getFact(c, c.related, factRelated, k, now); return ok }

	put(c.stampOf(factRelated, k))
	if !cachedNow() {
		t.Fatal("a fresh entry is not served")
	}
	live = false
	if cachedNow() {
		t.Fatal("served from the cache while invalidations may be missed")
	}
	live = true

	c.invalidate("t2", Relationships)
	c.invalidate("t1", Consents)
	if !cachedNow() {
		t.Fatal("another tenant's or another kind's invalidation dropped the entry")
	}
	c.invalidate("t1", Relationships)
	if cachedNow() {
		t.Fatal("served after the tenant's relationships were invalidated by another node")
	}

	// A load that took its stamp before a reset stores an entry that is
	// stale at once, even for a tenant never invalidated before.
	k = relKey{"t3", "pr", "p"}
	st := c.stampOf(factRelated, k)
	c.reset()
	put(st)
	if cachedNow() {
		t.Fatal("an entry loaded across a reset is served")
	}
	put(c.stampOf(factRelated, k))
	if !cachedNow() {
		t.Fatal("an entry loaded after the reset is not served")
	}
	if f := c.wrote("t3", "Observation", "Consent", "CareTeam"); f != Relationships|Consents {
		t.Fatalf("wrote = %b", f)
	}
	if f, per := c.created("t3", "Encounter", []string{"p"}); f != Relationships || !per {
		t.Fatalf("created = %b, %v", f, per)
	}
	if f, per := c.created("t3", "PractitionerRole", nil); f != Relationships || per {
		t.Fatalf("created a PractitionerRole = %b, %v", f, per)
	}
}
