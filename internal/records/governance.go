package records

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/store"
)

// writeTarget describes the content a write stores for the decision: the
// resource as targetOf sees it and, when it replaces old (nil: nothing is
// replaced), the security labels it removes and whether it changes
// nothing but labels.
func writeTarget(tenant, typ, id string, old, doc map[string]any) authz.Target {
	t := targetOf(tenant, typ, id, doc)
	t.Patients = linkedPatients(typ, doc, t.Patients)
	if old == nil {
		return t
	}
	for _, l := range labelsOf(old) {
		if !slices.Contains(t.Labels, l) && !slices.Contains(t.RemovedLabels, l) {
			t.RemovedLabels = append(t.RemovedLabels, l)
		}
	}
	t.LabelsOnly = sameContent(old, doc)
	return t
}

// linkedPatients adds to patients, for a Patient, the Patients it links
// to (Patient.link, the compartment parameter of the Patient type): the
// resource is in their compartments too, so a write of it is decided on
// them. (A read is decided on the Patient itself.)
func linkedPatients(typ string, doc map[string]any, patients []string) []string {
	if typ != "Patient" {
		return patients
	}
	links, _ := doc["link"].([]any)
	for _, l := range links {
		lm, _ := l.(map[string]any)
		other, _ := lm["other"].(map[string]any)
		ref, _ := other["reference"].(string)
		if id, ok := strings.CutPrefix(ref, "Patient/"); ok && id != "" && !slices.Contains(patients, id) {
			patients = append(slices.Clip(patients), id)
		}
	}
	return patients
}

func labelsOf(doc map[string]any) []string {
	var out []string
	meta, _ := doc["meta"].(map[string]any)
	sec, _ := meta["security"].([]any)
	for _, c := range sec {
		cm, _ := c.(map[string]any)
		if code, _ := cm["code"].(string); code != "" {
			out = append(out, code)
		}
	}
	return out
}

// sameContent says a and b differ at most in meta and id.
func sameContent(a, b map[string]any) bool {
	strip := func(m map[string]any) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			if k != "meta" && k != "id" {
				out[k] = v
			}
		}
		return out
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// Ledger actions of the writes that change who may access patient data:
// each such write has, besides the record of its interaction, one of
// these records in the same commit, so that a reviewer finds every change
// of a consent, a care team, an encounter, a practitioner's roles, a
// general practitioner or a security label (`ward audit governance`).
const (
	ActionConsentChange   = "consent-change"
	ActionCareTeamChange  = "careteam-change"
	ActionEncounterChange = "encounter-change"
	ActionRoleChange      = "practitionerrole-change"
	ActionGPChange        = "gp-change"
	ActionLabelChange     = "label-change"
)

// GovernanceActions lists the ledger actions of access-governing changes.
var GovernanceActions = []string{ActionConsentChange, ActionCareTeamChange, ActionEncounterChange, ActionRoleChange, ActionGPChange, ActionLabelChange}

// governanceRecord returns the ledger record marking rec's write as a
// change of what governs access, or nil when it changes none: every write
// of a Consent, CareTeam, Encounter or PractitionerRole; a Patient write
// that changes generalPractitioner; any write that changes security
// labels. old is the content replaced (nil: none), doc the content
// written (nil: a deletion). Detail names the interaction (and "labels"
// when the labels changed too).
func governanceRecord(rec *audit.Record, typ string, old, doc map[string]any) *audit.Record {
	action := ""
	switch typ {
	case "Consent":
		action = ActionConsentChange
	case "CareTeam":
		action = ActionCareTeamChange
	case "Encounter":
		action = ActionEncounterChange
	case "PractitionerRole":
		action = ActionRoleChange
	case "Patient":
		if !reflect.DeepEqual(field(old, "generalPractitioner"), field(doc, "generalPractitioner")) {
			action = ActionGPChange
		}
	}
	relabel := false
	if doc != nil {
		ol, nl := labelsOf(old), labelsOf(doc)
		slices.Sort(ol)
		slices.Sort(nl)
		relabel = !slices.Equal(slices.Compact(ol), slices.Compact(nl))
	}
	if action == "" && !relabel {
		return nil
	}
	detail := rec.Action
	if action == "" {
		action = ActionLabelChange
	} else if relabel {
		detail += ":labels"
	}
	g := *rec
	g.Action = action
	g.ResourceType = typ
	g.Entities = slices.Clone(rec.Entities)
	g.Detail = detail
	return &g
}

