package records

import (
	"context"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
)

// Validation modes of $validate.
const (
	ValidateCreate = "create"
	ValidateUpdate = "update"
	ValidateDelete = "delete"
)

// Validate is $validate: the issues Ward's validation finds in res for
// mode (create, update: the schema and StructureDefinition rules a write
// would apply; delete: whether the caller could delete typ/id). It stores
// nothing and reads only what delete mode decides on, through the same
// access decision as a read. res is nil for delete.
func (r *Repo) Validate(ctx context.Context, typ, id, mode string, res *fhir.Resource) ([]fhir.Issue, error) {
	switch mode {
	case "", ValidateCreate, ValidateUpdate:
	case ValidateDelete:
		if id == "" {
			return nil, problem.New(problem.ErrInvalid, "required", "mode delete needs a resource id ([type]/[id]/$validate)")
		}
		if _, err := r.Read(ctx, typ, id); err != nil {
			return nil, err
		}
		return []fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: "the resource exists and no rule of Ward prevents its deletion by this caller"}}, nil
	default:
		return nil, problem.At(problem.ErrInvalid, "value", "Parameters.parameter.mode", "mode must be create, update or delete")
	}
	if res == nil {
		return nil, problem.New(problem.ErrInvalid, "required", "a resource to validate is required")
	}
	if typ != "" && res.Type != typ {
		return []fhir.Issue{fhir.IssueFrom("invalid", "resourceType", "the resource's type is not the type in the URL")}, nil
	}
	var issues []fhir.Issue
	switch {
	case mode == ValidateUpdate && id == "" && res.ID == "":
		issues = append(issues, fhir.IssueFrom("required", res.Type+".id", "an update needs the resource id"))
	case mode == ValidateUpdate && id != "" && res.ID != id:
		issues = append(issues, fhir.IssueFrom("invalid", res.Type+".id", "the resource id is not the id in the URL"))
	}
	issues = append(issues, r.s.val.Validate(res)...)
	rec := r.record("validate", res.Type)
	rec.Detail = "mode:" + strings.TrimSpace(mode)
	if err := r.commitAudit(rec); err != nil {
		return nil, err
	}
	if len(issues) == 0 {
		issues = []fhir.Issue{{Severity: "information", Code: "informational", Diagnostics: "no issues found"}}
	}
	return issues, nil
}

// DiscloseDeidentified makes the ledger record of a de-identified extract
// durable before any of it is sent: the method, a keyed tag of the project
// (never its key) and the patients whose records it holds. The caller
// streams the extract only after it returns nil.
func (r *Repo) DiscloseDeidentified(ctx context.Context, method, projectTag string, patients []string) error {
	rec := r.record("deidentified-disclosure", "Patient")
	rec.Purpose = r.subj.Purpose
	rec.Detail = "method:" + method + ";project:" + projectTag
	for _, p := range patients {
		rec.Entities = append(rec.Entities, "Patient/"+p)
	}
	rec.Outcome = audit.OutcomeSuccess
	return r.commitAudit(rec)
}
