package api

import (
	"encoding/json"
	"net/http"

	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// maxEraseReason bounds the reason of an erasure (only its hash is kept).
const maxEraseReason = 4096

// handleErase is POST Patient/{id}/$erase (docs/keys.md, Erasure): the
// body is a Parameters resource with a reason (valueString, required);
// the answer a Parameters resource with what was shredded.
func (s *Server) handleErase(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	in, err := s.readBody(r, "Parameters")
	if err != nil {
		return err
	}
	reason, err := parseEraseParameters(in.Doc)
	if err != nil {
		return err
	}
	out, err := repo.Erase(r.Context(), r.PathValue("id"), reason)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]any{
		"resourceType": "Parameters",
		"parameter": []any{
			map[string]any{"name": "patient", "valueReference": map[string]any{"reference": "Patient/" + out.Patient}},
			map[string]any{"name": "resources", "valueInteger": out.Resources},
			map[string]any{"name": "objects", "valueInteger": out.Objects},
		},
	})
	if err != nil {
		return err
	}
	writeFHIR(w, body)
	return nil
}

// parseEraseParameters reads $erase's one parameter, reason.
func parseEraseParameters(doc map[string]any) (string, error) {
	bad := func(msg string) error {
		return problem.At(problem.ErrInvalid, "invalid", "Parameters.parameter", "$erase: "+msg)
	}
	params, _ := doc["parameter"].([]any)
	reason := ""
	for _, p := range params {
		pm, ok := p.(map[string]any)
		if !ok {
			return "", bad("a parameter is not an object")
		}
		switch pm["name"] {
		case "reason":
			v, ok := pm["valueString"].(string)
			if !ok || v == "" {
				return "", bad("reason must be a non-empty valueString")
			}
			if reason != "" {
				return "", bad("reason is given twice")
			}
			reason = v
		default:
			return "", bad("unknown parameter (only reason is accepted)")
		}
	}
	if reason == "" {
		return "", problem.At(problem.ErrInvalid, "required", "Parameters.parameter", "$erase: a reason is required")
	}
	if len(reason) > maxEraseReason {
		return "", bad("the reason is too long")
	}
	return reason, nil
}
