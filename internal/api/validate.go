package api

import (
	"net/http"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// handleValidate is the $validate operation ([type]/$validate and
// [type]/[id]/$validate): an OperationOutcome with every issue Ward's
// validation finds, 200 whatever it finds; nothing is stored. The body is
// the resource itself or a Parameters resource with "resource" and
// "mode"; ?mode= also sets the mode.
func (s *Server) handleValidate(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	typ, id := r.PathValue("type"), r.PathValue("id")
	if id != "" && !fhir.IsID(id) {
		return problem.New(problem.ErrInvalid, "value", "the id in the URL is not a valid FHIR id")
	}
	mode := r.URL.Query().Get("mode")
	var res *fhir.Resource
	if r.ContentLength != 0 && mode != records.ValidateDelete {
		if err := checkContentType(r); err != nil {
			return err
		}
		body, err := readRaw(r)
		if err != nil {
			return err
		}
		if res, err = s.parseBody(body); err != nil {
			return err
		}
		if res.Type == "Parameters" && typ != "Parameters" {
			var m string
			if res, m, err = s.validateParameters(res); err != nil {
				return err
			}
			if m != "" {
				mode = m
			}
		}
	}
	issues, err := repo.Validate(r.Context(), typ, id, mode, res)
	if err != nil {
		return err
	}
	writeOutcome(w, http.StatusOK, issues...)
	return nil
}

// validateParameters reads $validate's Parameters: the resource and mode.
func (s *Server) validateParameters(p *fhir.Resource) (*fhir.Resource, string, error) {
	var res *fhir.Resource
	var mode string
	params, _ := p.Doc["parameter"].([]any)
	for _, x := range params {
		pm, _ := x.(map[string]any)
		switch pm["name"] {
		case "resource":
			doc, ok := pm["resource"].(map[string]any)
			if !ok {
				return nil, "", problem.At(problem.ErrInvalid, "required", "Parameters.parameter.resource", "the resource parameter holds no resource")
			}
			rt, _ := doc["resourceType"].(string)
			id, _ := doc["id"].(string)
			res = &fhir.Resource{Type: rt, ID: id, Doc: doc}
		case "mode":
			mode, _ = pm["valueCode"].(string)
		}
	}
	if res == nil && mode != records.ValidateDelete {
		return nil, "", problem.At(problem.ErrInvalid, "required", "Parameters.parameter", "a resource parameter is required")
	}
	return res, mode, nil
}
