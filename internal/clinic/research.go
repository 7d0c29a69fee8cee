package clinic

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/deid"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
)

var projectName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// anonymize is POST /anonymize: a de-identified extract (deid, HIPAA Safe
// Harbor) of the patients the caller may read for research. The purpose
// of use must be HRESCH; Ward's decision then reaches only patients whose
// active research consent permits it, so nothing else is filtered here.
// The ledger disclosure naming the method and every patient is durable
// before the first byte is sent; the output is streamed as FHIR NDJSON or
// a collection Bundle.
func (a *API) anonymize(c *call) error {
	if a.o.ProjectKey == nil {
		return newProblem("unavailable", "de-identification is not configured")
	}
	if c.subj.Purpose != authz.PurposeResearch {
		return newProblem("forbidden", "a de-identified extract needs purpose of use HRESCH (X-Purpose-Of-Use: HRESCH, or a token granted for it)")
	}
	var req AnonymizeRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if !projectName.MatchString(req.Project) {
		return invalidField("project", "must be 1-64 of a-z, 0-9 and -, starting with a letter or digit")
	}
	include := req.Include
	if len(include) == 0 {
		include = []string{"Patient", "Immunization"}
	}
	for i, t := range include {
		if t != "Patient" && t != "Immunization" {
			return invalidField("include["+itoa(i)+"]", "must be Patient or Immunization")
		}
	}
	for i, id := range req.PatientIDs {
		if !fhir.IsID(id) {
			return invalidField("patient_ids["+itoa(i)+"]", "must be a FHIR id")
		}
	}
	key, err := a.o.ProjectKey(c.r.Context(), c.subj.Tenant, req.Project)
	if err != nil {
		return err
	}
	d, err := deid.New(deid.Options{ProjectKey: key, ShiftDates: req.DateShift, Now: a.o.Now()})
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	// The patients, as the research decision lets the caller see them.
	vals := url.Values{}
	if len(req.PatientIDs) > 0 {
		vals.Set("_id", strings.Join(req.PatientIDs, ","))
	}
	var patients []records.Resource
	var next []any
	for {
		pg, err := c.search(ctx, "Patient", vals, 1000, next)
		if err != nil {
			return err
		}
		patients = append(patients, pg.Resources...)
		if len(patients) > a.o.ListCap {
			return newProblem("list-too-large", "more than "+itoa(a.o.ListCap)+" patients in one extract (WARD_CLINIC_LIST_CAP); name patient_ids")
		}
		if pg.NextKeys == nil {
			break
		}
		next = pg.NextKeys
	}
	ids := make([]string, len(patients))
	for i, p := range patients {
		ids[i] = p.ID
	}
	slices.Sort(ids)
	// The project's name (not PHI; never its key) names the extract.
	if err := c.repo.DiscloseDeidentified(ctx, d.Method(), req.Project, ids); err != nil {
		return err
	}
	bundle := req.Format == "bundle"
	w := &extractWriter{w: c.w, bundle: bundle}
	if bundle {
		c.w.Header().Set("Content-Type", "application/fhir+json")
	} else {
		c.w.Header().Set("Content-Type", "application/fhir+ndjson")
	}
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.Header().Set("X-Deidentification-Method", d.Method())
	c.w.WriteHeader(http.StatusOK)
	w.start(a.o.Now())
	if slices.Contains(include, "Patient") {
		for i := range patients {
			if err := w.resource(d, &patients[i], patients[i].ID); err != nil {
				return nil // headers are sent: the stream just ends
			}
		}
	}
	if slices.Contains(include, "Immunization") && len(ids) > 0 {
		for chunk := range slices.Chunk(ids, 50) {
			refs := make([]string, len(chunk))
			for i, id := range chunk {
				refs[i] = "Patient/" + id
			}
			next = nil
			for {
				pg, err := c.search(ctx, "Immunization", url.Values{"patient": {strings.Join(refs, ",")}}, 1000, next)
				if err != nil {
					return nil
				}
				for i := range pg.Resources {
					doc, _ := decodeDoc(&pg.Resources[i])
					if err := w.resource(d, &pg.Resources[i], refID(doc["patient"], "Patient")); err != nil {
						return nil
					}
				}
				if pg.NextKeys == nil {
					break
				}
				next = pg.NextKeys
			}
		}
	}
	w.end()
	return nil
}

// extractWriter streams de-identified resources as NDJSON lines or the
// entries of a Bundle.
type extractWriter struct {
	w      io.Writer
	bundle bool
	n      int
}

func (e *extractWriter) start(now time.Time) {
	if e.bundle {
		io.WriteString(e.w, `{"resourceType":"Bundle","type":"collection","timestamp":"`+now.UTC().Format(time.RFC3339)+`","entry":[`)
	}
}

func (e *extractWriter) resource(d *deid.Deidentifier, res *records.Resource, patient string) error {
	doc, err := decodeDoc(res)
	if err != nil {
		return err
	}
	out, err := d.Resource(doc, patient)
	if err != nil {
		return nil // a type outside the allow-list is left out
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	if e.bundle {
		if e.n > 0 {
			io.WriteString(e.w, ",")
		}
		io.WriteString(e.w, `{"resource":`)
		e.w.Write(b)
		_, err = io.WriteString(e.w, "}")
	} else {
		e.w.Write(b)
		_, err = io.WriteString(e.w, "\n")
	}
	e.n++
	if f, ok := e.w.(http.Flusher); ok && e.n%100 == 0 {
		f.Flush()
	}
	return err
}

func (e *extractWriter) end() {
	if e.bundle {
		io.WriteString(e.w, "]}")
	}
}

// validate is POST /fhir/validate: the body is a FHIR resource; the answer
// an OperationOutcome with every issue (?mode=create|update).
func (a *API) validate(c *call) error {
	ct := c.r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); mt != "application/fhir+json" && mt != "application/json" {
		return problem.New(problem.ErrUnsupportedMedia, "not-supported", "the body must be application/fhir+json")
	}
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		if _, ok := err.(*http.MaxBytesError); ok {
			return problem.New(problem.ErrTooLarge, "too-costly", "the request body is larger than the limit (WARD_MAX_BODY_BYTES)")
		}
		return problem.New(problem.ErrInvalid, "structure", "the request body could not be read")
	}
	res, err := fhir.ParseLimited(body, a.edge.Limits().Parse)
	if err != nil {
		return problem.New(problem.ErrInvalid, "structure", err.Error())
	}
	mode := c.r.URL.Query().Get("mode")
	if mode == records.ValidateDelete {
		return problem.New(problem.ErrInvalid, "value", "mode delete needs [type]/[id]/$validate")
	}
	issues, err := c.repo.Validate(c.r.Context(), "", "", mode, res)
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(fhir.OperationOutcome(issues...))
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }
