package records

import (
	"testing"
	"time"
)

type liveFlag bool

func (l *liveFlag) Live() bool { return bool(*l) }

// A fact loaded before an invalidation, a reset or while the bus is down
// is never served as if it were current.
func TestFactCacheInvalidation(t *testing.T) {
	now := time.Now()
	live := liveFlag(true)
	c := newFactCache(time.Hour, &live)
	k := relKey{"t1", "pr", "p"}
	put := func(gen stamp) { putFact(c, c.related, k, gen, now, true) }
	cachedNow := func() bool { _, ok := getFact(c, c.related, c.relGen, k, now); return ok }

	put(c.gen(c.relGen, "t1"))
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
		t.Fatal("served after the tenant's relationships were invalidated")
	}

	// A load that read its generation before a reset stores an entry
	// that is stale at once, even for a tenant never invalidated before.
	k = relKey{"t3", "pr", "p"}
	gen := c.gen(c.relGen, "t3")
	c.reset()
	put(gen)
	if cachedNow() {
		t.Fatal("an entry loaded across a reset is served")
	}
	put(c.gen(c.relGen, "t3"))
	if !cachedNow() {
		t.Fatal("an entry loaded after the reset is not served")
	}
	if f := c.wrote("t3", "Observation", "Consent", "CareTeam"); f != Relationships|Consents {
		t.Fatalf("wrote = %b", f)
	}
}
