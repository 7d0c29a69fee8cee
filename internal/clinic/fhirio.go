package clinic

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/query"
)

// resource turns a facade document into a FHIR resource, as a FHIR client
// would send it (parsed with the same limits).
func (c *call) resource(doc map[string]any) (*fhir.Resource, error) {
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	res, err := fhir.ParseLimited(b, c.a.edge.Limits().Parse)
	if err != nil {
		return nil, problem.New(problem.ErrInvalid, "structure", "the request does not make a valid FHIR resource")
	}
	return res, nil
}

// decodeDoc decodes a stored resource's JSON.
func decodeDoc(res *records.Resource) (map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(res.JSON, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// pathID reads and checks the {id} path value.
func (c *call) pathID() (string, error) {
	id := c.r.PathValue("id")
	if !fhir.IsID(id) {
		return "", newProblem("invalid-query", "id: must be a FHIR id (1-64 of A-Z a-z 0-9 - .)", FieldError{"id", "must be a FHIR id"})
	}
	return id, nil
}

// limit reads the limit query parameter, capped.
func (c *call) limit() (int, error) {
	s := c.r.URL.Query().Get("limit")
	if s == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, newProblem("invalid-query", "limit: must be a positive integer", FieldError{"limit", "must be a positive integer"})
	}
	return min(n, c.a.o.MaxLimit), nil
}

// ifMatch reads an optional If-Match version.
func (c *call) ifMatch() (*int64, error) {
	h := strings.TrimSpace(c.r.Header.Get("If-Match"))
	if h == "" {
		return nil, nil
	}
	h = strings.Trim(strings.TrimPrefix(h, "W/"), `"`)
	v, err := strconv.ParseInt(h, 10, 64)
	if err != nil || v < 1 {
		return nil, newProblem("invalid-query", "If-Match: must name a version, e.g. W/\"3\"", FieldError{"If-Match", "must name a version"})
	}
	return &v, nil
}

// page is one page of a FHIR search.
type page struct {
	res  []records.Resource
	next string
}

// searchPage runs a FHIR search of typ with vals through records, with
// the facade's sealed cursor wrapping Ward's keyset cursor.
func (c *call) searchPage(ctx context.Context, kind, typ string, vals url.Values, limit int) (*page, error) {
	return c.searchPageAt(ctx, kind, typ, vals, limit, c.r.URL.Query().Get("cursor"))
}

func (c *call) searchPageAt(ctx context.Context, kind, typ string, vals url.Values, limit int, cur string) (*page, error) {
	var after []any
	if cur != "" {
		var inner string
		if err := c.a.openCursor(kind, cur, &inner); err != nil {
			return nil, newProblem("invalid-cursor", "cursor: not a cursor of this list", FieldError{"cursor", "not a cursor of this list"})
		}
		var err error
		if after, err = records.DecodeCursor(inner); err != nil {
			return nil, newProblem("invalid-cursor", "cursor: not a cursor of this list", FieldError{"cursor", "not a cursor of this list"})
		}
	}
	vals.Set("_count", strconv.Itoa(limit))
	p, err := c.search(ctx, typ, vals, limit, after)
	if err != nil {
		return nil, err
	}
	out := &page{res: p.Resources}
	if p.NextKeys != nil {
		inner, err := records.EncodeCursor(p.NextKeys)
		if err != nil {
			return nil, err
		}
		if out.next, err = c.a.sealCursor(kind, inner); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// search parses and runs one FHIR search (strictly: a parameter Ward
// cannot answer is an error, never silently ignored).
func (c *call) search(ctx context.Context, typ string, vals url.Values, maxCount int, after []any) (*records.Page, error) {
	lim := c.a.edge.Limits()
	q, err := query.Parse(typ, vals, query.Options{Strict: true, DefaultCount: maxCount, MaxCount: maxCount,
		MaxParams: lim.SearchParams, MaxValues: lim.SearchValues, Supported: search.Supported})
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, problem.New(problem.ErrInvalid, "invalid", qe.Error())
		}
		return nil, err
	}
	return c.repo.Search(ctx, q, after)
}

// ref is a local reference's id ("Patient/x" -> "x").
func refID(v any, typ string) string {
	m, _ := v.(map[string]any)
	s, _ := m["reference"].(string)
	if id, ok := strings.CutPrefix(s, typ+"/"); ok {
		return id
	}
	return ""
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// firstCode is the first coding's code of a CodeableConcept (of system,
// when given).
func firstCode(v any, system string) (code, display string) {
	for _, c := range list(obj(v)["coding"]) {
		cm := obj(c)
		if system == "" || str(cm, "system") == system {
			return str(cm, "code"), str(cm, "display")
		}
	}
	return "", ""
}

func concept(system, code, display string) map[string]any {
	c := map[string]any{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return map[string]any{"coding": []any{c}}
}

func version(res *records.Resource) string { return strconv.FormatInt(res.Version, 10) }

// createFrom creates doc through records (validated, decided, sealed and
// audited as a FHIR create) and answers 201 with the stored version in
// the facade's shape, at prefix + id.
func createFrom[T any](c *call, doc map[string]any, prefix string, m func(*records.Resource) (T, error)) error {
	res, err := c.resource(doc)
	if err != nil {
		return err
	}
	out, err := c.repo.Create(c.r.Context(), res)
	if err != nil {
		return err
	}
	return writeFrom(c, http.StatusCreated, prefix, out, m)
}

// readAs answers a GET of the resource of type typ the path names, read
// through records, in the facade's shape.
func readAs[T any](c *call, typ string, m func(*records.Resource) (T, error)) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	out, err := c.repo.Read(c.r.Context(), typ, id)
	if err != nil {
		return err
	}
	return writeFrom(c, http.StatusOK, "", out, m)
}
