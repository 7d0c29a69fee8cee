package records

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/store"
)

// Patient/$merge (the FHIR R5 Patient-merge operation, on R4 resources;
// docs/merge.md). A merge is one unit of work: every resource of the
// source patient's compartment that moves is rewritten as a new version
// naming the target instead of the source (sealed, indexed and evented
// by the same code as any update, so it is sealed under whatever key the
// write path chooses for the target's compartment), the source gets
// active=false and a replaced-by link, the target a replaces link, and
// one ledger record and one patient.merged event commit with them, or
// nothing does.
//
// What governs access does not move (authz.GovernsAccess: CareTeams,
// Encounters, Consents, other Patients): moving it would hand the
// source's care relationships (and consents) to the target, and a merge
// must not change who may see the target's record. It stays with the
// inactive source, and the plan lists it. A source with an active
// Consent is refused: its records would otherwise leave the consent that
// protects them.

// MaxMergeResources bounds how many resources one merge moves.
const MaxMergeResources = 10000

// mergeChunk is how many resources of the compartment one search reads.
const mergeChunk = 500

// PatientSelector names one side of a merge: a Patient id (from a
// Reference), identifiers that must all be on the one patient they
// select, or both (then they must agree).
type PatientSelector struct {
	ID          string
	Identifiers []Identifier
}

// Identifier is an Identifier's system and value ("" system: any).
type Identifier struct{ System, Value string }

// MergeRequest is a parsed Patient/$merge.
type MergeRequest struct {
	Source, Target PatientSelector
	// Result is the result-patient parameter: the target as it is to be
	// stored (nil: the current target with the replaces link).
	Result map[string]any
	// Preview asks for the plan alone; nothing is written.
	Preview bool
}

// MergeResult is the plan of a merge and, unless a preview, what it
// wrote.
type MergeResult struct {
	Source, Target string
	// Moved are the resources that move to the target (preview: would),
	// Kept those of the source's compartment that stay with it, as
	// "Type/id".
	Moved, Kept []string
	// Result is the target after the merge (preview: as it would be,
	// not stored); SourceVersion the source's new version (preview: 0).
	Result        *Resource
	SourceVersion int64
	Preview       bool
}

// mergeFault, when set, is called after each resource staged for moving
// (the count so far); an error aborts the merge. Tests only
// (InjectMergeFault).
type mergeFault = func(staged int) error

// InjectMergeFault makes every later merge call f after staging each
// moved resource, and fail with f's error. It exists for tests of the
// merge's atomicity; nil removes it.
func (s *Service) InjectMergeFault(f func(staged int) error) {
	if f == nil {
		s.mergeFault.Store(nil)
		return
	}
	s.mergeFault.Store(&f)
}

// faultHook is the injected fault of InjectMergeFault.
type faultHook = atomic.Pointer[mergeFault]

// Merge runs Patient/$merge for the caller: decided (authz.Merge on both
// patients, then an update of every version it writes), planned, and
// unless req.Preview committed as one unit. A lost race with another
// writer is run again from fresh reads; a refusal is audited.
func (r *Repo) Merge(ctx context.Context, req MergeRequest) (*MergeResult, error) {
	action := "merge"
	if req.Preview {
		action = "merge-preview"
	}
	rec := r.record(action, "Patient")
	if err := r.decide(authz.Merge, rec); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		res, err := r.attemptMerge(ctx, req, rec)
		if errors.Is(err, errMergeRace) && attempt < maxTransactionRetries {
			rec = r.record(action, "Patient")
			continue
		}
		if errors.Is(err, errMergeRace) {
			return nil, problem.New(problem.ErrConflict, "conflict", "the patients' records are being changed by other requests; try again")
		}
		return res, err
	}
}

// errMergeRace is a commit that lost a race (store.ErrConflict).
var errMergeRace = errors.New("merge lost a race")

