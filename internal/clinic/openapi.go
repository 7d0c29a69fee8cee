package clinic

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
)

// OpenAPI returns the OpenAPI 3.1 document of the API, generated from the
// route table and the types' tags.
func (a *API) OpenAPI() map[string]any {
	defs := map[string]any{}
	problemRef := schemaOf(reflect.TypeFor[Problem](), defs)
	paths := map[string]any{}
	for _, rt := range a.routes() {
		item, _ := paths[rt.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[rt.Path] = item
		}
		op := map[string]any{"operationId": rt.ID, "summary": rt.Summary, "tags": []string{rt.Tag}}
		var ps []any
		for _, p := range rt.Params {
			s := map[string]any{"type": "string"}
			if p.Integer {
				s = map[string]any{"type": "integer", "minimum": 1}
			}
			if p.Format != "" {
				s["format"] = p.Format
			}
			if len(p.Enum) > 0 {
				s["enum"] = p.Enum
			}
			ps = append(ps, map[string]any{"name": p.Name, "in": p.In, "required": p.Required || p.In == "path", "description": p.Doc, "schema": s})
		}
		if len(ps) > 0 {
			op["parameters"] = ps
		}
		if rt.Body != nil || rt.BodyMedia != "" {
			media := rt.BodyMedia
			if media == "" {
				media = "application/json"
			}
			s := map[string]any{"type": "object"}
			if rt.Body != nil {
				s = schemaOf(rt.Body, defs)
			}
			if media == "multipart/form-data" {
				// The form's parts are the type's fields; the file part is
				// binary content.
				s = inline(s, defs)
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{media: map[string]any{"schema": s}}}
		}
		resp := map[string]any{}
		ok := map[string]any{"description": http.StatusText(rt.Status)}
		content := map[string]any{}
		if rt.Resp != nil {
			content["application/json"] = map[string]any{"schema": schemaOf(rt.Resp, defs)}
		}
		for _, m := range rt.RespMedia {
			if _, has := content[m]; !has {
				content[m] = map[string]any{}
			}
		}
		if len(content) > 0 {
			ok["content"] = content
		}
		resp[strconv.Itoa(rt.Status)] = ok
		errMedia := "application/problem+json"
		errSchema := map[string]any{"schema": problemRef}
		if rt.FHIRErrors {
			errMedia, errSchema = "application/fhir+json", map[string]any{}
		}
		statuses := append([]int{}, rt.Errors...)
		if !rt.Public {
			statuses = append(statuses, 401, 403, 429, 500, 503)
		}
		for _, st := range statuses {
			resp[strconv.Itoa(st)] = map[string]any{"description": http.StatusText(st), "content": map[string]any{errMedia: errSchema}}
		}
		if rt.ID == "ready" {
			resp["503"] = map[string]any{"description": "not ready", "content": map[string]any{"application/json": map[string]any{"schema": schemaOf(rt.Resp, defs)}}}
		}
		op["responses"] = resp
		if !rt.Public {
			op["security"] = []any{map[string]any{"bearer": []string{}}}
		}
		item[strings.ToLower(rt.Method)] = op
	}
	var types []string
	for slug := range problemTypes {
		types = append(types, ProblemBase+slug)
	}
	sort.Strings(types)
	return map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info": map[string]any{"title": "Ward clinic API", "version": "1",
			"description": "The flat JSON API of clinic front-ends, a facade over Ward's FHIR API (same access decisions, sealing and ledger). Errors are RFC 9457 problem details; their types: " + strings.Join(types, ", ") + "."},
		"paths": paths,
		"components": map[string]any{
			"schemas":         defs,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
		},
	}
}

// inline replaces a $ref by the schema it names.
func inline(s map[string]any, defs map[string]any) map[string]any {
	if ref, ok := s["$ref"].(string); ok {
		if d, ok := defs[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any); ok {
			return d
		}
	}
	return s
}

func (a *API) openapi(c *call) error {
	b, err := json.Marshal(a.OpenAPI())
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "public, max-age=300")
	c.w.Write(b)
	return nil
}
