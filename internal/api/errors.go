package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// statusOf is the one table from error class to HTTP status and default
// FHIR issue code. Anything not in it is an internal error, whose detail
// stays in the log (without PHI) and never reaches the client.
var statusOf = []struct {
	class  error
	status int
	code   string
}{
	{problem.ErrInvalid, http.StatusBadRequest, "invalid"},
	{problem.ErrUnauthorized, http.StatusUnauthorized, "login"},
	{problem.ErrForbidden, http.StatusForbidden, "forbidden"},
	{problem.ErrNotFound, http.StatusNotFound, "not-found"},
	{problem.ErrNotAllowed, http.StatusMethodNotAllowed, "not-supported"},
	{problem.ErrNotAcceptable, http.StatusNotAcceptable, "not-supported"},
	{problem.ErrConflict, http.StatusConflict, "conflict"},
	{problem.ErrGone, http.StatusGone, "deleted"},
	{problem.ErrPreconditionFailed, http.StatusPreconditionFailed, "conflict"},
	{problem.ErrTooLarge, http.StatusRequestEntityTooLarge, "too-costly"},
	{problem.ErrUnsupportedMedia, http.StatusUnsupportedMediaType, "not-supported"},
	{problem.ErrUnprocessable, http.StatusUnprocessableEntity, "processing"},
	{problem.ErrThrottled, http.StatusTooManyRequests, "throttled"},
	{problem.ErrUnavailable, http.StatusServiceUnavailable, "transient"},
}

// classify maps err to a status and the issues the client may see. Detail
// of 5xx errors stays in the log (without PHI), never in the answer.
func (s *Server) classify(r *http.Request, err error) (int, []fhir.Issue) {
	status, code := http.StatusInternalServerError, "exception"
	for _, e := range statusOf {
		if errors.Is(err, e.class) {
			status, code = e.status, e.code
			break
		}
	}
	var issues []fhir.Issue
	var pe *problem.Error
	if errors.As(err, &pe) && status < 500 {
		issues = pe.Issues
	}
	if errors.Is(r.Context().Err(), context.DeadlineExceeded) && (status >= 500 || errors.Is(err, context.DeadlineExceeded)) {
		// The work was stopped by the request timeout, whatever error
		// that surfaced as.
		status, code = http.StatusServiceUnavailable, "timeout"
		issues = []fhir.Issue{{Severity: "error", Code: code, Diagnostics: fmt.Sprintf("the request was stopped after the time limit of %s (WARD_REQUEST_TIMEOUT); nothing was disclosed", s.opts.Limits.RequestTimeout)}}
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "request timeout", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
		return status, issues
	}
	switch {
	case status == http.StatusServiceUnavailable:
		// Fail closed: say only that the server cannot answer now.
		issues = []fhir.Issue{{Severity: "error", Code: code, Diagnostics: "the server cannot complete the request now; nothing was disclosed"}}
		s.log.LogAttrs(r.Context(), slog.LevelError, "unavailable", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
	case status >= 500:
		issues = []fhir.Issue{{Severity: "fatal", Code: code, Diagnostics: "internal error; see the server log for request " + requestID(r.Context())}}
		s.log.LogAttrs(r.Context(), slog.LevelError, "internal error", slog.String("request_id", requestID(r.Context())), slog.String("error", err.Error()))
	case len(issues) == 0:
		issues = []fhir.Issue{{Severity: "error", Code: code, Diagnostics: err.Error()}}
	}
	return status, issues
}

// writeError maps err to a status and an OperationOutcome.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, issues := s.classify(r, err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ward"`)
	}
	var te *throttledError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", retryAfter(te.retry))
	}
	writeOutcome(w, status, issues...)
}

func writeOutcome(w http.ResponseWriter, status int, issues ...fhir.Issue) {
	w.Header().Set("Content-Type", contentFHIR)
	w.WriteHeader(status)
	w.Write(fhir.OperationOutcome(issues...))
}
