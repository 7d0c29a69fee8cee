package records

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// ImportChunk is how many NDJSON lines go into one transaction.
const ImportChunk = 500

// MaxImportLine bounds one NDJSON line (one resource).
const MaxImportLine = 64 << 20

// maxImportFailures bounds the failures an ImportReport lists; the count
// goes on.
const maxImportFailures = 100

// LineFailure is one NDJSON line that was not stored. Err names the
// element and the rule, never a value.
type LineFailure struct {
	Line int // 1-based
	Err  error
}

// ImportReport summarises an NDJSON import.
type ImportReport struct {
	Lines  int // non-empty lines read
	Stored int
	Failed int
	// Failures lists the first failing lines, in line order.
	Failures []LineFailure
}

func (rep *ImportReport) fail(line int, err error) {
	rep.Failed++
	if len(rep.Failures) < maxImportFailures {
		rep.Failures = append(rep.Failures, LineFailure{Line: line, Err: err})
	}
}

// ImportNDJSON stores one resource per line of rd, streaming: at most
// ImportChunk lines are held at a time. A line with an id is stored under
// that id (update-as-create), one without gets a new id. Lines go in
// transactions of ImportChunk; when a transaction fails because of one of
// its lines, its lines are stored one by one, so every good line is stored
// and every bad one is reported with its line number; no resource is ever
// half-written (each is one version, written whole or not at all).
// progress, if not nil, is called after each chunk with the lines stored
// so far. The error is for what stops the whole import: the context, an
// unreadable stream, an unavailable database.
func (r *Repo) ImportNDJSON(ctx context.Context, rd io.Reader, progress func(stored int)) (ImportReport, error) {
	return r.ImportNDJSONAtMost(ctx, rd, 0, progress)
}

// ErrImportTooLong is returned (wrapped, with the report so far) when an
// import has more resource lines than its bound.
var ErrImportTooLong = errors.New("import has too many resources")

// ImportNDJSONAtMost is ImportNDJSON of at most maxLines resource lines
// (0: no bound): a longer stream stops at the first line past the bound,
// before it is parsed, with an error wrapping problem.ErrTooLarge and
// ErrImportTooLong (the lines before it are stored or reported as usual).
func (r *Repo) ImportNDJSONAtMost(ctx context.Context, rd io.Reader, maxLines int, progress func(stored int)) (ImportReport, error) {
	var rep ImportReport
	br := bufio.NewReaderSize(rd, 1<<20)
	chunk := make([]Entry, 0, ImportChunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		defer func() { chunk = chunk[:0] }()
		results, err := r.Transaction(ctx, chunk)
		if err == nil {
			rep.Stored += StoredCount(results)
			if progress != nil {
				progress(rep.Stored)
			}
			return nil
		}
		if errors.Is(err, problem.ErrUnavailable) || ctx.Err() != nil {
			return err
		}
		// One line spoiled the transaction: store the lines one by one to
		// learn which, keeping the others.
		for i, res := range r.Batch(ctx, chunk) {
			line := chunk[i].Index + 1
			switch {
			case res.Err != nil && errors.Is(res.Err, problem.ErrUnavailable):
				return res.Err
			case res.Err != nil:
				rep.fail(line, res.Err)
			case res.Resource != nil:
				rep.Stored++
			}
		}
		if progress != nil {
			progress(rep.Stored)
		}
		return nil
	}
	line := 0
	for {
		text, err := readLine(br)
		if errors.Is(err, io.EOF) {
			break
		}
		line++
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				rep.Lines++
				rep.fail(line, problem.New(problem.ErrTooLarge, "too-costly", fmt.Sprintf("the line is longer than %d bytes", MaxImportLine)))
				continue
			}
			if ferr := flush(); ferr != nil {
				return rep, ferr
			}
			return rep, fmt.Errorf("line %d: %w", line, err)
		}
		text = bytes.TrimSpace(text)
		if len(text) == 0 {
			continue
		}
		if maxLines > 0 && rep.Lines >= maxLines {
			if err := flush(); err != nil {
				return rep, err
			}
			return rep, fmt.Errorf("%w: %w", ErrImportTooLong, problem.New(problem.ErrTooLarge, "too-costly",
				fmt.Sprintf("the import has more than %d resources (WARD_BUNDLE_MAX_ENTRIES); the %d lines before were read and %d resources stored", maxLines, rep.Lines, rep.Stored)))
		}
		rep.Lines++
		res, err := fhir.ParseLimited(text, r.s.limits.Parse)
		if err != nil {
			class, code := problem.ErrInvalid, "structure"
			var pe *fhir.ParseError
			if errors.As(err, &pe) && pe.Code == "too-costly" {
				class, code = problem.ErrTooLarge, pe.Code
			}
			rep.fail(line, problem.New(class, code, err.Error()))
			continue
		}
		e := Entry{Index: line - 1, Type: res.Type, Resource: res}
		if res.ID != "" {
			e.Method, e.ID = http.MethodPut, res.ID
		} else {
			e.Method = http.MethodPost
		}
		chunk = append(chunk, e)
		if len(chunk) == ImportChunk {
			if err := flush(); err != nil {
				return rep, err
			}
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	return rep, flush()
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line without its newline (io.EOF after the
// last). A line longer than MaxImportLine is skipped to its end and
// reported as errLineTooLong.
func readLine(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > MaxImportLine {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLineTooLong
		}
		buf = append(buf, frag...)
		switch {
		case err == nil:
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return buf, nil
		default:
			return nil, err
		}
	}
}

// StoredCount counts the results of a transaction or batch that stored a
// resource (created or updated, not deleted).
func StoredCount(results []EntryResult) int {
	n := 0
	for _, r := range results {
		if r.Err == nil && (r.Status == http.StatusCreated || r.Status == http.StatusOK) && r.Resource != nil && !r.Resource.Deleted {
			n++
		}
	}
	return n
}

// ImportAllowed decides a bulk import ($import) for the caller: admins and
// physicians only, on top of the per-resource decision every line gets. A
// refusal is audited.
func (r *Repo) ImportAllowed(ctx context.Context) error {
	rec := r.record("import", "")
	switch r.subj.Role {
	case authz.RoleAdmin, authz.RolePhysician:
		return nil
	}
	return r.refuse(rec, audit.OutcomeMinor, "denied:role-may-not-bulk-import",
		problem.New(problem.ErrForbidden, "forbidden", "bulk import is for admins and physicians"))
}
