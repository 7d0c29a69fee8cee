package deid

import (
	"regexp"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir/shape"
)

// The walk is driven by the element table generated from the official R4
// StructureDefinitions (internal/fhir/shape): every property of the input
// is looked up by its part (resource, backbone element or data type) and
// kept, changed or dropped by its type. A property the table does not
// know, and every "_name" primitive extension, is dropped. What is kept:
//
//   - booleans, numbers, codes and times (no identifier is any of these);
//   - dates, dateTimes and instants, reduced to the year or shifted;
//   - data types and backbone elements, walked by the same rules;
//   - strings and URIs only on the allow-lists below (code systems, units,
//     extension URLs): every other string, markdown, id, oid, uuid, url,
//     canonical, base64Binary and xhtml may be free text or a number, and
//     is dropped.
//
// Whole data types that exist to identify (HumanName, ContactPoint,
// Identifier), to hold free text, signatures or content (Annotation,
// Narrative, Signature, Attachment: photos, scans, documents), Meta and
// contained resources are dropped.

// transform is one resource's transformation.
type transform struct {
	d       *Deidentifier
	patient string
}

// dropTypes are the data types removed whole.
var dropTypes = map[string]bool{
	"HumanName": true, "ContactPoint": true, "Identifier": true, "Annotation": true, "Narrative": true,
	"Signature": true, "Meta": true, "Attachment": true, "base64Binary": true, "xhtml": true, "markdown": true,
	"id": true, "oid": true, "uuid": true, "url": true, "canonical": true,
}

// dropPaths are elements of kept types that still identify: a location's
// latitude and longitude are a geographic subdivision smaller than a state.
var dropPaths = map[string]bool{"Location.position": true}

// keepStrings are the string elements that are codes in all but type.
var keepStrings = map[string]bool{
	"Extension.url": true, "Coding.version": true,
	"Quantity.unit": true, "Age.unit": true, "Count.unit": true, "Distance.unit": true, "Duration.unit": true,
}

// keepURIs are the uri elements that name code systems and types, never a
// person.
var keepURIs = map[string]bool{
	"Coding.system": true, "Quantity.system": true, "Age.system": true, "Count.system": true,
	"Distance.system": true, "Duration.system": true, "Reference.type": true,
}

// ucum is the system of the units for which ages are recognised.
const ucum = "http://unitsofmeasure.org"

// yearsPerUnit converts a UCUM time unit to years, to find ages over 89
// whatever unit they are given in.
var yearsPerUnit = map[string]float64{"a": 1, "mo": 1.0 / 12, "wk": 7 / 365.25, "d": 1 / 365.25, "h": 1 / 8766.0, "min": 1 / 525960.0}

func (t *transform) resource(in map[string]any) map[string]any {
	typ, _ := in["resourceType"].(string)
	id, _ := in["id"].(string)
	out := t.object(typ, in)
	out["resourceType"] = typ
	if id != "" {
		out["id"] = t.d.Pseudonym(typ, id)
	}
	if typ == "Patient" {
		if bd, ok := in["birthDate"].(string); ok && t.over89(bd) {
			delete(out, "birthDate")
			ext, _ := out["extension"].([]any)
			out["extension"] = append(ext, map[string]any{"url": AgeGroupURL, "valueString": "90+"})
		}
	}
	return out
}

// object walks the properties of a value of part. It returns nil when
// nothing is left.
func (t *transform) object(part string, in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if k == "resourceType" || k == "id" || strings.HasPrefix(k, "_") {
			continue // the resource's id is handled by resource; element ids are dropped
		}
		if part != "" && !strings.Contains(part, ".") && shape.IsResource(part) && k == "contained" {
			continue
		}
		typ, ok := shape.ChildType(part, k)
		if !ok {
			continue
		}
		if x := t.value(part+"."+k, typ, v); x != nil {
			out[k] = x
		}
	}
	return out
}

