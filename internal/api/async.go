package api

import (
	"bytes"
	"context"
	"net/http"
	"strings"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// The asynchronous request pattern (R4 async.html) for searches and
// $everything. A GET of one of asyncPatterns with Prefer: respond-async
// is queued (bulk.Service.KickoffAsync): 202 with Content-Location, the
// status URL of exports (/bulk/export/{job}), which answers 202 with
// X-Progress while the job runs, then 200 with a batch-response Bundle
// whose entry is the answer the request would have had synchronously;
// DELETE on it cancels. The worker runs the request through ExecuteAsync:
// the same handlers, as the requester.

// asyncPatterns are the routes a client may ask to answer asynchronously.
var asyncPatterns = map[string]bool{
	"GET /fhir":                          true,
	"GET /fhir/{type}":                   true,
	"GET /fhir/Patient/{id}/$everything": true,
	"GET /fhir/Patient/$everything":      true,
}

// asyncRun marks a request the worker runs (never queued again).
type asyncRun struct{}

// baseKey carries the base URL of the kick-off into the run, for links.
type baseKey struct{}

// wantsAsync reports a request to queue: an asynchronous route asked with
// Prefer: respond-async on a server that runs jobs.
func (s *Server) wantsAsync(r *http.Request) bool {
	return s.opts.Bulk != nil && asyncPatterns[r.Pattern] && preferAsync(r) &&
		r.PathValue("type") != "AuditEvent" && r.Context().Value(asyncRun{}) == nil
}

// handleAsyncKickoff queues the request: access to the types it names is
// decided (and audited) now, its answer is made when the worker runs it.
func (s *Server) handleAsyncKickoff(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	var types []string
	switch {
	case strings.HasSuffix(r.Pattern, "/$everything"):
		types = []string{"Patient"}
	case r.PathValue("type") != "":
		types = []string{r.PathValue("type")}
	}
	request := strings.TrimPrefix(r.URL.Path, "/fhir")
	if r.URL.RawQuery != "" {
		request += "?" + r.URL.RawQuery
	}
	job, err := s.opts.Bulk.KickoffAsync(r.Context(), repo, s.base(r), request, types)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Location", s.root(r)+"/bulk/export/"+job.ID)
	writeOutcome(w, http.StatusAccepted, fhir.Issue{Severity: "information", Code: "informational",
		Diagnostics: "request queued; poll the Content-Location URL"})
	return nil
}

// ExecuteAsync answers a queued request (a path below the FHIR base with
// its query) for subj, as the synchronous request would have been
// answered, with base as the base of its links (bulk.Executor).
func (s *Server) ExecuteAsync(ctx context.Context, subj authz.Subject, base, request string) (int, []byte, error) {
	ctx = context.WithValue(context.WithValue(ctx, asyncRun{}, true), baseKey{}, base)
	if d := s.opts.Limits.RequestTimeout; d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/fhir"+request, nil)
	if err != nil {
		return 0, nil, problem.New(problem.ErrInvalid, "invalid", "the queued request is not a URL")
	}
	r.Header.Set("Accept", "application/fhir+json")
	mux := http.NewServeMux()
	as := func(h fhirHandler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r, s.repoFor(r, subj)); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	mux.Handle("GET /fhir", as(s.handleSearch))
	mux.Handle("GET /fhir/{type}", as(s.handleSearch))
	mux.Handle("GET /fhir/Patient/{id}/$everything", as(s.handleEverything))
	mux.Handle("GET /fhir/Patient/$everything", as(s.handleEverything))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeOutcome(w, http.StatusNotFound, fhir.Issue{Severity: "error", Code: "not-found", Diagnostics: "not a request that can run asynchronously"})
	})
	var out captured
	mux.ServeHTTP(&out, r)
	if out.status == 0 {
		out.status = http.StatusOK
	}
	return out.status, out.body.Bytes(), nil
}

// captured is the answer of a request run by the worker.
type captured struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (c *captured) Header() http.Header {
	if c.h == nil {
		c.h = http.Header{}
	}
	return c.h
}

func (c *captured) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *captured) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

// writeAsyncResult answers the status URL of a completed asynchronous
// request: the batch-response Bundle, once its disclosure is recorded.
func (s *Server) writeAsyncResult(w http.ResponseWriter, r *http.Request, repo *records.Repo, id string) error {
	body, err := s.opts.Bulk.AsyncResult(r.Context(), repo, id)
	if err != nil {
		return err
	}
	writeFHIR(w, body)
	return nil
}
