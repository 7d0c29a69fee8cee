package api

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/shape"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/query"
)

// paramName is how an OperationOutcome names a parameter the client sent:
// by its name when FHIR defines it, never a name the client made up (it may
// carry what the client typed).
func paramName(k string) string { return query.DisplayName(k) }

func pathID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if !fhir.IsID(id) {
		return "", problem.New(problem.ErrInvalid, "invalid", "the id in the URL is not a valid FHIR id ([A-Za-z0-9-.], 1 to 64 characters)")
	}
	return id, nil
}

// base is the FHIR base URL as the client should see it: the configured
// one, else the request's, as a trusted proxy forwarded it (forwarded.go).
func (s *Server) base(r *http.Request) string {
	if b, ok := r.Context().Value(baseKey{}).(string); ok {
		return b // an asynchronous request: the kick-off's base
	}
	if s.opts.BaseURL != "" {
		return s.opts.BaseURL + "/fhir"
	}
	scheme, host, prefix := "http", r.Host, ""
	if r.TLS != nil {
		scheme = "https"
	}
	if o, ok := s.forwarded(r); ok {
		if o.proto != "" {
			scheme = o.proto
		}
		if o.host != "" {
			host = o.host
		}
		prefix = o.prefix
	}
	return scheme + "://" + host + prefix + "/fhir"
}

// readBody reads and parses a FHIR resource body of the URL's type,
// within the parse limits.
func (s *Server) readBody(r *http.Request, wantType string) (*fhir.Resource, error) {
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	body, err := readRaw(r)
	if err != nil {
		return nil, err
	}
	res, err := s.parseBody(body)
	if err != nil {
		return nil, err
	}
	if res.Type != wantType {
		return nil, problem.At(problem.ErrInvalid, "invalid", "resourceType",
			fmt.Sprintf("the body is a %s but the URL is for %s", res.Type, wantType))
	}
	return res, nil
}

// parseBody parses a resource from a client within the parse limits: a
// body over one is 413 with the ParseError's message, which names the
// limit and its setting.
func (s *Server) parseBody(body []byte) (*fhir.Resource, error) {
	res, err := fhir.ParseLimited(body, s.opts.Limits.Parse)
	if err != nil {
		var pe *fhir.ParseError
		if errors.As(err, &pe) && pe.Code == "too-costly" {
			return nil, problem.New(problem.ErrTooLarge, "too-costly", err.Error())
		}
		return nil, problem.New(problem.ErrInvalid, "structure", err.Error())
	}
	return res, nil
}

// readRaw reads the request body within the configured limit.
func readRaw(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, problem.New(problem.ErrTooLarge, "too-costly", fmt.Sprintf("the request body is larger than the limit of %d bytes", mbe.Limit))
		}
		return nil, problem.New(problem.ErrInvalid, "structure", "the request body could not be read")
	}
	return body, nil
}

// ifMatch reads an optional If-Match version.
func ifMatch(r *http.Request) (*int64, error) {
	h := r.Header.Get("If-Match")
	if h == "" {
		return nil, nil
	}
	v, err := parseETag(h)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// parseETag reads If-Match's W/"n" (or "n").
func parseETag(h string) (int64, error) {
	s := strings.TrimSpace(h)
	s = strings.TrimPrefix(s, "W/")
	s = strings.Trim(s, `"`)
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, problem.New(problem.ErrInvalid, "invalid", `If-Match must be a version ETag such as W/"3"`)
	}
	return v, nil
}

