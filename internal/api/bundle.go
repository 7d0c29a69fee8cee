package api

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// handleBundle is POST [base]: a batch or transaction Bundle.
func (s *Server) handleBundle(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	b, err := readBody(r, "Bundle")
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
		e, err := parseEntry(i, raw)
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

// parseEntry reads one Bundle.entry into a records.Entry.
func parseEntry(i int, raw any) (records.Entry, error) {
	at := func(path, msg string) error {
		return problem.At(problem.ErrInvalid, "invalid", fmt.Sprintf("Bundle.entry[%d].%s", i, path), msg)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return records.Entry{}, at("", "an entry must be an object")
	}
	e := records.Entry{Index: i}
	e.FullURL, _ = m["fullUrl"].(string)
	req, ok := m["request"].(map[string]any)
	if !ok {
		return e, at("request", "every entry of a batch or transaction needs request.method and request.url")
	}
	e.Method, _ = req["method"].(string)
	url, _ := req["url"].(string)
	if url == "" {
		return e, at("request.url", "request.url is required")
	}
	for _, cond := range []string{"ifNoneExist", "ifNoneMatch", "ifModifiedSince"} {
		if _, has := req[cond]; has {
			return e, at("request."+cond, "conditional interactions need search, which this server does not support yet")
		}
	}
	if h, has := req["ifMatch"].(string); has {
		v, err := parseETag(h)
		if err != nil {
			return e, at("request.ifMatch", `ifMatch must be a version ETag such as W/"3"`)
		}
		e.IfMatch = &v
	}
	if strings.ContainsAny(url, "?#") || strings.Contains(url, "://") {
		return e, at("request.url", "request.url must be Type or Type/id relative to the base; conditional and absolute URLs are not supported yet")
	}
	parts := strings.Split(strings.Trim(url, "/"), "/")
	e.Type = parts[0]
	if !fhir.IsResourceType(e.Type) {
		return e, at("request.url", "request.url does not name an R4 resource type")
	}
	switch {
	case e.Method == http.MethodPost && len(parts) == 1:
	case (e.Method == http.MethodPut || e.Method == http.MethodDelete || e.Method == http.MethodGet) && len(parts) == 2:
		e.ID = parts[1]
		if !fhir.IsID(e.ID) {
			return e, at("request.url", "the id in request.url is not a valid FHIR id")
		}
	default:
		return e, at("request", "request.method must be POST with url Type, or PUT, DELETE or GET with url Type/id")
	}
	if e.Method == http.MethodPost || e.Method == http.MethodPut {
		doc, ok := m["resource"].(map[string]any)
		if !ok {
			return e, at("resource", "POST and PUT entries need a resource")
		}
		rt, _ := doc["resourceType"].(string)
		if rt != e.Type {
			return e, at("resource.resourceType", "the resource type does not match request.url")
		}
		res := &fhir.Resource{Type: rt, Doc: doc}
		if id, _ := doc["id"].(string); e.Method == http.MethodPut {
			if id != e.ID {
				return e, at("resource.id", "a PUT entry's resource id must equal the id in request.url")
			}
		}
		e.Resource = res
	}
	return e, nil
}
