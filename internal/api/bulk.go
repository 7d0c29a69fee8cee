package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/bulk"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

// Bulk Data Access 2.0 (export) and NDJSON import. The status and file
// URLs are Ward's own (the spec leaves them to the server); they live
// outside /fhir, where no FHIR route pattern can overlap them:
//
//	GET    /fhir/$export, /fhir/Patient/$export, /fhir/Group/{id}/$export  kick-off (Prefer: respond-async)
//	GET    /bulk/export/{job}               status: 202 + X-Progress, 200 manifest, 500 OperationOutcome
//	DELETE /bulk/export/{job}               cancel: 202, job and files deleted
//	GET    /bulk/export/{job}/{part}.ndjson one output file (requester only)
//	POST   /fhir/$import                    an NDJSON body, stored line by line
func (s *Server) routeBulk(mux *http.ServeMux) {
	if s.opts.Bulk == nil {
		return
	}
	mux.Handle("GET /fhir/$export", s.fhir(s.kickoff(records.ExportSystem)))
	mux.Handle("GET /fhir/Patient/$export", s.fhir(s.kickoff(records.ExportPatient)))
	mux.Handle("GET /fhir/Group/{id}/$export", s.fhir(s.kickoff(records.ExportGroup)))
	mux.Handle("GET /bulk/export/{job}", s.fhir(s.handleExportStatus))
	mux.Handle("DELETE /bulk/export/{job}", s.fhir(s.handleExportCancel))
	// Files are NDJSON: authenticated like the FHIR API, but not
	// negotiated as FHIR JSON.
	mux.Handle("GET /bulk/export/{job}/{file}", s.authenticated(s.handleExportFile))
	mux.Handle("POST /fhir/$import", s.fhir(s.handleImport))
}

// authenticated is fhir() without content negotiation.
func (s *Server) authenticated(h fhirHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		subj, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := h(w, r, s.repoFor(r, subj)); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// preferAsync reports Prefer: respond-async.
func preferAsync(r *http.Request) bool {
	for _, h := range r.Header.Values("Prefer") {
		for _, part := range strings.FieldsFunc(h, func(c rune) bool { return c == ',' || c == ';' }) {
			if strings.EqualFold(strings.TrimSpace(part), "respond-async") {
				return true
			}
		}
	}
	return false
}

func (s *Server) kickoff(kind string) fhirHandler {
	return func(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
		if !preferAsync(r) {
			return problem.New(problem.ErrInvalid, "invalid", "a bulk export needs the header Prefer: respond-async")
		}
		req, err := bulk.ParseKickoff(kind, r.PathValue("id"), r.URL.Query(), preferStrict(r))
		if err != nil {
			return err
		}
		job, err := s.opts.Bulk.Kickoff(r.Context(), repo, req)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Location", s.root(r)+"/bulk/export/"+job.ID)
		issues := []fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: "export job queued; poll the Content-Location URL"}}
		for _, k := range req.Ignored {
			issues = append(issues, fhir.Issue{Severity: "warning", Code: "not-supported", Diagnostics: "parameter ignored: " + bulk.ParamName(k)})
		}
		writeOutcome(w, http.StatusAccepted, issues...)
		return nil
	}
}

// manifest is the completed export's manifest (Bulk Data Access 2.0).
type manifest struct {
	TransactionTime     string           `json:"transactionTime"`
	Request             string           `json:"request"`
	RequiresAccessToken bool             `json:"requiresAccessToken"`
	Output              []manifestOutput `json:"output"`
	Error               []manifestOutput `json:"error"`
}

type manifestOutput struct {
	Type  string `json:"type"`
	URL   string `json:"url"`
	Count int    `json:"count"`
}

func (s *Server) handleExportStatus(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	job, parts, err := s.opts.Bulk.Job(r.Context(), repo.Subject(), r.PathValue("job"))
	if err != nil {
		return err
	}
	switch job.Status {
	case bulk.StatusCompleted:
		if job.Kind == bulk.KindAsync {
			return s.writeAsyncResult(w, r, repo, job.ID)
		}
		base := s.base(r)
		m := manifest{TransactionTime: job.TxTime.Format(time.RFC3339Nano), Request: base + "/" + job.Request,
			RequiresAccessToken: true, Output: []manifestOutput{}, Error: []manifestOutput{}}
		for _, p := range parts {
			m.Output = append(m.Output, manifestOutput{Type: p.Type, URL: fmt.Sprintf("%s/bulk/export/%s/%d.ndjson", s.root(r), job.ID, p.Part), Count: p.Lines})
		}
		w.Header().Set("Expires", job.Expires.UTC().Format(http.TimeFormat))
		writeJSON(w, http.StatusOK, m)
	case bulk.StatusFailed:
		if job.Error == bulk.ReasonRefused {
			// The requester's access, not the server, ended the job.
			writeOutcome(w, http.StatusForbidden, fhir.Issue{Severity: "error", Code: "forbidden", Diagnostics: job.Error})
			break
		}
		writeOutcome(w, http.StatusInternalServerError, fhir.Issue{Severity: "error", Code: "exception", Diagnostics: job.Error})
	default:
		w.Header().Set("X-Progress", job.Progress)
		w.Header().Set("Retry-After", "2")
		w.WriteHeader(http.StatusAccepted)
	}
	return nil
}

