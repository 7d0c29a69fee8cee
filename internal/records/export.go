package records

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
)

// Bulk export kinds (FHIR Bulk Data Access: system, Patient and Group
// level).
const (
	ExportSystem  = "system"
	ExportPatient = "patient"
	ExportGroup   = "group"
)

// exportPage is how many versions one store read returns while exporting.
const exportPage = 500

// ExportTypes returns the resource types an export of kind reads when the
// client names none: every type (system), or the Patient compartment's.
func ExportTypes(kind string) []string {
	if kind == ExportSystem {
		return fhir.ResourceTypes()
	}
	return compartment.PatientTypes()
}

// ExportKickoff decides a Bulk Data export for the caller before a job is
// queued, and audits it. types are the types the client asked for (nil:
// all the kind allows); a named type the caller may not search is refused
// (audited, 403); without named types the export covers the types the
// caller may search (403 if none). A Group export reads the Group (an
// audited read: 404 if unknown). It returns the types the job exports.
func (r *Repo) ExportKickoff(ctx context.Context, jobID, kind, groupID string, types []string) ([]string, error) {
	rec := r.record("export-kickoff", "")
	rec.Detail = "job:" + jobID + ":" + kind
	allowed := func(t string) bool {
		return r.decideType(authz.Search, t).Allow
	}
	var out []string
	if len(types) > 0 {
		for _, t := range types {
			if kind != ExportSystem && !compartment.InPatientCompartment(t) {
				return nil, r.refuse(rec, audit.OutcomeMinor, "invalid", problem.At(problem.ErrInvalid, "invalid", "_type",
					t+" is not in the Patient compartment, so a Patient or Group export cannot include it"))
			}
			if !allowed(t) {
				rec.ResourceType = t
				return nil, r.decide(authz.Search, rec)
			}
		}
		out = types
	} else {
		for _, t := range ExportTypes(kind) {
			if allowed(t) {
				out = append(out, t)
			}
		}
		if len(out) == 0 {
			return nil, r.refuse(rec, audit.OutcomeMinor, "denied:no-type-searchable",
				problem.New(problem.ErrForbidden, "forbidden", "access denied by policy"))
		}
	}
	if kind == ExportGroup {
		rec.ResourceType = "Group"
		if _, err := r.Read(ctx, "Group", groupID); err != nil {
			return nil, err
		}
		rec.Entities = []string{"Group/" + groupID}
	}
	return out, r.commitAudit(rec)
}

