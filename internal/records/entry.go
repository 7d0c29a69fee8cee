package records

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// ParseEntry reads entry i of a batch or transaction Bundle (as decoded
// by fhir.Parse). Errors name the entry and the element, never a value.
func ParseEntry(i int, raw any) (Entry, error) { return ParseEntryLimited(i, raw, 0) }

// ParseEntryLimited is ParseEntry with a PATCH entry's operations bounded
// by maxPatchOps (0: the patch packages' default); more is ErrTooLarge.
func ParseEntryLimited(i int, raw any, maxPatchOps int) (Entry, error) {
	at := func(path, msg string) error {
		return problem.At(problem.ErrInvalid, "invalid", fmt.Sprintf("Bundle.entry[%d].%s", i, path), msg)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return Entry{}, at("", "an entry must be an object")
	}
	e := Entry{Index: i}
	e.FullURL, _ = m["fullUrl"].(string)
	req, ok := m["request"].(map[string]any)
	if !ok {
		return e, at("request", "every entry of a batch or transaction needs request.method and request.url")
	}
	e.Method, _ = req["method"].(string)
	url, _ := req["url"].(string)
	if url == "" {
		return e, at("request.url", "request.url is required")
	}
	if _, has := req["ifModifiedSince"]; has {
		return e, at("request.ifModifiedSince", "ifModifiedSince is a conditional read: only for GET entries")
	}
	if x, has := req["ifNoneMatch"]; has {
		// On a PUT, ifNoneMatch "*" is create-only-if-absent, as the
		// If-None-Match: * header of an update; otherwise it is a
		// conditional read.
		s, _ := x.(string)
		_, hasMatch := req["ifMatch"]
		if e.Method != http.MethodPut || strings.TrimSpace(s) != "*" || hasMatch {
			return e, at("request.ifNoneMatch", `ifNoneMatch is a conditional read for GET entries, or "*" (create only if absent) on a PUT entry without ifMatch`)
		}
		zero := int64(0)
		e.IfMatch = &zero
	}
	if x, has := req["ifNoneExist"]; has {
		s, ok := x.(string)
		if !ok || e.Method != http.MethodPost {
			return e, at("request.ifNoneExist", "ifNoneExist is a query string, and only for POST entries")
		}
		typ := strings.Trim(strings.SplitN(url, "?", 2)[0], "/")
		// Some clients send Type?query; the query part is the condition.
		if t, raw, ok := SplitConditional(s); ok && t == typ {
			s = raw
		}
		s = strings.TrimPrefix(s, "?")
		q, err := ParseCondition(typ, s)
		if err != nil {
			return e, at("request.ifNoneExist", problemText(err))
		}
		e.ifNoneExist = q
	}
	if h, has := req["ifMatch"].(string); has {
		v, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(strings.TrimSpace(h), "W/"), `"`), 10, 64)
		if err != nil || v < 0 {
			return e, at("request.ifMatch", `ifMatch must be a version ETag such as W/"3"`)
		}
		e.IfMatch = &v
	}
	if t, raw, ok := SplitConditional(strings.TrimPrefix(url, "/")); ok {
		if e.Method != http.MethodPut && e.Method != http.MethodDelete && e.Method != http.MethodPatch {
			return e, at("request.url", "a conditional request.url (Type?search) is only supported for PUT, PATCH and DELETE entries")
		}
		q, err := ParseCondition(t, raw)
		if err != nil {
			return e, at("request.url", problemText(err))
		}
		e.Type, e.cond = t, q
		if e.Method == http.MethodPut {
			doc, ok := m["resource"].(map[string]any)
			if !ok {
				return e, at("resource", "POST and PUT entries need a resource")
			}
			if rt, _ := doc["resourceType"].(string); rt != e.Type {
				return e, at("resource.resourceType", "the resource type does not match request.url")
			}
			e.Resource = &fhir.Resource{Type: e.Type, Doc: doc}
		}
		if e.Method == http.MethodPatch {
			return e, e.parsePatch(m, maxPatchOps, at)
		}
		return e, nil
	}
	if strings.ContainsAny(url, "?#") || strings.Contains(url, "://") {
		return e, at("request.url", "request.url must be Type, Type/id or Type?search relative to the base; absolute URLs are not supported")
	}
	parts := strings.Split(strings.Trim(url, "/"), "/")
	e.Type = parts[0]
	if !fhir.IsResourceType(e.Type) {
		return e, at("request.url", "request.url does not name an R4 resource type")
	}
	switch {
	case e.Method == http.MethodPost && len(parts) == 1:
	case (e.Method == http.MethodPut || e.Method == http.MethodPatch || e.Method == http.MethodDelete || e.Method == http.MethodGet) && len(parts) == 2:
		e.ID = parts[1]
		if !fhir.IsID(e.ID) {
			return e, at("request.url", "the id in request.url is not a valid FHIR id")
		}
	default:
		return e, at("request", "request.method must be POST with url Type, or PUT, PATCH, DELETE or GET with url Type/id")
	}
	if e.Method == http.MethodPatch {
		return e, e.parsePatch(m, maxPatchOps, at)
	}
	if e.Method == http.MethodPost || e.Method == http.MethodPut {
		doc, ok := m["resource"].(map[string]any)
		if !ok {
			return e, at("resource", "POST and PUT entries need a resource")
		}
		rt, _ := doc["resourceType"].(string)
		if rt != e.Type {
			return e, at("resource.resourceType", "the resource type does not match request.url")
		}
		res := &fhir.Resource{Type: rt, Doc: doc}
		if id, _ := doc["id"].(string); e.Method == http.MethodPut {
			if id != e.ID {
				return e, at("resource.id", "a PUT entry's resource id must equal the id in request.url")
			}
		}
		e.Resource = res
	}
	return e, nil
}

// parsePatch reads a PATCH entry's patch from entry m.
func (e *Entry) parsePatch(m map[string]any, maxOps int, at func(path, msg string) error) error {
	doc, ok := m["resource"].(map[string]any)
	if !ok {
		return at("resource", "a PATCH entry needs its patch as entry.resource: a Binary (application/json-patch+json) or a Parameters resource (FHIRPath Patch)")
	}
	p, err := parsePatchEntry(e.Index, doc, maxOps)
	if err != nil {
		return err
	}
	e.patch = p
	return nil
}