func (s *Server) handleExportCancel(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	if err := s.opts.Bulk.Cancel(r.Context(), repo, r.PathValue("job")); err != nil {
		return err
	}
	writeOutcome(w, http.StatusAccepted, fhir.Issue{Severity: "information", Code: "informational", Diagnostics: "export job cancelled; its files are deleted"})
	return nil
}

// root is the server's public root (the FHIR base without /fhir).
func (s *Server) root(r *http.Request) string { return strings.TrimSuffix(s.base(r), "/fhir") }

// parseFile reads "{part}.ndjson".
func parseFile(name string) (part int, ok bool) {
	n, ok := strings.CutSuffix(name, ".ndjson")
	if !ok || len(n) == 0 || len(n) > 6 {
		return 0, false
	}
	part, err := strconv.Atoi(n)
	if err != nil || part < 0 || n[0] == '+' {
		return 0, false
	}
	return part, true
}

func (s *Server) handleExportFile(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	job := r.PathValue("job")
	part, ok := parseFile(r.PathValue("file"))
	if !ok {
		return bulk.ErrNoJob
	}
	started, err := s.opts.Bulk.Download(r.Context(), repo, job, part, w, func(lines int) {
		w.Header().Set("Content-Type", "application/fhir+ndjson")
		w.WriteHeader(http.StatusOK)
	})
	if err != nil && started {
		// Headers are gone: cut the response short so the client sees a
		// failed transfer, never a silently truncated file.
		s.classify(r, err)
		panic(http.ErrAbortHandler)
	}
	return err
}

// ndjsonTypes are the Content-Types $import reads.
var ndjsonTypes = map[string]bool{"application/fhir+ndjson": true, "application/ndjson": true, "application/x-ndjson": true}

// maxImportIssues bounds the per-line issues of an $import answer.
const maxImportIssues = 100

// handleImport stores an NDJSON body, one resource per line, streaming
// (records.ImportNDJSON): good lines are stored, bad ones named by line.
// 200 when every line was stored, 422 when some were not (the others are
// stored; the OperationOutcome counts both and names each failed line).
func (s *Server) handleImport(w http.ResponseWriter, r *http.Request, repo *records.Repo) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !ndjsonTypes[mt] {
		return problem.New(problem.ErrUnsupportedMedia, "not-supported", "Content-Type: send application/fhir+ndjson (one resource per line)")
	}
	if err := repo.ImportAllowed(r.Context()); err != nil {
		return err
	}
	rep, err := repo.ImportNDJSONAtMost(r.Context(), r.Body, s.opts.Limits.Parse.BundleEntries, nil)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problem.New(problem.ErrTooLarge, "too-costly", fmt.Sprintf("the request body is larger than the limit of %d bytes; %d lines before it were stored", mbe.Limit, rep.Stored))
		}
		return err
	}
	status := http.StatusOK
	summary := fhir.Issue{Severity: "information", Code: "informational",
		Diagnostics: fmt.Sprintf("%d lines read, %d resources stored, %d lines failed", rep.Lines, rep.Stored, rep.Failed)}
	issues := []fhir.Issue{summary}
	if rep.Failed > 0 {
		status = http.StatusUnprocessableEntity
		for _, f := range rep.Failures {
			if len(issues) > maxImportIssues {
				break
			}
			issues = append(issues, lineIssues(f)...)
		}
		if rep.Failed > len(rep.Failures) {
			issues = append(issues, fhir.Issue{Severity: "error", Code: "too-costly", Diagnostics: fmt.Sprintf("%d more failed lines not listed", rep.Failed-len(rep.Failures))})
		}
	}
	writeOutcome(w, status, issues...)
	return nil
}

// lineIssues turns a failed line into issues that name it. Only client
// errors carry their detail; anything else says "internal error".
func lineIssues(f records.LineFailure) []fhir.Issue {
	at := fmt.Sprintf("line %d: ", f.Line)
	var pe *problem.Error
	if errors.As(f.Err, &pe) && !errors.Is(f.Err, problem.ErrUnavailable) {
		out := make([]fhir.Issue, 0, len(pe.Issues))
		for _, is := range pe.Issues {
			is.Diagnostics = at + is.Diagnostics
			out = append(out, is)
		}
		return out
	}
	return []fhir.Issue{{Severity: "error", Code: "exception", Diagnostics: at + "internal error"}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeOutcome(w, http.StatusInternalServerError, fhir.Issue{Severity: "fatal", Code: "exception", Diagnostics: "internal error"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}
