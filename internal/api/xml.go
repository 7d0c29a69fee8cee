package api

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhirxml"
	"github.com/wardhealth/ward/internal/problem"
)

// FHIR XML is a format at the edge only: a request body in XML is
// converted to JSON before the interaction sees it, and a FHIR JSON answer
// is converted to XML after the interaction wrote it. Everything between
// (validation, records, audit) is the JSON path, unchanged, so XML is
// validated by the same rules and answered by the same code.

const contentFHIRXML = "application/fhir+xml; charset=utf-8"

// isFHIRPath reports the paths whose answers follow FHIR negotiation.
func isFHIRPath(p string) bool { return p == "/fhir" || strings.HasPrefix(p, "/fhir/") }

// xmlAnswer buffers a FHIR JSON answer and writes it as XML; any other
// answer (NDJSON, plain JSON of the OAuth documents, no body) passes
// through untouched.
type xmlAnswer struct {
	http.ResponseWriter
	s       *Server
	r       *http.Request
	status  int
	wrote   bool
	convert bool
	buf     bytes.Buffer
}

func (x *xmlAnswer) WriteHeader(code int) {
	if x.wrote {
		return
	}
	x.wrote, x.status = true, code
	mt, _, _ := mime.ParseMediaType(x.Header().Get("Content-Type"))
	if mt == "application/fhir+json" {
		x.convert = true
		return
	}
	x.ResponseWriter.WriteHeader(code)
}

func (x *xmlAnswer) Write(b []byte) (int, error) {
	if !x.wrote {
		x.WriteHeader(http.StatusOK)
	}
	if x.convert {
		return x.buf.Write(b)
	}
	return x.ResponseWriter.Write(b)
}

// finish converts and writes a buffered answer.
func (x *xmlAnswer) finish() {
	if !x.convert {
		return
	}
	h := x.Header()
	h.Del("Content-Length")
	if x.buf.Len() == 0 {
		x.ResponseWriter.WriteHeader(x.status)
		return
	}
	out, err := fhirxml.FromJSON(x.buf.Bytes())
	if err != nil {
		// Ward's own JSON that XML cannot carry (a narrative that is
		// not well-formed XHTML, a control character): the answer
		// cannot be given in XML; say so, in XML.
		x.s.log.LogAttrs(x.r.Context(), slog.LevelWarn, "xml conversion", slog.String("request_id", requestID(x.r.Context())), slog.String("error", err.Error()))
		x.status = http.StatusNotAcceptable
		out, err = fhirxml.FromJSON(fhir.OperationOutcome(fhir.Issue{Severity: "error", Code: "not-supported",
			Diagnostics: "the answer cannot be represented in FHIR XML (" + err.Error() + "); ask for application/fhir+json"}))
		if err != nil {
			x.ResponseWriter.WriteHeader(http.StatusInternalServerError)
			return
		}
		h.Del("ETag")
		h.Del("Last-Modified")
		h.Del("Location")
	}
	h.Set("Content-Type", contentFHIRXML)
	h.Set("Content-Length", strconv.Itoa(len(out)))
	x.ResponseWriter.WriteHeader(x.status)
	x.ResponseWriter.Write(out)
}

// serveFormat runs next, answering in XML when the request asks for it.
func (s *Server) serveFormat(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if !isFHIRPath(r.URL.Path) {
		next.ServeHTTP(w, r)
		return
	}
	w.Header().Add("Vary", "Accept")
	if isXML, err := wantsXML(r); err != nil || !isXML {
		next.ServeHTTP(w, r)
		return
	}
	x := &xmlAnswer{ResponseWriter: w, s: s, r: r}
	next.ServeHTTP(x, r)
	x.finish()
}

// isXMLBody reports a request body sent as FHIR XML.
func isXMLBody(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && xmlTypes[mt]
}

// xmlBody replaces an XML body by its JSON, within the parse limits: a
// body refused here gets the same classes of answer as bad JSON (400 with
// the path and reason, 413 naming the limit).
func (s *Server) xmlBody(r *http.Request) error {
	body, err := readRaw(r)
	if err != nil {
		return err
	}
	j, err := fhirxml.ToJSON(body, s.opts.Limits.Parse)
	if err != nil {
		var xe *fhirxml.Error
		if !errors.As(err, &xe) {
			return problem.New(problem.ErrInvalid, "structure", "the XML body could not be read")
		}
		if xe.Code == "too-costly" {
			return problem.New(problem.ErrTooLarge, "too-costly", xe.Msg)
		}
		return problem.At(problem.ErrInvalid, xe.Code, xe.Path, "XML: "+xe.Msg)
	}
	r.Body = io.NopCloser(bytes.NewReader(j))
	r.ContentLength = int64(len(j))
	r.Header.Set("Content-Type", "application/fhir+json")
	return nil
}
