package clinic

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/wardhealth/ward/internal/api"
)

// ProblemBase prefixes every problem type: type = ProblemBase + slug.
const ProblemBase = "https://wardhealth.org/problems/"

// Problem is an RFC 9457 problem detail. Detail and the field errors name
// fields and rules, never values.
type Problem struct {
	Type   string       `json:"type" doc:"stable URI of the error kind (https://wardhealth.org/problems/...)"`
	Title  string       `json:"title" doc:"short summary of the error kind"`
	Status int          `json:"status" doc:"HTTP status"`
	Detail string       `json:"detail,omitempty" doc:"what went wrong, naming fields and rules, never values"`
	Field  string       `json:"field,omitempty" doc:"the first field at fault (JSON name of the facade, or a FHIR path)"`
	Errors []FieldError `json:"errors,omitempty" doc:"every field at fault"`
	// Instance names the request (its id), for support.
	Instance string `json:"instance,omitempty" doc:"urn:ward:request:<request id>"`
}

// FieldError is one field at fault.
type FieldError struct {
	Field  string `json:"field" doc:"the field (JSON name, dotted for nested fields)"`
	Detail string `json:"detail" doc:"the rule it breaks"`
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }

// problemTypes are the problem types, by slug: the title and status of
// each. Tests check that every type the API can answer is listed here and
// in the OpenAPI document.
var problemTypes = map[string]struct {
	title  string
	status int
}{
	"invalid-field":          {"A field is invalid", 400},
	"invalid-json":           {"Malformed JSON", 400},
	"invalid-query":          {"A query parameter is invalid", 400},
	"invalid-cursor":         {"Not a cursor this server issued", 400},
	"invalid-resource":       {"The FHIR resource is invalid", 400},
	"unauthorized":           {"Authentication required", 401},
	"forbidden":              {"Access denied", 403},
	"not-found":              {"Not found", 404},
	"method-not-allowed":     {"Method not allowed", 405},
	"not-acceptable":         {"Not acceptable", 406},
	"conflict":               {"Conflict", 409},
	"gone":                   {"Gone", 410},
	"precondition-failed":    {"Precondition failed", 412},
	"payload-too-large":      {"Payload too large", 413},
	"unsupported-media-type": {"Unsupported media type", 415},
	"list-too-large":         {"Too many candidates to sort", 422},
	"unprocessable":          {"Unprocessable", 422},
	"throttled":              {"Too many requests", 429},
	"internal":               {"Internal error", 500},
	"unavailable":            {"Service unavailable", 503},
}

// typeOfStatus is the problem type of an error classified by the api's
// table, by status.
var typeOfStatus = map[int]string{
	400: "invalid-resource", 401: "unauthorized", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
	406: "not-acceptable", 409: "conflict", 410: "gone", 412: "precondition-failed", 413: "payload-too-large",
	415: "unsupported-media-type", 422: "unprocessable", 429: "throttled", 500: "internal", 503: "unavailable",
}

func newProblem(slug, detail string, fields ...FieldError) *Problem {
	pt, ok := problemTypes[slug]
	if !ok {
		panic("clinic: unknown problem type " + slug)
	}
	p := &Problem{Type: slug, Title: pt.title, Status: pt.status, Detail: detail, Errors: fields}
	if len(fields) > 0 {
		p.Field = fields[0].Field
	}
	return p
}

func invalidField(field, detail string) *Problem {
	return newProblem("invalid-field", field+": "+detail, FieldError{Field: field, Detail: detail})
}

func tooLarge(limit int64) *Problem {
	return newProblem("payload-too-large", fmt.Sprintf("the request body is larger than the limit of %d bytes (WARD_MAX_BODY_BYTES)", limit))
}

// writeProblem answers err as problem+json. An error of the facade itself
// (*Problem) is written as it is; any other is classified by the api's one
// table, and its FHIR issues become field errors, their FHIR paths mapped
// to the facade's field names by fields.
func writeProblem(w http.ResponseWriter, r *http.Request, e api.Edge, fields map[string]string, err error) {
	var p *Problem
	if !errors.As(err, &p) {
		status, issues := e.Classify(w, r, err)
		slug, ok := typeOfStatus[status]
		if !ok {
			slug = "internal"
			if status < 500 {
				slug = "invalid-resource"
			}
		}
		p = &Problem{Type: slug, Title: problemTypes[slug].title, Status: status}
		var details []string
		for _, is := range issues {
			details = append(details, is.Diagnostics)
			if is.Expression != "" {
				p.Errors = append(p.Errors, FieldError{Field: facadeField(fields, is.Expression), Detail: is.Diagnostics})
			}
		}
		p.Detail = strings.Join(details, "; ")
		if len(p.Errors) > 0 {
			p.Field = p.Errors[0].Field
			if status == 400 {
				p.Type, p.Title = "invalid-field", problemTypes["invalid-field"].title
			}
		}
	}
	out := *p
	if !strings.HasPrefix(out.Type, ProblemBase) {
		out.Type = ProblemBase + out.Type
	}
	if out.Title == "" {
		out.Title = problemTypes[p.Type].title
	}
	if id := e.RequestID(r.Context()); id != "" {
		out.Instance = "urn:ward:request:" + id
	}
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(out)
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(out.Status)
	w.Write(b.Bytes())
}

// facadeField maps a FHIR expression to the facade's field name when the
// route's table knows it (longest matching prefix), else keeps the FHIR
// path: either names an element, never a value.
func facadeField(fields map[string]string, expr string) string {
	best, name := "", ""
	for path, f := range fields {
		if strings.HasPrefix(expr, path) && len(path) > len(best) {
			best, name = path, f
		}
	}
	if name != "" {
		return name
	}
	return expr
}

// decodeInto decodes body into v strictly (unknown fields refused, one
// value) and checks v's tags. Messages name the field, never its value.
func decodeInto(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return invalidField(te.Field, "must be "+jsonKind(te.Type.Kind().String()))
		case errors.As(err, &se):
			return newProblem("invalid-json", fmt.Sprintf("the body is not well-formed JSON (at byte %d)", se.Offset))
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			if len(f) > 64 || !printableName(f) {
				f = "(unnamed)"
			}
			return invalidField(f, "unknown field")
		}
		return newProblem("invalid-json", "the body is not one JSON object of the documented shape")
	}
	if dec.More() {
		return newProblem("invalid-json", "the body holds more than one JSON value")
	}
	if errs := check(v); len(errs) > 0 {
		return newProblem("invalid-field", errs[0].Field+": "+errs[0].Detail, errs...)
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice":
		return "an array"
	case "struct", "ptr", "map":
		return "an object"
	}
	return "a number"
}

func printableName(s string) bool {
	for _, c := range s {
		if !(c == '_' || c == '.' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
