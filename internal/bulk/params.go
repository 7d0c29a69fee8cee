package bulk

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// Request is a parsed Bulk Data kick-off request.
type Request struct {
	Kind    string // records.ExportSystem, ExportPatient or ExportGroup
	GroupID string
	Types   []string  // nil: every type the kind allows
	Since   time.Time // zero: no lower bound
	// Deidentify is the de-identification method (_deidentify: DeidSafeHarbor
	// or DeidSafeHarborShift; "" : none) and Project the research project
	// whose key makes the pseudonyms (_deidentifyProject).
	Deidentify, Project string
	// Ignored names unknown parameters that were left out (lenient
	// handling).
	Ignored []string
}

// OutputFormats are the _outputFormat values meaning NDJSON (the spec's
// three spellings).
var OutputFormats = map[string]bool{
	"application/fhir+ndjson": true,
	"application/ndjson":      true,
	"ndjson":                  true,
}

// maxTypes bounds the _type list (there are 146 R4 types).
const maxTypes = 200

// known are the kick-off parameters Ward implements. _format is
// negotiated by the HTTP layer.
var known = map[string]bool{"_outputFormat": true, "_type": true, "_since": true, "_format": true,
	ParamDeidentify: true, ParamProject: true}

// Ward's kick-off parameters for a de-identified export (not in the Bulk
// Data specification; see docs/deidentification.md).
const (
	ParamDeidentify = "_deidentify"
	ParamProject    = "_deidentifyProject"
)

// De-identification methods of _deidentify, as the ledger names them.
const (
	DeidSafeHarbor      = "safe-harbor"
	DeidSafeHarborShift = "safe-harbor+date-shift"
)

// projectName is a research project's name: it keys the pseudonyms and is
// written in the ledger, so it is a short slug, never free text.
var projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// ParseKickoff reads the query of a kick-off request of kind (groupID for a
// Group export). Errors are *problem.Error (400) naming the parameter (when
// the specification defines it) and the rule, never echoing the input. With
// strict (Prefer: handling=strict) an unknown or unsupported parameter
// (_typeFilter, _elements, patient, includeAssociatedData, ...) is an
// error; otherwise it is ignored and named in Request.Ignored.
func ParseKickoff(kind, groupID string, q url.Values, strict bool) (Request, error) {
	req := Request{Kind: kind, GroupID: groupID}
	if kind == records.ExportGroup && !fhir.IsID(groupID) {
		return req, invalid("", "the Group id in the URL is not a valid FHIR id")
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := q[k]
		if !known[k] {
			if strict {
				return req, invalid("", "unknown or unsupported kick-off parameter "+ParamName(k)+" (Prefer: handling=strict)")
			}
			req.Ignored = append(req.Ignored, k)
			continue
		}
		if len(vs) > 1 && k != "_type" {
			return req, invalid(k, k+" may be given once")
		}
	}
	if f := q.Get("_outputFormat"); f != "" && !OutputFormats[strings.ReplaceAll(f, " ", "+")] {
		return req, invalid("_outputFormat", "only NDJSON is produced: application/fhir+ndjson, application/ndjson or ndjson")
	}
	seen := map[string]bool{}
	for _, v := range q["_type"] {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				return req, invalid("_type", "_type lists resource types separated by commas, without empty items")
			}
			if !fhir.IsResourceType(t) {
				return req, invalid("_type", "a listed type is not an R4 resource type")
			}
			if !seen[t] {
				seen[t] = true
				req.Types = append(req.Types, t)
			}
			if len(req.Types) > maxTypes {
				return req, invalid("_type", "too many types")
			}
		}
	}
	if err := req.parseDeidentify(q); err != nil {
		return req, err
	}
	if s := q.Get("_since"); s != "" {
		t, err := parseInstant(s)
		if err != nil {
			return req, invalid("_since", "_since must be a FHIR instant with a time zone, such as 2024-01-31T12:00:00Z")
		}
		req.Since = t
	} else if _, has := q["_since"]; has {
		return req, invalid("_since", "_since is empty")
	}
	return req, nil
}

// parseDeidentify reads _deidentify and _deidentifyProject: both or
// neither.
func (req *Request) parseDeidentify(q url.Values) error {
	_, hasM := q[ParamDeidentify]
	_, hasP := q[ParamProject]
	if !hasM && !hasP {
		return nil
	}
	// A '+' arrives as a space when the client did not escape it.
	m := strings.ReplaceAll(q.Get(ParamDeidentify), " ", "+")
	if m != DeidSafeHarbor && m != DeidSafeHarborShift {
		return invalid(ParamDeidentify, ParamDeidentify+" must be "+DeidSafeHarbor+" or "+DeidSafeHarborShift)
	}
	p := q.Get(ParamProject)
	if !projectName.MatchString(p) {
		return invalid(ParamProject, ParamProject+" is required with "+ParamDeidentify+": 1-64 of a-z, 0-9 and -, starting with a letter or digit")
	}
	req.Deidentify, req.Project = m, p
	return nil
}

// parseInstant reads a FHIR instant (xs:dateTime with seconds and a zone).
func parseInstant(s string) (time.Time, error) {
	// A '+' in a query string arrives as a space when the client did not
	// escape it.
	s = strings.ReplaceAll(s, " ", "+")
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("year out of range")
	}
	return t.UTC(), nil
}

// Query rebuilds the kick-off request (relative to the FHIR base) from
// what was understood, for the manifest's request field.
func (req Request) Query() string {
	var path string
	switch req.Kind {
	case records.ExportPatient:
		path = "Patient/$export"
	case records.ExportGroup:
		path = "Group/" + req.GroupID + "/$export"
	default:
		path = "$export"
	}
	v := url.Values{}
	if len(req.Types) > 0 {
		v.Set("_type", strings.Join(req.Types, ","))
	}
	if !req.Since.IsZero() {
		v.Set("_since", req.Since.Format(time.RFC3339Nano))
	}
	if req.Deidentify != "" {
		v.Set(ParamDeidentify, req.Deidentify)
		v.Set(ParamProject, req.Project)
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

func invalid(param, msg string) error {
	if param == "" {
		return problem.New(problem.ErrInvalid, "invalid", msg)
	}
	return problem.At(problem.ErrInvalid, "invalid", param, msg)
}

// specParams are the kick-off parameters the Bulk Data specification
// defines, and Ward's own (Ward honours those in known).
var specParams = map[string]bool{"_outputFormat": true, "_type": true, "_since": true, "_until": true, "_format": true,
	"_typeFilter": true, "_elements": true, "patient": true, "includeAssociatedData": true, "organizeOutputBy": true, "allowPartialManifests": true, ParamDeidentify: true, ParamProject: true}

// ParamName is how a message names a kick-off parameter: by its name when
// the specification (or Ward) defines it, never a name the client made up.
func ParamName(k string) string {
	if specParams[k] {
		return k
	}
	return "(a name the Bulk Data specification does not define)"
}
