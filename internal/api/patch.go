package api

import (
	"bytes"
	"errors"
	"mime"
	"net/http"

	"github.com/wardhealth/ward/internal/fhir/fhirpatch"
	"github.com/wardhealth/ward/internal/fhir/jsonpatch"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// handlePatch is PATCH [type]/[id] with a JSON Patch (RFC 6902) document
// or a FHIRPath Patch Parameters resource.
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	match, err := ifMatch(r)
	if err != nil {
		return err
	}
	p, err := s.readPatch(r)
	if err != nil {
		return err
	}
	out, err := repo.PatchDocument(r.Context(), r.PathValue("type"), id, p, match)
	if err != nil {
		return err
	}
	s.writeResource(w, r, http.StatusOK, out, false)
	return nil
}

// handleConditionalPatch is PATCH [type]?search (http.html 3.1.0.7.1):
// the one resource the condition matches is patched; no match is 404,
// several are 412.
func (s *Server) handleConditionalPatch(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	if r.URL.RawQuery == "" {
		return problem.New(problem.ErrInvalid, "invalid", "PATCH needs an id in the URL ([type]/[id]) or a condition ([type]?search)")
	}
	match, err := ifMatch(r)
	if err != nil {
		return err
	}
	p, err := s.readPatch(r)
	if err != nil {
		return err
	}
	out, err := repo.ConditionalPatch(r.Context(), r.PathValue("type"), r.URL.RawQuery, p, match)
	if err != nil {
		return err
	}
	s.writeResource(w, r, http.StatusOK, out, true)
	return nil
}

// readPatch reads a PATCH body by its Content-Type: JSON Patch
// (application/json-patch+json) or FHIRPath Patch (application/fhir+json),
// with at most the configured number of operations.
func (s *Server) readPatch(r *http.Request) (records.PatchDoc, error) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json-patch+json" && mt != "application/fhir+json" && mt != "application/json" {
		return records.PatchDoc{}, problem.New(problem.ErrUnsupportedMedia, "not-supported", "PATCH takes a JSON Patch document (Content-Type: application/json-patch+json) or a FHIRPath Patch Parameters resource (Content-Type: application/fhir+json)")
	}
	body, err := readRaw(r)
	if err != nil {
		return records.PatchDoc{}, err
	}
	if mt == "application/json-patch+json" {
		ops, err := jsonpatch.ParseLimited(body, s.opts.Limits.PatchOps)
		if err != nil {
			if errors.Is(err, jsonpatch.ErrTooCostly) {
				return records.PatchDoc{}, problem.New(problem.ErrTooLarge, "too-costly", err.Error())
			}
			return records.PatchDoc{}, problem.New(problem.ErrInvalid, "structure", err.Error())
		}
		return records.JSONPatchDoc(ops), nil
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
		return records.PatchDoc{}, problem.New(problem.ErrInvalid, "structure", "a JSON Patch document needs Content-Type: application/json-patch+json; application/fhir+json takes a FHIRPath Patch Parameters resource")
	}
	doc, err := s.parseBody(body)
	if err != nil {
		return records.PatchDoc{}, err
	}
	ops, err := fhirpatch.ParseLimited(doc.Doc, s.opts.Limits.PatchOps)
	if err != nil {
		if errors.Is(err, fhirpatch.ErrTooCostly) {
			return records.PatchDoc{}, problem.New(problem.ErrTooLarge, "too-costly", err.Error())
		}
		return records.PatchDoc{}, problem.New(problem.ErrInvalid, "invalid", err.Error())
	}
	return records.FHIRPathPatchDoc(ops), nil
}