// GroupMembers returns the ids of the Patients a Group lists in
// Group.member (other member types are left out), read as the caller (an
// audited read).
func (r *Repo) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	g, err := r.Read(ctx, "Group", groupID)
	if err != nil {
		return nil, err
	}
	res, err := fhir.Parse(g.JSON)
	if err != nil {
		return nil, fmt.Errorf("stored Group/%s does not parse: %w", groupID, err)
	}
	members, _ := res.Doc["member"].([]any)
	var ids []string
	seen := map[string]bool{}
	for _, m := range members {
		mm, _ := m.(map[string]any)
		ent, _ := mm["entity"].(map[string]any)
		ref, _ := ent["reference"].(string)
		id, ok := strings.CutPrefix(ref, "Patient/")
		if !ok || !fhir.IsID(id) || seen[id] {
			continue
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

// ExportQuery selects what Export reads of one type.
type ExportQuery struct {
	Type string
	// Since: only resources changed after it (zero: no bound). Until: the
	// export's transaction time; resources changed after it are left out
	// (zero: no bound).
	Since, Until time.Time
	// Patients, when not nil, restricts the export to the compartments of
	// these Patients (a Group export).
	Patients []string
}

// Export streams the current, not deleted resources of q.Type to fn, a
// page at a time, so memory stays bounded whatever the number. The caller
// must be allowed to search the type (a refusal is audited). Export does
// not audit what it hands to fn: its only caller, the bulk export worker,
// seals it into the job's output at once, and the disclosure is audited
// when the requester downloads it (DiscloseExport).
func (r *Repo) Export(ctx context.Context, q ExportQuery, fn func(Resource) error) error {
	rec := r.record("export-read", q.Type)
	if err := r.decide(authz.Search, rec); err != nil {
		return err
	}
	emit := func(vs []store.Version) error {
		for i := range vs {
			v := &vs[i]
			if v.Deleted || !q.Since.IsZero() && !v.LastUpdated.After(q.Since) || !q.Until.IsZero() && v.LastUpdated.After(q.Until) {
				continue
			}
			plain, err := r.open(ctx, v)
			if err != nil {
				return r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
			}
			// The requester's access to each resource is decided as for a
			// read (care relationship, consent, labels): an export holds
			// only what its requester could read one by one.
			doc, err := fhir.Parse(plain)
			if err != nil {
				return fmt.Errorf("stored %s/%s does not parse: %w", v.Type, v.ID, err)
			}
			if !r.readable(ctx, rec, v.Type, v.ID, doc.Doc) {
				continue
			}
			if err := fn(Resource{Type: v.Type, ID: v.ID, Version: v.Version, LastUpdated: v.LastUpdated, JSON: plain}); err != nil {
				return err
			}
		}
		return nil
	}
	if q.Patients == nil {
		after := ""
		for {
			vs, err := r.s.st.List(ctx, store.ListQuery{Tenant: r.subj.Tenant, Type: q.Type, After: after, Limit: exportPage})
			if err != nil {
				return store.Problem(err)
			}
			if err := emit(vs); err != nil {
				return err
			}
			if len(vs) < exportPage {
				return nil
			}
			after = vs[len(vs)-1].ID
		}
	}
	return r.exportCompartments(ctx, q, emit)
}

// groupChunk is how many Patients one compartment query names (the search
// parser's limit of values per parameter).
const groupChunk = 100

// exportCompartments reads the resources of q.Type in the compartments of
// q.Patients: for Patient the Patients themselves, otherwise every
// resource that one of the type's compartment parameters links to one of
// them, each once.
func (r *Repo) exportCompartments(ctx context.Context, q ExportQuery, emit func([]store.Version) error) error {
	if q.Type == "Patient" {
		for c := range slices.Chunk(q.Patients, exportPage) {
			refs := make([]store.Ref, len(c))
			for i, id := range c {
				refs[i] = store.Ref{Type: "Patient", ID: id}
			}
			vs, err := r.s.st.Refs(ctx, r.subj.Tenant, refs)
			if err != nil {
				return store.Problem(err)
			}
			slices.SortFunc(vs, func(a, b store.Version) int { return strings.Compare(a.ID, b.ID) })
			if err := emit(vs); err != nil {
				return err
			}
		}
		return nil
	}
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return err
	}
	// A resource in two members' compartments (or linked through two
	// parameters) is written once. The set holds ids of this type only.
	seen := map[string]struct{}{}
	for _, p := range compartment.PatientParams(q.Type) {
		for c := range slices.Chunk(q.Patients, groupChunk) {
			vals := make([]string, len(c))
			for i, id := range c {
				vals[i] = "Patient/" + id
			}
			pq, err := query.Parse(q.Type, url.Values{p: {strings.Join(vals, ",")}},
				query.Options{Strict: true, DefaultCount: exportPage, MaxCount: exportPage, Supported: search.Supported})
			if err != nil {
				var qe *query.Error
				if errors.As(err, &qe) {
					return fmt.Errorf("export %s by compartment parameter %s: %v", q.Type, p, qe)
				}
				return err
			}
			sq, err := search.Plan(pq, r.subj.Tenant, k, r.s.search)
			if err != nil {
				return fmt.Errorf("export %s by compartment parameter %s: %w", q.Type, p, err)
			}
			sq.Types = []string{q.Type}
			sq.Limit = exportPage
			for {
				hits, err := r.s.st.Search(ctx, *sq)
				if err != nil {
					return store.Problem(err)
				}
				vs := make([]store.Version, 0, len(hits))
				for _, h := range hits {
					if _, dup := seen[h.ID]; dup {
						continue
					}
					seen[h.ID] = struct{}{}
					vs = append(vs, h.Version)
				}
				if err := emit(vs); err != nil {
					return err
				}
				if len(hits) < exportPage {
					break
				}
				last := hits[len(hits)-1]
				sq.After = append(append([]any(nil), last.Keys...), last.RID)
			}
		}
	}
	return nil
}

// DiscloseExport makes the ledger record of one export file's download
// durable: the file's references, the job and the part. The caller sends
// the file only after it returns nil.
func (r *Repo) DiscloseExport(ctx context.Context, jobID string, part int, typ string, refs []string) error {
	rec := r.record("export-download", typ)
	rec.Detail = fmt.Sprintf("job:%s:part:%d", jobID, part)
	rec.Entities = refs
	if err := r.exportPatients(ctx, rec, refs); err != nil {
		return err
	}
	return r.commitAudit(rec)
}

// exportPatients names in rec the patients of an export file's resources,
// for the patient index: a Patient is its own; any other resource's
// current version is read (in pages) for its compartments. A download is
// rare and the file already cost a full read, so this second read is the
// price of an accounting that lists bulk disclosures per patient.
func (r *Repo) exportPatients(ctx context.Context, rec *audit.Record, refs []string) error {
	var want []store.Ref
	for _, rf := range refs {
		typ, rest, ok := strings.Cut(rf, "/")
		id, _, _ := strings.Cut(rest, "/")
		switch {
		case !ok || id == "":
		case typ == "Patient":
			notePatients(rec, []string{id})
		default:
			want = append(want, store.Ref{Type: typ, ID: id})
		}
	}
	const page = 500
	for start := 0; start < len(want); start += page {
		vs, err := r.s.st.Refs(ctx, r.subj.Tenant, want[start:min(len(want), start+page)])
		if err != nil {
			return fmt.Errorf("%w: export patients: %v", problem.ErrUnavailable, err)
		}
		for i := range vs {
			plain, err := r.open(ctx, &vs[i])
			if err != nil {
				continue // the file was made from it; its patients are unknown now
			}
			notePatients(rec, patientsOf(vs[i].Type, vs[i].ID, plain))
		}
	}
	return nil
}

// AuditExport records an export job event of the caller ("export-cancel")
// and fails closed like every record.
func (r *Repo) AuditExport(ctx context.Context, action, jobID string) error {
	rec := r.record(action, "")
	rec.Detail = "job:" + jobID
	return r.commitAudit(rec)
}

// ExportRef is the ledger reference of an exported version.
func ExportRef(res Resource) string { return ref(res.Type, res.ID, res.Version) }

// Subject is the caller the repository is bound to.
func (r *Repo) Subject() authz.Subject { return r.subj }
