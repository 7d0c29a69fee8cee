package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/ratelimit/redistest"
)

// tokenFrom posts a form to /oauth2/token as the client at address from
// (named in X-Forwarded-For by the trusted loopback proxy).
func tokenFrom(t *testing.T, w *apptest.Ward, from string, form url.Values) int {
	t.Helper()
	status, _, _ := w.PostForm(t, "/oauth2/token", from, form)
	return status
}

func sharedRedis(redisURL, prefix string) func(*config.Config) {
	return func(c *config.Config) {
		c.RedisURL, c.RedisKeyPrefix = redisURL, prefix
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}
}

// Two Ward nodes (each its own database) on one Redis limit an address as
// one: 20 requests split over both use up the burst of 20 together, so
// the 21st is refused by either node although each saw only 10.
func TestRateLimitIsSharedAcrossNodes(t *testing.T) {
	rurl := redistest.URL(t)
	prefix := redistest.Prefix(t, rurl)
	slow := func(c *config.Config) { c.AuthRate = 0.01 } // burst 20 (default), then one per 100 s
	a := apptest.Start(t, apptest.SQLite, sharedRedis(rurl, prefix), slow)
	b := apptest.Start(t, apptest.SQLite, sharedRedis(rurl, prefix), slow)
	const client = "198.51.100.20"
	for i := range 20 {
		node := a
		if i%2 == 1 {
			node = b
		}
		if status := tokenFrom(t, node, client, url.Values{}); status != 400 {
			t.Fatalf("request %d (node %d) within the shared burst: %d", i+1, i%2, status)
		}
	}
	if status := tokenFrom(t, a, client, url.Values{}); status != 429 {
		t.Fatalf("21st request at node a: %d, want 429", status)
	}
	if status := tokenFrom(t, b, client, url.Values{}); status != 429 {
		t.Fatalf("22nd request at node b: %d, want 429", status)
	}
	if status := tokenFrom(t, b, "198.51.100.21", url.Values{}); status != 400 {
		t.Fatalf("another address: %d", status)
	}
}

// When Redis dies under a running node, the node keeps answering and keeps
// limiting with its own state (the subject's earlier requests still
// count), and says so in its log once per limit.
func TestRateLimitFallsBackWhenRedisDies(t *testing.T) {
	srv := redistest.Start(t)
	w := apptest.Start(t, apptest.SQLite, sharedRedis(srv.URL, "ward-test-fallback:"), func(c *config.Config) { c.APIRate, c.APIBurst = 0.01, 6 })
	tok := w.Tokens[authz.RoleAdmin]
	for i := range 3 {
		if r := w.Do(t, "GET", "/fhir/Patient?_count=1", tok, nil); r.Status != 200 {
			t.Fatalf("request %d with Redis up: %d", i, r.Status)
		}
	}
	rc := redistest.Client(t, srv.URL)
	if n := len(redistest.Keys(t, rc, "ward-test-fallback:api:")); n != 1 {
		t.Fatalf("%d API keys in Redis, want 1", n)
	}
	srv.Kill()

	start := time.Now()
	for i := range 3 {
		if r := w.Do(t, "GET", "/fhir/Patient?_count=1", tok, nil); r.Status != 200 {
			t.Fatalf("request %d after Redis died: %d %s", i+4, r.Status, r.Body)
		}
	}
	if r := w.Do(t, "GET", "/fhir/Patient?_count=1", tok, nil); r.Status != 429 {
		t.Fatalf("7th request over a burst of 6 with Redis dead: %d, want 429 (per-node limit)", r.Status)
	}
	// Authentication keeps working (and limiting) too.
	if status := tokenFrom(t, w, "198.51.100.30", url.Values{"grant_type": {"password"}, "username": {"nurse-user"}, "password": {apptest.Password}}); status != 200 {
		t.Fatalf("login with Redis dead: %d", status)
	}
	if r := w.Do(t, "GET", "/fhir/Patient?_count=1", w.Tokens[authz.RoleNurse], nil); r.Status != 200 {
		t.Fatalf("another user with Redis dead: %d", r.Status)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("requests with Redis dead took %v: the limiter should not wait for it", d)
	}
	logs := w.Log.String()
	for _, limit := range []string{"api", "auth"} {
		n := 0
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "rate limit store unreachable") && strings.Contains(line, `"limit":"`+limit+`"`) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d 'unreachable' lines for the %s limit, want 1:\n%s", n, limit, logs)
		}
	}
}

// A configured Redis that does not answer stops Ward at start, naming the
// setting: shared limits must not silently become per-node ones.
func TestUnreachableRedisIsRefusedAtStart(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "d")
	cfg.RedisURL = "redis://:s3cretpw@127.0.0.1:" + strconv.Itoa(port) + "/0"
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewJSONHandler(io.Discard, nil)), io.Discard)
	if err == nil {
		a.Close()
		t.Fatal("Ward started with an unreachable WARD_REDIS_URL")
	}
	if !strings.Contains(err.Error(), "WARD_REDIS_URL") || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("error %q should name the setting and the address", err)
	}
	if strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("error %q shows the Redis password", err)
	}
}

// What Ward writes to Redis is addresses and ids: after sign-ins with
// typed usernames and passwords (right and wrong, at the token endpoint and
// the login form) and API requests, no key or value holds any of them.
func TestRedisKeysHoldNoPHI(t *testing.T) {
	rurl := redistest.URL(t)
	prefix := redistest.Prefix(t, rurl)
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.RedisURL, c.RedisKeyPrefix = rurl, prefix })
	id := apptest.AddUser(t, w.App.Store, "default", "ada.lovelace.1815", authz.RolePhysician)
	tok := w.Login(t, "ada.lovelace.1815", apptest.Password)
	tokenFrom(t, w, "", url.Values{"grant_type": {"password"}, "username": {"grace.hopper.typo"}, "password": {"Tr0ub4dor&3-wrong"}})
	req, _ := http.NewRequest("POST", w.Server.URL+"/oauth2/authorize", strings.NewReader(url.Values{"handle": {"x"}, "username": {"margaret.hamilton"}, "password": {"apollo-eleven-pw"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := w.Server.Client().Do(req); err == nil {
		resp.Body.Close()
	}
	pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Quixotezebulon","given":["Dulcinea"]}],"birthDate":"1961-04-12"}`)
	if r := w.Do(t, "GET", "/fhir/Patient/"+pid, tok, nil); r.Status != 200 && r.Status != 403 {
		t.Fatalf("read: %d", r.Status)
	}

	rc := redistest.Client(t, rurl)
	keys := redistest.Keys(t, rc, prefix)
	want := map[string]bool{prefix + "auth:ip:127.0.0.1": false, prefix + "api:default/" + id: false}
	// Each has a letter beyond a-f or a dash, so that no id (hex) or time
	// (digits) can contain it by chance.
	forbidden := []string{"ada.lovelace.1815", "lovelace", "grace.hopper.typo", "hopper", "margaret.hamilton", "hamilton", "Tr0ub4dor", "apollo", apptest.Password,
		"Quixotezebulon", "Dulcinea", "1961-04-12"}
	for _, k := range keys {
		if _, ok := want[k]; ok {
			want[k] = true
		}
		v, _ := rc.Get(context.Background(), k).Result()
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			t.Errorf("key %s holds %q, not a time", k, v)
		}
		for _, f := range forbidden {
			if strings.Contains(strings.ToLower(k), strings.ToLower(f)) || strings.Contains(v, f) {
				t.Errorf("Redis key %q (value %q) contains %q", k, v, f)
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("expected key %s not in Redis (keys: %v): the scan would pass vacuously", k, keys)
		}
	}
}
