package api

// AuditEvent, read from the ledger (records.LedgerView): search and read,
// the privacy officer's $withhold, and Patient/[id]/$disclosures. Every
// other interaction on AuditEvent is 405: the ledger is written only by
// the audit recorder.

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// repoFor is the repository of one request: its subject, its request id,
// and the client's address for the ledger records.
func (s *Server) repoFor(r *http.Request, subj authz.Subject) *records.Repo {
	var addr string
	if a := clientAddr(r, s.opts.TrustedProxies); a.IsValid() {
		addr = a.String()
	}
	return s.records.For(subj, requestID(r.Context())).At(addr).Based(s.base(r))
}

var errAuditReadOnly = problem.New(problem.ErrNotAllowed, "not-supported", "AuditEvents are read-only: they are the audit ledger, written by the server alone")

// handleAuditEvent takes every interaction routed with type AuditEvent.
func (s *Server) handleAuditEvent(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(path, "/AuditEvent"):
		return s.handleAuditSearch(w, r, repo)
	case r.Method == http.MethodGet && r.PathValue("id") != "" && r.PathValue("vid") == "" && !strings.HasSuffix(path, "/_history"):
		return s.handleAuditRead(w, r, repo)
	}
	return errAuditReadOnly
}

func (s *Server) handleAuditSearch(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	q, err := searchValues(r)
	if err != nil {
		return err
	}
	as, err := records.ParseAuditSearch(q)
	if err != nil {
		return err
	}
	page, err := repo.Ledger().Search(r.Context(), as)
	if err != nil {
		return err
	}
	base := s.base(r)
	path := base + "/AuditEvent"
	b := &fhir.Bundle{Type: "searchset", Timestamp: time.Now().UTC()}
	b.Links = append(b.Links, fhir.BundleLink{Relation: "self", URL: path + queryString(q)})
	if page.Next != "" {
		next := cloneValues(q)
		next.Set("_cursor", page.Next)
		b.Links = append(b.Links, fhir.BundleLink{Relation: "next", URL: path + queryString(next)})
	}
	for _, rec := range page.Records {
		doc, err := records.AuditEventJSON(rec)
		if err != nil {
			return err
		}
		b.Entries = append(b.Entries, fhir.BundleEntry{FullURL: path + "/" + strconv.FormatInt(rec.Seq, 10), Resource: doc,
			Search: &fhir.BundleSearch{Mode: "match"}})
	}
	return writeBundle(w, b)
}

func (s *Server) handleAuditRead(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	rec, err := repo.Ledger().Read(r.Context(), id)
	if err != nil {
		return err
	}
	doc, err := records.AuditEventJSON(rec)
	if err != nil {
		return err
	}
	s.writeResource(w, r, http.StatusOK, &records.Resource{Type: "AuditEvent", ID: id, Version: 1, LastUpdated: rec.Time, JSON: doc}, false)
	return nil
}

// handleWithhold is POST AuditEvent/[id]/$withhold.
func (s *Server) handleWithhold(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := repo.Ledger().Withhold(r.Context(), id); err != nil {
		return err
	}
	writeOutcome(w, http.StatusOK, fhir.Issue{Severity: "information", Code: "informational",
		Diagnostics: "AuditEvent/" + id + " is withheld from the patient's accounting (45 CFR 164.528(a)(2))"})
	return nil
}

var disclosuresParams = map[string]bool{"start": true, "end": true, "_format": true}

// handleDisclosures is GET Patient/[id]/$disclosures: the accounting of
// disclosures as a Bundle, HTML or CSV (Accept or _format).
func (s *Server) handleDisclosures(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	q, err := queryParams(r, disclosuresParams)
	if err != nil {
		return err
	}
	format := records.DisclosureFormat(q.Get("_format"), r.Header.Get("Accept"))
	if format == "" {
		return problem.New(problem.ErrNotAcceptable, "not-supported", "_format: one of json, html, csv")
	}
	var start, end time.Time
	for name, t := range map[string]*time.Time{"start": &start, "end": &end} {
		if v := q.Get(name); v != "" {
			if *t, err = parseDay(v); err != nil {
				return problem.New(problem.ErrInvalid, "invalid", name+": a date (2026-01-02) or an instant (2026-01-02T03:04:05Z)")
			}
		}
	}
	ds, err := repo.Ledger().Disclosures(r.Context(), id, start, end)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	switch format {
	case "html":
		if end.IsZero() {
			end = time.Now().UTC()
		}
		if start.IsZero() {
			start = end.Add(-records.DefaultDisclosurePeriod)
		}
		err = records.WriteDisclosuresHTML(&buf, id, start, end, ds)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	case "csv":
		err = records.WriteDisclosuresCSV(&buf, ds)
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	default:
		var b []byte
		b, err = records.DisclosuresBundle(s.base(r), ds)
		buf.Write(b)
		w.Header().Set("Content-Type", contentFHIR)
	}
	if err != nil {
		return err
	}
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, err = w.Write(buf.Bytes())
	return err
}

// parseDay parses a FHIR date (the start of that day, UTC) or instant.
func parseDay(v string) (time.Time, error) {
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339Nano, v)
}
