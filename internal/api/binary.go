package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// rawMediaType returns the media type of a Content-Type or Accept entry
// that is not a FHIR format ("" for a FHIR one, a wildcard or none).
func rawMediaType(v string) string {
	mt, params, err := mime.ParseMediaType(strings.TrimSpace(v))
	if err != nil || jsonTypes[mt] || xmlTypes[mt] || mt == "*/*" || mt == "application/*" || !strings.Contains(mt, "/") {
		return ""
	}
	delete(params, "q")
	return mime.FormatMediaType(mt, params)
}

// isRawBinaryWrite: a POST or PUT of a Binary whose body is its content.
func isRawBinaryWrite(r *http.Request) bool {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		return false
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/fhir/Binary") || len(p) > len("/fhir/Binary") && p[len("/fhir/Binary")] != '/' {
		return false
	}
	return rawMediaType(r.Header.Get("Content-Type")) != ""
}

// wantsRawContent: a read of a Binary whose Accept names a non-FHIR
// media type (and no _format): the content, not the resource. No Accept
// or a wildcard keeps the FHIR resource, as before raw content.
func wantsRawContent(r *http.Request) bool {
	if r.URL.Query().Get("_format") != "" {
		return false
	}
	best, raw := -1.0, false
	for _, h := range r.Header.Values("Accept") {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil || q <= 0 || q > 1 {
					continue
				}
			}
			isRaw := rawMediaType(mt) != ""
			if q > best || q == best && !isRaw {
				best, raw = q, isRaw
			}
		}
	}
	return raw
}

// bodyLimit is the request body limit: raw Binary content has its own
// (records.Content.MaxBytes, enforced exactly by records).
func (s *Server) bodyLimit(r *http.Request) int64 {
	if s.records != nil && s.records.ContentEnabled() && isRawBinaryWrite(r) {
		return s.records.ContentLimits().MaxBytes + 1
	}
	return s.opts.MaxBodyBytes
}

// handleBinaryWrite stores a raw body as a Binary's content (POST: a new
// Binary; PUT: a new version of Binary id).
func (s *Server) handleBinaryWrite(w http.ResponseWriter, r *http.Request, repo *records.Repo, id string) error {
	up := records.Upload{ID: id, ContentType: rawMediaType(r.Header.Get("Content-Type")), Body: r.Body, Size: r.ContentLength}
	if up.Size < 0 {
		up.Size = -1
	}
	if sc := strings.TrimSpace(r.Header.Get("X-Security-Context")); sc != "" {
		up.SecurityContext = sc
	}
	if id != "" {
		m, err := ifMatch(r)
		if err != nil {
			return err
		}
		up.IfMatch = m
	}
	out, created, err := repo.PutBinary(r.Context(), up)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problem.New(problem.ErrTooLarge, "too-costly", fmt.Sprintf("the request body is larger than the limit of %d bytes", mbe.Limit-1))
		}
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.writeResource(w, r, status, out, true)
	return nil
}

// handleBinaryRead answers a read (version 0) or vread of a Binary: the
// resource for a FHIR Accept, else the content with its type, length,
// strong ETag and single-range support.
func (s *Server) handleBinaryRead(w http.ResponseWriter, r *http.Request, repo *records.Repo, id string, version int64) error {
	if !wantsRawContent(r) {
		if err := negotiate(r); err != nil {
			return err
		}
		out, err := repo.ReadBinary(r.Context(), id, version, nil)
		if errors.Is(err, problem.ErrGone) && out != nil {
			w.Header().Set("ETag", etag(out.Version))
		}
		if err != nil {
			return err
		}
		s.writeResource(w, r, http.StatusOK, &out.Resource, false)
		return nil
	}
	var partial bool
	rng := func(size int64) (int64, int64, error) {
		off, n, p, err := requestedRange(r, size)
		partial = p
		return off, n, err
	}
	out, err := repo.ReadBinary(r.Context(), id, version, rng)
	if err != nil {
		var re *rangeError
		if errors.As(err, &re) {
			w.Header().Set("Content-Range", "bytes */"+strconv.FormatInt(re.size, 10))
			writeOutcome(w, http.StatusRequestedRangeNotSatisfiable, fhir.Issue{Severity: "error", Code: "invalid", Diagnostics: "Range: not satisfiable for a content of this size"})
			return nil
		}
		return err
	}
	defer out.Body.Close()
	s.writeContent(w, r, out, partial)
	return nil
}