func field(doc map[string]any, k string) any {
	if doc == nil {
		return nil
	}
	return doc[k]
}

// currentDoc returns the content of v (nil for a deletion).
func (r *Repo) currentDoc(v *store.Version) (map[string]any, error) {
	if v == nil || v.Deleted {
		return nil, nil
	}
	return r.parsed(v)
}

// docOf parses plain, the body of v.
func docOf(v *store.Version, plain []byte) (map[string]any, error) {
	res, err := fhir.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("stored %s/%s does not parse: %w", v.Type, v.ID, err)
	}
	return res.Doc, nil
}

// referenced reports whether any current resource is in the compartment
// of Patient/id: a Patient created under that id is not new, it writes
// into their compartment (and so is decided like an update of it).
func (r *Repo) referenced(ctx context.Context, id string) (bool, error) {
	types := slices.DeleteFunc(compartment.PatientTypes(), func(t string) bool { return t == "Patient" })
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return false, err
	}
	where, args := search.InCompartmentOf(types, compartmentPIDs, id, r.subj.Tenant, k)
	ok, err := r.s.st.Exists(ctx, []store.SearchQuery{{Tenant: r.subj.Tenant, Types: types, Where: []string{where}, Args: args, Limit: 1}})
	if err != nil {
		return false, store.Problem(err)
	}
	return ok[0], nil
}

// newPatient says a write of Patient/id with no current version creates a
// patient nobody's records name yet (authz.Target.New).
func (r *Repo) newPatient(ctx context.Context, typ, id string) (bool, error) {
	if typ != "Patient" {
		return false, nil
	}
	ref, err := r.referenced(ctx, id)
	return !ref, err
}

// guardInstance is, for a caller from whom existence is hidden
// (hidesExistence), the read decision on typ/id that an interaction on it
// must pass first: an unknown id, a deleted one whose last version the
// caller could not read, and one it may not read are all refused alike
// (403); a deleted one it could read is ErrGone, as a read answers (or
// passes, with deletedOK: its history lists the deletion).
func (r *Repo) guardInstance(ctx context.Context, rec *audit.Record, a authz.Action, typ, id string, deletedOK bool) error {
	if !r.hidesExistence(typ) {
		return nil
	}
	v, err := r.instance(ctx, rec, typ, id, 0)
	if err != nil {
		return err
	}
	if v.Deleted {
		if err := r.decideDeleted(ctx, a, rec, v); err != nil || deletedOK {
			return err
		}
		rec.Entities = []string{ref(typ, id, v.Version)}
		return r.refuse(rec, audit.OutcomeMinor, "deleted", problem.New(problem.ErrGone, "deleted", fmt.Sprintf("%s/%s was deleted", typ, id)))
	}
	_, err = r.decideVersion(ctx, a, rec, v)
	return err
}

// unchanged reports whether an update's document says exactly what the
// current version says: equal but for meta.versionId and
// meta.lastUpdated, which the server sets (a change of labels, tags or
// profiles is a change).
func unchanged(cur, next map[string]any) bool {
	return reflect.DeepEqual(withoutVersionMeta(cur), withoutVersionMeta(next))
}

// withoutVersionMeta is doc without meta.versionId and meta.lastUpdated
// (and without meta if nothing else is in it); doc is not changed.
func withoutVersionMeta(doc map[string]any) map[string]any {
	meta, ok := doc["meta"].(map[string]any)
	if !ok {
		return doc
	}
	out := make(map[string]any, len(doc))
	for k, v := range doc {
		out[k] = v
	}
	m := make(map[string]any, len(meta))
	for k, v := range meta {
		if k != "versionId" && k != "lastUpdated" {
			m[k] = v
		}
	}
	if len(m) == 0 {
		delete(out, "meta")
	} else {
		out["meta"] = m
	}
	return out
}
