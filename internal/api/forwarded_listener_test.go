package api_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
)

// Through a real listener: with the test client's loopback address a
// trusted proxy, Forwarded and X-Forwarded-* set the base of links
// (Bundle links, Link header, Location); without it they are ignored.
func TestForwardedBaseURL(t *testing.T) {
	trust := func(c *config.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		r := w.Do(t, "GET", "/fhir/Patient?_count=1", tok, nil, "Forwarded: proto=https;host=records.example.org", "X-Forwarded-Prefix: /ward")
		if self := bundleLink(t, r, "self"); !strings.HasPrefix(self, "https://records.example.org/ward/fhir/Patient?") {
			t.Errorf("self link %q", self)
		}
		if h := r.Header.Get("Link"); !strings.Contains(h, "<https://records.example.org/ward/fhir/Patient?") {
			t.Errorf("Link header %q", h)
		}
		c := w.Do(t, "POST", "/fhir/Patient", tok, []byte(`{"resourceType":"Patient"}`), "X-Forwarded-Proto: https", "X-Forwarded-Host: records.example.org")
		if loc := c.Header.Get("Location"); c.Status != 201 || !strings.HasPrefix(loc, "https://records.example.org/fhir/Patient/") {
			t.Errorf("create: %d, Location %q", c.Status, loc)
		}
		bad := w.Do(t, "GET", "/fhir/Patient?_count=1", tok, nil, "X-Forwarded-Host: evil.example/x")
		if self := bundleLink(t, bad, "self"); !strings.HasPrefix(self, w.Server.URL) {
			t.Errorf("invalid forwarded host used: %q", self)
		}
	}, trust)
	w := apptest.Start(t, apptest.SQLite)
	r := w.Do(t, "GET", "/fhir/Patient?_count=1", w.Tokens[authz.RoleAdmin], nil, "Forwarded: proto=https;host=records.example.org")
	if self := bundleLink(t, r, "self"); !strings.HasPrefix(self, w.Server.URL) {
		t.Errorf("untrusted connection's Forwarded used: %q", self)
	}
}
