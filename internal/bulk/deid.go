package bulk

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/wardhealth/ward/internal/deid"
	"github.com/wardhealth/ward/internal/facts"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// A de-identified export (_deidentify) is an ordinary job whose worker
// decides as the requester's research purpose (so only patients whose
// research consent permits it are read), passes every resource through
// deid before it is sealed, and whose downloads are ledger records of kind
// deidentified-disclosure naming the method, the project and the patients.

// deidentifier is the job's de-identification: its project's key, its
// method, and the job's transaction time as the extraction time (so a
// restarted job writes the same output).
func (s *Service) deidentifier(ctx context.Context, j *store.ExportJob) (*deid.Deidentifier, error) {
	if s.o.ProjectKey == nil {
		return nil, problem.New(problem.ErrUnavailable, "not-supported", "de-identified export is not configured on this server")
	}
	key, err := s.o.ProjectKey(ctx, j.Tenant, j.Project)
	if err != nil {
		return nil, fmt.Errorf("%w: project key: %v", problem.ErrUnavailable, err)
	}
	return deid.New(deid.Options{ProjectKey: key, ShiftDates: j.Deidentify == DeidSafeHarborShift, Now: j.TxTime})
}

// deidentify is one output line of a de-identified export. The patient
// whose date shift applies is the resource's own (a Patient) or the first
// patient whose compartment it is in.
func deidentify(d *deid.Deidentifier, res records.Resource) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(res.JSON, &doc); err != nil {
		return nil, fmt.Errorf("de-identify %s: %w", res.Type, err)
	}
	patient := ""
	if res.Type == "Patient" {
		patient = res.ID
	} else if ps := facts.PatientsOf(res.Type, res.ID, doc); len(ps) > 0 {
		patient = ps[0]
	}
	out, err := d.Resource(doc, patient)
	if err != nil {
		return nil, fmt.Errorf("de-identify %s: %w", res.Type, err)
	}
	return json.Marshal(out)
}
