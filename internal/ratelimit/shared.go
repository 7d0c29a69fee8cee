package ratelimit

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Shared enforces one limit across nodes through Redis, with a per-node
// Local limiter of the same Limit in front of it.
//
// The local check comes first and answers alone when it refuses: a key that
// is over the limit on this node's requests alone is over it across all
// nodes too, and refusing it costs no round trip (a client hammering one
// node is turned away at in-process cost). Otherwise Redis decides.
//
// With a Lease above 1, one round trip takes up to Lease requests of the
// key's shared budget at once and this node spends them locally: the API
// limit then costs a round trip every Lease requests instead of every
// request. Redis counts leased requests when they are taken, so a node
// holds at most Lease-1 requests that Redis counted earlier: over any
// window a key may get up to Lease-1 requests per node beyond the limit,
// never more, and a lease a node does not spend is lost to the other nodes
// until it ends. A lease ends after LeaseTTL (default one second, or the
// time its requests take to refill if longer), so a node does not hold
// requests counted long ago. Lease is kept small against the burst (Ward:
// a twentieth) to bound both.
//
// When Redis cannot be reached the local answer stands: each node then
// limits on its own (never unlimited, never refusing because Redis is
// down). While Redis is unreachable one request per ProbeInterval tries it
// again; the others do not wait for it. Each change between the two states
// is logged once.
type Shared struct {
	name   string
	local  *Local
	remote *Redis
	log    *slog.Logger
	nanos  func() int64 // monotonic unless a clock is injected, as in Local
	probe  time.Duration

	lease    int
	leaseTTL int64 // nanoseconds
	leases   *leases

	down    atomic.Bool
	retryAt atomic.Int64 // nanos() before which Redis is not tried
}

// SharedOptions tune a Shared limiter.
type SharedOptions struct {
	// Name says which limit this is in log lines ("auth", "api").
	Name string
	// Log receives the two transition lines; nil: slog.Default().
	Log *slog.Logger
	// ProbeInterval is how often an unreachable Redis is tried again
	// (default 1s).
	ProbeInterval time.Duration
	// Now is the clock of the probe schedule and of leases (default
	// time.Now).
	Now func() time.Time
	// Lease is how many requests one round trip may take for this node
	// (default 1: every request asks Redis).
	Lease int
	// LeaseTTL is how long a lease may be spent (default: one second or
	// Lease intervals, whichever is longer).
	LeaseTTL time.Duration
	// MaxKeys bounds the leases kept (default DefaultMaxKeys).
	MaxKeys int
}

// NewShared returns a limiter that decides with remote and falls back to
// local. Both should enforce the same Limit.
func NewShared(local *Local, remote *Redis, o SharedOptions) *Shared {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = time.Second
	}
	nanos := func() int64 { return o.Now().UnixNano() }
	if o.Now == nil {
		epoch := time.Now()
		nanos = func() int64 { return int64(time.Since(epoch)) }
	}
	s := &Shared{name: o.Name, local: local, remote: remote, log: o.Log, nanos: nanos, probe: o.ProbeInterval, lease: max(1, o.Lease)}
	if s.lease > 1 {
		s.leaseTTL = int64(o.LeaseTTL)
		if s.leaseTTL <= 0 {
			s.leaseTTL = max(int64(time.Second), int64(remote.Interval())*int64(s.lease))
		}
		s.leases = newLeases(o.MaxKeys)
	}
	return s
}

var _ Limiter = (*Shared)(nil)

// Allow decides one request under key. It never returns an error.
func (s *Shared) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	ok, retry, _ := s.local.Allow(ctx, key)
	if !ok {
		return false, retry, nil
	}
	if s.leases != nil && s.leases.spend(key, s.nanos()) {
		return true, 0, nil
	}
	if s.down.Load() {
		now := s.nanos()
		at := s.retryAt.Load()
		// One request per interval probes; the CAS picks it.
		if now < at || !s.retryAt.CompareAndSwap(at, now+int64(s.probe)) {
			return true, 0, nil
		}
	}
	n, retry, err := s.remote.Take(ctx, key, s.lease)
	if err != nil {
		if ctx.Err() != nil {
			// The client went away; that says nothing about Redis.
			return true, 0, nil
		}
		s.retryAt.Store(s.nanos() + int64(s.probe))
		if s.down.CompareAndSwap(false, true) {
			// The error names the server address and the failure, nothing
			// of the request.
			s.log.LogAttrs(ctx, slog.LevelWarn, "rate limit store unreachable; limiting per node until it is back",
				slog.String("limit", s.name), slog.String("error", err.Error()))
		}
		return true, 0, nil
	}
	if s.down.CompareAndSwap(true, false) {
		s.log.LogAttrs(ctx, slog.LevelInfo, "rate limit store reachable again; limits are shared", slog.String("limit", s.name))
	}
	if n > 1 {
		s.leases.put(key, n-1, s.nanos()+s.leaseTTL)
	}
	return n > 0, retry, nil
}

// Degraded reports whether the last attempt to reach Redis failed.
func (s *Shared) Degraded() bool { return s.down.Load() }

// leases are the requests a node has taken from Redis and not yet spent,
// per key, in sharded maps bounded like Local's.
type leases struct {
	perShard int
	seed     maphash.Seed
	shards   [localShards]leaseShard
}

type lease struct {
	left int
	exp  int64 // Shared.nanos() time
}

type leaseShard struct {
	mu sync.Mutex
	m  map[string]lease
	_  [40]byte
}

func newLeases(maxKeys int) *leases {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	ls := &leases{perShard: max(1, (maxKeys+localShards-1)/localShards), seed: maphash.MakeSeed()}
	for i := range ls.shards {
		ls.shards[i].m = make(map[string]lease)
	}
	return ls
}

// spend uses one leased request of key, if one is left and unexpired.
func (ls *leases) spend(key string, now int64) bool {
	sh := &ls.shards[maphash.String(ls.seed, key)%localShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l, ok := sh.m[key]
	if !ok {
		return false
	}
	if l.left <= 0 || now >= l.exp {
		delete(sh.m, key)
		return false
	}
	l.left--
	sh.m[key] = l
	return true
}

// put keeps n requests of key until exp. A full shard drops expired
// leases, or else the sampled lease ending first: losing a lease only
// costs a round trip.
func (ls *leases) put(key string, n int, exp int64) {
	sh := &ls.shards[maphash.String(ls.seed, key)%localShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[key]; !ok && len(sh.m) >= ls.perShard {
		var victim string
		first, seen := int64(0), 0
		for k, l := range sh.m {
			if seen == 0 || l.exp < first {
				victim, first = k, l.exp
			}
			if seen++; seen >= evictSample {
				break
			}
		}
		delete(sh.m, victim)
	}
	sh.m[key] = lease{left: n, exp: exp}
}
