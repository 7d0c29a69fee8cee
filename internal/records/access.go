package records

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/facts"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/store"
)

// defaultEncWindow is how far back an Encounter makes a care relationship
// unless configured.
const defaultEncWindow = 90 * 24 * time.Hour

// targetOf describes one resource version for the decision: its type and
// id, the patients whose compartment it is in, its security labels and
// categories.
func targetOf(tenant, typ, id string, doc map[string]any) authz.Target {
	t := authz.Target{Tenant: tenant, Type: typ, ID: id, Instance: true}
	t.Patients = facts.PatientsOf(typ, id, doc)
	if meta, ok := doc["meta"].(map[string]any); ok {
		if sec, ok := meta["security"].([]any); ok {
			for _, c := range sec {
				cm, _ := c.(map[string]any)
				if code, _ := cm["code"].(string); code != "" {
					t.Labels = append(t.Labels, code)
				}
			}
		}
	}
	t.Categories = conceptCodes(doc["category"])
	return t
}

func conceptCodes(v any) []string {
	var list []any
	switch x := v.(type) {
	case []any:
		list = x
	case map[string]any:
		list = []any{x}
	}
	var out []string
	for _, cc := range list {
		m, _ := cc.(map[string]any)
		cs, _ := m["coding"].([]any)
		for _, c := range cs {
			cm, _ := c.(map[string]any)
			if code, _ := cm["code"].(string); code != "" {
				out = append(out, code)
			}
		}
	}
	return out
}

// decideType is the type-level decision of a on typ: whether the caller's
// role and scopes allow a on typ at all, before any resource is loaded.
func (r *Repo) decideType(a authz.Action, typ string) authz.Decision {
	return authz.Decide(r.subj, a, authz.Target{Tenant: r.subj.Tenant, Type: typ}, authz.Facts{AdminPHI: !r.s.noAdminPHI})
}

func (r *Repo) clinician() bool {
	return r.subj.Role == authz.RolePhysician || r.subj.Role == authz.RoleNurse
}

// hidesExistence says a refused read must not reveal whether the resource
// exists: a subject whose access to typ depends on the record (clinicians
// and patients on patient data) gets 403 for an unknown or deleted id too.
func (r *Repo) hidesExistence(typ string) bool {
	return (r.clinician() || r.subj.Role == authz.RoleUser) && (typ == "" || compartment.InPatientCompartment(typ))
}

// decideOn decides a on one resource and audits a refusal. On success it
// marks rec with the purpose of use and, for a break-the-glass override,
// as an emergency with the reason code (never the free text).
func (r *Repo) decideOn(ctx context.Context, a authz.Action, rec *audit.Record, t authz.Target) error {
	// The patients are named before the decision: a refused attempt on a
	// patient's record belongs to that patient's audit trail too.
	notePatients(rec, t.Patients)
	f, err := r.facts.Load(ctx, t)
	if err != nil {
		return err
	}
	d := authz.Decide(r.subj, a, t, f)
	rec.Purpose = d.Purpose
	if !d.Allow {
		return r.refuse(rec, audit.OutcomeMinor, denial(d),
			problem.New(problem.ErrForbidden, "forbidden", "access denied by policy"))
	}
	if d.Emergency {
		r.markEmergency(ctx, rec, d)
	}
	return nil
}

func denial(d authz.Decision) string {
	return "denied:" + strings.Join(d.Reasons, ":")
}

// markEmergency marks an access that break-the-glass allowed: Emergency,
// and in Detail the reason code and the rules it overrode.
func (r *Repo) markEmergency(ctx context.Context, rec *audit.Record, d authz.Decision) {
	rec.Emergency = true
	var overrode []string
	for _, why := range d.Reasons {
		if why == authz.ReasonNoRelation || why == authz.ReasonNoPractLink || strings.HasPrefix(why, authz.ReasonConsentDeny) {
			overrode = append(overrode, why)
		}
	}
	detail := "break-glass:" + r.breakGlassCode(ctx)
	if len(overrode) > 0 {
		detail += ":overrode:" + strings.Join(overrode, ":")
	}
	if !strings.Contains(rec.Detail, detail) {
		if rec.Detail != "" {
			rec.Detail += ";"
		}
		rec.Detail += detail
	}
}

