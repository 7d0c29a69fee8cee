package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// handleBundle is POST [base]: a batch or transaction Bundle.
//
// Writes (POST, PUT, DELETE) go to records, a transaction's in one unit of
// work. Reads (GET entries: read, vread, search, history, metadata,
// operations) run after the writes as the interactions their URLs name,
// through the same routes, access decisions and audit as a request of
// their own, and answer with their resource by default (FHIR R4
// http.html 3.1.0.11). In a batch, an entry that cannot be parsed or
// processed fails alone, with its own OperationOutcome; in a transaction
// it fails the whole Bundle.
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
	results := make([]fhir.BundleEntry, len(rawEntries))
	entries := make([]records.Entry, 0, len(rawEntries))
	var at []int // Bundle position of each of entries
	var reads []readEntry
	for i, raw := range rawEntries {
		var err error
		if g, ok := parseReadEntry(i, raw, &err); ok && err == nil {
			reads = append(reads, g)
			continue
		} else if !ok {
			var e records.Entry
			if e, err = records.ParseEntryLimited(i, raw, s.opts.Limits.PatchOps); err == nil {
				entries = append(entries, e)
				at = append(at, i)
				continue
			}
		}
		if kind == "transaction" {
			return err
		}
		results[i] = s.failedEntry(r, err)
	}
	withResource := preferReturn(r) == "representation" && r.Header.Get("Prefer") != ""
	if kind == "transaction" {
		done, err := repo.Transaction(r.Context(), entries)
		if err != nil {
			return err
		}
		for k, res := range done {
			results[at[k]] = responseEntry(res, withResource)
		}
	} else {
		for k, res := range repo.Batch(r.Context(), entries) {
			if res.Err != nil {
				results[at[k]] = s.failedEntry(r, res.Err)
				continue
			}
			results[at[k]] = responseEntry(res, withResource)
		}
	}
	for _, g := range reads {
		results[g.index] = s.dispatchRead(r, g)
	}
	return writeBundle(w, &fhir.Bundle{Type: kind + "-response", Timestamp: time.Now().UTC(), Entries: results})
}

// failedEntry is the response entry of a batch entry that failed: its
// status and OperationOutcome, from the one error table.
func (s *Server) failedEntry(r *http.Request, err error) fhir.BundleEntry {
	status, issues := s.classify(r, err)
	return fhir.BundleEntry{Response: &fhir.BundleResponse{
		Status:  fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Outcome: fhir.OperationOutcome(issues...),
	}}
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

// readEntry is a GET entry of a batch or transaction.
type readEntry struct {
	index int
	// url is request.url relative to the base: Type/id, Type?query,
	// metadata, Type/id/_history, ...
	url string
	// ifNoneMatch and ifModifiedSince are the entry's conditional-read
	// headers (request.ifNoneMatch, request.ifModifiedSince).
	ifNoneMatch, ifModifiedSince string
}

// parseReadEntry reads entry i if it is a GET entry (ok); *err is set if
// the entry is a GET entry that is malformed. Errors name the entry and
// the element, never a value.
func parseReadEntry(i int, raw any, err *error) (readEntry, bool) {
	m, _ := raw.(map[string]any)
	req, _ := m["request"].(map[string]any)
	if method, _ := req["method"].(string); method != http.MethodGet {
		return readEntry{}, false
	}
	at := func(path, msg string) {
		*err = problem.At(problem.ErrInvalid, "invalid", fmt.Sprintf("Bundle.entry[%d].request.%s", i, path), msg)
	}
	g := readEntry{index: i}
	g.url, _ = req["url"].(string)
	switch {
	case g.url == "":
		at("url", "request.url is required")
	case strings.Contains(g.url, "://") || strings.HasPrefix(g.url, "//") || strings.ContainsAny(g.url, "#\\") || strings.Contains(g.url, ".."):
		at("url", "a GET entry's request.url must be relative to the base: Type/id, Type?search, metadata, ...")
	}
	for _, name := range []string{"ifMatch", "ifNoneExist"} {
		if _, has := req[name]; has {
			at(name, name+" does not apply to a GET entry")
		}
	}
	for name, dst := range map[string]*string{"ifNoneMatch": &g.ifNoneMatch, "ifModifiedSince": &g.ifModifiedSince} {
		if x, has := req[name]; has {
			v, ok := x.(string)
			if !ok || v == "" || strings.ContainsAny(v, "\r\n") {
				at(name, name+" must be a non-empty string")
				continue
			}
			*dst = v
		}
	}
	if g.ifModifiedSince != "" {
		if _, perr := time.Parse(time.RFC3339, g.ifModifiedSince); perr != nil {
			at("ifModifiedSince", "ifModifiedSince must be a FHIR instant such as 2024-01-02T03:04:05Z")
		}
	}
	return g, true
}

// dispatchRead runs a GET entry as the interaction its URL names, on the
// routes after the edge, with the caller's credentials and access headers,
// and returns its response as a Bundle entry: the resource (or Bundle)
// it answered with, its status, ETag, Last-Modified and Location, or the
// OperationOutcome of a failure.
func (s *Server) dispatchRead(r *http.Request, g readEntry) fhir.BundleEntry {
	target := "/fhir/" + strings.TrimPrefix(g.url, "/")
	if strings.HasPrefix(g.url, "?") {
		target = "/fhir" + g.url // a system-level search
	}
	sub, err := http.NewRequestWithContext(r.Context(), http.MethodGet, target, nil)
	if err != nil {
		return s.failedEntry(r, problem.At(problem.ErrInvalid, "invalid", fmt.Sprintf("Bundle.entry[%d].request.url", g.index), "request.url is not a valid URL"))
	}
	sub.Header = r.Header.Clone()
	for _, h := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Accept-Encoding", "If-Match", "If-None-Match", "If-Modified-Since", "If-None-Exist"} {
		sub.Header.Del(h)
	}
	sub.Header.Set("Accept", "application/fhir+json")
	if g.ifNoneMatch != "" {
		sub.Header.Set("If-None-Match", g.ifNoneMatch)
	}
	if g.ifModifiedSince != "" {
		t, _ := time.Parse(time.RFC3339, g.ifModifiedSince)
		sub.Header.Set("If-Modified-Since", t.UTC().Format(http.TimeFormat))
	}
	sub.Host, sub.RemoteAddr, sub.TLS = r.Host, r.RemoteAddr, r.TLS
	rec := &entryRecorder{header: http.Header{}}
	s.mux.ServeHTTP(rec, sub)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	e := fhir.BundleEntry{Response: &fhir.BundleResponse{Status: fmt.Sprintf("%d %s", rec.status, http.StatusText(rec.status))}}
	e.Response.Etag = rec.header.Get("ETag")
	e.Response.Location = rec.header.Get("Content-Location")
	if t, err := http.ParseTime(rec.header.Get("Last-Modified")); err == nil {
		e.Response.LastModified = t
	}
	body := bytes.TrimSpace(rec.body.Bytes())
	if rec.status == http.StatusNotModified || len(body) == 0 || body[0] != '{' || !json.Valid(body) {
		return e
	}
	if rec.status >= 400 {
		e.Response.Outcome = body
	} else {
		e.Resource = body
	}
	return e
}

// entryRecorder keeps the response of a dispatched GET entry in memory
// (bounded like any response: by the page size limits of the routes).
type entryRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *entryRecorder) Header() http.Header { return w.header }

func (w *entryRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *entryRecorder) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
