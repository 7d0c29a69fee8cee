package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// maxMergeIdentifiers bounds the identifiers of one side of a merge.
const maxMergeIdentifiers = 20

// handleMerge is POST Patient/$merge (FHIR R5 Patient-merge; see
// docs/merge.md): the body is a Parameters resource, the answer a
// Parameters resource with the input, an outcome, the merged target and
// Ward's plan (what moved, or with preview=true what would).
func (s *Server) handleMerge(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	in, err := s.readBody(r, "Parameters")
	if err != nil {
		return err
	}
	req, err := parseMergeParameters(in.Doc)
	if err != nil {
		return err
	}
	out, err := repo.Merge(r.Context(), req)
	if err != nil {
		return err
	}
	body, err := mergeOutput(in.Doc, out)
	if err != nil {
		return err
	}
	writeFHIR(w, body)
	return nil
}

// parseMergeParameters reads $merge's input parameters: source-patient,
// source-patient-identifier, target-patient, target-patient-identifier,
// result-patient and preview. Anything else, a repeated 0..1 parameter or
// a value of the wrong type is refused; messages name parameters, never
// values (identifiers are PHI).
func parseMergeParameters(doc map[string]any) (records.MergeRequest, error) {
	var req records.MergeRequest
	bad := func(msg string) error {
		return problem.At(problem.ErrInvalid, "invalid", "Parameters.parameter", "$merge: "+msg)
	}
	if doc["resourceType"] != "Parameters" {
		return req, bad("the body must be a Parameters resource")
	}
	list, _ := doc["parameter"].([]any)
	seen := map[string]bool{}
	for _, x := range list {
		p, ok := x.(map[string]any)
		if !ok {
			return req, bad("a parameter is not an object")
		}
		name, _ := p["name"].(string)
		if _, nested := p["part"]; nested {
			return req, bad("parameters of $merge have no parts")
		}
		switch name {
		case "source-patient", "target-patient", "result-patient", "preview":
			if seen[name] {
				return req, bad(name + " is given more than once")
			}
		case "source-patient-identifier", "target-patient-identifier":
		default:
			return req, bad("an unknown parameter (known: source-patient, source-patient-identifier, target-patient, target-patient-identifier, result-patient, preview)")
		}
		seen[name] = true
		side := &req.Source
		if strings.HasPrefix(name, "target-") {
			side = &req.Target
		}
		switch name {
		case "source-patient", "target-patient":
			rf, ok := p["valueReference"].(map[string]any)
			if !ok {
				return req, bad(name + " must be a valueReference")
			}
			if s, has := rf["reference"]; has {
				str, _ := s.(string)
				id, ok := patientRefID(str)
				if !ok {
					return req, bad(name + " must reference a Patient (Patient/id)")
				}
				side.ID = id
			}
			if idf, has := rf["identifier"]; has {
				i, err := mergeIdentifier(idf)
				if err != nil {
					return req, bad(name + ".identifier: " + err.Error())
				}
				side.Identifiers = append(side.Identifiers, i)
			}
			if side.ID == "" && len(side.Identifiers) == 0 {
				return req, bad(name + " needs a reference or an identifier")
			}
		case "source-patient-identifier", "target-patient-identifier":
			i, err := mergeIdentifier(p["valueIdentifier"])
			if err != nil {
				return req, bad(name + ": " + err.Error())
			}
			side.Identifiers = append(side.Identifiers, i)
		case "result-patient":
			res, ok := p["resource"].(map[string]any)
			if !ok || res["resourceType"] != "Patient" {
				return req, bad("result-patient must hold a Patient resource")
			}
			req.Result = res
		case "preview":
			b, ok := p["valueBoolean"].(bool)
			if !ok {
				return req, bad("preview must be a valueBoolean")
			}
			req.Preview = b
		}
		if len(side.Identifiers) > maxMergeIdentifiers {
			return req, problem.At(problem.ErrInvalid, "too-costly", "Parameters.parameter",
				fmt.Sprintf("$merge: more than %d identifiers for one patient", maxMergeIdentifiers))
		}
	}
	if req.Source.ID == "" && len(req.Source.Identifiers) == 0 {
		return req, bad("source-patient or source-patient-identifier is required")
	}
	if req.Target.ID == "" && len(req.Target.Identifiers) == 0 {
		return req, bad("target-patient or target-patient-identifier is required")
	}
	return req, nil
}

