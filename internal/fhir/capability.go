package fhir

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// CapabilityOptions describes what the server supports; CapabilityStatement
// turns it into the R4 document served at /metadata.
type CapabilityOptions struct {
	Software string // software.name, implementation.description
	Version  string // software.version
	BaseURL  string // implementation.url
	Time     time.Time

	// Interactions are the type- and instance-level codes supported for
	// every resource type: read, vread, update, patch, delete,
	// history-instance, history-type, create, search-type.
	Interactions []string
	// SystemInteractions: transaction, batch, search-system, history-system.
	SystemInteractions []string
	// SearchParams are supported on every resource type (e.g. _id,
	// _lastUpdated); ResourceSearchParams adds per-type ones after them.
	SearchParams         []SearchParamCap
	ResourceSearchParams map[string][]SearchParamCap

	// Formats are the supported mime types or short forms; default
	// ["application/fhir+json", "json"].
	Formats []string

	// SecurityService is a restful-security-service code: OAuth,
	// SMART-on-FHIR, NTLM, Basic, Kerberos or Certificates. Empty omits
	// rest.security.service.
	SecurityService string
	// TokenURL, when set, is advertised with the SMART oauth-uris extension.
	TokenURL string
	// ReferencePolicy is every resource's referencePolicy (literal,
	// logical, resolves, enforced, local); empty omits it.
	ReferencePolicy []string
}

// SearchParamCap is one CapabilityStatement.rest.resource.searchParam.
type SearchParamCap struct {
	Name string
	Type string // number, date, string, token, reference, composite, quantity, uri, special
	Doc  string // documentation (markdown), optional
}

var (
	typeInteractions   = []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"}
	systemInteractions = []string{"transaction", "batch", "search-system", "history-system"}
	searchParamTypes   = []string{"number", "date", "string", "token", "reference", "composite", "quantity", "uri", "special"}
	securityServices   = []string{"OAuth", "SMART-on-FHIR", "NTLM", "Basic", "Kerberos", "Certificates"}
)

// ErrCapabilityOptions is returned (wrapped) for options that would not make
// a valid CapabilityStatement.
var ErrCapabilityOptions = errors.New("fhir: invalid capability options")

func optErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCapabilityOptions}, args...)...)
}

// CapabilityStatement generates the server's R4 CapabilityStatement: one
// rest[0].resource entry per type in ResourceTypes(), each with the same
// interactions, versioning "versioned", readHistory and updateCreate true,
// conditional create and update, conditional delete of multiple matches,
// the search parameters, and on Patient the $everything and $merge operations. The result validates against the schema's CapabilityStatement
// definition (tested).
func CapabilityStatement(o CapabilityOptions) ([]byte, error) {
	if o.Software == "" {
		return nil, optErr("Software is empty")
	}
	if o.BaseURL == "" {
		return nil, optErr("BaseURL is empty")
	}
	if o.Time.IsZero() {
		return nil, optErr("Time is zero")
	}
	for _, c := range o.Interactions {
		if !slices.Contains(typeInteractions, c) {
			return nil, optErr("unknown interaction %q", c)
		}
	}
	for _, c := range o.SystemInteractions {
		if !slices.Contains(systemInteractions, c) {
			return nil, optErr("unknown system interaction %q", c)
		}
	}
	if o.SecurityService != "" && !slices.Contains(securityServices, o.SecurityService) {
		return nil, optErr("unknown security service %q", o.SecurityService)
	}
	common, err := searchParams(o.SearchParams)
	if err != nil {
		return nil, err
	}
	for t := range o.ResourceSearchParams {
		if !IsResourceType(t) {
			return nil, optErr("search parameters for unknown resource type %q", t)
		}
	}

	interactions := make([]any, len(o.Interactions))
	for i, c := range o.Interactions {
		interactions[i] = map[string]any{"code": c}
	}
	types := ResourceTypes()
	resources := make([]any, 0, len(types))
	for _, t := range types {
		r := map[string]any{
			"type":              t,
			"versioning":        "versioned",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": true,
			"conditionalUpdate": true,
			"conditionalDelete": "multiple",
		}
		if len(o.ReferencePolicy) > 0 {
			r["referencePolicy"] = o.ReferencePolicy
		}
		if t == "Patient" {
			r["operation"] = []any{
				map[string]any{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"},
				// The R5 operation, on R4 resources (docs/merge.md).
				map[string]any{"name": "merge", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-merge"},
				// Ward's own crypto-shredding erasure (docs/keys.md).
				map[string]any{"name": "erase", "definition": "urn:ward:OperationDefinition/Patient-erase"},
			}
		}
		if len(interactions) > 0 {
			r["interaction"] = interactions
		}
		sp := common
		if extra := o.ResourceSearchParams[t]; len(extra) > 0 {
			more, err := searchParams(extra)
			if err != nil {
				return nil, err
			}
			sp = append(slices.Clip(common), more...)
		}
		if len(sp) > 0 {
			r["searchParam"] = sp
		}
		resources = append(resources, r)
	}

	rest := map[string]any{"mode": "server", "resource": resources}
	if len(o.SystemInteractions) > 0 {
		si := make([]any, len(o.SystemInteractions))
		for i, c := range o.SystemInteractions {
			si[i] = map[string]any{"code": c}
		}
		rest["interaction"] = si
	}
	if sec := security(o); sec != nil {
		rest["security"] = sec
	}

	formats := o.Formats
	if len(formats) == 0 {
		formats = []string{"application/fhir+json", "json"}
	}
	software := map[string]any{"name": o.Software}
	if o.Version != "" {
		software["version"] = o.Version
	}
	doc := map[string]any{
		"resourceType":   "CapabilityStatement",
		"status":         "active",
		"date":           o.Time.UTC().Format(time.RFC3339),
		"kind":           "instance",
		"software":       software,
		"implementation": map[string]any{"description": o.Software, "url": o.BaseURL},
		"fhirVersion":    "4.0.1",
		"format":         stringsToAny(formats),
		"rest":           []any{rest},
	}
	return Marshal(doc)
}

func searchParams(ps []SearchParamCap) ([]any, error) {
	out := make([]any, 0, len(ps))
	for _, p := range ps {
		if p.Name == "" {
			return nil, optErr("search parameter without a name")
		}
		if !slices.Contains(searchParamTypes, p.Type) {
			return nil, optErr("search parameter %q: unknown type %q", p.Name, p.Type)
		}
		m := map[string]any{"name": p.Name, "type": p.Type}
		if p.Doc != "" {
			m["documentation"] = p.Doc
		}
		out = append(out, m)
	}
	return out, nil
}

func security(o CapabilityOptions) map[string]any {
	if o.SecurityService == "" && o.TokenURL == "" {
		return nil
	}
	sec := map[string]any{}
	if o.SecurityService != "" {
		sec["service"] = []any{map[string]any{
			"coding": []any{map[string]any{
				"system":  "http://terminology.hl7.org/CodeSystem/restful-security-service",
				"code":    o.SecurityService,
				"display": o.SecurityService,
			}},
			"text": o.SecurityService,
		}}
	}
	if o.TokenURL != "" {
		sec["extension"] = []any{map[string]any{
			"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": []any{map[string]any{
				"url":      "token",
				"valueUri": o.TokenURL,
			}},
		}}
	}
	return sec
}

func stringsToAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
