package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
)

// CORS (the Fetch standard's cross-origin protocol) lets SMART apps that
// run in a browser page call Ward. Only origins an operator listed
// (WARD_CORS_ORIGINS, exact matches) get an Access-Control-Allow-Origin,
// always naming that origin, never "*"; credentials (cookies) are never
// allowed: apps send bearer tokens. With no origins configured Ward
// writes no CORS header at all.

const (
	corsMaxAge = "600"
	// corsAllowHeaders are the request headers an app may send: what the
	// FHIR API and the OAuth endpoints read.
	corsAllowHeaders = "Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer, X-Request-Id, X-Purpose-Of-Use, X-Break-Glass"
	// corsExposeHeaders are the response headers an app may read.
	corsExposeHeaders = "Location, Content-Location, ETag, Last-Modified, X-Request-Id, X-Progress, Retry-After, WWW-Authenticate"
)

// corsMethods returns the methods the browser may use on path, or "" when
// path takes no cross-origin requests (the login form, admin and bulk
// files are not for scripts of other origins).
func corsMethods(path string) string {
	switch {
	case path == "/fhir" || strings.HasPrefix(path, "/fhir/"):
		return "GET, POST, PUT, PATCH, DELETE"
	case path == "/oauth2/token" || path == "/oauth2/revoke" || path == "/oauth2/introspect":
		return "POST"
	case strings.HasPrefix(path, "/.well-known/"):
		return "GET"
	}
	return ""
}

// cors adds the CORS headers of an actual request and answers a preflight
// (OPTIONS with Origin and Access-Control-Request-Method) itself; it
// returns true when it answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	if len(s.opts.CORSOrigins) == 0 {
		return false
	}
	methods := corsMethods(r.URL.Path)
	if methods == "" {
		return false
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	allowed := origin != "" && slices.Contains(s.opts.CORSOrigins, origin)
	if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
		if !allowed {
			// No allow headers: the browser refuses the request. The
			// origin is not echoed.
			writeOutcome(w, http.StatusForbidden, fhir.Issue{Severity: "error", Code: "forbidden",
				Diagnostics: "cross-origin requests from this origin are not allowed (WARD_CORS_ORIGINS)"})
			return true
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	}
	return false
}
