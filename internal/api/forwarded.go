package api

import (
	"net/http"
	"strings"
)

// Forwarded headers (RFC 7239 Forwarded; X-Forwarded-Proto, -Host and
// -Prefix) name the URL a client used in front of a reverse proxy. They
// set the base of the links Ward writes only when the connection comes
// from a trusted proxy (WARD_TRUSTED_PROXIES), and only with values that
// are a scheme, a host[:port] and a path prefix: anything else is
// ignored, so that no client can make Ward write links to a host of its
// choosing.

// forwardedOrigin is the scheme, host and path prefix a proxy forwarded.
type forwardedOrigin struct {
	proto, host, prefix string
}

// parseForwarded reads the first element of an RFC 7239 Forwarded header
// (the one the proxy nearest the client wrote): its proto and host
// parameters. ok is false for a header that does not parse; a missing
// parameter is "".
func parseForwarded(h string) (proto, host string, ok bool) {
	elem, _, _ := strings.Cut(h, ",")
	if strings.Contains(elem, `"`) {
		// A quoted-string may hold a comma: cut at a comma outside quotes.
		elem = firstElement(h)
	}
	for _, pair := range splitUnquoted(elem, ';') {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, found := strings.Cut(pair, "=")
		if !found || !isToken(k, false) {
			return "", "", false
		}
		if strings.HasPrefix(v, `"`) {
			if len(v) < 2 || !strings.HasSuffix(v, `"`) {
				return "", "", false
			}
			v = strings.ReplaceAll(v[1:len(v)-1], `\`, "")
		} else if !isToken(v, true) {
			return "", "", false
		}
		switch strings.ToLower(k) {
		case "proto":
			proto = strings.ToLower(v)
		case "host":
			host = v
		}
	}
	return proto, host, true
}

// firstElement is h up to its first comma outside a quoted-string.
func firstElement(h string) string {
	in := false
	for i := 0; i < len(h); i++ {
		switch h[i] {
		case '\\':
			if in {
				i++
			}
		case '"':
			in = !in
		case ',':
			if !in {
				return h[:i]
			}
		}
	}
	return h
}

// splitUnquoted splits s at sep outside quoted-strings.
func splitUnquoted(s string, sep byte) []string {
	var out []string
	in, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if in {
				i++
			}
		case '"':
			in = !in
		case sep:
			if !in {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[min(start, len(s)):])
}

// isToken reports an RFC 7230 token; lenient reports a token that may
// also hold ':', '[', ']' and '/', as proxies write unquoted host and for
// values that RFC 7239 says to quote.
func isToken(s string, lenient bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		case lenient && strings.IndexByte(":[]/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHost accepts host[:port] of a DNS name, IPv4 or bracketed IPv6
// address: no userinfo, path, query or spaces.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(".-:[]", c) >= 0) {
			return false
		}
	}
	return !strings.HasPrefix(h, ".") && !strings.HasPrefix(h, "-") && !strings.HasPrefix(h, ":")
}

// validPrefix accepts a path prefix such as /ward or /api/ward: segments
// of unreserved characters, no "..", no empty segment.
func validPrefix(p string) bool {
	if p == "" {
		return true
	}
	if len(p) > 200 || p[0] != '/' {
		return false
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
				return false
			}
		}
	}
	return true
}

// forwarded returns the origin a trusted proxy forwarded for r, and false
// when the connection is not from a trusted proxy or it forwarded
// nothing usable. Forwarded wins over the X-Forwarded- headers.
func (s *Server) forwarded(r *http.Request) (forwardedOrigin, bool) {
	if len(s.opts.TrustedProxies) == 0 || !isTrusted(parseHop(r.RemoteAddr), s.opts.TrustedProxies) {
		return forwardedOrigin{}, false
	}
	var o forwardedOrigin
	if h := r.Header.Get("Forwarded"); h != "" {
		proto, host, ok := parseForwarded(h)
		if !ok {
			return forwardedOrigin{}, false
		}
		o.proto, o.host = proto, host
	}
	if o.proto == "" {
		o.proto = strings.ToLower(strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Proto"))))
	}
	if o.host == "" {
		o.host = strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Host")))
	}
	o.prefix = strings.TrimSuffix(strings.TrimSpace(r.Header.Get("X-Forwarded-Prefix")), "/")
	if o.proto != "" && o.proto != "http" && o.proto != "https" || o.host != "" && !validHost(o.host) || !validPrefix(o.prefix) {
		return forwardedOrigin{}, false
	}
	return o, o.proto != "" || o.host != "" || o.prefix != ""
}

func firstValue(h string) string {
	v, _, _ := strings.Cut(h, ",")
	return v
}