// writeResource writes a resource version with its headers, honouring
// Prefer: return=.
func (s *Server) writeResource(w http.ResponseWriter, r *http.Request, status int, res *records.Resource, withLocation bool) {
	h := w.Header()
	h.Set("ETag", etag(res.Version))
	h.Set("Last-Modified", res.LastUpdated.UTC().Format(http.TimeFormat))
	if withLocation {
		h.Set("Location", fmt.Sprintf("%s/%s/%s/_history/%d", s.base(r), res.Type, res.ID, res.Version))
	}
	switch preferReturn(r) {
	case "minimal":
		w.WriteHeader(status)
	case "OperationOutcome":
		writeOutcome(w, status, fhir.Issue{Severity: "information", Code: "informational",
			Diagnostics: fmt.Sprintf("%s/%s version %d", res.Type, res.ID, res.Version)})
	default:
		h.Set("Content-Type", contentFHIR)
		h.Set("Content-Length", strconv.Itoa(len(res.JSON)))
		w.WriteHeader(status)
		w.Write(res.JSON)
	}
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	if r.PathValue("type") == "Binary" && isRawBinaryWrite(r) {
		return s.handleBinaryWrite(w, r, repo, "")
	}
	res, err := s.readBody(r, r.PathValue("type"))
	if err != nil {
		return err
	}
	if cond := r.Header.Get("If-None-Exist"); cond != "" {
		out, created, err := repo.ConditionalCreate(r.Context(), res, cond)
		if err != nil {
			return err
		}
		status := http.StatusOK // one match: the existing resource, nothing written
		if created {
			status = http.StatusCreated
		}
		s.writeResource(w, r, status, out, true)
		return nil
	}
	out, err := repo.Create(r.Context(), res)
	if err != nil {
		return err
	}
	s.writeResource(w, r, http.StatusCreated, out, true)
	return nil
}

