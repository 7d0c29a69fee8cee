package api

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/fhir"
)

type ctxKey int

const requestIDKey ctxKey = 1

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// clientRequestID returns a client's X-Request-Id if it is a UUID in its
// canonical 36-character form (lower-cased), else "". Anything else could
// carry what the client typed (a name, a record number) into the ledger
// and the log, so it is dropped: not stored, logged or echoed.
func clientRequestID(s string) string {
	if len(s) != 36 {
		return ""
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return ""
	}
	return u.String()
}

func newRequestID() string { return uuid.NewString() }

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// edge is the outermost middleware: request id, security headers, path
// normalisation, body limit, panic recovery and the access log. The log line
// names the route pattern, never the URL: query strings and ids may carry
// what a client typed.
func (s *Server) edge(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := clientRequestID(r.Header.Get("X-Request-Id"))
		if id == "" {
			id = newRequestID()
		}
		r.Header.Del("X-Request-Id")
		r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
		h := w.Header()
		h.Set("X-Request-Id", id)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		if r.TLS != nil {
			// Served over TLS: browsers must never fall back to http.
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		sw := &statusWriter{ResponseWriter: w}
		if n := headerBytes(r); n > s.opts.MaxHeaderBytes {
			s.logEdge(r, id, http.StatusRequestHeaderFieldsTooLarge, start)
			writeOutcome(sw, http.StatusRequestHeaderFieldsTooLarge, fhir.Issue{Severity: "error", Code: "too-costly",
				Diagnostics: "the request headers are larger than the limit of " + strconv.Itoa(s.opts.MaxHeaderBytes) + " bytes (WARD_MAX_HEADER_BYTES)"})
			return
		}
		if s.cors(sw, r) {
			s.logEdge(r, id, sw.status, start)
			return
		}

		// Clients configured with a base URL ending in '/' send '//'; the
		// standard mux would answer those with a redirect, which breaks
		// POST and PUT.
		if strings.Contains(r.URL.Path, "//") || len(r.URL.Path) > 1 && strings.HasSuffix(r.URL.Path, "/") {
			p := r.URL.Path
			for strings.Contains(p, "//") {
				p = strings.ReplaceAll(p, "//", "/")
			}
			if len(p) > 1 {
				p = strings.TrimSuffix(p, "/")
			}
			r.URL.Path, r.URL.RawPath = p, ""
		}
		if hasDotSegment(r.URL.EscapedPath()) {
			// The standard mux would answer with a plain redirect to the
			// cleaned path; no Ward URL has such segments.
			s.logEdge(r, id, http.StatusBadRequest, start)
			writeOutcome(sw, http.StatusBadRequest, fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: "the URL path has a . or .. segment"})
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(sw, r.Body, s.bodyLimit(r))
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				// The panic value may hold request data: log its type only.
				s.log.LogAttrs(r.Context(), slog.LevelError, "panic", slog.String("request_id", id), slog.String("type", typeName(p)))
				if sw.status == 0 {
					writeOutcome(sw, http.StatusInternalServerError, fhir.Issue{Severity: "fatal", Code: "exception", Diagnostics: "internal error; see the server log for request " + id})
				}
			}
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("request_id", id),
				slog.String("method", sanitizeMethod(r.Method)),
				slog.String("route", routeOf(r)),
				slog.Int("status", sw.status),
				slog.Int("bytes", sw.bytes),
				slog.Float64("ms", float64(time.Since(start).Microseconds())/1000))
		}()
		s.serveFormat(next, sw, r)
	})
}

// headerBytes counts a request's header block as it came on the wire
// (name, ": ", value, CRLF per field; Host included).
func headerBytes(r *http.Request) int {
	n := len(r.Host) + 8
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// logEdge logs a request the edge answered itself.
func (s *Server) logEdge(r *http.Request, id string, status int, start time.Time) {
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
		slog.String("request_id", id),
		slog.String("method", sanitizeMethod(r.Method)),
		slog.String("route", "edge"),
		slog.Int("status", status),
		slog.Float64("ms", float64(time.Since(start).Microseconds())/1000))
}

func routeOf(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return "unmatched"
}

func typeName(v any) string {
	switch v.(type) {
	case error:
		return "error"
	case string:
		return "string"
	default:
		return "other"
	}
}