// writeContent streams the content; a segment that fails authentication
// aborts the response (the client sees a short body, never the bad
// segment's bytes).
func (s *Server) writeContent(w http.ResponseWriter, r *http.Request, out *records.BinaryRead, partial bool) {
	h := w.Header()
	ct := out.Meta.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(out.N, 10))
	h.Set("ETag", contentETag(out.Version))
	h.Set("Last-Modified", out.LastUpdated.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	// Uploaded content is never rendered as part of Ward's origin.
	h.Set("Content-Disposition", "attachment")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", out.Off, out.Off+out.N-1, out.Meta.Size))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	// The body is an io.WriterTo that copies through its own pooled
	// segment-sized buffer: no copy buffer here.
	if _, err := io.Copy(w, out.Body); err != nil {
		s.log.Error("binary content not sent to its end", "request_id", requestID(r.Context()), "binary", out.ID, "version", out.Version, "error_class", errorClass(err))
		panic(http.ErrAbortHandler)
	}
}

// errorClass names an error without its text (which could say anything).
func errorClass(err error) string {
	if errors.Is(err, problem.ErrUnavailable) || strings.Contains(err.Error(), "authentication") {
		return "integrity"
	}
	return "io"
}

// contentETag is the strong validator of a version's content (a version's
// content never changes).
func contentETag(v int64) string { return `"` + strconv.FormatInt(v, 10) + `"` }

// rangeError is an unsatisfiable Range (416).
type rangeError struct{ size int64 }

func (e *rangeError) Error() string { return "range not satisfiable" }

// requestedRange reads a single byte range (RFC 9110 14.2). A Range that
// does not parse, names several ranges, or fails If-Range is ignored
// (the whole content is sent), as the RFC allows.
func requestedRange(r *http.Request, size int64) (off, n int64, partial bool, err error) {
	h := r.Header.Get("Range")
	if h == "" {
		return 0, size, false, nil
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != contentETag(versionOf(r)) {
		return 0, size, false, nil
	}
	first, last, ok := parseRange(h)
	if !ok {
		return 0, size, false, nil
	}
	switch {
	case first < 0: // suffix: the last -first bytes... stored as last
		if last == 0 {
			return 0, 0, false, &rangeError{size}
		}
		n = min(last, size)
		return size - n, n, true, nil
	case first >= size:
		return 0, 0, false, &rangeError{size}
	case last < 0 || last >= size:
		return first, size - first, true, nil
	default:
		return first, last - first + 1, true, nil
	}
}

// versionOf is the version an If-Range must name: the URL's, or -1
// (unknown before the read: only a vread's If-Range can match).
func versionOf(r *http.Request) int64 {
	v, err := strconv.ParseInt(r.PathValue("vid"), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

// parseRange parses "bytes=first-last", "bytes=first-" (last -1) and
// "bytes=-suffix" (first -1, last = suffix length). ok is false for
// anything else, several ranges included.
func parseRange(h string) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 18 {
			return 0, false
		}
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
		}
		v, err := strconv.ParseInt(s, 10, 64)
		return v, err == nil
	}
	if a == "" {
		n, ok := num(b)
		return -1, n, ok
	}
	f, ok := num(a)
	if !ok {
		return 0, 0, false
	}
	if b == "" {
		return f, -1, true
	}
	l, ok := num(b)
	if !ok || l < f {
		return 0, 0, false
	}
	return f, l, true
}