func (r *Repo) attemptMerge(ctx context.Context, req MergeRequest, rec *audit.Record) (*MergeResult, error) {
	tenant := r.subj.Tenant
	unit := &store.Unit{}
	src, err := r.mergeSide(ctx, rec, "source", req.Source, unit)
	if err != nil {
		return nil, err
	}
	tgt, err := r.mergeSide(ctx, rec, "target", req.Target, unit)
	if err != nil {
		return nil, err
	}
	if src == tgt {
		return nil, r.refuse(rec, audit.OutcomeMinor, "invalid", problem.New(problem.ErrInvalid, "invalid",
			"the source and the target are the same patient"))
	}
	sv, sdoc, err := r.mergePatient(ctx, rec, src)
	if err != nil {
		return nil, err
	}
	tv, tdoc, err := r.mergePatient(ctx, rec, tgt)
	if err != nil {
		return nil, err
	}
	rec.Entities = []string{ref("Patient", src, sv.Version), ref("Patient", tgt, tv.Version)}
	// The merge itself, on both patients: before anything about their
	// state is said.
	both := targetOf(tenant, "Patient", tgt, tdoc)
	both.Patients = []string{src, tgt}
	for _, l := range targetOf(tenant, "Patient", src, sdoc).Labels {
		if !slices.Contains(both.Labels, l) {
			both.Labels = append(both.Labels, l)
		}
	}
	if err := r.decideOn(ctx, authz.Merge, rec, both); err != nil {
		return nil, err
	}
	unprocessable := func(detail, msg string) error {
		return r.refuse(rec, audit.OutcomeMinor, detail, problem.New(problem.ErrUnprocessable, "business-rule", msg))
	}
	switch {
	case hasLink(sdoc, "replaced-by"):
		return nil, unprocessable("source-merged", "the source patient was already merged (it has a replaced-by link)")
	case hasLink(tdoc, "replaced-by"):
		return nil, unprocessable("target-merged", "the target patient was merged into another (it has a replaced-by link)")
	case !activePatient(tdoc):
		return nil, unprocessable("target-inactive", "the target patient is inactive")
	}

	// The new source and target.
	newSrc := cloneDoc(sdoc).(map[string]any)
	newSrc["active"] = false
	addLink(newSrc, tgt, "replaced-by")
	newTgt := cloneDoc(tdoc).(map[string]any)
	if req.Result != nil {
		if newTgt, err = r.resultPatient(rec, req.Result, src, tgt); err != nil {
			return nil, err
		}
	}
	addLink(newTgt, src, "replaces")

	// The plan: what moves, what stays, and the guard that the
	// compartment is still exactly that at commit.
	moved, kept, guard, err := r.mergePlan(ctx, rec, src)
	if err != nil {
		return nil, err
	}
	unit.Guards = append(unit.Guards, guard)
	for _, k := range kept {
		if k.active {
			return nil, unprocessable("source-has-consent", "the source patient has an active Consent, which would not protect the moved records: "+
				"a privacy officer must record it for the target (or end it) first")
		}
	}
	out := &MergeResult{Source: src, Target: tgt, Preview: req.Preview}
	for _, k := range kept {
		out.Kept = append(out.Kept, k.Type+"/"+k.ID)
	}

	now := r.s.now().UTC()
	rec.Time = now
	olds, docs := map[int]map[string]any{}, map[int]map[string]any{}
	stage := func(typ, id string, cur int64, old, doc map[string]any) (*store.Write, []byte, error) {
		o := targetOf(tenant, typ, id, old)
		o.Patients = linkedPatients(typ, old, o.Patients)
		o.Replaced = true
		if err := r.decideOn(ctx, authz.Update, rec, o); err != nil {
			return nil, nil, err
		}
		if err := r.decideOn(ctx, authz.Update, rec, writeTarget(tenant, typ, id, old, doc)); err != nil {
			return nil, nil, err
		}
		if req.Preview {
			return &store.Write{Type: typ, ID: id, Version: cur + 1}, nil, nil
		}
		plain, sealed, ix, err := r.seal(ctx, &fhir.Resource{Type: typ, ID: id, Doc: doc}, cur+1, now)
		if err != nil {
			return nil, nil, err
		}
		w := store.Write{Tenant: tenant, Type: typ, ID: id, Version: cur + 1, LastUpdated: now, Body: sealed, Index: ix}
		olds[len(unit.Writes)], docs[len(unit.Writes)] = old, doc
		unit.Writes = append(unit.Writes, w)
		return &unit.Writes[len(unit.Writes)-1], plain, nil
	}
	sw, _, err := stage("Patient", src, sv.Version, sdoc, newSrc)
	if err != nil {
		return nil, err
	}
	srcVersion := sw.Version
	tw, tplain, err := stage("Patient", tgt, tv.Version, tdoc, newTgt)
	if err != nil {
		return nil, err
	}
	tgtVersion := tw.Version
	out.Result = &Resource{Type: "Patient", ID: tgt, Version: tgtVersion, LastUpdated: now, JSON: tplain}
	if req.Preview {
		out.Result.Version, out.Result.LastUpdated = tv.Version, tv.LastUpdated
		// The preview discloses the target as it would be: its meta
		// names the current version.
		if out.Result.JSON, err = fhir.Marshal(withMeta(newTgt, tv)); err != nil {
			return nil, fmt.Errorf("serialise Patient: %w", err)
		}
	}
	fault := r.s.mergeFault.Load()
	for i := range moved {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", problem.ErrUnavailable, err)
		}
		v := &moved[i]
		out.Moved = append(out.Moved, v.Type+"/"+v.ID)
		plain, err := r.open(ctx, v)
		if err != nil {
			return nil, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
		}
		old, err := docOf(v, plain)
		if err != nil {
			return nil, err
		}
		doc := cloneDoc(old).(map[string]any)
		movePatientRefs(doc, src, tgt)
		w, _, err := stage(v.Type, v.ID, v.Version, old, doc)
		if err != nil {
			return nil, err
		}
		if req.Preview {
			// What the caller is shown: the current version.
			rec.Entities = append(rec.Entities, ref(v.Type, v.ID, v.Version))
			continue
		}
		rec.Entities = append(rec.Entities, ref(w.Type, w.ID, w.Version))
		if fault != nil {
			if err := (*fault)(len(out.Moved)); err != nil {
				return nil, fmt.Errorf("merge aborted after staging %d resources: %w", len(out.Moved), err)
			}
		}
	}
	notePatients(rec, []string{src, tgt})
	rec.Detail = "moved:" + strconv.Itoa(len(out.Moved))
	if req.Preview {
		// Nothing written: the record says what the caller was shown
		// (the plan and the target as it would be).
		rec.Detail = "preview:" + rec.Detail
		return out, r.commitAudit(rec)
	}
	rec.Entities[0], rec.Entities[1] = ref("Patient", src, srcVersion), ref("Patient", tgt, tgtVersion)
	recs := []*audit.Record{rec}
	if g := governanceRecord(rec, "Patient", tdoc, newTgt); g != nil {
		g.Entities = []string{ref("Patient", tgt, tgtVersion)}
		recs = append(recs, g)
	}
	unit.Parts = append(unit.Parts, r.eventParts(unit.Writes, olds, docs)...)
	unit.Parts = append(unit.Parts, store.Outbox{Events: []events.Event{events.Merged(events.Merge{
		Tenant: tenant, Source: src, Target: tgt, SourceVersion: srcVersion, Moved: len(out.Moved), Time: now,
		Actor: r.subj.ID, Role: string(r.subj.Role), RequestID: r.requestID,
	})}})
	err = r.s.ledger().Within(60*time.Second).Commit(ctx, unit, recs...)
	var c change
	for i, w := range unit.Writes {
		c.add(r.s.invalidate(w, docs[i]))
	}
	r.s.publish(tenant, c)
	r.facts.Wrote()
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, fmt.Errorf("%w: %v", errMergeRace, err)
	case err != nil:
		return nil, err
	}
	out.SourceVersion = srcVersion
	return out, nil
}

