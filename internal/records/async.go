package records

import (
	"context"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
)

// AsyncKickoff decides an asynchronous request (a search or $everything
// queued with Prefer: respond-async) for the caller before its job is
// queued, and audits it: the caller must be allowed to search each of
// types (none for a system-level search, whose types are decided when it
// runs). The request itself is decided again, resource by resource, when
// it runs as the caller.
func (r *Repo) AsyncKickoff(ctx context.Context, jobID string, types []string) error {
	rec := r.record("async-kickoff", "")
	rec.Detail = "job:" + jobID
	if err := r.decideTypes(rec, types); err != nil {
		return err
	}
	return r.commitAudit(rec)
}

// DiscloseAsync records the download of an asynchronous request's answer,
// naming every resource version in it (refs) and their patients, after
// deciding again that the caller may search types: access that was
// withdrawn since the kick-off withdraws the answer too.
func (r *Repo) DiscloseAsync(ctx context.Context, jobID string, types, refs []string) error {
	rec := r.record("async-download", "")
	rec.Detail = "job:" + jobID
	if err := r.decideTypes(rec, types); err != nil {
		return err
	}
	rec.Entities = refs
	if err := r.exportPatients(ctx, rec, refs); err != nil {
		return err
	}
	return r.commitAudit(rec)
}

// decideTypes decides a search of each of types for rec (a refusal is
// audited and returned).
func (r *Repo) decideTypes(rec *audit.Record, types []string) error {
	for _, t := range types {
		rec.ResourceType = t
		if err := r.decide(authz.Search, rec); err != nil {
			return err
		}
	}
	rec.ResourceType = ""
	return nil
}
