package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Local keeps GCRA state in this process. Safe for concurrent use.
//
// Memory is bounded: at most MaxKeys keys are kept. A key whose bucket is
// full again holds nothing worth keeping and is dropped first; when every
// kept key is still limited, the one closest to a full bucket among a few
// sampled is dropped. Dropping a key forgets its limit (it starts again
// with a full burst), so the bound is set high enough that only a flood of
// distinct keys reaches it, and that flood then costs O(1) per request
// instead of memory.
type Local struct {
	interval, tolerance int64 // nanoseconds
	// nanos is the clock in nanoseconds: monotonic time since the limiter
	// was made (a wall clock stepped back by NTP would otherwise hold
	// every key refused until it caught up), or the injected clock.
	nanos    func() int64
	perShard int
	seed     maphash.Seed
	shards   [localShards]localShard
}

// localShards spreads keys over independently locked maps so that
// concurrent requests rarely wait for each other.
const localShards = 64

// evictSample is how many kept keys a full shard looks at to make room.
const evictSample = 8

type localShard struct {
	mu  sync.Mutex
	tat map[string]int64
	_   [40]byte // keep shards on separate cache lines
}

// LocalOptions tune a Local limiter.
type LocalOptions struct {
	// MaxKeys bounds the keys kept (default 100000; about 100 bytes each).
	MaxKeys int
	// Now is the clock (default time.Now); tests inject one.
	Now func() time.Time
}

// DefaultMaxKeys is the default bound of a Local limiter.
const DefaultMaxKeys = 100_000

// NewLocal returns an in-process limiter for l.
func NewLocal(l Limit, o LocalOptions) (*Local, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	nanos := func() int64 { return o.Now().UnixNano() }
	if o.Now == nil {
		epoch := time.Now()
		nanos = func() int64 { return int64(time.Since(epoch)) }
	}
	iv := l.interval(time.Nanosecond)
	lc := &Local{interval: iv, tolerance: iv * int64(l.Burst), nanos: nanos,
		perShard: max(1, (o.MaxKeys+localShards-1)/localShards), seed: maphash.MakeSeed()}
	for i := range lc.shards {
		lc.shards[i].tat = make(map[string]int64)
	}
	return lc, nil
}

var _ Limiter = (*Local)(nil)

// Allow decides one request under key. It never returns an error.
func (lc *Local) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	sh := &lc.shards[maphash.String(lc.seed, key)%localShards]
	sh.mu.Lock()
	// Read under the lock: a time read before it could be older than the
	// one another request just stored, and with a small tolerance a
	// request that waited for the lock would be refused for it.
	now := lc.nanos()
	tat, kept := sh.tat[key]
	newTAT, ok, retry := gcra(tat, now, lc.interval, lc.tolerance)
	if ok {
		if !kept && len(sh.tat) >= lc.perShard {
			sh.evict(now)
		}
		sh.tat[key] = newTAT
	}
	sh.mu.Unlock()
	return ok, time.Duration(retry), nil
}

// Len is the number of keys kept.
func (lc *Local) Len() int {
	n := 0
	for i := range lc.shards {
		sh := &lc.shards[i]
		sh.mu.Lock()
		n += len(sh.tat)
		sh.mu.Unlock()
	}
	return n
}

// evict makes room for one key: it drops every sampled key whose bucket is
// full again, or else the sampled key nearest to that. Map iteration starts
// at a random place, so the sample differs from call to call.
func (sh *localShard) evict(now int64) {
	var victim string
	victimTAT, seen, dropped, found := int64(0), 0, false, false
	for k, tat := range sh.tat {
		if tat <= now {
			delete(sh.tat, k)
			dropped = true
		} else if !found || tat < victimTAT {
			victim, victimTAT, found = k, tat, true
		}
		if seen++; seen >= evictSample {
			break
		}
	}
	if !dropped && found {
		delete(sh.tat, victim)
	}
}
