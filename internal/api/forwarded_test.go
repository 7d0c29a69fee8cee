package api

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestForwardedOrigin(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		name, remote string
		headers      map[string]string
		trusted      []netip.Prefix
		want         string
	}{
		{"untrusted: ignored", "192.0.2.1:5000", map[string]string{"Forwarded": "proto=https;host=ward.example.org"}, lb, "http://direct/fhir"},
		{"no proxies configured: ignored", "10.1.1.1:5000", map[string]string{"X-Forwarded-Host": "evil.example"}, nil, "http://direct/fhir"},
		{"Forwarded", "10.1.1.1:5000", map[string]string{"Forwarded": `for=192.0.2.60;proto=https;host="ward.example.org:8443", for=10.2.2.2;host=inner`}, lb, "https://ward.example.org:8443/fhir"},
		{"Forwarded case-insensitive keys", "10.1.1.1:5000", map[string]string{"Forwarded": `Proto=HTTPS;Host=ward.example.org`}, lb, "https://ward.example.org/fhir"},
		{"X-Forwarded", "10.1.1.1:5000", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "ward.example.org, inner", "X-Forwarded-Prefix": "/records/"}, lb, "https://ward.example.org/records/fhir"},
		{"Forwarded wins", "10.1.1.1:5000", map[string]string{"Forwarded": "host=a.example", "X-Forwarded-Host": "b.example", "X-Forwarded-Proto": "https"}, lb, "https://a.example/fhir"},
		{"bad proto", "10.1.1.1:5000", map[string]string{"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "a.example"}, lb, "http://direct/fhir"},
		{"host with userinfo", "10.1.1.1:5000", map[string]string{"X-Forwarded-Host": "user@evil.example"}, lb, "http://direct/fhir"},
		{"host with a path", "10.1.1.1:5000", map[string]string{"Forwarded": `host="evil.example/x"`}, lb, "http://direct/fhir"},
		{"prefix escaping", "10.1.1.1:5000", map[string]string{"X-Forwarded-Prefix": "/../admin"}, lb, "http://direct/fhir"},
		{"prefix not a path", "10.1.1.1:5000", map[string]string{"X-Forwarded-Prefix": "//evil.example"}, lb, "http://direct/fhir"},
		{"malformed Forwarded", "10.1.1.1:5000", map[string]string{"Forwarded": `host="unterminated`}, lb, "http://direct/fhir"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{opts: Options{TrustedProxies: c.trusted}}
			r := httptest.NewRequest("GET", "http://direct/fhir/Patient", nil)
			r.RemoteAddr = c.remote
			for k, v := range c.headers {
				r.Header.Set(k, v)
			}
			if got := s.base(r); got != c.want {
				t.Errorf("base %q, want %q", got, c.want)
			}
		})
	}
}

// FuzzForwarded: any Forwarded header parses or is refused without
// panicking; what parses is usable only if it passes the validation
// base() applies; and a well-formed element round-trips.
func FuzzForwarded(f *testing.F) {
	for _, s := range []string{
		`for=192.0.2.60;proto=http;by=203.0.113.43`,
		`proto=https;host="ward.example.org:8443", for=10.0.0.1`,
		`for="[2001:db8:cafe::17]:4711";host=[2001:db8::1]`,
		`host="a\"b";proto=https`,
		`;;,,`,
		`host=`,
		`"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		proto, host, ok := parseForwarded(h)
		if !ok {
			return
		}
		if strings.ToLower(proto) != proto {
			t.Fatalf("proto %q not lowercased", proto)
		}
		if validHost(host) && strings.ContainsAny(host, "/@ ?#\\\"") {
			t.Fatalf("validHost accepted %q", host)
		}
		if validHost(host) && (proto == "http" || proto == "https") {
			p2, h2, ok := parseForwarded("proto=" + proto + `;host="` + host + `"`)
			if !ok || p2 != proto || h2 != host {
				t.Fatalf("round trip of %q %q: %q %q %v", proto, host, p2, h2, ok)
			}
		}
	})
}