// breakGlassCodes are reasons a client may send as a code; they are
// stored as given. Any other reason is free text that may name the
// patient or their condition: the ledger keeps only a keyed hash of it
// (the tenant's blind-index key), so a reviewer holding the text the
// clinician wrote elsewhere can match it, and nobody can read it back.
var breakGlassCodes = []string{"ETREAT", "BTG", "ERTREAT", "EMERGENCY", "UNCONSCIOUS", "CARDIAC-ARREST", "TRAUMA", "POISONING", "OVERDOSE", "STROKE"}

func (r *Repo) breakGlassCode(ctx context.Context) string {
	reason := strings.TrimSpace(r.subj.BreakGlass)
	if c := strings.ToUpper(reason); slices.Contains(breakGlassCodes, c) {
		return c
	}
	b, err := r.s.keys.Blinder(ctx, r.subj.Tenant)
	if err != nil {
		return "text"
	}
	sum := b.Index("break-glass-reason", reason)
	return "text-" + hex.EncodeToString(sum[:8])
}

func (r *Repo) decideVersion(ctx context.Context, a authz.Action, rec *audit.Record, v *store.Version) ([]byte, error) {
	plain, err := r.open(ctx, v)
	if err != nil {
		return nil, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
	}
	res, err := fhir.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("stored %s/%s does not parse: %w", v.Type, v.ID, err)
	}
	t := targetOf(r.subj.Tenant, v.Type, v.ID, res.Doc)
	if a.IsWrite() {
		// An update's new content is decided too (writeTarget): this is
		// what it replaces, or deletes, in every compartment it is in.
		t.Patients = linkedPatients(v.Type, res.Doc, t.Patients)
	}
	t.Replaced = a == authz.Update
	if err := r.decideOn(ctx, a, rec, t); err != nil {
		return nil, err
	}
	return plain, nil
}

// hidden refuses like a policy denial, for a subject that must not learn
// whether typ/id exists (what is recorded says what happened).
func (r *Repo) hidden(rec *audit.Record, what string) error {
	return r.refuse(rec, audit.OutcomeMinor, "denied:"+what,
		problem.New(problem.ErrForbidden, "forbidden", "access denied by policy"))
}

// instance loads version n of typ/id (0: the current one) for the
// interaction recorded in rec. An unknown one is refused: like a policy
// denial (403) for a caller from whom its existence is hidden
// (hidesExistence), else as not found (404). A deletion is returned, for
// the caller to decide on (decideDeleted).
func (r *Repo) instance(ctx context.Context, rec *audit.Record, typ, id string, n int64) (*store.Version, error) {
	var v *store.Version
	var err error
	if n == 0 {
		v, err = r.s.st.Current(ctx, r.subj.Tenant, typ, id)
	} else {
		v, err = r.s.st.Version(ctx, r.subj.Tenant, typ, id, n)
	}
	switch {
	case errors.Is(err, store.ErrNotFound) && r.hidesExistence(typ):
		return nil, r.hidden(rec, "not-found")
	case errors.Is(err, store.ErrNotFound):
		what := typ + "/" + id
		if n != 0 {
			what += fmt.Sprintf(" version %d", n)
		}
		return nil, r.refuse(rec, audit.OutcomeMinor, "not-found",
			problem.New(problem.ErrNotFound, "not-found", what+" is not known"))
	case err != nil:
		return nil, store.Problem(err)
	}
	return v, nil
}

// decideDeleted decides a on deleted v as on the last version before its
// deletion: the fact of deletion is disclosed only to a caller who could
// have acted on the resource before. Without such a version it is
// refused as if unknown (403).
func (r *Repo) decideDeleted(ctx context.Context, a authz.Action, rec *audit.Record, v *store.Version) error {
	if len(v.Body) > 0 {
		// Erased (Patient/$erase): deleted with its body kept, sealed
		// under a destroyed key. Nothing of it can be decided on or
		// disclosed; that it is gone is all there is.
		return nil
	}
	live, err := r.lastLive(ctx, v)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return r.hidden(rec, "deleted")
	case err != nil:
		return err
	}
	_, err = r.decideVersion(ctx, a, rec, live)
	return err
}

// lastLive returns the last version of a deleted resource that has a
// body, to decide whether the caller may learn of the deletion.
func (r *Repo) lastLive(ctx context.Context, v *store.Version) (*store.Version, error) {
	for n := v.Version - 1; n > 0; n-- {
		pv, err := r.s.st.Version(ctx, v.Tenant, v.Type, v.ID, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, store.Problem(err)
		}
		if !pv.Deleted {
			return pv, nil
		}
	}
	return nil, store.ErrNotFound
}

