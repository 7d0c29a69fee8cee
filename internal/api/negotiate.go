package api

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/problem"
)

const contentFHIR = "application/fhir+json; charset=utf-8"

// jsonTypes are the media types Ward reads and writes.
var jsonTypes = map[string]bool{
	"application/fhir+json": true,
	"application/json":      true,
	"application/json+fhir": true, // DSTU2-era clients
	"text/json":             true,
}

// xmlTypes are the media types that ask for (or send) FHIR XML.
var xmlTypes = map[string]bool{
	"application/fhir+xml": true,
	"application/xml":      true,
	"application/xml+fhir": true, // DSTU2-era clients
	"text/xml":             true,
}

// formatAliases are the _format values that mean JSON; xmlFormats those
// that mean XML.
var (
	formatAliases = map[string]bool{
		"json": true, "application/json": true, "application/fhir+json": true, "application/json+fhir": true,
	}
	xmlFormats = map[string]bool{
		"xml": true, "text/xml": true, "application/xml": true, "application/fhir+xml": true, "application/xml+fhir": true,
	}
)

// negotiate checks _format and Accept; Ward produces FHIR JSON and, by
// conversion at the edge (xml.go), FHIR XML.
func negotiate(r *http.Request) error {
	_, err := wantsXML(r)
	return err
}

// wantsXML reports whether the answer is to be FHIR XML: _format wins
// over Accept; in Accept the highest q wins, JSON on a tie or a wildcard.
func wantsXML(r *http.Request) (bool, error) {
	if f := r.URL.Query().Get("_format"); f != "" {
		mt, _, err := mime.ParseMediaType(strings.ReplaceAll(f, " ", "+"))
		switch {
		case err == nil && xmlFormats[mt] || xmlFormats[f]:
			return true, nil
		case err == nil && formatAliases[mt] || formatAliases[f]:
			return false, nil
		}
		return false, problem.New(problem.ErrNotAcceptable, "not-supported", "_format: this server produces JSON (json, application/fhir+json) and XML (xml, application/fhir+xml)")
	}
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return false, nil
	}
	best, found, isXML := -1.0, false, false
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil || q < 0 || q > 1 {
					continue
				}
			}
			if q == 0 {
				continue
			}
			x := xmlTypes[mt]
			if !x && !jsonTypes[mt] && mt != "*/*" && mt != "application/*" {
				continue
			}
			if q > best {
				best, found, isXML = q, true, x
			}
		}
	}
	if !found {
		return false, problem.New(problem.ErrNotAcceptable, "not-supported", "Accept: this server produces application/fhir+json, application/json and application/fhir+xml")
	}
	return isXML, nil
}

// checkContentType accepts a JSON body (or no Content-Type at all, as some
// clients send).
func checkContentType(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !jsonTypes[mt] {
		return problem.New(problem.ErrUnsupportedMedia, "not-supported", "Content-Type: send application/fhir+json or application/json")
	}
	return nil
}

// prefer returns the return= preference: minimal, representation (the
// default) or OperationOutcome.
func preferReturn(r *http.Request) string {
	for _, h := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(h, ";") {
			for _, kv := range strings.Split(part, ",") {
				k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
				if ok && strings.EqualFold(k, "return") {
					switch v = strings.Trim(v, `"`); v {
					case "minimal", "representation", "OperationOutcome":
						return v
					}
				}
			}
		}
	}
	return "representation"
}

// preferStrict reports Prefer: handling=strict.
func preferStrict(r *http.Request) bool {
	for _, h := range r.Header.Values("Prefer") {
		for _, part := range strings.FieldsFunc(h, func(c rune) bool { return c == ',' || c == ';' }) {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && strings.EqualFold(k, "handling") && strings.Trim(v, `"`) == "strict" {
				return true
			}
		}
	}
	return false
}
