package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/records"
)

// Mounter adds routes outside the FHIR API (the clinic JSON API) to the
// server's mux, behind the same edge (request id, headers, body limit,
// CORS). Its handlers authenticate and map errors through Edge, so they
// refuse exactly what the FHIR API refuses and classify errors by the one
// table in errors.go.
type Mounter interface {
	Mount(mux *http.ServeMux, e Edge)
}

// Edge is what a mounted API shares with the FHIR API.
type Edge struct{ s *Server }

// Subject authenticates the request as the FHIR API does (bearer token,
// per-subject rate limit) and applies the purpose-of-use and break-glass
// headers.
func (e Edge) Subject(r *http.Request) (authz.Subject, error) {
	subj, err := e.s.authenticate(r)
	if err != nil {
		return subj, err
	}
	return accessHeaders(r, subj)
}

// Repo is the caller-bound repository of an authenticated request.
func (e Edge) Repo(r *http.Request, subj authz.Subject) *records.Repo {
	return e.s.records.For(subj, requestID(r.Context()))
}

// Classify maps err to a status and the issues the client may see, by the
// table of errors.go (5xx detail goes to the log, never to the client).
// A 401 also sets WWW-Authenticate and a throttled request Retry-After.
func (e Edge) Classify(w http.ResponseWriter, r *http.Request, err error) (int, []fhir.Issue) {
	status, issues := e.s.classify(r, err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ward"`)
	}
	var te *throttledError
	if errors.As(err, &te) {
		w.Header().Set("Retry-After", retryAfter(te.retry))
	}
	return status, issues
}

// WriteOutcome answers with an OperationOutcome (for FHIR paths).
func (e Edge) WriteOutcome(w http.ResponseWriter, r *http.Request, err error) {
	e.s.writeError(w, r, err)
}

// RequestID is the request's id.
func (e Edge) RequestID(ctx context.Context) string { return requestID(ctx) }

// Limits are the server's request limits.
func (e Edge) Limits() Limits { return e.s.opts.Limits }

// MaxBodyBytes is the request body limit.
func (e Edge) MaxBodyBytes() int64 { return e.s.opts.MaxBodyBytes }

// Health reports whether the server can serve (database and ledger).
func (e Edge) Health(ctx context.Context) error { return e.s.health(ctx) }
