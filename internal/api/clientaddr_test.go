package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// The client address is the connection's unless that is a trusted proxy;
// then X-Forwarded-For is read from the right, skipping trusted hops, and
// stops at the first hop that cannot be believed.
func TestClientAddr(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, c := range []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want, key    string
	}{
		{"no proxies configured", "192.0.2.1:5000", []string{"203.0.113.5"}, nil, "192.0.2.1", "192.0.2.1"},
		{"untrusted connection: header ignored", "192.0.2.1:5000", []string{"203.0.113.5"}, lb, "192.0.2.1", "192.0.2.1"},
		{"trusted proxy", "10.1.2.3:5000", []string{"203.0.113.5"}, lb, "203.0.113.5", "203.0.113.5"},
		{"client-written hops left of the real one are ignored", "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.5"}, lb, "203.0.113.5", "203.0.113.5"},
		{"two trusted proxies", "10.1.2.3:5000", []string{"198.51.100.9, 10.9.9.9"}, lb, "198.51.100.9", "198.51.100.9"},
		{"several header lines", "10.1.2.3:5000", []string{"1.1.1.1", "198.51.100.9", "10.9.9.9"}, lb, "198.51.100.9", "198.51.100.9"},
		{"garbage stops at the last trusted hop", "10.1.2.3:5000", []string{"203.0.113.5, not-an-ip, 10.9.9.9"}, lb, "10.9.9.9", "10.9.9.9"},
		{"all hops trusted", "10.1.2.3:5000", []string{"10.4.4.4"}, lb, "10.4.4.4", "10.4.4.4"},
		{"no header from a trusted proxy", "10.1.2.3:5000", nil, lb, "10.1.2.3", "10.1.2.3"},
		{"hop with a port", "10.1.2.3:5000", []string{"203.0.113.5:4711"}, lb, "203.0.113.5", "203.0.113.5"},
		{"IPv6 keyed by its /64", "[2001:db8:1:2:3:4:5:6]:443", nil, lb, "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"IPv6 behind an IPv6 proxy", "[2001:db8:ffff::1]:443", []string{"2001:db8:7:7::9"}, lb, "2001:db8:7:7::9", "2001:db8:7:7::/64"},
		{"IPv4-mapped IPv6 is IPv4", "[::ffff:192.0.2.44]:80", nil, lb, "192.0.2.44", "192.0.2.44"},
		{"unparsable remote address", "somewhere", []string{"203.0.113.5"}, lb, "invalid IP", "unknown"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/oauth2/token", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := clientAddr(r, c.trusted)
			if got.String() != c.want || addrKey(got) != c.key {
				t.Fatalf("clientAddr = %s (key %s), want %s (key %s)", got, addrKey(got), c.want, c.key)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[string]string{"0s": "1", "1ns": "1", "999ms": "1", "1s": "1", "1.001s": "2", "10s": "10"} {
		dur, _ := time.ParseDuration(d)
		if got := retryAfter(dur); got != want {
			t.Errorf("retryAfter(%s) = %s, want %s", d, got, want)
		}
	}
}
