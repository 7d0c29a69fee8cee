package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// handleBundle is POST [base]: a batch or transaction Bundle.
func (s *Server) handleBundle(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	b, err := s.readBody(r, "Bundle")
	if err != nil {
		return err
	}
	kind, _ := b.Doc["type"].(string)
	if kind != "transaction" && kind != "batch" {
		return problem.At(problem.ErrInvalid, "invalid", "Bundle.type", "POST to the base takes a Bundle of type transaction or batch")
	}
	rawEntries, _ := b.Doc["entry"].([]any)
	if _, present := b.Doc["entry"]; present && rawEntries == nil {
		return problem.At(problem.ErrInvalid, "structure", "Bundle.entry", "Bundle.entry must be an array")
	}
	entries := make([]records.Entry, 0, len(rawEntries))
	for i, raw := range rawEntries {
		e, err := records.ParseEntry(i, raw)
		if err != nil {
			return err
		}
		entries = append(entries, e)
	}
	out := &fhir.Bundle{Type: kind + "-response", Timestamp: time.Now().UTC()}
	withResource := preferReturn(r) == "representation" && r.Header.Get("Prefer") != ""
	if kind == "transaction" {
		results, err := repo.Transaction(r.Context(), entries)
		if err != nil {
			return err
		}
		for _, res := range results {
			out.Entries = append(out.Entries, responseEntry(res, withResource))
		}
		return writeBundle(w, out)
	}
	for _, res := range repo.Batch(r.Context(), entries) {
		if res.Err != nil {
			status, issues := s.classify(r, res.Err)
			out.Entries = append(out.Entries, fhir.BundleEntry{Response: &fhir.BundleResponse{
				Status:  fmt.Sprintf("%d %s", status, http.StatusText(status)),
				Outcome: fhir.OperationOutcome(issues...),
			}})
			continue
		}
		out.Entries = append(out.Entries, responseEntry(res, withResource))
	}
	return writeBundle(w, out)
}

func responseEntry(res records.EntryResult, withResource bool) fhir.BundleEntry {
	e := fhir.BundleEntry{Response: &fhir.BundleResponse{Status: fmt.Sprintf("%d %s", res.Status, http.StatusText(res.Status))}}
	if v := res.Resource; v != nil {
		e.Response.Etag = etag(v.Version)
		e.Response.LastModified = v.LastUpdated
		if res.Status == http.StatusCreated || res.Status == http.StatusOK && !v.Deleted {
			e.Response.Location = fmt.Sprintf("%s/%s/_history/%d", v.Type, v.ID, v.Version)
		}
		if withResource && v.JSON != nil {
			e.Resource = v.JSON
		}
	}
	return e
}
