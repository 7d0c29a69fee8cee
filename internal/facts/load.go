package facts

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
)

// Bounds of fact loading. A clinician's care set larger than maxCareSet
// is cut (which only narrows what they see); consents are read in chunks.
const (
	maxCareSet   = 10000
	maxConsents  = 1000
	consentChunk = 100
)

// Load loads what Decide needs about t: the subject's care relationship
// with t's patients, their organizations, and the patients' consents.
func (r *Loader) Load(ctx context.Context, t authz.Target) (authz.Facts, error) {
	f := authz.Facts{Now: r.s.now().UTC(), AdminPHI: r.s.adminPHI}
	if !compartment.InPatientCompartment(t.Type) || len(t.Patients) == 0 {
		return f, nil
	}
	if r.clinician() && r.subj.Practitioner != "" {
		orgs, err := r.Organizations(ctx)
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
		cs, err := r.Consents(ctx, t.Patients)
		if err != nil {
			return f, err
		}
		f.Consents = cs
	}
	return f, nil
}

// factQuery plans a search the access layer runs for itself (never
// disclosed, never audited as a disclosure).
func (r *Loader) factQuery(ctx context.Context, typ string, q url.Values, limit int) (*store.SearchQuery, error) {
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

func (r *Loader) factDocs(ctx context.Context, typ string, q url.Values, limit int) ([]store.Version, error) {
	sq, err := r.factQuery(ctx, typ, q, limit)
	if err != nil {
		return nil, err
	}
	return r.factSearch(ctx, sq)
}

func (r *Loader) factSearch(ctx context.Context, sq *store.SearchQuery) ([]store.Version, error) {
	hits, err := r.s.st.Search(ctx, *sq)
	if err != nil {
		return nil, store.Problem(err)
	}
	out := make([]store.Version, len(hits))
	for i := range hits {
		out[i] = hits[i].Version
	}
	return out, nil
}

func (r *Loader) parsed(v *store.Version) (map[string]any, error) {
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
func (r *Loader) actorRefs(ctx context.Context) ([]string, error) {
	orgs, err := r.Organizations(ctx)
	if err != nil {
		return nil, err
	}
	out := []string{"Practitioner/" + r.subj.Practitioner}
	for _, o := range orgs {
		out = append(out, "Organization/"+o)
	}
	return out, nil
}

// Organizations are the organizations of the subject's active
// PractitionerRoles.
func (r *Loader) Organizations(ctx context.Context) ([]string, error) {
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
func (r *Loader) related(ctx context.Context, p string) (bool, error) {
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

func (r *Loader) loadRelated(ctx context.Context, p string) (bool, error) {
	qs, err := r.relationQueries(ctx, p)
	if err != nil {
		return false, err
	}
	ok, err := r.s.st.Exists(ctx, qs)
	if err != nil {
		return false, store.Problem(err)
	}
	return ok[0], nil
}

// relationQueries are the four ways a care relationship with p arises,
// as memoized plans to ask in one statement: a cold decision pays one
// round trip and no planning. Each is driven by p (p's own row, or the
// index rows of references to p, a handful) and probes the clinician's
// part (their generalPractitioner, participant rows), so that its cost
// does not grow with the clinician's panel.
func (r *Loader) relationQueries(ctx context.Context, p string) ([]store.SearchQuery, error) {
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
func (r *Loader) consentQuery(ctx context.Context, p string) (store.SearchQuery, error) {
	return r.patientFactQuery(ctx, "consents", "Consent", url.Values{"patient": {"Patient/" + r.s.factPlans.sentinel}, "status": {"active"}}, maxConsents, p)
}

// prefetch answers, in one statement, both questions a clinician's cold
// decision about one patient p asks: is p in their care, and has p any
// active consent. It caches both answers (a patient without consents
// needs no second query) and does nothing when either is cached already.
func (r *Loader) prefetch(ctx context.Context, p string) error {
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
		return store.Problem(err)
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
func (r *Loader) windowStart() string {
	t := r.s.now().UTC().Add(-r.s.encWindow)
	if c := t.Truncate(time.Minute); !c.Equal(t) {
		t = c.Add(time.Minute)
	}
	return t.Format("2006-01-02T15:04:05Z")
}

// CareSet is every patient the subject has a care relationship with (at
// most maxCareSet), for restricting searches.
func (r *Loader) CareSet(ctx context.Context) ([]string, error) {
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

// Consents loads the active consents of patients. A consent that cannot
// be applied counts as a deny of everything (fail closed; break-the-glass
// can still override it).
func (r *Loader) Consents(ctx context.Context, patients []string) ([]authz.Consent, error) {
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
func (r *Loader) loadConsents(ctx context.Context, chunk []string) ([]authz.Consent, error) {
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

// TenantConsents are the tenant's active consents, at most maxConsents;
// complete says that is all of them (beyond that, searches decide every
// resource and are not exact).
func (r *Loader) TenantConsents(ctx context.Context) ([]authz.Consent, bool, error) {
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

// consentsOf parses stored Consents for the decision. One that does not
// parse counts as an active deny-all of its patient: fail closed.
func (r *Loader) consentsOf(vs []store.Version) ([]authz.Consent, error) {
	var out []authz.Consent
	for i := range vs {
		doc, err := r.parsed(&vs[i])
		if err != nil {
			return nil, err
		}
		c, err := authz.ParseConsent(doc)
		if err != nil {
			var pid string
			for _, p := range PatientsOf("Consent", vs[i].ID, doc) {
				pid = p
			}
			c = authz.Consent{ID: vs[i].ID, Patient: pid, Active: true, Privacy: true, Provision: &authz.Provision{Type: "deny"}}
		}
		out = append(out, c)
	}
	return out, nil
}

// PatientsOf returns the ids of the patients whose compartment the
// resource is in, by the official compartment definition's parameters.
func PatientsOf(typ, id string, doc map[string]any) []string {
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

// access holds the facts loaded for one Loader (one request), so that a
// search or transaction loads each at most once.
type access struct {
	orgs    []string
	orgsOK  bool
	careSet []string
	careOK  bool
	// created are the patients created earlier in this transaction: the
	// subject is registering them, they have no record to protect yet.
	created []string
	// pre is what prefetch learnt, until the request writes (Wrote).
	pre *prefetched
}

// nowMinute is the current minute (rounded down) as a search date: an
// active CareTeam whose period reaches it makes a care relationship, one
// whose period ended before it no longer does.
func (r *Loader) nowMinute() string {
	return r.s.now().UTC().Truncate(time.Minute).Format("2006-01-02T15:04:05Z")
}