// allowed decides one resource of a list (search, _include, history) the
// caller is shown or not: a refused one is silently left out, an
// emergency one marks the record. A fact-loading failure leaves it out.
func (r *Repo) allowed(ctx context.Context, a authz.Action, t authz.Target, rec *audit.Record) bool {
	f, err := r.facts.Load(ctx, t)
	if err != nil {
		return false
	}
	d := authz.Decide(r.subj, a, t, f)
	if d.Allow && d.Emergency {
		r.markEmergency(ctx, rec, d)
	}
	if d.Allow {
		notePatients(rec, t.Patients)
	}
	return d.Allow
}

// notePatients adds ps to the patients rec names (the ledger's patient
// index, audit.Record.Patients): opaque ids, never names. Repeats are
// dropped when the record is chained.
func notePatients(rec *audit.Record, ps []string) {
	rec.Patients = append(rec.Patients, ps...)
}

// patientsOf are the patients whose compartments the stored resource
// plain is in; a Patient is its own without parsing.
func patientsOf(typ, id string, plain []byte) []string {
	if typ == "Patient" {
		return []string{id}
	}
	doc, err := fhir.Parse(plain)
	if err != nil {
		return nil
	}
	return facts.PatientsOf(typ, id, doc.Doc)
}

// restriction is the SQL condition (over alias r) that keeps a search of
// types to what the caller may see: for each type, the patients whose
// compartment it may reach, no security label it is not cleared for, and
// the categories its scopes are constrained to. "" means no restriction.
func (r *Repo) restriction(ctx context.Context, types []string, k search.Keyer) (string, []any, error) {
	return r.restrictionOn(ctx, types, k, "r")
}

// restrictionOn is restriction over the resources row of alias a (a chain
// hop or _has subquery of a search, see searchOptions).
func (r *Repo) restrictionOn(ctx context.Context, types []string, k search.Keyer, a string) (string, []any, error) {
	res, err := r.restrict(ctx, types, k, a)
	if err != nil {
		return "", nil, err
	}
	return res.where, res.args, nil
}

// restricted is a search's restriction in SQL, and what it promises.
type restricted struct {
	where string
	args  []any
	// exact: every resource kept outside the compartments of the partial
	// patients passes the per-resource decision (authz.Restriction.Exact,
	// for every type searched).
	exact bool
	// partial is the SQL condition (over the same alias) that holds for
	// the resources in the compartments of patients whose consents decide
	// per resource; "" when there are none.
	partial     string
	partialArgs []any
}

// skipsDecision says the per-resource decision may be skipped for every
// resource the restriction keeps.
func (x restricted) skipsDecision() bool { return x.exact && x.partial == "" }

