package api

import (
	"fmt"
	"net/http"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// handleConditionalUpdate is PUT [type]?search.
func (s *Server) handleConditionalUpdate(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	if r.URL.RawQuery == "" {
		return problem.New(problem.ErrInvalid, "invalid", "PUT needs an id in the URL ([type]/[id]) or a condition ([type]?search)")
	}
	match, err := ifMatch(r)
	if err != nil {
		return err
	}
	res, err := s.readBody(r, r.PathValue("type"))
	if err != nil {
		return err
	}
	out, created, err := repo.ConditionalUpdate(r.Context(), res, r.URL.RawQuery, match)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.writeResource(w, r, status, out, true)
	return nil
}

// handleConditionalDelete is DELETE [type]?search: every match is deleted
// in one transaction, up to the configured cap.
func (s *Server) handleConditionalDelete(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	if r.URL.RawQuery == "" {
		return problem.New(problem.ErrInvalid, "invalid", "DELETE needs an id in the URL ([type]/[id]) or a condition ([type]?search)")
	}
	n, err := repo.ConditionalDelete(r.Context(), r.PathValue("type"), r.URL.RawQuery)
	if err != nil {
		return err
	}
	if preferReturn(r) == "minimal" || n == 0 {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeOutcome(w, http.StatusOK, fhir.Issue{Severity: "information", Code: "informational",
		Diagnostics: fmt.Sprintf("%d %s resources deleted", n, r.PathValue("type"))})
	return nil
}
