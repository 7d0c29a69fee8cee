package api_test

import (
	"encoding/json"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// slowAuth is the default burst (20) with a refill slow enough (one per
// 100 s) that the test's timing cannot let a 21st request through; the
// proxy on loopback is trusted so that each test request names its client
// address.
func slowAuth(c *config.Config) {
	c.AuthRate = 0.01
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

// The OAuth endpoints share one limit per client address: the 21st rapid
// request from an address is a 429 with Retry-After and the endpoint's own
// error format (RFC 6749 JSON at the token endpoint, an OperationOutcome at
// the login form); another address is unaffected; a throttled address is
// in the ledger once, by keyed hash.
func TestAuthEndpointsAreLimitedPerAddress(t *testing.T) {
	if config.Default().AuthBurst != 20 {
		t.Fatalf("default burst %d; this test counts on 20", config.Default().AuthBurst)
	}
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		const attacker, other = "198.51.100.7", "198.51.100.8"
		wrong := url.Values{"grant_type": {"password"}, "username": {"physician-user"}, "password": {"not the password"}}
		cheap := url.Values{"grant_type": {"nonsense"}}
		for i := range 20 {
			form := cheap
			if i < 3 {
				form = wrong // a few real guesses, then cheap ones
			}
			if status, _, body := w.PostForm(t, "/oauth2/token", attacker, form); status != 400 {
				t.Fatalf("request %d within the burst: %d %s", i+1, status, body)
			}
		}
		status, h, body := w.PostForm(t, "/oauth2/token", attacker, wrong)
		var oauth map[string]string
		if status != 429 || json.Unmarshal(body, &oauth) != nil || oauth["error"] != "temporarily_unavailable" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Fatalf("21st request: %d %q %s", status, h.Get("Content-Type"), body)
		}
		if ra, err := strconv.Atoi(h.Get("Retry-After")); err != nil || ra < 1 || ra > 100 {
			t.Fatalf("Retry-After %q, want 1..100 seconds (one request per 100 s)", h.Get("Retry-After"))
		}
		// The other OAuth endpoints share the address's limit.
		if status, _, body := w.PostForm(t, "/oauth2/revoke", attacker, url.Values{"token": {"x"}}); status != 429 {
			t.Errorf("revoke from the throttled address: %d %s", status, body)
		}
		if status, _, body := w.PostForm(t, "/oauth2/introspect", attacker, url.Values{"token": {"x"}}); status != 429 {
			t.Errorf("introspect from the throttled address: %d %s", status, body)
		}
		status, h, body = w.PostForm(t, "/oauth2/authorize", attacker, url.Values{"handle": {"h"}, "username": {"physician-user"}, "password": {"guess"}})
		if status != 429 || !strings.Contains(string(body), `"OperationOutcome"`) || !strings.Contains(string(body), `"throttled"`) || h.Get("Retry-After") == "" {
			t.Errorf("login form from the throttled address: %d %s", status, body)
		}
		// Another address is not affected, and the real user still signs
		// in from there.
		if status, _, body := w.PostForm(t, "/oauth2/token", other, cheap); status != 400 {
			t.Fatalf("another address: %d %s", status, body)
		}
		if status, _, body := w.PostForm(t, "/oauth2/token", other, url.Values{"grant_type": {"password"}, "username": {"nurse-user"}, "password": {apptest.Password}}); status != 200 {
			t.Fatalf("login from another address: %d %s", status, body)
		}
		// Five throttled requests, one ledger record, naming neither the
		// address nor the username.
		n := 0
		for _, r := range w.Ledger(t) {
			if r.Action != "rate-limit" {
				continue
			}
			n++
			ents := strings.Join(r.Entities, " ")
			if r.Detail != "auth-per-address" || !strings.Contains(ents, "endpoint/oauth2/token") || !strings.Contains(ents, "client-address/") ||
				strings.Contains(ents, attacker) || strings.Contains(ents, "physician-user") {
				t.Errorf("rate-limit record %+v", r)
			}
		}
		if n != 1 {
			t.Errorf("%d rate-limit records for one throttled address, want 1 (one per address per minute)", n)
		}
		if strings.Contains(w.Log.String(), attacker) {
			t.Error("the log names the client address")
		}
	}, slowAuth)
}