func (s *Server) handleRead(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if r.PathValue("type") == "Binary" {
		return s.handleBinaryRead(w, r, repo, id, 0)
	}
	out, err := repo.Read(r.Context(), r.PathValue("type"), id)
	if errors.Is(err, problem.ErrGone) && out != nil {
		w.Header().Set("ETag", etag(out.Version))
	}
	if err != nil {
		return err
	}
	if notModified(r, out) {
		w.Header().Set("ETag", etag(out.Version))
		w.Header().Set("Last-Modified", out.LastUpdated.UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	s.writeResource(w, r, http.StatusOK, out, false)
	return nil
}

// notModified evaluates If-None-Match (which wins when present, RFC 9110
// 13.2.2) and If-Modified-Since against the version read. The read itself
// is audited either way: the client learns the version is current.
func notModified(r *http.Request, v *records.Resource) bool {
	if h := r.Header.Get("If-None-Match"); h != "" {
		for _, tag := range strings.Split(h, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return true
			}
			if n, err := parseETag(tag); err == nil && n == v.Version {
				return true
			}
		}
		return false
	}
	if h := r.Header.Get("If-Modified-Since"); h != "" {
		t, err := http.ParseTime(h)
		return err == nil && !v.LastUpdated.Truncate(time.Second).After(t)
	}
	return false
}

func (s *Server) handleVRead(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	vid, err := strconv.ParseInt(r.PathValue("vid"), 10, 64)
	if err != nil || vid < 1 {
		return problem.New(problem.ErrInvalid, "invalid", "the version id in the URL must be a positive integer")
	}
	if r.PathValue("type") == "Binary" {
		return s.handleBinaryRead(w, r, repo, id, vid)
	}
	out, err := repo.VRead(r.Context(), r.PathValue("type"), id, vid)
	if err != nil {
		return err
	}
	s.writeResource(w, r, http.StatusOK, out, false)
	return nil
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	match, err := ifMatch(r)
	if err != nil {
		return err
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		// Create only if absent: the resource must have no version yet
		// (version 0), decided atomically with the write.
		if strings.TrimSpace(inm) != "*" || match != nil {
			return problem.New(problem.ErrInvalid, "invalid", "an update takes If-None-Match: * (create only if absent) or If-Match: W/\"n\", not both")
		}
		zero := int64(0)
		match = &zero
	}
	if r.PathValue("type") == "Binary" && isRawBinaryWrite(r) {
		return s.handleBinaryWrite(w, r, repo, id)
	}
	res, err := s.readBody(r, r.PathValue("type"))
	if err != nil {
		return err
	}
	switch {
	case res.ID == "":
		return problem.At(problem.ErrInvalid, "required", res.Type+".id", "an update must carry the resource id in the body, equal to the id in the URL")
	case res.ID != id:
		return problem.At(problem.ErrInvalid, "invalid", res.Type+".id", "the id in the body does not match the id in the URL")
	}
	out, created, err := repo.Update(r.Context(), res, match)
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

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	out, err := repo.Delete(r.Context(), r.PathValue("type"), id)
	if err != nil {
		return err
	}
	if out == nil { // never existed: nothing to delete, no version
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	w.Header().Set("ETag", etag(out.Version))
	if preferReturn(r) == "minimal" {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeOutcome(w, http.StatusOK, fhir.Issue{Severity: "information", Code: "informational",
		Diagnostics: fmt.Sprintf("%s/%s deleted (version %d)", out.Type, id, out.Version)})
	return nil
}

// searchParams are the parameters the search and history endpoints read
// (besides _format, which negotiation handles).
var (
	historyParams = map[string]bool{"_count": true, "_since": true, "_cursor": true}
)

// queryParams returns the request's parameters (URL query, plus a form body
// for POST _search), checks them against known, and returns what the self
// link may echo. Unknown parameters are ignored, or refused under
// Prefer: handling=strict.
func queryParams(r *http.Request, known map[string]bool) (url.Values, error) {
	q, err := searchValues(r)
	if err != nil {
		return nil, err
	}
	used := url.Values{}
	var unknown []string
	for k, vs := range q {
		switch {
		case known[k]:
			used[k] = vs
		case k == "_format" || k == "_pretty":
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 && preferStrict(r) {
		sort.Strings(unknown)
		var issues []fhir.Issue
		for _, k := range unknown {
			issues = append(issues, fhir.Issue{Severity: "error", Code: "not-supported", Diagnostics: "unknown or unsupported search parameter: " + paramName(k)})
		}
		return nil, &problem.Error{Class: problem.ErrInvalid, Issues: issues}
	}
	return used, nil
}

func (s *Server) count(q url.Values, def int) (int, error) {
	v := q.Get("_count")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, problem.New(problem.ErrInvalid, "invalid", "_count must be a non-negative integer")
	}
	return min(n, s.opts.MaxCount), nil
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	typ := r.PathValue("type")
	path := s.base(r)
	if typ != "" {
		path += "/" + typ
	}
	return s.search(w, r, repo, typ, path, "")
}

// search answers a search of typ ("" for all types) whose links start
// with path, within Patient/pid's compartment when pid is set.
func (s *Server) search(w http.ResponseWriter, r *http.Request, repo *records.Repo, typ, path, pid string) error {
	raw, err := searchValues(r)
	if err != nil {
		return err
	}
	q, err := query.Parse(typ, raw, query.Options{Strict: preferStrict(r), DefaultCount: 20, MaxCount: s.opts.MaxCount,
		MaxParams: s.opts.Limits.SearchParams, MaxValues: s.opts.Limits.SearchValues,
		Supported: search.Supported})
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return problem.New(problem.ErrInvalid, "invalid", qe.Error())
		}
		return err
	}
	var cur records.Cursor
	if c := raw.Get("_cursor"); c != "" {
		if cur, err = records.DecodePageCursor(c); err != nil {
			return problem.New(problem.ErrInvalid, "invalid", "_cursor: not a cursor this server issued")
		}
	}
	var page *records.Page
	if pid != "" {
		page, err = repo.SearchCompartmentAt(r.Context(), pid, q, cur)
	} else {
		page, err = repo.SearchAt(r.Context(), q, cur)
	}
	if err != nil {
		return err
	}
	base := s.base(r)
	b := &fhir.Bundle{Type: "searchset", Timestamp: time.Now().UTC()}
	if page.Total != nil {
		n := int(*page.Total)
		b.Total = &n
	}
	self := path
	if q.Self != "" {
		self += "?" + q.Self
	}
	if c := raw.Get("_cursor"); c != "" {
		self += sep(self) + "_cursor=" + url.QueryEscape(c)
	}
	b.Links = append(b.Links, fhir.BundleLink{Relation: "self", URL: self})
	first := path
	if q.Self != "" {
		first += "?" + q.Self
	}
	b.Links = append(b.Links, fhir.BundleLink{Relation: "first", URL: first})
	if err := pageLinks(b, first, page); err != nil {
		return err
	}
	add := func(res records.Resource, mode string) error {
		body := res.JSON
		if q.Summary != "" && q.Summary != "false" || len(q.Elements) > 0 {
			doc, err := fhir.Parse(body)
			if err != nil {
				return err
			}
			shaped := doc.Doc
			if len(q.Elements) > 0 {
				shaped, err = shape.Elements(shaped, q.Elements)
			} else {
				shaped, err = shape.Summary(shaped, q.Summary)
			}
			if err != nil {
				return err
			}
			if body, err = fhir.Marshal(shaped); err != nil {
				return err
			}
		}
		b.Entries = append(b.Entries, fhir.BundleEntry{
			FullURL:  base + "/" + res.Type + "/" + res.ID,
			Resource: body,
			Search:   &fhir.BundleSearch{Mode: mode},
		})
		return nil
	}
	for _, res := range page.Resources {
		if err := add(res, "match"); err != nil {
			return err
		}
	}
	for _, res := range page.Included {
		if err := add(res, "include"); err != nil {
			return err
		}
	}
	if len(q.Ignored) > 0 || len(page.Notes) > 0 {
		var issues []fhir.Issue
		for _, name := range q.Ignored {
			issues = append(issues, fhir.Issue{Severity: "warning", Code: "not-supported", Diagnostics: "search parameter ignored: " + paramName(name)})
		}
		for _, n := range page.Notes {
			issues = append(issues, fhir.Issue{Severity: "warning", Code: "too-costly", Diagnostics: n})
		}
		b.Entries = append(b.Entries, fhir.BundleEntry{Resource: fhir.OperationOutcome(issues...), Search: &fhir.BundleSearch{Mode: "outcome"}})
	}
	return writeBundle(w, b)
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

// searchValues are the parameters of a search: the URL query, plus the
// form body of POST _search.
func searchValues(r *http.Request) (url.Values, error) {
	if r.Method == http.MethodPost {
		if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			return nil, problem.New(problem.ErrUnsupportedMedia, "not-supported", "POST _search takes application/x-www-form-urlencoded")
		}
		if err := r.ParseForm(); err != nil {
			return nil, problem.New(problem.ErrInvalid, "invalid", "the search form could not be parsed")
		}
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, problem.New(problem.ErrInvalid, "invalid", "the query string could not be parsed")
	}
	for k, vs := range r.PostForm {
		q[k] = append(q[k], vs...)
	}
	return q, nil
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	q, err := queryParams(r, historyParams)
	if err != nil {
		return err
	}
	count, err := s.count(q, 50)
	if err != nil {
		return err
	}
	hq := records.HistoryQuery{Type: r.PathValue("type"), Count: count}
	if r.PathValue("id") != "" {
		if hq.ID, err = pathID(r); err != nil {
			return err
		}
	}
	if v := q.Get("_since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return problem.New(problem.ErrInvalid, "invalid", "_since must be a FHIR instant such as 2026-01-02T03:04:05Z")
		}
		hq.Since = t
	}
	if v := q.Get("_cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return problem.New(problem.ErrInvalid, "invalid", "_cursor: not a cursor this server issued")
		}
		hq.Before = n
	}
	page, err := repo.History(r.Context(), hq)
	if err != nil {
		return err
	}
	base := s.base(r)
	path := base
	if hq.Type != "" {
		path += "/" + hq.Type
	}
	if hq.ID != "" {
		path += "/" + hq.ID
	}
	path += "/_history"
	b := &fhir.Bundle{Type: "history", Timestamp: time.Now().UTC()}
	b.Links = append(b.Links, fhir.BundleLink{Relation: "self", URL: path + queryString(q)})
	first := cloneValues(q)
	first.Del("_cursor")
	b.Links = append(b.Links, fhir.BundleLink{Relation: "first", URL: path + queryString(first)})
	if page.NextBefore != 0 {
		next := cloneValues(q)
		next.Set("_cursor", strconv.FormatInt(page.NextBefore, 10))
		b.Links = append(b.Links, fhir.BundleLink{Relation: "next", URL: path + queryString(next)})
	}
	for _, res := range page.Resources {
		e := fhir.BundleEntry{
			FullURL:  base + "/" + res.Type + "/" + res.ID,
			Response: &fhir.BundleResponse{Etag: etag(res.Version), LastModified: res.LastUpdated},
		}
		switch {
		case res.Deleted:
			e.Request = &fhir.BundleRequest{Method: "DELETE", URL: res.Type + "/" + res.ID}
			e.Response.Status = "204 No Content"
		case res.Version == 1:
			e.Resource = res.JSON
			e.Request = &fhir.BundleRequest{Method: "POST", URL: res.Type}
			e.Response.Status = "201 Created"
		default:
			e.Resource = res.JSON
			e.Request = &fhir.BundleRequest{Method: "PUT", URL: res.Type + "/" + res.ID}
			e.Response.Status = "200 OK"
		}
		b.Entries = append(b.Entries, e)
	}
	withTotal(b, page)
	return writeBundle(w, b)
}

