package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps GCRA state in Redis, so that every node using the same
// server and prefix enforces one limit. Each decision is one EVALSHA: read
// the key's theoretical arrival time, decide, and store the new one with an
// expiry at the moment its bucket is full again, atomically (Redis runs a
// script alone). Keys therefore need no sweeping, and a key that is full
// again occupies no memory.
//
// Time is Redis's own clock (TIME), not the nodes': nodes whose clocks
// differ still share one limit.
type Redis struct {
	c                   redis.Scripter
	prefix              string
	interval, tolerance int64 // microseconds
	now                 func() time.Time
}

// RedisOptions tune a Redis limiter.
type RedisOptions struct {
	// Prefix goes in front of every key (e.g. "ward:rl:api:"); limiters
	// with different limits need different prefixes.
	Prefix string
	// Now, when set, replaces Redis's clock (tests inject one).
	Now func() time.Time
}

// gcraScript is gcra() in Lua, in microseconds (a Lua number is a double:
// exact for integers below 2^53, which microseconds since 1970 are),
// generalised to take up to ARGV[4] requests at once (a lease, see
// Shared): it takes as many as fit, at least one or none.
// ARGV: interval, tolerance, now (0: use Redis's TIME), most to take.
// Returns {taken, 0} when at least one fits, {0, retry} when none does.
//
// The new time is written with %.0f: Redis would otherwise format a Lua
// number with too few digits for a 16-digit integer.
//
// A key lives until its bucket is full again, but at least a second: a
// time already past counts as no key at all (tat < now), so keeping one
// longer changes no decision, while a lifetime of a few milliseconds could
// end, by Redis's clock, before a request that the caller's clock (ARGV[3])
// places inside it.
var gcraScript = redis.NewScript(`
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local most = tonumber(ARGV[4])
if now == 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local fit = math.floor((now + tolerance - tat) / interval)
if fit < 1 then
  return {0, tat + interval - tolerance - now}
end
if fit > most then
  fit = most
end
local new = tat + fit * interval
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.max(1000, math.ceil((new - now) / 1000)))
return {fit, 0}
`)

// NewRedis returns a limiter for l whose state is in c under o.Prefix.
func NewRedis(c redis.Scripter, l Limit, o RedisOptions) (*Redis, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errors.New("ratelimit: no Redis client")
	}
	iv := l.interval(time.Microsecond)
	return &Redis{c: c, prefix: o.Prefix, interval: iv, tolerance: iv * int64(l.Burst), now: o.Now}, nil
}

var _ Limiter = (*Redis)(nil)

// Allow decides one request under key; err is Redis's (unreachable,
// timeout) and then no decision was made.
func (rl *Redis) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	n, retry, err := rl.Take(ctx, key, 1)
	return n == 1, retry, err
}

// Take takes up to most requests under key at once: as many as fit now,
// or none and the time until one would.
func (rl *Redis) Take(ctx context.Context, key string, most int) (n int, retryAfter time.Duration, err error) {
	var now int64
	if rl.now != nil {
		now = rl.now().UnixMicro()
	}
	res, err := gcraScript.Run(ctx, rl.c, []string{rl.prefix + key}, rl.interval, rl.tolerance, now, max(1, most)).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("ratelimit: redis: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("ratelimit: redis: unexpected script answer of %d values", len(res))
	}
	return int(res[0]), time.Duration(res[1]) * time.Microsecond, nil
}

// Interval is the time one request takes out of a bucket.
func (rl *Redis) Interval() time.Duration { return time.Duration(rl.interval) * time.Microsecond }
