package api

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/ratelimit"
)

// Limiter is a rate limit as the API needs it: may one more request under
// key go through, and if not, when. ratelimit's limiters are Limiters.
type Limiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// Rate limit keys hold a client address or a tenant and a user or client
// id, never anything a client typed (a username at the login form is
// read only after the limit, and is never a key).
const (
	authKeyPrefix = "ip:"
)

// limitAuth puts the per-address limit in front of an OAuth endpoint. It
// runs before the body is read, so a throttled request costs neither a
// form parse nor a password hash. oauth says the endpoint answers with
// RFC 6749 error JSON; the login form answers with an OperationOutcome,
// as it does for other bad requests.
func (s *Server) limitAuth(oauth bool, h http.HandlerFunc) http.HandlerFunc {
	if s.opts.AuthLimit == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request) {
		addr := clientAddr(r, s.opts.TrustedProxies)
		key := authKeyPrefix + addrKey(addr)
		ok, retry, err := s.opts.AuthLimit.Allow(r.Context(), key)
		switch {
		case err != nil:
			// The wired limiters always decide (Shared falls back to the
			// node's own state); a limiter that cannot must not let
			// everything through.
			s.log.LogAttrs(r.Context(), slog.LevelError, "rate limit", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
			if oauth {
				writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "try again later")
				return
			}
			s.writeError(w, r, problem.ErrUnavailable)
			return
		case !ok:
			s.recordThrottled(r, key, addr)
			if oauth {
				w.Header().Set("Retry-After", retryAfter(retry))
				writeOAuthError(w, http.StatusTooManyRequests, "temporarily_unavailable",
					"too many requests from this address; retry after "+retryAfter(retry)+" s")
				return
			}
			s.writeError(w, r, throttled(retry, "too many sign-in attempts from this address; retry after "+retryAfter(retry)+" s"))
			return
		}
		h(w, r)
	}
}

// limitSubject applies the per-subject limit to an authenticated request.
func (s *Server) limitSubject(r *http.Request, subj authz.Subject) error {
	if s.opts.APILimit == nil {
		return nil
	}
	ok, retry, err := s.opts.APILimit.Allow(r.Context(), subj.Tenant+"/"+subj.ID)
	switch {
	case err != nil:
		return problem.ErrUnavailable
	case !ok:
		return throttled(retry, "too many requests for this user or client; retry after "+retryAfter(retry)+" s")
	}
	return nil
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write([]byte(`{"error":` + strconv.Quote(code) + `,"error_description":` + strconv.Quote(desc) + `}`))
}

// throttledError is a 429 with the time to wait, which writeError puts in
// Retry-After.
type throttledError struct {
	retry time.Duration
	pe    *problem.Error
}

func (e *throttledError) Error() string { return e.pe.Error() }
func (e *throttledError) Unwrap() error { return e.pe }

func throttled(retry time.Duration, msg string) error {
	return &throttledError{retry: retry, pe: problem.New(problem.ErrThrottled, "throttled", msg)}
}

// retryAfter is a Retry-After value: whole seconds, rounded up, at least 1
// (0 would invite an immediate retry that is refused again).
func retryAfter(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// clientAddr is the address a request came from: the connection's, or,
// when the connection is from a trusted proxy, the nearest address in
// X-Forwarded-For that is not a trusted proxy. X-Forwarded-For is read from
// the right (the hop the trusted proxy added) because anything to the left
// of the first untrusted hop was written by the client and may be forged.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	addr := parseHop(r.RemoteAddr)
	if len(trusted) == 0 || !isTrusted(addr, trusted) {
		return addr
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHop(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			// Garbage from here on: the last trusted hop is as far as the
			// chain can be believed.
			return addr
		}
		if !isTrusted(a, trusted) {
			return a
		}
		addr = a
	}
	return addr
}

// parseHop reads an address with or without a port ("192.0.2.1:443",
// "[2001:db8::1]:443", "2001:db8::1"); IPv4-mapped IPv6 becomes IPv4.
func parseHop(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrKey is the limit key of an address: an IPv4 address itself, an IPv6
// address by its /64, since one host is normally given a whole /64 and
// would otherwise have 2^64 fresh limits.
func addrKey(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "unknown"
	case a.Is4():
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// throttleAudit bounds the ledger records of throttled authentication
// attempts, so that recording them cannot amplify the attack they record:
// one record per address per minute on each node, and at most 10 a second
// (burst 20) on a node over all addresses. Throttled requests beyond that
// are refused unrecorded (each node's log has a line per request, without
// the address).
type throttleAudit struct {
	perKey, all *ratelimit.Local
}

func newThrottleAudit() throttleAudit {
	perKey, _ := ratelimit.NewLocal(ratelimit.Limit{Rate: 1.0 / 60, Burst: 1}, ratelimit.LocalOptions{MaxKeys: 10_000})
	all, _ := ratelimit.NewLocal(ratelimit.Limit{Rate: 10, Burst: 20}, ratelimit.LocalOptions{MaxKeys: 1})
	return throttleAudit{perKey: perKey, all: all}
}

// recordThrottled writes a security event for a throttled authentication
// attempt, within throttleAudit's bounds. The address is named only by
// its keyed hash. A failed write is logged; the request is refused either
// way, so nothing is disclosed unrecorded.
func (s *Server) recordThrottled(r *http.Request, key string, addr netip.Addr) {
	if s.opts.Admin == nil {
		return
	}
	ctx := r.Context()
	if ok, _, _ := s.throttleAudit.perKey.Allow(ctx, key); !ok {
		return
	}
	if ok, _, _ := s.throttleAudit.all.Allow(ctx, ""); !ok {
		return
	}
	rec := &audit.Record{Time: time.Now().UTC(), RequestID: requestID(ctx), Action: "rate-limit", Outcome: audit.OutcomeMinor,
		Detail: "auth-per-address", Entities: []string{"endpoint" + r.URL.Path}}
	if s.opts.AddressTag != nil {
		rec.Entities = append(rec.Entities, "client-address/"+s.opts.AddressTag(addrKey(addr)))
	}
	// The recorder detaches the write from the client: one that hangs up
	// must not keep its attempt out of the ledger.
	if err := s.opts.Admin.Record(ctx, 5*time.Second, rec); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "rate limit audit", slog.String("request_id", requestID(ctx)), slog.String("error", err.Error()))
	}
}

// addressTag is the keyed tag of the request's client address that login
// records carry (for the new-address alert), or "" without AddressTag.
func (s *Server) addressTag(r *http.Request) string {
	if s.opts.AddressTag == nil {
		return ""
	}
	return s.opts.AddressTag(addrKey(clientAddr(r, s.opts.TrustedProxies)))
}