// bundleBufs are the buffers Bundles are serialised into. A search page is
// tens of kilobytes: a fresh buffer per response was a sixth of what a
// search allocated, and the garbage collector's work grows with that.
// Write does not keep the slice it is given (io.Writer), so a buffer is
// free again once the response is written; none over maxPooledBundle is
// kept, so one huge Bundle cannot pin its memory.
var bundleBufs = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledBundle = 1 << 20

// writeFHIR answers 200 with body, a FHIR JSON resource already encoded
// (an operation's Parameters or Bundle).
func writeFHIR(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", contentFHIR)
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func writeBundle(w http.ResponseWriter, b *fhir.Bundle) error {
	buf := bundleBufs.Get().(*[]byte)
	out, err := b.AppendJSON((*buf)[:0])
	if err != nil {
		bundleBufs.Put(buf)
		return fmt.Errorf("serialise bundle: %w", err)
	}
	defer func() {
		if cap(out) <= maxPooledBundle {
			*buf = out[:0]
			bundleBufs.Put(buf)
		}
	}()
	w.Header().Set("Content-Type", contentFHIR)
	// Sized, not chunked: the page is whole before the first byte goes
	// out, and a client sees a truncated one as such.
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	setLinkHeader(w, b.Links)
	w.WriteHeader(http.StatusOK)
	w.Write(out)
	return nil
}

func queryString(q url.Values) string {
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

func cloneValues(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// interactions is what the type-level and instance-level routes support;
// the CapabilityStatement is generated from it.
var (
	interactions       = []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}
	systemInteractions = []string{"transaction", "batch", "search-system", "history-system"}
)

// capSearchParams lists, per type, the parameters the planner answers,
// with the blind-index notes unless the leaky index is on.
func capSearchParams(leaky bool) map[string][]fhir.SearchParamCap {
	out := map[string][]fhir.SearchParamCap{}
	for rt, ps := range search.Capability(search.Options{Leaky: leaky}) {
		for _, p := range ps {
			out[rt] = append(out[rt], fhir.SearchParamCap{Name: p.Name, Type: p.Type, Doc: p.Doc})
		}
	}
	return out
}
