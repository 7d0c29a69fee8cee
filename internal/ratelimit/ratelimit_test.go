package ratelimit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wardhealth/ward/internal/deptest"
	"github.com/wardhealth/ward/internal/ratelimit"
	"github.com/wardhealth/ward/internal/ratelimit/redistest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// step is one request at a time offset from the start, and its expected
// answer.
type step struct {
	at    time.Duration
	key   string
	ok    bool
	retry time.Duration
}

// allowed and refused build steps.
func allowed(at time.Duration, key string) step { return step{at, key, true, 0} }
func refused(at time.Duration, key string, retry time.Duration) step {
	return step{at, key, false, retry}
}

// repeat is n allowed requests of key at one instant.
func repeat(n int, at time.Duration, key string) []step {
	var out []step
	for range n {
		out = append(out, allowed(at, key))
	}
	return out
}

func join(parts ...[]step) []step {
	var out []step
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

var algorithmCases = []struct {
	name  string
	limit ratelimit.Limit
	steps []step
}{
	{"burst then refused", ratelimit.Limit{Rate: 1, Burst: 3}, join(
		repeat(3, 0, "a"),
		[]step{refused(0, "a", time.Second), refused(0, "a", time.Second)},
	)},
	{"refill one interval at a time", ratelimit.Limit{Rate: 1, Burst: 3}, join(
		repeat(3, 0, "a"),
		[]step{
			refused(500*time.Millisecond, "a", 500*time.Millisecond),
			allowed(time.Second, "a"),
			refused(time.Second, "a", time.Second),
			allowed(2500*time.Millisecond, "a"),
			refused(2500*time.Millisecond, "a", 500*time.Millisecond),
		},
	)},
	{"idle refills only up to the burst", ratelimit.Limit{Rate: 1, Burst: 3}, join(
		repeat(3, 0, "a"),
		repeat(3, time.Hour, "a"),
		[]step{refused(time.Hour, "a", time.Second)},
	)},
	{"retry-after counts down", ratelimit.Limit{Rate: 10, Burst: 2}, join(
		repeat(2, 0, "a"),
		[]step{
			refused(0, "a", 100*time.Millisecond),
			refused(30*time.Millisecond, "a", 70*time.Millisecond),
			refused(99*time.Millisecond, "a", time.Millisecond),
			allowed(100*time.Millisecond, "a"),
		},
	)},
	{"slow rate", ratelimit.Limit{Rate: 0.5, Burst: 1}, []step{
		allowed(0, "a"),
		refused(0, "a", 2*time.Second),
		refused(1500*time.Millisecond, "a", 500*time.Millisecond),
		allowed(2*time.Second, "a"),
	}},
	{"burst of one", ratelimit.Limit{Rate: 100, Burst: 1}, []step{
		allowed(0, "a"),
		refused(0, "a", 10*time.Millisecond),
		allowed(10*time.Millisecond, "a"),
		allowed(20*time.Millisecond, "a"),
		refused(25*time.Millisecond, "a", 5*time.Millisecond),
	}},
	{"keys are isolated", ratelimit.Limit{Rate: 1, Burst: 2}, join(
		repeat(2, 0, "a"),
		[]step{refused(0, "a", time.Second)},
		repeat(2, 0, "b"),
		[]step{refused(0, "b", time.Second), refused(0, "a", time.Second)},
		[]step{allowed(0, "a "), allowed(0, "A")},
	)},
	{"refused requests take nothing", ratelimit.Limit{Rate: 1, Burst: 1}, []step{
		allowed(0, "a"),
		refused(100*time.Millisecond, "a", 900*time.Millisecond),
		refused(200*time.Millisecond, "a", 800*time.Millisecond),
		refused(300*time.Millisecond, "a", 700*time.Millisecond),
		allowed(time.Second, "a"),
	}},
}

// runSteps plays the steps against a limiter built on the clock.
func runSteps(t *testing.T, c *clock, start time.Time, l ratelimit.Limiter, steps []step) {
	t.Helper()
	for i, s := range steps {
		c.Set(start.Add(s.at))
		ok, retry, err := l.Allow(context.Background(), s.key)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if ok != s.ok || retry != s.retry {
			t.Fatalf("step %d (%v, key %q): ok=%v retry=%v, want ok=%v retry=%v", i, s.at, s.key, ok, retry, s.ok, s.retry)
		}
	}
}

// start is a fixed instant with a microsecond part, so both the Local
// (nanoseconds) and the Redis (microseconds) arithmetic are exercised off
// round numbers.
var start = time.Date(2026, 12, 1, 9, 30, 0, 123_456_000, time.UTC)

func TestLocalAlgorithm(t *testing.T) {
	for _, tc := range algorithmCases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{}
			l, err := ratelimit.NewLocal(tc.limit, ratelimit.LocalOptions{Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, c, start, l, tc.steps)
		})
	}
}

