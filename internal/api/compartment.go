package api

import (
	"net/http"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// handleCompartmentSearch is GET [base]/Patient/[id]/[type]?params and
// GET [base]/Patient/[id]/*?params (http.html 3.1.0.9.1): a search
// within one patient's compartment, as the official Patient
// CompartmentDefinition draws it. Ward supports the Patient compartment
// only; other compartments are 404 with a message that says so.
func (s *Server) handleCompartmentSearch(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	ctype := r.PathValue("ctype")
	if strings.HasPrefix(ctype, "$") || strings.HasPrefix(ctype, "_") {
		return problem.New(problem.ErrNotFound, "not-supported", "no such operation or interaction on a resource instance")
	}
	if r.PathValue("type") != "Patient" {
		return problem.New(problem.ErrNotFound, "not-supported", "compartment search is supported for the Patient compartment only")
	}
	pid, err := pathID(r)
	if err != nil {
		return err
	}
	typ := ctype
	switch {
	case ctype == "*":
		typ = ""
	case !fhir.IsResourceType(ctype):
		return problem.New(problem.ErrNotFound, "not-supported", "unknown resource type in the URL: not an R4 resource type")
	case ctype == "AuditEvent":
		// AuditEvents are views of the ledger (AuditEvent?patient=).
		return problem.New(problem.ErrInvalid, "not-supported", "AuditEvent is searched as AuditEvent?patient=Patient/[id], not in the compartment")
	case !compartment.InPatientCompartment(ctype):
		return problem.New(problem.ErrInvalid, "invalid", ctype+" is not a type of the Patient compartment")
	}
	return s.search(w, r, repo, typ, s.base(r)+"/Patient/"+pid+"/"+ctype, pid)
}
