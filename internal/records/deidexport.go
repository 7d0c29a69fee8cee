package records

import (
	"context"
	"fmt"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
)

// ErrDeidentifyPurpose refuses a de-identified extract to a caller whose
// purpose of use is not research.
var ErrDeidentifyPurpose = problem.New(problem.ErrForbidden, "forbidden",
	"a de-identified extract needs purpose of use HRESCH (X-Purpose-Of-Use: HRESCH, or a token granted for it)")

// DeidentifiedExportKickoff decides a de-identified Bulk Data export
// (_deidentify) before a job is queued: the caller's purpose of use must
// be research (HRESCH), so that the worker, deciding as that purpose,
// reaches only the patients whose research consent permits it; a refusal
// is audited (403). Then it is ExportKickoff.
func (r *Repo) DeidentifiedExportKickoff(ctx context.Context, jobID, kind, groupID string, types []string) ([]string, error) {
	if r.subj.Purpose != authz.PurposeResearch {
		rec := r.record("export-kickoff", "")
		return nil, r.refuse(rec, audit.OutcomeMinor, "denied:deidentify-needs-research:job:"+jobID, ErrDeidentifyPurpose)
	}
	return r.ExportKickoff(ctx, jobID, kind, groupID, types)
}

// DiscloseDeidentifiedExport makes the ledger record of one de-identified
// export file's download durable, naming the method, the project, the job
// and part, every resource version the file was made from and (in the
// patient index) every patient. The caller sends the file only after it
// returns nil. purpose is the job's purpose of use (research).
func (r *Repo) DiscloseDeidentifiedExport(ctx context.Context, jobID string, part int, typ, method, project, purpose string, refs []string) error {
	rec := r.record("deidentified-disclosure", typ)
	rec.Purpose = purpose
	rec.Detail = fmt.Sprintf("method:%s;project:%s;job:%s:part:%d", method, project, jobID, part)
	rec.Entities = refs
	rec.Outcome = audit.OutcomeSuccess
	if err := r.exportPatients(ctx, rec, refs); err != nil {
		return err
	}
	return r.commitAudit(rec)
}