// X-Forwarded-For from a connection that is not a trusted proxy is
// ignored: a client cannot give itself a fresh limit by making up
// addresses.
func TestForwardedForIsBelievedOnlyFromTrustedProxies(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.AuthRate = 0.01 })
	// Start signed users in from 127.0.0.1, so fewer than the burst (20)
	// remain for it. Were a made-up X-Forwarded-For believed, each
	// request below would get a fresh burst and none would be refused;
	// as it is, they all spend 127.0.0.1's and one of the first 20 is.
	for i := range 20 {
		status, _, body := w.PostForm(t, "/oauth2/token", "203.0.113."+strconv.Itoa(i), url.Values{})
		if status == 429 {
			if i < 20-len(authz.Roles)-1 {
				t.Fatalf("refused after %d requests: the burst is 20 and Start signed in %d users", i, len(authz.Roles))
			}
			return
		}
		if status != 400 {
			t.Fatalf("request %d: %d %s", i, status, body)
		}
	}
	t.Fatal("twenty made-up X-Forwarded-For addresses escaped the limit")
}

// An authenticated caller over its limit gets a 429 OperationOutcome
// (code throttled) with Retry-After; another user is unaffected.
func TestAPIIsLimitedPerSubject(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		for i := range 3 {
			if r := w.Do(t, "GET", "/fhir/Patient?_count=1", tok, nil); r.Status != 200 {
				t.Fatalf("request %d within the burst: %d %s", i+1, r.Status, r.Body)
			}
		}
		r := w.Do(t, "GET", "/fhir/Patient?_count=1", tok, nil)
		if r.Status != 429 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/fhir+json") {
			t.Fatalf("over the limit: %d %s", r.Status, r.Body)
		}
		m := r.JSON(t)
		issues, _ := m["issue"].([]any)
		if m["resourceType"] != "OperationOutcome" || len(issues) != 1 || issues[0].(map[string]any)["code"] != "throttled" {
			t.Fatalf("over the limit: %s", r.Body)
		}
		if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 100 {
			t.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
		}
		// Every bearer endpoint shares the subject's limit.
		if r := w.Do(t, "GET", "/admin/users", tok, nil); r.Status != 429 {
			t.Errorf("admin API over the limit: %d", r.Status)
		}
		if r := w.Do(t, "GET", "/fhir/Patient?_count=1", w.Tokens[authz.RoleNurse], nil); r.Status != 200 {
			t.Fatalf("another user: %d %s", r.Status, r.Body)
		}
		// The public CapabilityStatement has no subject and no limit.
		if r := w.Do(t, "GET", "/fhir/metadata", "", nil); r.Status != 200 {
			t.Fatalf("metadata: %d", r.Status)
		}
	}, func(c *config.Config) { c.APIRate, c.APIBurst = 0.01, 3 })
}

// With the defaults, what tests and clients normally do is not limited,
// and 0 turns a limit off.
func TestRateLimitsOff(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite, func(c *config.Config) { c.AuthRate, c.APIRate, c.APIBurst = 0, 0, 1 })
	for i := range 30 {
		if status, _, _ := w.PostForm(t, "/oauth2/token", "", url.Values{}); status != 400 {
			t.Fatalf("auth limit 0, request %d: %d", i, status)
		}
	}
	for i := range 5 {
		if r := w.Do(t, "GET", "/fhir/Patient?_count=1", w.Tokens[authz.RoleAdmin], nil); r.Status != 200 {
			t.Fatalf("api limit 0, request %d: %d", i, r.Status)
		}
	}
}
