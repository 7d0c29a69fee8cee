package shape

import (
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/jsonpatch"
)

// Errors returned by Summary and Elements; test with errors.Is.
var (
	ErrUnknownMode = errors.New("shape: unknown _summary mode")
	ErrUnknownType = errors.New("shape: unknown resource type")
	// ErrMalformed reports a meta or meta.tag of the wrong JSON type: the
	// SUBSETTED tag cannot be added without discarding it.
	ErrMalformed = errors.New("shape: malformed meta")
)

// Tag system and code marking a resource that is not complete (R4
// search.html#summary); a client must not write it back as if it were.
const (
	SubsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	SubsettedCode   = "SUBSETTED"
)

// Summary returns resource shaped for _summary=mode ("true", "text", "data",
// "false" or ""); see the package documentation for the rules. For "false"
// and "" it returns resource itself. resource is a decoded R4 resource
// (encoding/json, with or without UseNumber).
func Summary(resource map[string]any, mode string) (map[string]any, error) {
	t := loadTable()
	p, err := t.resourcePart(resource)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	switch mode {
	case "", "false":
		return resource, nil
	case "true":
		out = t.filter(p, resource, true)
	case "text":
		out = topLevel(p, resource, func(f field, key string) bool {
			return f.el.name == "text" || f.el.min > 0
		})
	case "data":
		out = make(map[string]any, len(resource))
		for k, v := range resource {
			if k != "text" {
				out[k] = jsonpatch.DeepCopy(v)
			}
		}
	default:
		if fhir.IsElementName(mode) {
			return nil, fmt.Errorf("%w %q", ErrUnknownMode, mode)
		}
		return nil, ErrUnknownMode
	}
	if err := addSubsetted(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Elements returns a copy of resource holding resourceType, id, meta, the
// mandatory top-level elements and the named ones, tagged SUBSETTED.
func Elements(resource map[string]any, names []string) (map[string]any, error) {
	t := loadTable()
	p, err := t.resourcePart(resource)
	if err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := topLevel(p, resource, func(f field, key string) bool {
		return f.el.min > 0 || want[f.el.name] || want[key]
	})
	if err := addSubsetted(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (t *table) resourcePart(resource map[string]any) (*part, error) {
	rt, _ := resource["resourceType"].(string)
	p := t.resources[rt]
	if p == nil {
		if fhir.IsElementName(rt) {
			return nil, fmt.Errorf("%w %q", ErrUnknownType, rt)
		}
		return nil, ErrUnknownType
	}
	return p, nil
}

// topLevel deep-copies resourceType, id, meta and the top-level properties
// keep accepts. keep gets the property name without a leading "_", so a
// primitive's extension follows its value.
func topLevel(p *part, resource map[string]any, keep func(f field, key string) bool) map[string]any {
	out := make(map[string]any)
	for k, v := range resource {
		if alwaysKept(k) {
			out[k] = jsonpatch.DeepCopy(v)
			continue
		}
		f, ext, ok := p.lookup(k)
		if !ok {
			continue
		}
		key := k
		if ext {
			key = k[1:]
		}
		if keep(f, key) {
			out[k] = jsonpatch.DeepCopy(v)
		}
	}
	return out
}

func alwaysKept(key string) bool {
	switch key {
	case "resourceType", "id", "_id", "meta":
		return true
	}
	return false
}

// filter copies the summary and mandatory children of a resource or
// backbone element.
func (t *table) filter(p *part, obj map[string]any, top bool) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		if top && alwaysKept(k) {
			if k == "meta" {
				out[k] = t.walk("Meta", v, false)
			} else {
				out[k] = jsonpatch.DeepCopy(v)
			}
			continue
		}
		f, ext, ok := p.lookup(k)
		if !ok || !(f.el.summary || f.el.min > 0) {
			continue
		}
		if ext {
			out[k] = t.walk("Element", v, false)
			continue
		}
		out[k] = t.walk(f.typ, v, true)
	}
	return out
}

// walk copies a value of type typ. In a summary (filtering), backbone parts
// of resources are filtered again; data types are kept whole except
// Attachment.data, which is why they are walked rather than copied.
func (t *table) walk(typ string, v any, filtering bool) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = t.walk(typ, x, filtering)
		}
		return out
	case map[string]any:
		p := t.parts[typ]
		if p == nil {
			// A nested resource (type Resource) or a malformed value.
			return jsonpatch.DeepCopy(v)
		}
		if filtering && !p.datatype {
			return t.filter(p, v, false)
		}
		return t.keepData(p, v)
	default:
		return v
	}
}

func (t *table) keepData(p *part, obj map[string]any) map[string]any {
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		if p.name == "Attachment" && (k == "data" || k == "_data") {
			continue
		}
		f, ext, ok := p.lookup(k)
		switch {
		case !ok:
			out[k] = jsonpatch.DeepCopy(v)
		case ext:
			out[k] = t.walk("Element", v, false)
		default:
			out[k] = t.walk(f.typ, v, false)
		}
	}
	return out
}

// addSubsetted adds the SUBSETTED tag to out's meta, which must already be
// a copy owned by out.
func addSubsetted(out map[string]any) error {
	var meta map[string]any
	switch m := out["meta"].(type) {
	case nil:
		meta = map[string]any{}
		out["meta"] = meta
	case map[string]any:
		meta = m
	default:
		return ErrMalformed
	}
	var tags []any
	switch tg := meta["tag"].(type) {
	case nil:
	case []any:
		tags = tg
	default:
		return ErrMalformed
	}
	for _, tag := range tags {
		if c, ok := tag.(map[string]any); ok && c["system"] == SubsettedSystem && c["code"] == SubsettedCode {
			return nil
		}
	}
	meta["tag"] = append(tags, map[string]any{"system": SubsettedSystem, "code": SubsettedCode})
	return nil
}