// mergeSide resolves one side of a merge to a Patient id. Identifiers
// are searched as a conditional update's condition is (with the caller's
// restriction) and must select exactly one patient; the match is guarded
// in unit.
func (r *Repo) mergeSide(ctx context.Context, rec *audit.Record, side string, sel PatientSelector, unit *store.Unit) (string, error) {
	if sel.ID == "" && len(sel.Identifiers) == 0 {
		return "", r.refuse(rec, audit.OutcomeMinor, "invalid", problem.New(problem.ErrInvalid, "required",
			side+"-patient or "+side+"-patient-identifier is required"))
	}
	if len(sel.Identifiers) == 0 {
		return sel.ID, nil
	}
	vals := url.Values{}
	for _, id := range sel.Identifiers {
		tok := escapeSearch(id.Value)
		if id.System != "" {
			tok = escapeSearch(id.System) + "|" + tok
		}
		vals.Add("identifier", tok)
	}
	q, err := ParseCondition("Patient", vals.Encode())
	if err != nil {
		return "", r.refuse(rec, audit.OutcomeMinor, "invalid", err)
	}
	hits, guard, err := r.match(ctx, q, 2, rec)
	if err != nil {
		return "", err
	}
	switch {
	case len(hits) == 0 && r.hidesExistence("Patient"):
		return "", r.hidden(rec, "not-found")
	case len(hits) == 0:
		return "", r.refuse(rec, audit.OutcomeMinor, "not-found", problem.New(problem.ErrNotFound, "not-found",
			side+"-patient-identifier matches no patient"))
	case len(hits) > 1:
		return "", r.refuse(rec, audit.OutcomeMinor, "multiple-matches", problem.New(problem.ErrUnprocessable, "multiple-matches",
			side+"-patient-identifier matches several patients"))
	case sel.ID != "" && hits[0].ID != sel.ID:
		return "", r.refuse(rec, audit.OutcomeMinor, "invalid", problem.New(problem.ErrUnprocessable, "business-rule",
			side+"-patient-identifier and "+side+"-patient name different patients"))
	}
	unit.Guards = append(unit.Guards, guard)
	return hits[0].ID, nil
}