// patientRefID reads a Patient reference: Patient/id, an absolute URL
// ending in Patient/id, either with /_history/n.
func patientRefID(ref string) (string, bool) {
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	if strings.ContainsAny(ref, "?#") {
		return "", false
	}
	parts := strings.Split(ref, "/")
	n := len(parts)
	if n < 2 || parts[n-2] != "Patient" || !fhir.IsID(parts[n-1]) {
		return "", false
	}
	if n > 2 && !strings.HasPrefix(ref, "http://") && !strings.HasPrefix(ref, "https://") {
		return "", false
	}
	return parts[n-1], true
}

// mergeIdentifier reads an Identifier: a value, and a system or none.
func mergeIdentifier(v any) (records.Identifier, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return records.Identifier{}, fmt.Errorf("must be an Identifier")
	}
	val, _ := m["value"].(string)
	sys, _ := m["system"].(string)
	if strings.TrimSpace(val) == "" {
		return records.Identifier{}, fmt.Errorf("an identifier needs a value")
	}
	if _, has := m["system"]; has && sys == "" {
		return records.Identifier{}, fmt.Errorf("an identifier's system must be a string")
	}
	return records.Identifier{System: sys, Value: val}, nil
}

// mergeOutput is $merge's output Parameters: input (as given), outcome,
// result (the target as merged, or as it would be) and Ward's plan.
func mergeOutput(input map[string]any, out *records.MergeResult) ([]byte, error) {
	verb, would := "Merged", ""
	if out.Preview {
		verb, would = "Preview: merging", "would "
	}
	msg := fmt.Sprintf("%s Patient/%s into Patient/%s: %d resources %smove to the target; %d %sstay with the source (they govern access)",
		verb, out.Source, out.Target, len(out.Moved), would, len(out.Kept), would)
	outcome := fhir.OperationOutcome(fhir.Issue{Severity: "information", Code: "informational", Diagnostics: msg})
	params := []any{
		map[string]any{"name": "input", "resource": input},
		map[string]any{"name": "outcome", "resource": json.RawMessage(outcome)},
	}
	if out.Result != nil {
		params = append(params, map[string]any{"name": "result", "resource": json.RawMessage(out.Result.JSON)})
	}
	params = append(params, map[string]any{"name": "plan", "part": planParts(out)})
	return json.Marshal(map[string]any{"resourceType": "Parameters", "parameter": params})
}

// planParts are the plan parameter's parts: counts, counts per type, and
// every resource that moves or stays, by reference (ids only).
func planParts(out *records.MergeResult) []any {
	parts := []any{
		map[string]any{"name": "preview", "valueBoolean": out.Preview},
		map[string]any{"name": "moved", "valueInteger": len(out.Moved)},
		map[string]any{"name": "kept", "valueInteger": len(out.Kept)},
	}
	counts := map[string]int{}
	for _, m := range out.Moved {
		typ, _, _ := strings.Cut(m, "/")
		counts[typ]++
	}
	var types []string
	for t := range counts {
		types = append(types, t)
	}
	slices.Sort(types)
	for _, t := range types {
		parts = append(parts, map[string]any{"name": "moved-type", "part": []any{
			map[string]any{"name": "type", "valueCode": t},
			map[string]any{"name": "count", "valueInteger": counts[t]},
		}})
	}
	refs := func(name string, list []string) {
		for _, r := range list {
			parts = append(parts, map[string]any{"name": name, "valueReference": map[string]any{"reference": r}})
		}
	}
	refs("moved-resource", out.Moved)
	refs("kept-resource", out.Kept)
	return parts
}
