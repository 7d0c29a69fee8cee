package api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/shape"
	"github.com/wardhealth/ward/internal/problem"
)

// referencePolicy is what Ward does with references: literal ones,
// local ones, and with WARD_REFERENTIAL_INTEGRITY=on enforced.
func referencePolicy(enforced bool) []string {
	if enforced {
		return []string{"literal", "local", "enforced"}
	}
	return []string{"literal", "local"}
}

// handleMetadata is GET [base]/metadata: the CapabilityStatement, shaped
// by _summary and _elements like any resource (http.html 3.1.0.13 and
// search.html 3.1.1.5.8/9), with an ETag of its content so that a client
// may revalidate it (If-None-Match, 304).
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	if err := negotiate(r); err != nil {
		s.writeError(w, r, err)
		return
	}
	base := strings.TrimSuffix(s.base(r), "/fhir")
	out, err := fhir.CapabilityStatement(fhir.CapabilityOptions{
		Software: "Ward", Version: s.opts.Version, BaseURL: base + "/fhir", Time: s.started,
		Interactions: interactions, SystemInteractions: systemInteractions, ResourceSearchParams: s.capParams,
		Formats: []string{"application/fhir+json", "json", "application/fhir+xml", "xml"}, SecurityService: "OAuth", TokenURL: base + "/oauth2/token",
		ReferencePolicy: referencePolicy(s.opts.ReferentialIntegrity),
	})
	if err == nil {
		out, err = shapeMetadata(out, r.URL.Query())
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sum := sha256.Sum256(out)
	tag := `W/"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
	h := w.Header()
	h.Set("ETag", tag)
	h.Set("Last-Modified", s.started.Format(http.TimeFormat))
	h.Set("Cache-Control", "no-cache")
	if etagListed(r.Header.Get("If-None-Match"), tag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", contentFHIR)
	w.Write(out)
}

// shapeMetadata applies _summary and _elements to the CapabilityStatement
// (at most one of them, as for a read).
func shapeMetadata(out []byte, q map[string][]string) ([]byte, error) {
	summary, elements := q["_summary"], q["_elements"]
	if len(summary) == 0 && len(elements) == 0 {
		return out, nil
	}
	if len(summary) > 1 || len(elements) > 1 || len(summary) == 1 && len(elements) == 1 {
		return nil, problem.New(problem.ErrInvalid, "invalid", "metadata takes one _summary or one _elements, not both or repeated")
	}
	var doc map[string]any
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, err
	}
	var err error
	if len(summary) == 1 {
		if summary[0] == "count" {
			return nil, problem.New(problem.ErrInvalid, "invalid", "_summary=count applies to searches, not to metadata")
		}
		doc, err = shape.Summary(doc, summary[0])
		if errors.Is(err, shape.ErrUnknownMode) {
			return nil, problem.New(problem.ErrInvalid, "invalid", "_summary must be true, text, data or false")
		}
	} else {
		var names []string
		for _, n := range strings.Split(elements[0], ",") {
			if n = strings.TrimSpace(n); n == "" {
				continue
			}
			if !shape.ValidElement("CapabilityStatement", n) {
				return nil, problem.New(problem.ErrInvalid, "invalid", "_elements names an element CapabilityStatement does not have")
			}
			names = append(names, n)
		}
		doc, err = shape.Elements(doc, names)
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// etagListed reports whether an If-None-Match header names tag (or is *).
func etagListed(header, tag string) bool {
	for _, t := range strings.Split(header, ",") {
		if t = strings.TrimSpace(t); t == "*" || t == tag || "W/"+t == tag {
			return true
		}
	}
	return false
}