// value transforms one value (or list of values) of the element path of
// type typ; nil drops it.
func (t *transform) value(path, typ string, v any) any {
	if l, ok := v.([]any); ok {
		var out []any
		for _, x := range l {
			if y := t.value(path, typ, x); y != nil {
				out = append(out, y)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	if dropTypes[typ] || dropPaths[path] {
		return nil
	}
	switch typ {
	case "boolean":
		return ifType[bool](v)
	case "integer", "positiveInt", "unsignedInt", "decimal":
		if _, ok := v.(string); ok {
			return nil
		}
		return numeric(v)
	case "code", "time":
		return ifType[string](v)
	case "string":
		if keepStrings[path] {
			return ifType[string](v)
		}
		return nil
	case "uri":
		if keepURIs[path] {
			return ifType[string](v)
		}
		return nil
	case "date", "dateTime", "instant":
		s, _ := v.(string)
		if g := t.date(s); g != "" {
			return g
		}
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	var out map[string]any
	switch typ {
	case "Resource":
		if rt, _ := m["resourceType"].(string); !shape.IsResource(rt) {
			return nil
		}
		return t.resource(m)
	case "Reference":
		out = t.reference(m)
	case "Address":
		out = address(m)
	case "Extension":
		out = t.object(typ, m)
		if _, ok := out["url"]; ok && len(out) == 1 {
			return nil // its value was dropped: the URL alone says nothing
		}
	default:
		out = t.object(typ, m)
		if isQuantity(typ) {
			t.capAge(typ, out)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func ifType[T any](v any) any {
	if x, ok := v.(T); ok {
		return x
	}
	return nil
}

func numeric(v any) any {
	switch v.(type) {
	case float64, int, int64, interface{ String() string }:
		return v
	}
	return nil
}

func isQuantity(typ string) bool {
	switch typ {
	case "Quantity", "Age", "Duration", "Count", "Distance":
		return true
	}
	return false
}

// capAge turns an age over 89 into "90 or more": an Age, or any quantity
// in a UCUM unit of time that is an Age element's (Age) or a year count
// ("a"). Its value becomes 90 with comparator ">=".
func (t *transform) capAge(typ string, q map[string]any) {
	sys, _ := q["system"].(string)
	code, _ := q["code"].(string)
	if typ != "Age" && code != "a" {
		return
	}
	per, ok := yearsPerUnit[code]
	if sys != ucum || !ok {
		if typ == "Age" {
			// An age in a unit Ward cannot read: keep no number.
			delete(q, "value")
		}
		return
	}
	if f, ok := toFloat(q["value"]); ok && f*per >= 90 {
		q["value"], q["comparator"], q["unit"], q["code"] = 90, ">=", "a", "a"
	}
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case interface{ Float64() (float64, error) }:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// relRef is a relative literal reference: Type/id, optionally with a
// version.
var relRef = regexp.MustCompile(`^([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(/_history/[A-Za-z0-9\-.]{1,64})?$`)

// reference keeps a Reference's type and, for a relative reference to a
// resource, the target's pseudonym (the version is dropped). display and
// identifier go; absolute, logical, conditional and contained references
// go too, since they may carry a server name, an identifier or free text.
func (t *transform) reference(in map[string]any) map[string]any {
	out := map[string]any{}
	if r, ok := in["reference"].(string); ok {
		if m := relRef.FindStringSubmatch(r); m != nil && shape.IsResource(m[1]) {
			out["reference"] = m[1] + "/" + t.d.Pseudonym(m[1], m[2])
		}
	}
	if ty, ok := in["type"].(string); ok && shape.IsResource(ty) {
		out["type"] = ty
	}
	return out
}

// address keeps what Safe Harbor allows of an address: the state, the
// country and the generalized ZIP code.
func address(in map[string]any) map[string]any {
	out := map[string]any{}
	if s, ok := in["state"].(string); ok && s != "" {
		out["state"] = s
	}
	if z, ok := in["postalCode"].(string); ok {
		if z3 := ZIP3(z); z3 != "" {
			out["postalCode"] = z3
		}
	}
	if c, ok := in["country"].(string); ok && c != "" {
		out["country"] = c
	}
	return out
}

// date generalizes a FHIR date, dateTime or instant: the year; with
// shifting, the value moved by the patient's offset (a time of day and
// zone kept, so intervals are exact). A partial date (year or year-month)
// becomes its year either way, as does every date of a resource of no
// patient.
func (t *transform) date(v string) string {
	if len(v) < 4 {
		return ""
	}
	for _, c := range v[:4] {
		if c < '0' || c > '9' {
			return ""
		}
	}
	if !t.d.shift || t.patient == "" || len(v) < 10 {
		return v[:4]
	}
	n := t.d.ShiftDays(t.patient)
	if len(v) == 10 {
		d, err := time.Parse("2006-01-02", v)
		if err != nil {
			return ""
		}
		return d.AddDate(0, 0, n).Format("2006-01-02")
	}
	d, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return ""
	}
	return d.AddDate(0, 0, n).Format(time.RFC3339Nano)
}

// over89 reports whether a patient born on bd is older than 89 at the
// extraction time (a partial date counts from its earliest day, which
// over-counts and so errs towards "90+").
func (t *transform) over89(bd string) bool {
	var born time.Time
	var err error
	switch {
	case len(bd) >= 10:
		born, err = time.Parse("2006-01-02", bd[:10])
	case len(bd) >= 7:
		born, err = time.Parse("2006-01", bd[:7])
	case len(bd) >= 4:
		born, err = time.Parse("2006", bd[:4])
	default:
		return true
	}
	if err != nil {
		return true // unreadable: treat as the protected group
	}
	return !born.AddDate(90, 0, 0).After(t.d.now)
}
