package api

import (
	"mime"
	"net/http"
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

// formatAliases are the _format values that mean JSON.
var formatAliases = map[string]bool{
	"json": true, "application/json": true, "application/fhir+json": true, "application/json+fhir": true,
}

// negotiate checks _format and Accept; Ward produces only FHIR JSON.
func negotiate(r *http.Request) error {
	if f := r.URL.Query().Get("_format"); f != "" {
		mt, _, err := mime.ParseMediaType(strings.ReplaceAll(f, " ", "+"))
		if err != nil || !formatAliases[mt] && !formatAliases[f] {
			return problem.New(problem.ErrNotAcceptable, "not-supported", "_format: this server produces only JSON (json, application/fhir+json)")
		}
		return nil
	}
	accept := r.Header.Values("Accept")
	if len(accept) == 0 {
		return nil
	}
	for _, h := range accept {
		for _, part := range strings.Split(h, ",") {
			mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
			if err != nil {
				continue
			}
			if q, ok := params["q"]; ok && (q == "0" || q == "0.0" || q == "0.00" || q == "0.000") {
				continue
			}
			if jsonTypes[mt] || mt == "*/*" || mt == "application/*" {
				return nil
			}
		}
	}
	return problem.New(problem.ErrNotAcceptable, "not-supported", "Accept: this server produces only application/fhir+json and application/json")
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
