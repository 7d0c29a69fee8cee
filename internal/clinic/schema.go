package clinic

import (
	"net/mail"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The struct tags of the API's types say everything the OpenAPI document
// and the request checks need, once:
//
//	json    the field's name
//	doc     its description
//	fhir    the FHIR element it maps to (docs, and error field mapping)
//	enum    the allowed values, separated by "|"
//	format  date, date-time, email or byte (base64)
//	req     "1": required in a request body
//	ro      "1": read-only (set by the server; refused in requests)
//	max     the longest string accepted (characters) or array (items)

// field is one struct field's tags.
type field struct {
	name, doc, fhir, format string
	enum                    []string
	req, ro                 bool
	max                     int
	index                   int
	typ                     reflect.Type
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		f := field{name: name, doc: sf.Tag.Get("doc"), fhir: sf.Tag.Get("fhir"), format: sf.Tag.Get("format"),
			req: sf.Tag.Get("req") == "1", ro: sf.Tag.Get("ro") == "1", index: i, typ: sf.Type}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, "|")
		}
		f.max, _ = strconv.Atoi(sf.Tag.Get("max"))
		out = append(out, f)
	}
	return out
}

// schemaOf returns the JSON Schema (2020-12, as OpenAPI 3.1 uses it) of t,
// adding the schemas of named struct types to defs.
func schemaOf(t reflect.Type, defs map[string]any) map[string]any {
	switch t.Kind() {
	case reflect.Pointer:
		return schemaOf(t.Elem(), defs)
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64, reflect.Float32:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem(), defs)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), defs)}
	case reflect.Struct:
		name := t.Name()
		if _, ok := defs[name]; !ok {
			defs[name] = nil // placeholder against recursion
			props := map[string]any{}
			var required []string
			for _, f := range fieldsOf(t) {
				s := schemaOf(f.typ, defs)
				if _, isRef := s["$ref"]; isRef && (f.doc != "" || f.ro) {
					// 3.1 allows siblings of $ref.
					s = map[string]any{"$ref": s["$ref"]}
				}
				if f.doc != "" {
					d := f.doc
					if f.fhir != "" {
						d += " (FHIR: " + f.fhir + ")"
					}
					s["description"] = d
				}
				if f.format != "" {
					s["format"] = f.format
					if f.format == "byte" {
						s["contentEncoding"] = "base64"
					}
				}
				if len(f.enum) > 0 {
					s["enum"] = f.enum
				}
				if f.max > 0 {
					if f.typ.Kind() == reflect.Slice {
						s["maxItems"] = f.max
					} else {
						s["maxLength"] = f.max
					}
				}
				if f.ro {
					s["readOnly"] = true
				}
				props[f.name] = s
				if f.req {
					required = append(required, f.name)
				}
			}
			obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
			if len(required) > 0 {
				obj["required"] = required
			}
			defs[name] = obj
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

// check validates a decoded request body against its type's tags.
func check(v any) []FieldError {
	return checkValue(reflect.ValueOf(v), "")
}

func checkValue(v reflect.Value, prefix string) []FieldError {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var errs []FieldError
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		name := prefix + f.name
		if f.ro {
			// The document marks it readOnly: a request must not send it.
			if !fv.IsZero() {
				errs = append(errs, FieldError{name, "is read-only (set by the server): leave it out of requests"})
			}
			continue
		}
		if f.req && fv.IsZero() {
			errs = append(errs, FieldError{name, "is required"})
			continue
		}
		switch fv.Kind() {
		case reflect.String:
			s := fv.String()
			if s == "" {
				continue
			}
			if !utf8.ValidString(s) {
				errs = append(errs, FieldError{name, "must be valid UTF-8"})
				continue
			}
			if f.max > 0 && utf8.RuneCountInString(s) > f.max {
				errs = append(errs, FieldError{name, "must have at most " + strconv.Itoa(f.max) + " characters"})
			}
			if len(f.enum) > 0 && !contains(f.enum, s) {
				errs = append(errs, FieldError{name, "must be one of " + strings.Join(f.enum, ", ")})
			}
			if msg := checkFormat(f.format, s); msg != "" {
				errs = append(errs, FieldError{name, msg})
			}
		case reflect.Slice:
			if f.max > 0 && fv.Len() > f.max {
				errs = append(errs, FieldError{name, "must have at most " + strconv.Itoa(f.max) + " items"})
				continue
			}
			for i := 0; i < fv.Len(); i++ {
				errs = append(errs, checkValue(fv.Index(i), name+"["+strconv.Itoa(i)+"].")...)
			}
		case reflect.Pointer, reflect.Struct:
			errs = append(errs, checkValue(fv, name+".")...)
		}
	}
	return errs
}

func checkFormat(format, s string) string {
	switch format {
	case "date":
		if _, err := time.Parse("2006-01-02", s); err != nil {
			return "must be a date (YYYY-MM-DD)"
		}
	case "date-time":
		if _, err := time.Parse(time.RFC3339, s); err != nil {
			return "must be a date-time (RFC 3339)"
		}
	case "email":
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
			return "must be an e-mail address"
		}
	}
	return ""
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
