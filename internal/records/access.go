package records

import (
	"context"
	"encoding/hex"
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
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
)

// Bounds of fact loading. A clinician's care set larger than maxCareSet
// is cut (which only narrows what they see); consents are read in chunks.
const (
	maxCareSet       = 10000
	maxConsents      = 1000
	consentChunk     = 100
	defaultEncWindow = 90 * 24 * time.Hour
)

// access holds the facts loaded for one Repo (one request), so that a
// search or transaction loads each at most once.
type access struct {
	orgs    []string
	orgsOK  bool
	careSet []string
	careOK  bool
	// created are the patients created earlier in this transaction: the
	// subject is registering them, they have no record to protect yet.
	created []string
	// pre is what prefetch learnt, until this Repo writes.
	pre *prefetched
}

// targetOf describes one resource version for the decision: its type and
// id, the patients whose compartment it is in, its security labels and
// categories.
func targetOf(tenant, typ, id string, doc map[string]any) authz.Target {
	t := authz.Target{Tenant: tenant, Type: typ, ID: id, Instance: true}
	t.Patients = patientsOf(typ, id, doc)
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

// patientsOf returns the ids of the patients whose compartment the
// resource is in, by the official compartment definition's parameters.
func patientsOf(typ, id string, doc map[string]any) []string {
	if typ == "Patient" {
		return []string{id}
	}
	var out []string
	for _, code := range compartment.PatientParams(typ) {
		p, ok := params.Lookup(typ, code)
		if !ok {
			continue
		}
		refs, err := search.References(doc, p)
		if err != nil {
			continue
		}
		for _, rf := range refs {
			if rf.Type == "Patient" && !slices.Contains(out, rf.ID) {
				out = append(out, rf.ID)
			}
		}
	}
	return out
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

func (r *Repo) clinician() bool {
	return r.subj.Role == authz.RolePhysician || r.subj.Role == authz.RoleNurse
}

// hidesExistence says a refused read must not reveal whether the resource
// exists: a subject whose access to typ depends on the record (clinicians
// and patients on patient data) gets 403 for an unknown or deleted id too.
func (r *Repo) hidesExistence(typ string) bool {
	return (r.clinician() || r.subj.Role == authz.RoleUser) && (typ == "" || compartment.InPatientCompartment(typ))
}

// facts loads what Decide needs about t: the subject's care relationship
// with t's patients, their organizations, and the patients' consents.
func (r *Repo) facts(ctx context.Context, t authz.Target) (authz.Facts, error) {
	f := authz.Facts{Now: r.s.now().UTC(), AdminPHI: !r.s.noAdminPHI}
	if !compartment.InPatientCompartment(t.Type) || len(t.Patients) == 0 {
		return f, nil
	}
	if r.clinician() && r.subj.Practitioner != "" {
		orgs, err := r.organizations(ctx)
		if err != nil {
			return f, err
		}
		f.Organizations = orgs
		if len(t.Patients) == 1 && r.subj.Role != authz.RoleUser && !r.acc.careOK && !slices.Contains(r.acc.created, t.Patients[0]) {
			if err := r.prefetch(ctx, t.Patients[0]); err != nil {
				return f, err
			}
		}
		for _, p := range t.Patients {
			ok := slices.Contains(r.acc.created, p)
			if !ok {
				if ok, err = r.related(ctx, p); err != nil {
					return f, err
				}
			}
			if ok {
				f.CareOf = append(f.CareOf, p)
			}
		}
	}
	if r.subj.Role != authz.RoleUser {
		cs, err := r.consents(ctx, t.Patients)
		if err != nil {
			return f, err
		}
		f.Consents = cs
	}
	return f, nil
}

// decideOn decides a on one resource and audits a refusal. On success it
// marks rec with the purpose of use and, for a break-the-glass override,
// as an emergency with the reason code (never the free text).
func (r *Repo) decideOn(ctx context.Context, a authz.Action, rec *audit.Record, t authz.Target) error {
	f, err := r.facts(ctx, t)
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

// factQuery plans a search the access layer runs for itself (never
// disclosed, never audited as a disclosure).
func (r *Repo) factQuery(ctx context.Context, typ string, q url.Values, limit int) (*store.SearchQuery, error) {
	pq, err := query.Parse(typ, q, query.Options{DefaultCount: limit, MaxCount: limit})
	if err != nil {
		return nil, fmt.Errorf("access facts: %w", err)
	}
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return nil, err
	}
	sq, err := search.Plan(pq, r.subj.Tenant, k, r.s.search)
	if err != nil {
		return nil, fmt.Errorf("access facts: %w", err)
	}
	sq.Types = []string{typ}
	sq.Limit = limit
	return sq, nil
}

func (r *Repo) factDocs(ctx context.Context, typ string, q url.Values, limit int) ([]store.Version, error) {
	sq, err := r.factQuery(ctx, typ, q, limit)
	if err != nil {
		return nil, err
	}
	return r.factSearch(ctx, sq)
}

func (r *Repo) factSearch(ctx context.Context, sq *store.SearchQuery) ([]store.Version, error) {
	hits, err := r.s.st.Search(ctx, *sq)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", problem.ErrUnavailable, err)
	}
	out := make([]store.Version, len(hits))
	for i := range hits {
		out[i] = hits[i].Version
	}
	return out, nil
}

func (r *Repo) parsed(v *store.Version) (map[string]any, error) {
	plain, err := r.open(v)
	if err != nil {
		return nil, err
	}
	res, err := fhir.Parse(plain)
	if err != nil {
		return nil, fmt.Errorf("stored %s/%s does not parse: %w", v.Type, v.ID, err)
	}
	return res.Doc, nil
}

// actorRefs are the references that name the subject as a member of care:
// its Practitioner and its organizations.
func (r *Repo) actorRefs(ctx context.Context) ([]string, error) {
	orgs, err := r.organizations(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{"Practitioner/" + r.subj.Practitioner}
	for _, o := range orgs {
		out = append(out, "Organization/"+o)
	}
	return out, nil
}

// organizations are the organizations of the subject's active
// PractitionerRoles.
func (r *Repo) organizations(ctx context.Context) ([]string, error) {
	if r.acc.orgsOK {
		return r.acc.orgs, nil
	}
	c, now := r.s.facts, r.s.now()
	key := relKey{r.subj.Tenant, r.subj.Practitioner, ""}
	if v, ok := getFact(c, c.orgs, factOrgs, key, now); ok {
		r.acc.orgs, r.acc.orgsOK = v, true
		return v, nil
	}
	gen := c.stampOf(factOrgs, key)
	vs, err := r.factDocs(ctx, "PractitionerRole", url.Values{"practitioner": {"Practitioner/" + r.subj.Practitioner}}, 100)
	if err != nil {
		return nil, err
	}
	var orgs []string
	p, _ := params.Lookup("PractitionerRole", "organization")
	for i := range vs {
		doc, err := r.parsed(&vs[i])
		if err != nil {
			return nil, err
		}
		if active, ok := doc["active"].(bool); ok && !active {
			continue
		}
		refs, _ := search.References(doc, p)
		for _, rf := range refs {
			if rf.Type == "Organization" && !slices.Contains(orgs, rf.ID) {
				orgs = append(orgs, rf.ID)
			}
		}
	}
	r.acc.orgs, r.acc.orgsOK = orgs, true
	putFact(c, c.orgs, key, gen, now, orgs)
	return orgs, nil
}

// related reports whether the subject (a linked clinician) has a care
// relationship with patient p: the Patient names them or their
// organization as generalPractitioner, an active CareTeam of p includes
// them, or an Encounter of p within the window lists them as participant.
func (r *Repo) related(ctx context.Context, p string) (bool, error) {
	if r.acc.careOK {
		return slices.Contains(r.acc.careSet, p), nil
	}
	if r.acc.pre != nil && r.acc.pre.patient == p {
		return r.acc.pre.related, nil
	}
	c, now := r.s.facts, r.s.now()
	key := relKey{r.subj.Tenant, r.subj.Practitioner, p}
	if v, ok := getFact(c, c.related, factRelated, key, now); ok {
		return v, nil
	}
	gen := c.stampOf(factRelated, key)
	ok, err := r.loadRelated(ctx, p)
	if err == nil {
		putFact(c, c.related, key, gen, now, ok)
	}
	return ok, err
}

func (r *Repo) loadRelated(ctx context.Context, p string) (bool, error) {
	qs, err := r.relationQueries(ctx, p)
	if err != nil {
		return false, err
	}
	ok, err := r.s.st.Exists(ctx, qs)
	if err != nil {
		return false, fmt.Errorf("%w: %v", problem.ErrUnavailable, err)
	}
	return ok[0], nil
}

// relationQueries are the three ways a care relationship with p arises,
// as memoized plans to ask in one statement: a cold decision pays one
// round trip and no planning. Each is driven by p (p's own row, or the
// index rows of references to p, a handful) and probes the clinician's
// part (their generalPractitioner, participant rows), so that its cost
// does not grow with the clinician's panel.
func (r *Repo) relationQueries(ctx context.Context, p string) ([]store.SearchQuery, error) {
	refs, err := r.actorRefs(ctx)
	if err != nil {
		return nil, err
	}
	actors := strings.Join(refs, ",")
	x := r.s.factPlans.sentinel
	type ask struct {
		memo, typ string
		pinned    url.Values // the patient's part (and what narrows it)
		probed    url.Values // the clinician's part
	}
	asks := []ask{
		{"gp\x00" + actors, "Patient", url.Values{"_id": {x}}, url.Values{"general-practitioner": {actors}}},
		{"careteam\x00" + actors, "CareTeam", url.Values{"patient": {"Patient/" + x}, "status": {"active"}, "date:missing": {"true"}}, url.Values{"participant": {actors}}},
		{"careteam-period\x00" + actors + "\x00" + r.nowMinute(), "CareTeam", url.Values{"patient": {"Patient/" + x}, "status": {"active"}, "date": {"ge" + r.nowMinute()}}, url.Values{"participant": {actors}}},
	}
	if r.s.encWindow >= 0 {
		from := r.windowStart()
		asks = append(asks, ask{"encounter\x00" + r.subj.Practitioner + "\x00" + from, "Encounter",
			url.Values{"patient": {"Patient/" + x}, "date": {"ge" + from}}, url.Values{"participant": {"Practitioner/" + r.subj.Practitioner}}})
	}
	qs := make([]store.SearchQuery, len(asks))
	for i, a := range asks {
		if qs[i], err = r.patientFactQuery(ctx, a.memo+"\x00pinned", a.typ, a.pinned, 1, p); err != nil {
			return nil, err
		}
		where, args, ok, err := r.probeFactQuery(ctx, a.memo+"\x00probed", a.typ, a.probed)
		if err != nil {
			return nil, err
		}
		if !ok {
			// Not the shape expected: the whole question as the planner
			// would ask it.
			whole := url.Values{}
			for k, v := range a.pinned {
				whole[k] = v
			}
			for k, v := range a.probed {
				whole[k] = v
			}
			if qs[i], err = r.patientFactQuery(ctx, a.memo, a.typ, whole, 1, p); err != nil {
				return nil, err
			}
			continue
		}
		qs[i].Where = append(slices.Clip(qs[i].Where), where...)
		qs[i].Args = append(slices.Clip(qs[i].Args), args...)
	}
	return qs, nil
}

// consentQuery is the question of p's active consents, memoized.
func (r *Repo) consentQuery(ctx context.Context, p string) (store.SearchQuery, error) {
	return r.patientFactQuery(ctx, "consents", "Consent", url.Values{"patient": {"Patient/" + r.s.factPlans.sentinel}, "status": {"active"}}, maxConsents, p)
}

// prefetch answers, in one statement, both questions a clinician's cold
// decision about one patient p asks: is p in their care, and has p any
// active consent. It caches both answers (a patient without consents
// needs no second query) and does nothing when either is cached already.
func (r *Repo) prefetch(ctx context.Context, p string) error {
	c, now := r.s.facts, r.s.now()
	rk, ck := relKey{r.subj.Tenant, r.subj.Practitioner, p}, relKey{r.subj.Tenant, "", p}
	if _, ok := getFact(c, c.related, factRelated, rk, now); ok {
		return nil
	}
	if _, ok := getFact(c, c.consents, factConsents, ck, now); ok {
		return nil
	}
	rs, cs := c.stampOf(factRelated, rk), c.stampOf(factConsents, ck)
	rel, err := r.relationQueries(ctx, p)
	if err != nil {
		return err
	}
	cq, err := r.consentQuery(ctx, p)
	if err != nil {
		return err
	}
	got, err := r.s.st.Exists(ctx, rel, []store.SearchQuery{cq})
	if err != nil {
		return fmt.Errorf("%w: %v", problem.ErrUnavailable, err)
	}
	r.acc.pre = &prefetched{patient: p, related: got[0], consents: got[1]}
	putFact(c, c.related, rk, rs, now, got[0])
	if !got[1] {
		putFact(c, c.consents, ck, cs, now, []authz.Consent(nil))
	}
	return nil
}

// prefetched is what prefetch learnt for this request, used even when the
// cache may not be (a node cut off from the invalidation bus).
type prefetched struct {
	patient           string
	related, consents bool
}

// windowStart is where the Encounter window begins, rounded up to the
// minute: a little narrower than configured (never wider), so that the
// plan of the Encounter question can be reused for a minute.
func (r *Repo) windowStart() string {
	t := r.s.now().UTC().Add(-r.s.encWindow)
	if c := t.Truncate(time.Minute); !c.Equal(t) {
		t = c.Add(time.Minute)
	}
	return t.Format("2006-01-02T15:04:05Z")
}

// careSet is every patient the subject has a care relationship with (at
// most maxCareSet), for restricting searches.
func (r *Repo) careSet(ctx context.Context) ([]string, error) {
	if r.acc.careOK {
		return r.acc.careSet, nil
	}
	if r.subj.Practitioner == "" {
		r.acc.careOK = true
		return nil, nil
	}
	c, now := r.s.facts, r.s.now()
	key := relKey{r.subj.Tenant, r.subj.Practitioner, ""}
	if v, ok := getFact(c, c.careSets, factCareSet, key, now); ok && len(r.acc.created) == 0 {
		r.acc.careSet, r.acc.careOK = v, true
		return v, nil
	}
	gen := c.stampOf(factCareSet, key)
	refs, err := r.actorRefs(ctx)
	if err != nil {
		return nil, err
	}
	actors := strings.Join(refs, ",")
	set := slices.Clone(r.acc.created)
	add := func(id string) {
		if len(set) < maxCareSet && !slices.Contains(set, id) {
			set = append(set, id)
		}
	}
	vs, err := r.factDocs(ctx, "Patient", url.Values{"general-practitioner": {actors}}, maxCareSet)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		add(v.ID)
	}
	from := func(typ string, q url.Values, param string) error {
		vs, err := r.factDocs(ctx, typ, q, maxCareSet)
		if err != nil {
			return err
		}
		p, _ := params.Lookup(typ, param)
		for i := range vs {
			doc, err := r.parsed(&vs[i])
			if err != nil {
				return err
			}
			rs, _ := search.References(doc, p)
			for _, rf := range rs {
				if rf.Type == "Patient" {
					add(rf.ID)
				}
			}
		}
		return nil
	}
	// An active CareTeam without a period, or whose period has not ended.
	if err := from("CareTeam", url.Values{"participant": {actors}, "status": {"active"}, "date:missing": {"true"}}, "patient"); err != nil {
		return nil, err
	}
	if err := from("CareTeam", url.Values{"participant": {actors}, "status": {"active"}, "date": {"ge" + r.nowMinute()}}, "patient"); err != nil {
		return nil, err
	}
	if r.s.encWindow >= 0 {
		if err := from("Encounter", url.Values{"participant": {"Practitioner/" + r.subj.Practitioner}, "date": {"ge" + r.windowStart()}}, "patient"); err != nil {
			return nil, err
		}
	}
	r.acc.careSet, r.acc.careOK = set, true
	if len(r.acc.created) == 0 {
		putFact(c, c.careSets, key, gen, now, set)
	}
	return set, nil
}

// consents loads the active consents of patients. A consent that cannot
// be applied counts as a deny of everything (fail closed; break-the-glass
// can still override it).
func (r *Repo) consents(ctx context.Context, patients []string) ([]authz.Consent, error) {
	c, now := r.s.facts, r.s.now()
	var out []authz.Consent
	var missing []string
	for _, p := range patients {
		if r.acc.pre != nil && r.acc.pre.patient == p && !r.acc.pre.consents {
			continue // none, as prefetch found
		}
		if v, ok := getFact(c, c.consents, factConsents, relKey{r.subj.Tenant, "", p}, now); ok {
			out = append(out, v...)
		} else {
			missing = append(missing, p)
		}
	}
	stamps := make(map[string]stamp, len(missing))
	for _, p := range missing {
		stamps[p] = c.stampOf(factConsents, relKey{r.subj.Tenant, "", p})
	}
	for start := 0; start < len(missing); start += consentChunk {
		chunk := missing[start:min(len(missing), start+consentChunk)]
		loaded, err := r.loadConsents(ctx, chunk)
		if err != nil {
			return nil, err
		}
		for _, p := range chunk {
			var mine []authz.Consent
			for _, cs := range loaded {
				if cs.Patient == p || cs.Patient == "" {
					mine = append(mine, cs)
				}
			}
			putFact(c, c.consents, relKey{r.subj.Tenant, "", p}, stamps[p], now, mine)
			out = append(out, mine...)
		}
	}
	return out, nil
}

// loadConsents reads the active consents of a chunk of patients.
func (r *Repo) loadConsents(ctx context.Context, chunk []string) ([]authz.Consent, error) {
	var sq *store.SearchQuery
	if len(chunk) == 1 {
		// The question of a single decision: a memoized plan.
		q, err := r.consentQuery(ctx, chunk[0])
		if err != nil {
			return nil, err
		}
		sq = &q
	} else {
		refs := make([]string, len(chunk))
		for i, p := range chunk {
			refs[i] = "Patient/" + p
		}
		q, err := r.factQuery(ctx, "Consent", url.Values{"patient": {strings.Join(refs, ",")}, "status": {"active"}}, maxConsents)
		if err != nil {
			return nil, err
		}
		sq = q
	}
	vs, err := r.factSearch(ctx, sq)
	if err != nil {
		return nil, err
	}
	return r.consentsOf(vs)
}

func (r *Repo) decideVersion(ctx context.Context, a authz.Action, rec *audit.Record, v *store.Version) ([]byte, error) {
	plain, err := r.open(v)
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

// lastLive returns the last version of a deleted resource that has a
// body, to decide whether the caller may learn of the deletion.
func (r *Repo) lastLive(ctx context.Context, v *store.Version) (*store.Version, error) {
	for n := v.Version - 1; n > 0; n-- {
		pv, err := r.s.st.Version(ctx, v.Tenant, v.Type, v.ID, n)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", problem.ErrUnavailable, err)
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
	f, err := r.facts(ctx, t)
	if err != nil {
		return false
	}
	d := authz.Decide(r.subj, a, t, f)
	if d.Allow && d.Emergency {
		r.markEmergency(ctx, rec, d)
	}
	return d.Allow
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
		cs, complete, err := r.tenantConsents(ctx)
		if err != nil {
			return out, err
		}
		f.Consents, f.AllConsents = cs, complete
	}
	if needFacts && !(r.subj.Role == authz.RolePhysician && r.subj.BreakGlass != "") {
		care, err := r.careSet(ctx)
		if err != nil {
			return out, err
		}
		f.CareOf = care
		if f.Organizations, err = r.organizations(ctx); err != nil && r.subj.Practitioner != "" {
			return out, err
		}
		if !f.AllConsents {
			if f.Consents, err = r.consents(ctx, care); err != nil {
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
			partial = append(partial, `(`+a+`.type = ? AND `+c+`)`)
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
			conds = append(conds, `NOT (`+c+`)`)
			targs = append(targs, ca...)
		}
		if len(rest.ExcludeLabels) > 0 {
			for _, l := range rest.ExcludeLabels {
				targs = append(targs, r.s.labelHash(k, l))
			}
			conds = append(conds, a+`.rid NOT IN (SELECT x.rid FROM search_token x WHERE x.p = `+search.PIDSQL(search.PID(t, "_security"))+` AND x.h IN (`+marks(len(rest.ExcludeLabels))+`))`)
		}
		if constrained, cats := authz.ScopeConstraints(r.subj, authz.Search, t); constrained {
			for _, c := range cats {
				targs = append(targs, search.TokenHash(k, c))
			}
			conds = append(conds, a+`.rid IN (SELECT x.rid FROM search_token x WHERE x.p = `+search.PIDSQL(search.PID(t, "category"))+` AND x.h IN (`+marks(len(cats))+`))`)
		}
		if len(conds) == 0 {
			free = append(free, t)
			continue
		}
		ors = append(ors, `(`+a+`.type = ? AND `+strings.Join(conds, ` AND `)+`)`)
		args = append(args, targs...)
	}
	if len(partial) > 0 {
		out.partial = strings.Join(partial, ` OR `)
	}
	if len(ors) == 0 {
		return out, nil
	}
	var head []any
	if len(free) > 0 {
		ors = append([]string{a + `.type IN (` + marks(len(free)) + `)`}, ors...)
		for _, t := range free {
			head = append(head, t)
		}
	}
	out.where, out.args = strings.Join(ors, ` OR `), append(head, args...)
	return out, nil
}

// patientCond keeps resources of typ (alias a) in the compartments of
// patients.
func patientCond(a, typ string, patients []string, k search.Keyer) (string, []any) {
	if len(patients) == 0 {
		return `1 = 0`, nil
	}
	hs := make([]any, len(patients))
	for i, p := range patients {
		hs[i] = search.RefHash(k, "Patient", p)
	}
	if typ == "Patient" {
		return a + `.refh IN (` + marks(len(hs)) + `)`, hs
	}
	var pids []int32
	for _, code := range compartment.PatientParams(typ) {
		if p, ok := params.Lookup(typ, code); ok {
			pids = append(pids, search.RefPIDs(typ, p)...)
		}
	}
	if len(pids) == 0 {
		return `1 = 0`, nil
	}
	return a + `.rid IN (SELECT x.rid FROM search_token x WHERE x.p IN (` + search.PIDListSQL(pids) + `) AND x.h IN (` + marks(len(hs)) + `))`, hs
}

// tenantConsents are the tenant's active consents, at most maxConsents;
// complete says that is all of them (beyond that, searches decide every
// resource and are not exact).
func (r *Repo) tenantConsents(ctx context.Context) ([]authz.Consent, bool, error) {
	c, now := r.s.facts, r.s.now()
	key := relKey{r.subj.Tenant, "*", ""}
	if v, ok := getFact(c, c.consents, factTenantConsents, key, now); ok {
		return v, len(v) < maxConsents, nil
	}
	gen := c.stampOf(factTenantConsents, key)
	vs, err := r.factDocs(ctx, "Consent", url.Values{"status": {"active"}}, maxConsents)
	if err != nil {
		return nil, false, err
	}
	out, err := r.consentsOf(vs)
	if err != nil {
		return nil, false, err
	}
	putFact(c, c.consents, key, gen, now, out)
	return out, len(out) < maxConsents, nil
}

// searchOptions are the search options of the caller's searches: every
// chain hop and _has subquery is restricted like a search of its type, so
// a chain or _has never matches through a resource the caller may not see
// (a hop through a type the caller may not search matches nothing).
func (r *Repo) searchOptions(ctx context.Context, k search.Keyer) search.Options {
	o := r.s.search
	o.Restrict = func(typ, alias string) (string, []any, error) {
		if d := authz.Decide(r.subj, authz.Search, authz.Target{Tenant: r.subj.Tenant, Type: typ}, authz.Facts{AdminPHI: !r.s.noAdminPHI}); !d.Allow {
			return `1 = 0`, nil, nil
		}
		res, err := r.restrict(ctx, []string{typ}, k, alias)
		if err != nil || res.partial == "" {
			return res.where, res.args, err
		}
		// A hop's rows are never decided one by one: the compartments of
		// patients whose consents decide per resource are left out of it
		// (stricter than the decision, never looser).
		cond := `NOT (` + res.partial + `)`
		if res.where != "" {
			cond = `(` + res.where + `) AND ` + cond
		}
		return cond, append(slices.Clone(res.args), res.partialArgs...), nil
	}
	return o
}

// consentsOf parses stored Consents for the decision. One that does not
// parse counts as an active deny-all of its patient: fail closed.
func (r *Repo) consentsOf(vs []store.Version) ([]authz.Consent, error) {
	var out []authz.Consent
	for i := range vs {
		doc, err := r.parsed(&vs[i])
		if err != nil {
			return nil, err
		}
		c, err := authz.ParseConsent(doc)
		if err != nil {
			var pid string
			for _, p := range patientsOf("Consent", vs[i].ID, doc) {
				pid = p
			}
			c = authz.Consent{ID: vs[i].ID, Patient: pid, Active: true, Privacy: true, Provision: &authz.Provision{Type: "deny"}}
		}
		out = append(out, c)
	}
	return out, nil
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
