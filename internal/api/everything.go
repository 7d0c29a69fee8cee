package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

var everythingParams = map[string]bool{"_count": true, "_since": true, "_type": true, "_cursor": true, "start": true, "end": true}

// everythingDefaultCount is the page size of $everything without _count:
// a search's (query.Options.DefaultCount in handleSearch), so that a
// client paging both sees the same pages.
const everythingDefaultCount = 20

// handleEverything is GET Patient/[id]/$everything and the type-level
// GET Patient/$everything (every patient's compartment).
func (s *Server) handleEverything(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	q, err := queryParams(r, everythingParams)
	if err != nil {
		return err
	}
	count, err := s.count(q, everythingDefaultCount)
	if err != nil {
		return err
	}
	eq := records.EverythingQuery{Count: count, Start: q.Get("start"), End: q.Get("end")}
	path := s.base(r) + "/Patient"
	if r.PathValue("id") != "" {
		if eq.PatientID, err = pathID(r); err != nil {
			return err
		}
		path += "/" + eq.PatientID
	}
	path += "/$everything"
	if v := q.Get("_since"); v != "" {
		if eq.Since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return problem.New(problem.ErrInvalid, "invalid", "_since must be a FHIR instant such as 2026-01-02T03:04:05Z")
		}
	}
	for _, v := range q["_type"] {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); !fhir.IsResourceType(t) {
				return problem.New(problem.ErrInvalid, "invalid", "_type: not an R4 resource type")
			}
			eq.Types = append(eq.Types, strings.TrimSpace(t))
		}
	}
	if v := q.Get("_cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return problem.New(problem.ErrInvalid, "invalid", "_cursor: not a cursor this server issued")
		}
		eq.After = []any{n}
	}
	page, err := repo.Everything(r.Context(), eq)
	if err != nil {
		return err
	}
	b := &fhir.Bundle{Type: "searchset", Timestamp: time.Now().UTC()}
	b.Links = append(b.Links, fhir.BundleLink{Relation: "self", URL: path + queryString(q)})
	first := cloneValues(q)
	first.Del("_cursor")
	b.Links = append(b.Links, fhir.BundleLink{Relation: "first", URL: path + queryString(first)})
	if len(page.NextKeys) == 1 {
		next := cloneValues(q)
		next.Set("_cursor", strconv.FormatInt(page.NextKeys[0].(int64), 10))
		b.Links = append(b.Links, fhir.BundleLink{Relation: "next", URL: path + queryString(next)})
	}
	base := s.base(r)
	for _, res := range page.Resources {
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: base + "/" + res.Type + "/" + res.ID, Resource: res.JSON,
			Search: &fhir.BundleSearch{Mode: "match"}})
	}
	withTotal(b, page)
	return writeBundle(w, b)
}