// escapeSearch escapes a token part as FHIR search values are escaped.
func escapeSearch(s string) string {
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`, `,`, `\,`, `$`, `\$`).Replace(s)
}

// mergePatient loads one patient of a merge: unknown (or, for a caller
// from whom existence is hidden, unreadable) as a read answers, deleted
// as gone.
func (r *Repo) mergePatient(ctx context.Context, rec *audit.Record, id string) (*store.Version, map[string]any, error) {
	v, err := r.instance(ctx, rec, "Patient", id, 0)
	if err != nil {
		return nil, nil, err
	}
	if v.Deleted {
		if r.hidesExistence("Patient") {
			return nil, nil, r.hidden(rec, "deleted")
		}
		rec.Entities = []string{ref("Patient", id, v.Version)}
		return nil, nil, r.refuse(rec, audit.OutcomeMinor, "deleted", problem.New(problem.ErrGone, "deleted", "Patient/"+id+" was deleted"))
	}
	plain, err := r.open(ctx, v)
	if err != nil {
		return nil, nil, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
	}
	doc, err := docOf(v, plain)
	if err != nil {
		return nil, nil, err
	}
	return v, doc, nil
}

// resultPatient checks the result-patient parameter: the target as the
// client wants it stored, validated like an update.
func (r *Repo) resultPatient(rec *audit.Record, doc map[string]any, src, tgt string) (map[string]any, error) {
	bad := func(msg string) error {
		return r.refuse(rec, audit.OutcomeMinor, "invalid", problem.New(problem.ErrUnprocessable, "business-rule", "result-patient: "+msg))
	}
	doc = cloneDoc(doc).(map[string]any)
	if doc["resourceType"] != "Patient" {
		return nil, bad("must be a Patient")
	}
	if id, ok := doc["id"]; ok && id != tgt {
		return nil, bad("its id must be the target's")
	}
	doc["id"] = tgt
	if !activePatient(doc) {
		return nil, bad("the merged patient must stay active")
	}
	if hasLink(doc, "replaced-by") {
		return nil, bad("the merged patient cannot be replaced by another")
	}
	res := &fhir.Resource{Type: "Patient", ID: tgt, Doc: doc}
	if issues := r.s.val.Validate(res); hasErrors(issues) {
		return nil, r.refuse(rec, audit.OutcomeMinor, "invalid", &problem.Error{Class: problem.ErrUnprocessable, Issues: issues})
	}
	return doc, nil
}

// keptRef is a resource of the source's compartment that stays with it;
// active marks an active Consent.
type keptRef struct {
	store.Ref
	active bool
}

// mergePlan lists the source's compartment: the current versions that
// move (every compartment type but those that govern access) and the
// resources that stay, with the guard that re-checks the whole
// compartment at commit. More than MaxMergeResources to move is refused.
func (r *Repo) mergePlan(ctx context.Context, rec *audit.Record, src string) ([]store.Version, []keptRef, store.Guard, error) {
	tenant := r.subj.Tenant
	k, err := r.s.keyer(ctx, tenant)
	if err != nil {
		return nil, nil, store.Guard{}, err
	}
	var movable, governing []string
	for _, t := range compartment.PatientTypes() {
		if authz.GovernsAccess(t) {
			governing = append(governing, t)
		} else {
			movable = append(movable, t)
		}
	}
	list := func(types []string, limit int) ([]store.Version, error) {
		where, args := search.InCompartmentOf(types, compartmentPIDs, src, tenant, k)
		sq := store.SearchQuery{Tenant: tenant, Types: types, Where: []string{where}, Args: args, Limit: mergeChunk}
		var out []store.Version
		for {
			hits, err := r.s.st.Search(ctx, sq)
			if err != nil {
				return nil, store.Problem(err)
			}
			for _, h := range hits {
				out = append(out, h.Version)
			}
			if len(out) > limit {
				return nil, r.refuse(rec, audit.OutcomeMinor, "too-costly", problem.New(problem.ErrUnprocessable, "too-costly",
					fmt.Sprintf("the source patient has more than %d resources to move (the merge limit)", limit)))
			}
			if len(hits) < sq.Limit {
				return out, nil
			}
			sq.After = []any{hits[len(hits)-1].RID}
		}
	}
	moved, err := list(movable, MaxMergeResources)
	if err != nil {
		return nil, nil, store.Guard{}, err
	}
	stay, err := list(governing, MaxMergeResources)
	if err != nil {
		return nil, nil, store.Guard{}, err
	}
	all := append(slices.Clone(movable), governing...)
	where, args := search.InCompartmentOf(all, compartmentPIDs, src, tenant, k)
	g := store.Guard{Query: store.SearchQuery{Tenant: tenant, Types: all, Where: []string{where}, Args: args}}
	for _, v := range moved {
		g.Match = append(g.Match, store.Ref{Type: v.Type, ID: v.ID})
	}
	var kept []keptRef
	for i := range stay {
		v := &stay[i]
		g.Match = append(g.Match, store.Ref{Type: v.Type, ID: v.ID})
		if v.Type == "Patient" && v.ID == src {
			continue
		}
		kr := keptRef{Ref: store.Ref{Type: v.Type, ID: v.ID}}
		if v.Type == "Consent" {
			plain, err := r.open(ctx, v)
			if err != nil {
				return nil, nil, store.Guard{}, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
			}
			doc, err := docOf(v, plain)
			if err != nil {
				return nil, nil, store.Guard{}, err
			}
			kr.active = doc["status"] == "active"
		}
		kept = append(kept, kr)
	}
	return moved, kept, g, nil
}

// movePatientRefs points every reference to Patient/from (relative,
// absolute or versioned) at Patient/to, and returns how many it changed.
func movePatientRefs(v any, from, to string) int {
	n := 0
	switch c := v.(type) {
	case map[string]any:
		for k, x := range c {
			if s, ok := x.(string); ok && k == "reference" {
				if refersTo(s, from) {
					c[k] = "Patient/" + to
					n++
				}
				continue
			}
			n += movePatientRefs(x, from, to)
		}
	case []any:
		for _, x := range c {
			n += movePatientRefs(x, from, to)
		}
	}
	return n
}

// refersTo says ref names Patient/id (as search's local references do).
func refersTo(ref, id string) bool {
	if strings.ContainsAny(ref, "?#") {
		return false
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	return ref == "Patient/"+id || strings.HasSuffix(ref, "/Patient/"+id)
}

// hasLink says a Patient has a link of type typ.
func hasLink(doc map[string]any, typ string) bool {
	links, _ := doc["link"].([]any)
	for _, l := range links {
		if lm, _ := l.(map[string]any); lm["type"] == typ {
			return true
		}
	}
	return false
}

// addLink adds a link of type typ to Patient/other unless it has it.
func addLink(doc map[string]any, other, typ string) {
	links, _ := doc["link"].([]any)
	for _, l := range links {
		lm, _ := l.(map[string]any)
		o, _ := lm["other"].(map[string]any)
		if lm["type"] == typ && o != nil && refersTo(fmt.Sprint(o["reference"]), other) {
			return
		}
	}
	doc["link"] = append(links, map[string]any{"other": map[string]any{"reference": "Patient/" + other}, "type": typ})
}

// activePatient is Patient.active (true when absent).
func activePatient(doc map[string]any) bool {
	a, ok := doc["active"].(bool)
	return !ok || a
}

// withMeta is doc with the meta of stored version v (for a preview).
func withMeta(doc map[string]any, v *store.Version) map[string]any {
	out := cloneDoc(doc).(map[string]any)
	fhir.SetMeta(out, strconv.FormatInt(v.Version, 10), v.LastUpdated)
	return out
}