// restrict is the restriction of a search of types over the resources row
// of alias a.
func (r *Repo) restrict(ctx context.Context, types []string, k search.Keyer, a string) (restricted, error) {
	var out restricted
	f := authz.Facts{Now: r.s.now().UTC(), AdminPHI: !r.s.noAdminPHI}
	needFacts := false
	for _, t := range types {
		if authz.NeedsRelationship(r.subj, t) {
			needFacts = true
		}
	}
	if r.subj.Role != authz.RoleUser && slices.ContainsFunc(types, compartment.InPatientCompartment) {
		// Everyone but a patient is bound by patients' consents: the
		// tenant's active ones, when there are few enough to hold.
		cs, complete, err := r.facts.TenantConsents(ctx)
		if err != nil {
			return out, err
		}
		f.Consents, f.AllConsents = cs, complete
	}
	if needFacts && !(r.subj.Role == authz.RolePhysician && r.subj.BreakGlass != "") {
		care, err := r.facts.CareSet(ctx)
		if err != nil {
			return out, err
		}
		f.CareOf = care
		if f.Organizations, err = r.facts.Organizations(ctx); err != nil && r.subj.Practitioner != "" {
			return out, err
		}
		if !f.AllConsents {
			if f.Consents, err = r.facts.Consents(ctx, care); err != nil {
				return out, err
			}
		}
	}
	out.exact = true
	var free []string
	var ors, partial []string
	var args []any
	for _, t := range types {
		rest := authz.Restrict(r.subj, authz.Search, t, f)
		out.exact = out.exact && rest.Exact
		if len(rest.Partial) > 0 {
			c, ca := patientCond(a, t, rest.Partial, k)
			partial = append(partial, search.OfType(a, c))
			out.partialArgs = append(append(out.partialArgs, t), ca...)
		}
		var conds []string
		targs := []any{t}
		if !rest.All {
			c, ca := patientCond(a, t, rest.Patients, k)
			conds = append(conds, c)
			targs = append(targs, ca...)
		}
		if len(rest.ExcludePatients) > 0 {
			c, ca := patientCond(a, t, rest.ExcludePatients, k)
			conds = append(conds, search.Not(c))
			targs = append(targs, ca...)
		}
		if len(rest.ExcludeLabels) > 0 {
			for _, l := range rest.ExcludeLabels {
				targs = append(targs, r.s.labelHash(k, l))
			}
			conds = append(conds, search.WithoutLabels(a, t, len(rest.ExcludeLabels)))
		}
		if constrained, cats := authz.ScopeConstraints(r.subj, authz.Search, t); constrained {
			for _, c := range cats {
				targs = append(targs, search.TokenHash(k, c))
			}
			conds = append(conds, search.InCategories(a, t, len(cats)))
		}
		if len(conds) == 0 {
			free = append(free, t)
			continue
		}
		ors = append(ors, search.OfType(a, conds...))
		args = append(args, targs...)
	}
	if len(partial) > 0 {
		out.partial = search.AnyOf(partial)
	}
	if len(ors) == 0 {
		return out, nil
	}
	var head []any
	if len(free) > 0 {
		ors = append([]string{search.TypesIn(a, len(free))}, ors...)
		for _, t := range free {
			head = append(head, t)
		}
	}
	out.where, out.args = search.AnyOf(ors), append(head, args...)
	return out, nil
}

// patientCond keeps resources of typ (alias a) in the compartments of
// patients.
func patientCond(a, typ string, patients []string, k search.Keyer) (string, []any) {
	hs := make([]any, len(patients))
	for i, p := range patients {
		hs[i] = search.RefHash(k, "Patient", p)
	}
	var pids []int32
	if typ != "Patient" && len(patients) > 0 {
		pids = compartmentPIDs(typ)
	}
	if cond := search.InCompartments(a, typ == "Patient", pids, len(hs)); cond != search.NoRows {
		return cond, hs
	}
	return search.NoRows, nil
}

// searchOptions are the search options of the caller's searches: every
// chain hop and _has subquery is restricted like a search of its type, so
// a chain or _has never matches through a resource the caller may not see
// (a hop through a type the caller may not search matches nothing).
func (r *Repo) searchOptions(ctx context.Context, k search.Keyer) search.Options {
	o := r.s.search
	o.Restrict = func(typ, alias string) (string, []any, error) {
		if d := r.decideType(authz.Search, typ); !d.Allow {
			return search.NoRows, nil, nil
		}
		res, err := r.restrict(ctx, []string{typ}, k, alias)
		if err != nil || res.partial == "" {
			return res.where, res.args, err
		}
		// A hop's rows are never decided one by one: the compartments of
		// patients whose consents decide per resource are left out of it
		// (stricter than the decision, never looser).
		cond := search.Not(res.partial)
		if res.where != "" {
			cond = search.Paren(res.where) + ` AND ` + cond
		}
		return cond, append(slices.Clone(res.args), res.partialArgs...), nil
	}
	return o
}

// labelKey names a security label's token hash under one index key.
type labelKey struct {
	b     *seal.Blinder
	label string
}

// labelHash is search.TokenHash(k, label), remembered per index key: a
// search excludes every label its caller is not cleared for, so the same
// few hashes would otherwise be computed on every search.
func (s *Service) labelHash(k search.Keyer, label string) int64 {
	bk, ok := k.(search.BlindKeyer)
	if !ok {
		return search.TokenHash(k, label)
	}
	key := labelKey{bk.B, label}
	if h, ok := s.labels.Load(key); ok {
		return h.(int64)
	}
	h := search.TokenHash(k, label)
	s.labels.Store(key, h)
	return h
}

func (r *Repo) parsed(v *store.Version) (map[string]any, error) {
	// Unfenced: the writes that read a current version have no read's
	// context here; each reads the key state afresh, as Open does.
	plain, err := r.open(context.Background(), v)
	if err != nil {
		return nil, err
	}
	res, err := fhir.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("stored %s/%s does not parse: %w", v.Type, v.ID, err)
	}
	return res.Doc, nil
}