// The same table against the Lua script in a real Redis, with the clock
// passed to the script instead of Redis's TIME.
func TestRedisAlgorithm(t *testing.T) {
	url := redistest.URL(t)
	rc := redistest.Client(t, url)
	for _, tc := range algorithmCases {
		t.Run(tc.name, func(t *testing.T) {
			c := &clock{}
			l, err := ratelimit.NewRedis(rc, tc.limit, ratelimit.RedisOptions{Prefix: redistest.Prefix(t, url), Now: c.Now})
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, c, start, l, tc.steps)
		})
	}
}

// A key outlives a moment of real time between two requests that the
// caller's clock puts 5 ms apart: its state must not expire, by Redis's
// clock, before the second request is decided. (A key that lived only
// until its bucket was full, 10 ms here, made the table above fail on a
// loaded machine.)
func TestRedisKeyOutlivesAPause(t *testing.T) {
	url := redistest.URL(t)
	rc := redistest.Client(t, url)
	c := &clock{}
	l, err := ratelimit.NewRedis(rc, ratelimit.Limit{Rate: 100, Burst: 1}, ratelimit.RedisOptions{Prefix: redistest.Prefix(t, url), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	c.Set(start)
	if ok, _, err := l.Allow(context.Background(), "a"); !ok || err != nil {
		t.Fatalf("first request: ok=%v err=%v", ok, err)
	}
	time.Sleep(50 * time.Millisecond)
	c.Set(start.Add(5 * time.Millisecond))
	ok, retry, err := l.Allow(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if ok || retry != 5*time.Millisecond {
		t.Fatalf("second request 5 ms later by the caller's clock: ok=%v retry=%v, want refused with retry 5ms", ok, retry)
	}
}

func TestBadLimits(t *testing.T) {
	for _, l := range []ratelimit.Limit{{0, 1}, {-1, 1}, {1, 0}, {ratelimit.MaxRate * 2, 1}, {1, 2_000_000}} {
		if _, err := ratelimit.NewLocal(l, ratelimit.LocalOptions{}); err == nil {
			t.Errorf("NewLocal(%+v) accepted", l)
		}
		if _, err := ratelimit.NewRedis(redis.NewClient(&redis.Options{}), l, ratelimit.RedisOptions{}); err == nil {
			t.Errorf("NewRedis(%+v) accepted", l)
		}
	}
}

// A flood of distinct keys does not grow the limiter beyond its bound, and
// the bound does not stop new keys from being served.
func TestLocalMemoryIsBounded(t *testing.T) {
	c := &clock{t: start}
	l, _ := ratelimit.NewLocal(ratelimit.Limit{Rate: 1, Burst: 1}, ratelimit.LocalOptions{MaxKeys: 640, Now: c.Now})
	for i := range 50_000 {
		if ok, _, _ := l.Allow(context.Background(), fmt.Sprintf("k%d", i)); !ok {
			t.Fatalf("new key %d refused", i)
		}
	}
	if n := l.Len(); n > 640 {
		t.Fatalf("%d keys kept, bound 640", n)
	}
	// Keys whose bucket is full again are dropped before limited ones: the
	// clock moves on, a limited key is made, and a second flood must not
	// push it out (its shard drops the stale keys first).
	c.Set(start.Add(time.Hour))
	l.Allow(context.Background(), "limited")
	for i := range 5 {
		l.Allow(context.Background(), fmt.Sprintf("fresh%d", i))
	}
	if ok, _, _ := l.Allow(context.Background(), "limited"); ok {
		t.Fatal("a limited key was forgotten while stale keys were kept")
	}
}

// Keys in Redis carry the prefix, expire by themselves once their bucket
// is full again, and use Redis's clock when none is injected.
func TestRedisKeysExpire(t *testing.T) {
	url := redistest.URL(t)
	rc := redistest.Client(t, url)
	prefix := redistest.Prefix(t, url)
	l, err := ratelimit.NewRedis(rc, ratelimit.Limit{Rate: 2, Burst: 4}, ratelimit.RedisOptions{Prefix: prefix + "api:"})
	if err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if ok, _, err := l.Allow(context.Background(), "tenant/u1"); !ok || err != nil {
			t.Fatalf("within burst: %v %v", ok, err)
		}
	}
	ok, retry, _ := l.Allow(context.Background(), "tenant/u1")
	if ok || retry <= 0 || retry > 500*time.Millisecond {
		t.Fatalf("over burst: ok=%v retry=%v, want refused with 0 < retry <= 500ms", ok, retry)
	}
	keys := redistest.Keys(t, rc, prefix)
	if len(keys) != 1 || keys[0] != prefix+"api:tenant/u1" {
		t.Fatalf("keys %v", keys)
	}
	// Four requests put the time 2s ahead: the key lives about that long.
	ttl := rc.PTTL(context.Background(), keys[0]).Val()
	if ttl <= 0 || ttl > 2*time.Second+10*time.Millisecond {
		t.Fatalf("PTTL %v, want (0, 2s]", ttl)
	}
}

// Two limiters on one Redis (two nodes) enforce one limit between them.
func TestSharedIsOneLimitAcrossNodes(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix(t, url)
	limit := ratelimit.Limit{Rate: 0.01, Burst: 5}
	node := func() *ratelimit.Shared {
		local, _ := ratelimit.NewLocal(limit, ratelimit.LocalOptions{})
		remote, err := ratelimit.NewRedis(redistest.Client(t, url), limit, ratelimit.RedisOptions{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return ratelimit.NewShared(local, remote, ratelimit.SharedOptions{Name: "test"})
	}
	a, b := node(), node()
	got := 0
	for i := range 10 {
		n := a
		if i%2 == 1 {
			n = b
		}
		if ok, _, err := n.Allow(context.Background(), "ip:203.0.113.9"); err != nil {
			t.Fatal(err)
		} else if ok {
			got++
		}
	}
	if got != 5 {
		t.Fatalf("%d of 10 requests split over two nodes allowed, want the burst of 5", got)
	}
}

// Take grants as many requests as fit, up to the most asked for, and
// none (with the wait) when not one fits.
func TestRedisTake(t *testing.T) {
	url := redistest.URL(t)
	c := &clock{t: start}
	l, err := ratelimit.NewRedis(redistest.Client(t, url), ratelimit.Limit{Rate: 1, Burst: 5}, ratelimit.RedisOptions{Prefix: redistest.Prefix(t, url), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []struct {
		at    time.Duration
		most  int
		n     int
		retry time.Duration
	}{
		{0, 3, 3, 0},
		{0, 3, 2, 0},
		{0, 3, 0, time.Second},
		{1500 * time.Millisecond, 3, 1, 0},
		{1500 * time.Millisecond, 3, 0, 500 * time.Millisecond},
		{time.Hour, 10, 5, 0},
	} {
		c.Set(start.Add(want.at))
		n, retry, err := l.Take(context.Background(), "k", want.most)
		if err != nil || n != want.n || retry != want.retry {
			t.Fatalf("take %d: n=%d retry=%v err=%v, want n=%d retry=%v", i, n, retry, err, want.n, want.retry)
		}
	}
}

// With leases, nodes take several requests per round trip and still
// allow no more than the limit between them.
func TestSharedLeasesStayWithinTheLimit(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix(t, url)
	rc := redistest.Client(t, url)
	limit := ratelimit.Limit{Rate: 0.01, Burst: 10}
	node := func() *ratelimit.Shared {
		local, _ := ratelimit.NewLocal(limit, ratelimit.LocalOptions{})
		remote, _ := ratelimit.NewRedis(rc, limit, ratelimit.RedisOptions{Prefix: prefix})
		return ratelimit.NewShared(local, remote, ratelimit.SharedOptions{Name: "test", Lease: 4})
	}
	a, b := node(), node()
	got := 0
	for i := range 30 {
		n := a
		if i%2 == 1 {
			n = b
		}
		if ok, _, _ := n.Allow(context.Background(), "default/u1"); ok {
			got++
		}
	}
	// A takes 4, B takes 4, both spend them, A takes the last 2: exactly
	// the burst, as all requests fall in one instant of a slow refill.
	if got != 10 {
		t.Fatalf("%d allowed over two leasing nodes, want the burst of 10", got)
	}
}

// A lease ends after its TTL: the node asks Redis again instead of
// spending requests counted long ago.
func TestSharedLeaseExpires(t *testing.T) {
	url := redistest.URL(t)
	prefix := redistest.Prefix(t, url)
	rc := redistest.Client(t, url)
	c := &clock{t: start}
	limit := ratelimit.Limit{Rate: 1, Burst: 10}
	local, _ := ratelimit.NewLocal(limit, ratelimit.LocalOptions{Now: c.Now})
	remote, _ := ratelimit.NewRedis(rc, limit, ratelimit.RedisOptions{Prefix: prefix, Now: c.Now})
	s := ratelimit.NewShared(local, remote, ratelimit.SharedOptions{Name: "test", Lease: 5, LeaseTTL: time.Second, Now: c.Now})
	ctx := context.Background()
	tat := func() int64 { v, _ := rc.Get(ctx, prefix+"k").Int64(); return v }
	s.Allow(ctx, "k") // takes 5 from Redis, spends 1
	before := tat()
	for range 2 {
		if ok, _, _ := s.Allow(ctx, "k"); !ok {
			t.Fatal("leased request refused")
		}
	}
	if tat() != before {
		t.Fatal("spending a lease went to Redis")
	}
	c.Set(start.Add(2 * time.Second)) // 2 of the lease are left, but it has ended
	if ok, _, _ := s.Allow(ctx, "k"); !ok {
		t.Fatal("refused after the lease ended")
	}
	if tat() == before {
		t.Fatal("after its TTL the node spent the old lease instead of asking Redis")
	}
}

// When Redis goes away the limiter keeps deciding with the node's own
// state: it neither lets everything through nor refuses everything, and it
// logs each transition once.
func TestSharedFallsBackWhenRedisGoesAway(t *testing.T) {
	srv := redistest.Start(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	limit := ratelimit.Limit{Rate: 0.01, Burst: 3}
	local, _ := ratelimit.NewLocal(limit, ratelimit.LocalOptions{})
	opt, _ := redis.ParseURL(srv.URL)
	opt.MaxRetries, opt.DialTimeout, opt.ReadTimeout = -1, 200*time.Millisecond, 200*time.Millisecond
	rc := redis.NewClient(opt)
	defer rc.Close()
	remote, _ := ratelimit.NewRedis(rc, limit, ratelimit.RedisOptions{Prefix: "fallback:"})
	s := ratelimit.NewShared(local, remote, ratelimit.SharedOptions{Name: "auth", Log: log, ProbeInterval: 50 * time.Millisecond})
	ctx := context.Background()

	if ok, _, _ := s.Allow(ctx, "k1"); !ok || s.Degraded() {
		t.Fatal("first request with Redis up")
	}
	srv.Kill()
	// k1 has 2 left locally, k2 a full burst: the node's own limits hold.
	for i, want := range []bool{true, true, false, false} {
		ok, retry, err := s.Allow(ctx, "k1")
		if err != nil || ok != want || (!ok && retry <= 0) {
			t.Fatalf("k1 request %d with Redis down: ok=%v retry=%v err=%v, want ok=%v", i, ok, retry, err, want)
		}
	}
	for range 3 {
		if ok, _, _ := s.Allow(ctx, "k2"); !ok {
			t.Fatal("another key refused while Redis is down")
		}
	}
	if !s.Degraded() {
		t.Fatal("not degraded with Redis down")
	}
	// Probes keep failing: still one line.
	time.Sleep(120 * time.Millisecond)
	s.Allow(ctx, "k3")
	time.Sleep(60 * time.Millisecond)
	s.Allow(ctx, "k3")

	srv.Restart(t)
	deadline := time.Now().Add(5 * time.Second)
	for s.Degraded() && time.Now().Before(deadline) {
		time.Sleep(60 * time.Millisecond)
		s.Allow(ctx, "k4")
	}
	if s.Degraded() {
		t.Fatal("still degraded after Redis came back")
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if n := strings.Count(out, "rate limit store unreachable"); n != 1 {
		t.Errorf("%d 'unreachable' lines, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "rate limit store reachable again"); n != 1 {
		t.Errorf("%d 'reachable again' lines, want 1:\n%s", n, out)
	}
	for _, k := range []string{"k1", "k2", "k3", "k4"} {
		if strings.Contains(out, `"`+k+`"`) {
			t.Errorf("a log line names the key %s:\n%s", k, out)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// The package knows nothing of HTTP, storage or the rest of Ward: it is
// given keys and answers with decisions.
func TestImports(t *testing.T) {
	deptest.Check(t, func(path string) string {
		switch {
		case path == "github.com/redis/go-redis/v9", deptest.IsStd(path) && !strings.HasPrefix(path, "net/http") && path != "database/sql":
			return ""
		}
		return "ratelimit takes keys and answers decisions; it needs only the standard library and go-redis"
	})
}
