// Package ratelimit decides whether one more request under a key fits its
// rate limit. It has one algorithm, GCRA (the generic cell rate algorithm,
// a token bucket kept as one timestamp per key), and three places to keep
// its state:
//
//   - Local: in this process, sharded maps with a bound on the number of
//     keys. Each node limits on its own.
//   - Redis: in Redis, one Lua script per decision (one round trip, atomic),
//     keys that expire by themselves once they are back to a full bucket
//     (and at least a second after their last change).
//     Every node sharing the Redis limits as one.
//   - Shared: Local as a per-node pre-check in front of Redis, and the
//     fallback when Redis cannot be reached.
//
// Guarantee: under a Limit of Rate r and Burst b, a key is allowed at most
// b requests at once and r per second after that, and a refused request
// is told how long to wait (RetryAfter) until one more fits. Shared never
// fails open: when Redis is unreachable it keeps limiting with the per-node
// state (each node then allows up to the limit on its own), and it never
// refuses because Redis is down.
//
// Keys are chosen by the caller and stored as given (in Redis, after a
// prefix): they must never hold PHI or anything a person typed. Ward keys by
// client address and by user or client id.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Limiter decides one request under key: ok says it fits; when it does
// not, retryAfter is how long until one more would. err is returned only
// when the decision could not be made (Redis unreachable); Local and Shared
// always decide.
type Limiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// Limit is a rate in requests per second with a burst: a fresh key may
// make Burst requests at once, and then one every 1/Rate seconds.
type Limit struct {
	Rate  float64
	Burst int
}

// MaxRate is the highest Rate: the Redis script counts in microseconds, so
// one request per microsecond is the finest interval it can keep.
const MaxRate = 1e6

// Validate says whether l can be enforced. A zero Rate means "no limit" to
// callers; it is not a Limit a Limiter can be built with.
func (l Limit) Validate() error {
	switch {
	case !(l.Rate > 0) || l.Rate > MaxRate || math.IsInf(l.Rate, 0):
		return fmt.Errorf("%w: rate must be above 0 and at most %g per second", ErrBadLimit, float64(MaxRate))
	case l.Burst < 1 || l.Burst > 1_000_000:
		return fmt.Errorf("%w: burst must be between 1 and 1000000", ErrBadLimit)
	}
	return nil
}

// ErrBadLimit is returned by the constructors for a Limit that Validate
// refuses.
var ErrBadLimit = errors.New("ratelimit: bad limit")

// interval is the time one request takes out of the bucket (the GCRA
// emission interval), in the unit of unit.
func (l Limit) interval(unit time.Duration) int64 {
	return max(1, int64(math.Round(float64(time.Second/unit)/l.Rate)))
}

// gcra is the whole algorithm, over integer times in one unit. tat is the
// key's theoretical arrival time (0 or anything up to now: a full bucket).
// A request fits when taking one interval out leaves the tat no more than
// Burst intervals ahead of now; the new tat is then stored. When it does
// not fit, the tat stays and retry is how far now is from the time it
// would fit.
func gcra(tat, now, interval, tolerance int64) (newTAT int64, ok bool, retry int64) {
	if tat < now {
		tat = now
	}
	newTAT = tat + interval
	if over := newTAT - tolerance - now; over > 0 {
		return tat, false, over
	}
	return newTAT, true, 0
}
