package records

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
)

// Entry is one entry of a batch or transaction Bundle, already parsed by
// the HTTP layer.
type Entry struct {
	Index    int    // position in the Bundle, for messages
	Method   string // POST, PUT, DELETE or GET
	Type, ID string // from request.url; ID empty for POST
	// FullURL is the entry's fullUrl (urn:uuid:..., urn:oid:... or an
	// absolute URL); references to it inside the Bundle are rewritten to
	// the entry's resource.
	FullURL  string
	Resource *fhir.Resource // POST and PUT (PATCH: the patched resource)
	IfMatch  *int64

	// patch is a PATCH entry's patch; patchBase the version it was
	// applied to in the current attempt (applyPatches).
	patch     *patchDoc
	patchBase int64

	// ifNoneExist is a POST's condition (request.ifNoneExist, or the
	// If-None-Exist header); cond a PUT's or DELETE's conditional URL.
	ifNoneExist, cond *query.Query

	pos int // position in the slice given to Transaction
	// old is the content a PUT or DELETE replaces, as decided
	// (decideEntries), for the ledger record of a governing change.
	old map[string]any
	// reg is the registration CareTeam planned with a Patient this POST
	// creates (planRegistrations), committed in the same unit.
	reg *registration
}

// EntryResult is what the response Bundle says of one entry.
type EntryResult struct {
	Status   int
	Resource *Resource // the stored or read version (nil for DELETE)
	// Err is the entry's failure (batch only; a failed transaction
	// returns one error for the whole Bundle).
	Err error
	// Deleted counts the resources a DELETE removed (a conditional delete
	// may remove several).
	Deleted int
}

// entryError names the failing entry of a transaction.
func entryError(e *Entry, err error) error {
	if e.Index < 0 {
		return err // not from a Bundle: nothing to name
	}
	var pe *problem.Error
	if errors.As(err, &pe) {
		out := &problem.Error{Class: pe.Class}
		for _, is := range pe.Issues {
			is.Diagnostics = fmt.Sprintf("Bundle.entry[%d]: %s", e.Index, is.Diagnostics)
			if is.Expression != "" {
				is.Expression = fmt.Sprintf("Bundle.entry[%d].resource.%s", e.Index, strings.TrimPrefix(is.Expression, e.Type+"."))
			}
			out.Issues = append(out.Issues, is)
		}
		return out
	}
	return fmt.Errorf("Bundle.entry[%d]: %w", e.Index, err)
}

// methodOrder is the order in which a transaction processes entries
// (FHIR R4, 3.1.0.11.2): DELETE, POST, PUT/PATCH, GET.
var methodOrder = map[string]int{http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodPatch: 2, http.MethodGet: 3}

// maxTransactionRetries bounds re-runs of a transaction whose PUT or
// DELETE lost a race with another writer.
const maxTransactionRetries = 4

// Transaction applies every entry or none: all writes, with one audit
// record per entry, commit in one database transaction. Entries are
// processed in the order FHIR requires; every reference to an entry's
// fullUrl is rewritten to the resource's new Type/id. The results come
// back in Bundle order.
func (r *Repo) Transaction(ctx context.Context, entries []Entry) ([]EntryResult, error) {
	order := make([]*Entry, 0, len(entries))
	for i := range entries {
		e := &entries[i]
		e.pos = i
		if _, ok := methodOrder[e.Method]; !ok {
			return nil, entryError(e, problem.New(problem.ErrInvalid, "not-supported", "request.method must be POST, PUT, PATCH, DELETE or GET"))
		}
		if e.Method == http.MethodPatch && e.patch == nil {
			return nil, entryError(e, problem.New(problem.ErrInvalid, "required", "a PATCH entry needs its patch in entry.resource"))
		}
		order = append(order, e)
	}
	// Stable: entries of one method keep their Bundle order.
	slices.SortStableFunc(order, func(a, b *Entry) int { return methodOrder[a.Method] - methodOrder[b.Method] })

	// Decide every entry before touching anything; one refusal refuses
	// the whole transaction (and is audited).
	for _, e := range order {
		if err := r.decide(entryAction(e.Method), r.record(entryAuditAction(e.Method), e.Type)); err != nil {
			return nil, entryError(e, err)
		}
		// A patch discloses what it patched: it needs read too.
		if e.Method == http.MethodPatch {
			if err := r.decide(authz.Read, r.record("patch", e.Type)); err != nil {
				return nil, entryError(e, err)
			}
		}
	}

	// Each attempt starts again from the entries as given: a retry may
	// resolve conditions differently.
	orig := make([]map[string]any, len(entries))
	for i := range entries {
		if entries[i].Resource != nil {
			orig[i] = cloneDoc(entries[i].Resource.Doc).(map[string]any)
		}
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			for i := range entries {
				if orig[i] != nil {
					entries[i].Resource.Doc = cloneDoc(orig[i]).(map[string]any)
				}
			}
		}
		results, err := r.attemptTransaction(ctx, entries, order)
		if errors.Is(err, problem.ErrConflict) && attempt < maxTransactionRetries {
			continue
		}
		return results, err
	}
}

// attemptTransaction resolves, rewrites, validates and commits once.
func (r *Repo) attemptTransaction(ctx context.Context, entries []Entry, order []*Entry) ([]EntryResult, error) {
	res, err := r.resolveConditions(ctx, order)
	if err != nil {
		return nil, err
	}
	if err := r.applyPatches(ctx, order); err != nil {
		return nil, err
	}
	// The fullUrl -> Type/id map.
	refs := map[string]string{}
	for _, e := range order {
		if e.FullURL != "" && e.Method != http.MethodGet && e.Method != http.MethodDelete {
			if _, dup := refs[e.FullURL]; dup {
				return nil, entryError(e, problem.New(problem.ErrInvalid, "invalid", "two entries have the same fullUrl"))
			}
			refs[e.FullURL] = e.Type + "/" + e.ID
		}
	}
	for _, e := range order {
		if e.Resource != nil {
			rewriteReferences(e.Resource.Doc, bundleResolver(e.FullURL, refs))
		}
	}
	if err := r.resolveReferences(ctx, order, res); err != nil {
		return nil, err
	}
	var toValidate []*Entry
	for _, e := range order {
		if e.Resource == nil {
			continue
		}
		if _, exists := res.existing[e.pos]; exists {
			continue
		}
		if _, alias := res.sameAs[e.pos]; alias {
			continue
		}
		toValidate = append(toValidate, e)
	}
	// Validation is pure CPU and each entry's own: it runs on every core,
	// and the first invalid entry in order is reported, as before.
	issues := make([][]fhir.Issue, len(toValidate))
	if err := parallel(ctx, len(toValidate), func(i int) error {
		issues[i] = r.s.val.Validate(toValidate[i].Resource)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", problem.ErrUnavailable, err)
	}
	for i, e := range toValidate {
		if hasErrors(issues[i]) {
			rec := r.record(entryAuditAction(e.Method), e.Type)
			return nil, entryError(e, r.refuse(rec, audit.OutcomeMinor, "invalid", &problem.Error{Class: problem.ErrInvalid, Issues: issues[i]}))
		}
	}
	// Decide every entry on what it touches (the current version and the
	// new one) after conditions resolved their ids and before anything is
	// written.
	if err := r.decideEntries(ctx, order); err != nil {
		return nil, err
	}
	if err := r.checkTransactionReferences(ctx, order, res); err != nil {
		return nil, err
	}
	// Attachments are checked (and large inline data moved to Binaries)
	// as for a single create or update.
	moved, err := r.transactionAttachments(ctx, order, func(e *Entry) bool {
		_, exists := res.existing[e.pos]
		_, alias := res.sameAs[e.pos]
		return exists || alias
	})
	if err != nil {
		return nil, err
	}
	if err := r.planRegistrations(ctx, order, res); err != nil {
		r.dropMoved(moved)
		return nil, err
	}
	return r.commitTransaction(ctx, entries, order, res, moved)
}

// planRegistrations plans, for every POST that creates a Patient, the
// registration CareTeam a plain create would make (registers), decided
// like it before anything is written. A conditional create that matched
// creates nothing and registers nothing.
func (r *Repo) planRegistrations(ctx context.Context, order []*Entry, res *resolved) error {
	for _, e := range order {
		e.reg = nil
		if e.Method != http.MethodPost || e.Resource == nil || e.Type != "Patient" {
			continue
		}
		if _, exists := res.existing[e.pos]; exists {
			continue
		}
		if _, alias := res.sameAs[e.pos]; alias {
			continue
		}
		if !r.registers(e.Resource) {
			continue
		}
		g, err := r.planRegistration(ctx, e.ID)
		if err != nil {
			return entryError(e, err)
		}
		e.reg = g
	}
	return nil
}

func entryAction(method string) authz.Action {
	switch method {
	case http.MethodPost:
		return authz.Create
	case http.MethodPut, http.MethodPatch:
		return authz.Update
	case http.MethodDelete:
		return authz.Delete
	default:
		return authz.Read
	}
}

func entryAuditAction(method string) string {
	switch method {
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	default:
		return "read"
	}
}

// commitTransaction reads the current versions the writes depend on, seals
// every version and commits one unit, with the Binaries that moved inline
// Attachment data (moved): they commit with the resources naming them or
// not at all. A lost race is ErrConflict, and the caller runs it again
// from fresh reads (and moves the data again).
func (r *Repo) commitTransaction(ctx context.Context, entries []Entry, order []*Entry, res *resolved, moved []*movedBinary) ([]EntryResult, error) {
	t := &txn{r: r, res: res, results: make([]EntryResult, len(entries)), unit: &store.Unit{Guards: res.guards},
		docs: map[int]map[string]any{}, olds: map[int]map[string]any{}, now: r.s.now().UTC(), next: map[string]int64{}}
	for _, b := range moved {
		if err := t.binary(ctx, b); err != nil {
			r.dropMoved(moved)
			return nil, err
		}
	}
	for _, e := range order {
		if err := t.stage(ctx, e); err != nil {
			r.dropMoved(moved)
			return nil, err
		}
	}
	if err := t.sealStaged(ctx); err != nil {
		return nil, err
	}
	if len(t.unit.Writes) > 0 {
		t.unit.Parts = append(t.unit.Parts, r.eventParts(t.unit.Writes, t.olds, t.docs)...)
	}
	var err error
	if commitFault != nil {
		err = commitFault(t.unit)
	}
	if err == nil {
		err = r.s.ledger().Within(60*time.Second).Commit(ctx, t.unit, t.recs...)
	}
	if errors.Is(err, store.ErrConflict) {
		// Known not to have committed. Any other failure may have
		// committed after all: its objects are left to the sweeper, which
		// keeps those a committed version names.
		r.dropMoved(moved)
	}
	var c change
	for i, w := range t.unit.Writes {
		c.add(r.s.invalidate(w, t.docs[i])) // every write of a unit is of the caller's tenant
	}
	r.s.publish(r.subj.Tenant, c)
	r.facts.Wrote()
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, fmt.Errorf("%w: %v", problem.ErrConflict, err)
	case err != nil:
		return nil, err // the recorder's: problem.ErrUnavailable
	}
	// Reads run after the writes, as FHIR orders them; each is audited
	// like any read.
	for _, e := range order {
		if e.Method != http.MethodGet {
			continue
		}
		res, err := r.Read(ctx, e.Type, e.ID)
		if err != nil {
			return nil, entryError(e, err)
		}
		t.results[e.pos] = EntryResult{Status: http.StatusOK, Resource: res}
	}
	return t.results, nil
}

// txn is a transaction Bundle being staged into one unit of work: the
// writes, their ledger records, and each entry's result.
type txn struct {
	r       *Repo
	res     *resolved
	results []EntryResult
	unit    *store.Unit
	recs    []*audit.Record        // committed with unit, by the recorder
	docs    map[int]map[string]any // index in unit.Writes -> resource written
	olds    map[int]map[string]any // index in unit.Writes -> resource replaced
	now     time.Time
	next    map[string]int64 // Type/id -> version the next write creates
	// toSeal are the puts staged without their sealed body and index:
	// sealStaged computes them on every core once staging is done.
	toSeal []sealJob
}

// sealJob is a put whose body is sealed after staging: the write at index
// w of unit.Writes, and the entry's result whose JSON it fills.
type sealJob struct {
	e       *Entry
	w       int
	version int64
	res     *Resource
}

// sealStaged seals and indexes the staged puts concurrently (each entry
// owns its document; serialising, sealing, blind-index HMACs and index
// extraction were most of a large transaction's CPU before the commit,
// one entry after another). A failure is reported for the first failing
// entry in order.
func (t *txn) sealStaged(ctx context.Context) error {
	errs := make([]error, len(t.toSeal))
	err := parallel(ctx, len(t.toSeal), func(i int) error {
		p := t.toSeal[i]
		plain, sealed, ix, err := t.r.seal(ctx, p.e.Resource, p.version, t.now)
		if err != nil {
			errs[i] = entryError(p.e, err)
			return nil
		}
		t.unit.Writes[p.w].Body, t.unit.Writes[p.w].Index = sealed, ix
		p.res.JSON = plain
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %w", problem.ErrUnavailable, err)
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	t.toSeal = t.toSeal[:0]
	return nil
}

// parallel runs f(0..n-1) on up to GOMAXPROCS goroutines and returns
// ctx's error if it ended first. f must not touch what another index
// touches.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				if err := f(i); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stage adds entry e's writes and records to the unit (reads wait until
// after the commit).
func (t *txn) stage(ctx context.Context, e *Entry) error {
	r := t.r
	if e.Method == http.MethodGet {
		return nil
	}
	if v, ok := t.res.existing[e.pos]; ok {
		return t.matched(ctx, e, v)
	}
	if first, ok := t.res.sameAs[e.pos]; ok {
		created := t.results[first].Resource
		rec := t.record("create", e.Type)
		rec.Detail = "condition-matched-in-bundle"
		rec.Entities = []string{ref(created.Type, created.ID, created.Version)}
		t.recs = append(t.recs, rec)
		t.results[e.pos] = EntryResult{Status: http.StatusOK, Resource: created}
		return nil
	}
	if e.Method == http.MethodDelete && e.cond != nil {
		drecs, err := r.deleteMatches(ctx, e, t.res.deletes[e.pos], t.now, t.next, t.unit, t.results)
		if err != nil {
			return err
		}
		t.recs = append(t.recs, drecs...)
		return nil
	}
	_, inUnit := t.next[e.Type+"/"+e.ID]
	cur, err := t.current(ctx, e)
	if err != nil {
		return err
	}
	if err := checkPatchBase(e, cur, inUnit); err != nil {
		return err
	}
	rec := t.record(entryAuditAction(e.Method), e.Type)
	if e.IfMatch != nil && *e.IfMatch != max(cur, -cur) {
		return entryError(e, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
			problem.New(problem.ErrPreconditionFailed, "conflict", fmt.Sprintf("If-Match names version %d but the current version is %d", *e.IfMatch, max(cur, -cur)))))
	}
	if e.Method == http.MethodDelete {
		t.delete(e, cur, rec)
		return nil
	}
	return t.put(ctx, e, cur, rec)
}

// binary stages the first version of a Binary that moved inline
// Attachment data, with its ledger record.
func (t *txn) binary(ctx context.Context, b *movedBinary) error {
	_, sealed, ix, err := t.r.seal(ctx, b.bin, 1, t.now)
	if err != nil {
		return err
	}
	w := store.Write{Tenant: t.r.subj.Tenant, Type: "Binary", ID: b.bin.ID, Version: 1, LastUpdated: t.now, Body: sealed, Index: ix}
	t.docs[len(t.unit.Writes)] = b.bin.Doc
	t.unit.Writes = append(t.unit.Writes, w)
	b.rec.Time = t.now
	b.rec.Entities = []string{ref("Binary", b.bin.ID, 1)}
	t.recs = append(t.recs, b.rec)
	t.next["Binary/"+b.bin.ID] = 1
	return nil
}

// record starts the ledger record of an entry, at the unit's time.
func (t *txn) record(action, typ string) *audit.Record {
	rec := t.r.record(action, typ)
	rec.Time = t.now
	return rec
}

// matched answers a conditional create that matched an existing resource
// with that resource: answering discloses it, so the caller must be
// allowed to read it (a refusal is audited and says nothing about the
// match), and the disclosure is audited with the unit.
func (t *txn) matched(ctx context.Context, e *Entry, v *store.Version) error {
	rec := t.record("create", e.Type)
	rec.Detail = "condition-matched"
	rec.Entities = []string{ref(v.Type, v.ID, v.Version)}
	plain, err := t.r.decideVersion(ctx, authz.Read, rec, v)
	if err != nil {
		return entryError(e, err)
	}
	t.recs = append(t.recs, rec)
	t.results[e.pos] = EntryResult{Status: http.StatusOK, Resource: &Resource{Type: v.Type, ID: v.ID, Version: v.Version, LastUpdated: v.LastUpdated, JSON: plain}}
	return nil
}

// current is the version of e's resource before e: the last one staged
// in this unit, else the stored one (0: none; negative: deleted).
func (t *txn) current(ctx context.Context, e *Entry) (int64, error) {
	if cur, seen := t.next[e.Type+"/"+e.ID]; seen {
		return cur, nil
	}
	switch v, err := t.r.s.st.Current(ctx, t.r.subj.Tenant, e.Type, e.ID); {
	case errors.Is(err, store.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, store.Problem(err)
	case e.Method == http.MethodDelete && v.Deleted:
		return -v.Version, nil // already deleted: nothing to write
	default:
		return v.Version, nil
	}
}

// delete stages the deletion of e's resource, whose current version is
// cur.
func (t *txn) delete(e *Entry, cur int64, rec *audit.Record) {
	if cur <= 0 {
		// Deleting what is absent or already deleted succeeds and
		// writes nothing (FHIR: 204 / 200 for a delete of a deleted
		// resource; a transaction does not fail on it).
		rec.Detail = "nothing-to-delete"
		t.recs = append(t.recs, rec)
		t.results[e.pos] = EntryResult{Status: http.StatusNoContent}
		return
	}
	w := store.Write{Tenant: t.r.subj.Tenant, Type: e.Type, ID: e.ID, Version: cur + 1, LastUpdated: t.now, Deleted: true}
	t.olds[len(t.unit.Writes)] = e.old
	t.unit.Writes = append(t.unit.Writes, w)
	rec.Entities = []string{ref(e.Type, e.ID, w.Version)}
	t.recs = append(t.recs, rec)
	if g := governanceRecord(rec, e.Type, e.old, nil); g != nil {
		t.recs = append(t.recs, g)
	}
	t.next[e.Type+"/"+e.ID] = w.Version
	t.results[e.pos] = EntryResult{Status: http.StatusNoContent, Deleted: 1, Resource: &Resource{Type: e.Type, ID: e.ID, Version: w.Version, LastUpdated: t.now, Deleted: true}}
}

// put stages the create or update (POST, PUT) of e's resource, whose
// current version is cur, with the registration CareTeam of a new
// Patient.
func (t *txn) put(ctx context.Context, e *Entry, cur int64, rec *audit.Record) error {
	r := t.r
	if cur < 0 {
		cur = -cur
	}
	// Sealed later with the others (sealStaged); governanceRecord below
	// reads labels, which sealing's meta update keeps.
	w := store.Write{Tenant: r.subj.Tenant, Type: e.Type, ID: e.ID, Version: cur + 1, LastUpdated: t.now}
	pending := sealJob{e: e, w: len(t.unit.Writes), version: w.Version, res: &Resource{Type: e.Type, ID: e.ID, Version: w.Version, LastUpdated: t.now}}
	t.toSeal = append(t.toSeal, pending)
	t.docs[len(t.unit.Writes)] = e.Resource.Doc
	t.olds[len(t.unit.Writes)] = e.old
	t.unit.Writes = append(t.unit.Writes, w)
	rec.Entities = []string{ref(e.Type, e.ID, w.Version)}
	t.recs = append(t.recs, rec)
	if g := governanceRecord(rec, e.Type, e.old, e.Resource.Doc); g != nil {
		t.recs = append(t.recs, g)
	}
	t.next[e.Type+"/"+e.ID] = w.Version
	if e.reg != nil && cur == 0 {
		tw, trecs, err := e.reg.seal(ctx, r, e.ID, t.now)
		if err != nil {
			return entryError(e, err)
		}
		t.docs[len(t.unit.Writes)] = e.reg.team.Doc
		t.unit.Writes = append(t.unit.Writes, tw)
		t.recs = append(t.recs, trecs...)
	}
	status := http.StatusOK
	if cur == 0 {
		status = http.StatusCreated
	}
	t.results[e.pos] = EntryResult{Status: status, Resource: pending.res}
	return nil
}

// deleteMatches writes the deletions of a conditional delete: one audit
// record naming every resource deleted. The matches were searched with the
// caller's restriction; each is also decided on its current version, and
// one the caller may not delete is left alone and not named (like a search
// leaves out what it refuses).
func (r *Repo) deleteMatches(ctx context.Context, e *Entry, targets []store.Ref, now time.Time, next map[string]int64, unit *store.Unit, results []EntryResult) ([]*audit.Record, error) {
	rec := r.record("delete", e.Type)
	rec.Time = now
	rec.Detail = "conditional"
	n := 0
	var gov []*audit.Record
	for _, t := range targets {
		key := t.Type + "/" + t.ID
		cur, seen := next[key]
		if !seen {
			v, err := r.s.st.Current(ctx, r.subj.Tenant, t.Type, t.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return nil, fmt.Errorf("%w: %s changed while deleting", problem.ErrConflict, t.Type)
			case err != nil:
				return nil, store.Problem(err)
			case v.Deleted:
				continue
			}
			old, ok, err := r.mayDelete(ctx, rec, v)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			cur = v.Version
			one := *rec
			one.Entities = []string{ref(t.Type, t.ID, cur+1)}
			if g := governanceRecord(&one, t.Type, old, nil); g != nil {
				g.Detail = "delete:conditional"
				gov = append(gov, g)
			}
		}
		w := store.Write{Tenant: r.subj.Tenant, Type: t.Type, ID: t.ID, Version: cur + 1, LastUpdated: now, Deleted: true}
		unit.Writes = append(unit.Writes, w)
		rec.Entities = append(rec.Entities, ref(t.Type, t.ID, w.Version))
		next[key] = w.Version
		n++
	}
	if n == 0 {
		rec.Detail = "conditional:nothing-to-delete"
	}
	results[e.pos] = EntryResult{Status: http.StatusNoContent, Deleted: n}
	return append([]*audit.Record{rec}, gov...), nil
}

// Batch applies each entry on its own; one entry's failure is reported in
// its result and does not stop the others. References to other entries'
// fullUrls are not resolved (FHIR: a batch has no inter-entry
// dependencies).
func (r *Repo) Batch(ctx context.Context, entries []Entry) []EntryResult {
	results := make([]EntryResult, len(entries))
	done := make(chan struct{}, len(entries))
	// Entries run concurrently, so that their commits share batches of
	// the group-committing writer.
	sem := make(chan struct{}, 16)
	for i := range entries {
		e := &entries[i]
		sem <- struct{}{}
		if err := ctx.Err(); err != nil {
			// The request was cancelled or timed out: the entries not
			// yet started are not run.
			results[i] = EntryResult{Err: fmt.Errorf("%w: %w", problem.ErrUnavailable, err)}
			<-sem
			done <- struct{}{}
			continue
		}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			// Each entry on a Repo of its own: what one entry learns
			// about access (r.facts) is not shared with entries that run
			// at the same time.
			er := r.s.For(r.subj, r.requestID)
			results[i] = er.batchEntry(ctx, e)
		}()
	}
	for range entries {
		<-done
	}
	return results
}

func (r *Repo) batchEntry(ctx context.Context, e *Entry) EntryResult {
	if e.ifNoneExist != nil || e.cond != nil || (e.Resource != nil && hasConditionalReference(e.Resource.Doc)) ||
		e.Method == http.MethodDelete && e.IfMatch != nil || e.Method == http.MethodPatch {
		// Conditions are resolved and committed atomically, exactly as in
		// a transaction of this one entry.
		out, err := r.Transaction(ctx, []Entry{*e})
		if err != nil {
			return EntryResult{Err: err}
		}
		return out[0]
	}
	switch e.Method {
	case http.MethodPost:
		res, err := r.Create(ctx, e.Resource)
		if err != nil {
			return EntryResult{Err: err}
		}
		return EntryResult{Status: http.StatusCreated, Resource: res}
	case http.MethodPut:
		e.Resource.ID = e.ID
		res, created, err := r.Update(ctx, e.Resource, e.IfMatch)
		if err != nil {
			return EntryResult{Err: err}
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		return EntryResult{Status: status, Resource: res}
	case http.MethodDelete:
		res, err := r.Delete(ctx, e.Type, e.ID)
		if err != nil {
			return EntryResult{Err: err}
		}
		if res == nil {
			return EntryResult{Status: http.StatusNoContent}
		}
		return EntryResult{Status: http.StatusNoContent, Resource: res}
	case http.MethodGet:
		res, err := r.Read(ctx, e.Type, e.ID)
		if err != nil {
			return EntryResult{Err: err}
		}
		return EntryResult{Status: http.StatusOK, Resource: res}
	}
	return EntryResult{Err: problem.New(problem.ErrInvalid, "not-supported", "request.method must be POST, PUT, PATCH, DELETE or GET")}
}

// hasConditionalReference reports a Reference.reference of the form
// Type?params, which a transaction must resolve by search.
func hasConditionalReference(v any) bool {
	switch c := v.(type) {
	case map[string]any:
		for k, x := range c {
			if s, ok := x.(string); ok && k == "reference" {
				if t, _, found := strings.Cut(s, "?"); found && fhir.IsResourceType(t) {
					return true
				}
				continue
			}
			if hasConditionalReference(x) {
				return true
			}
		}
	case []any:
		for _, x := range c {
			if hasConditionalReference(x) {
				return true
			}
		}
	}
	return false
}

// rewriteReferences replaces every Reference.reference that names a
// Bundle entry's fullUrl with the entry's Type/id.
func rewriteReferences(v any, resolve func(ref string) (string, bool)) {
	switch c := v.(type) {
	case map[string]any:
		for k, x := range c {
			if k == "reference" {
				if s, ok := x.(string); ok {
					if to, ok := resolve(s); ok {
						c[k] = to
					}
					continue
				}
			}
			rewriteReferences(x, resolve)
		}
	case []any:
		for _, x := range c {
			rewriteReferences(x, resolve)
		}
	}
}

// bundleResolver resolves the references of the entry whose fullUrl is
// fullURL to the Type/id its target was given in this Bundle (refs:
// fullUrl -> Type/id), as bundle.html's rules say: a reference equal to
// an entry's fullUrl names that entry, and when fullURL is a RESTful URL
// ([base]/Type/id), a relative reference Type/id names the entry whose
// fullUrl is [base]/Type/id. Anything else is left as it is.
func bundleResolver(fullURL string, refs map[string]string) func(string) (string, bool) {
	base, restful := restBase(fullURL)
	return func(ref string) (string, bool) {
		if to, ok := refs[ref]; ok {
			return to, true
		}
		if !restful || strings.Contains(ref, ":") || strings.HasPrefix(ref, "#") {
			return "", false
		}
		to, ok := refs[base+"/"+ref]
		return to, ok
	}
}

// restBase returns the base of a RESTful fullUrl, http(s)://.../Type/id,
// and false for anything else (urn:uuid:, urn:oid:, other URLs).
func restBase(fullURL string) (string, bool) {
	if !strings.HasPrefix(fullURL, "http://") && !strings.HasPrefix(fullURL, "https://") {
		return "", false
	}
	i := strings.LastIndexByte(fullURL, '/')
	if i < 0 || !fhir.IsID(fullURL[i+1:]) {
		return "", false
	}
	j := strings.LastIndexByte(fullURL[:i], '/')
	if j < 0 || !fhir.IsResourceType(fullURL[j+1:i]) {
		return "", false
	}
	return fullURL[:j], true
}

// decideEntries makes the resource-level decision for every write of a
// transaction before anything is written: on what each PUT or DELETE
// replaces and on what each POST or PUT writes. Patients created by the
// transaction count as the caller's (they have no record yet), so a
// bundle that registers a patient with their first observations passes.
func (r *Repo) decideEntries(ctx context.Context, order []*Entry) error {
	for _, e := range order {
		if e.Method == http.MethodPost && e.Type == "Patient" {
			r.facts.Register(e.ID)
		}
	}
	for _, e := range order {
		if e.Method == http.MethodGet {
			continue // decided when read, after the writes
		}
		if e.Method == http.MethodDelete && e.cond != nil {
			continue // each match is decided when its deletion is written (deleteMatches)
		}
		a := entryAction(e.Method)
		rec := r.record(entryAuditAction(e.Method), e.Type)
		e.old = nil
		if e.Method != http.MethodPost {
			v, err := r.s.st.Current(ctx, r.subj.Tenant, e.Type, e.ID)
			switch {
			case err == nil && !v.Deleted:
				plain, err := r.decideVersion(ctx, a, rec, v)
				if err != nil {
					return entryError(e, err)
				}
				if e.old, err = docOf(v, plain); err != nil {
					return err
				}
			case err == nil, errors.Is(err, store.ErrNotFound):
				if e.Method == http.MethodDelete && r.hidesExistence(e.Type) {
					return entryError(e, r.hidden(rec, "not-found"))
				}
			default:
				return store.Problem(err)
			}
		}
		if e.Resource != nil {
			t := writeTarget(r.subj.Tenant, e.Type, e.ID, e.old, e.Resource.Doc)
			t.New = e.Type == "Patient" && r.facts.Registered(e.ID)
			if err := r.decideOn(ctx, a, rec, t); err != nil {
				return entryError(e, err)
			}
		}
	}
	return nil
}

// mayDelete decides a conditional delete's match (its current version)
// without auditing a refusal: the caller is not told of it.
// It returns the content to be deleted.
func (r *Repo) mayDelete(ctx context.Context, rec *audit.Record, v *store.Version) (map[string]any, bool, error) {
	plain, err := r.open(ctx, v)
	if err != nil {
		return nil, false, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
	}
	doc, err := fhir.Parse(plain)
	if err != nil {
		return nil, false, fmt.Errorf("stored %s/%s does not parse: %w", v.Type, v.ID, err)
	}
	return doc.Doc, r.allowed(ctx, authz.Delete, targetOf(r.subj.Tenant, v.Type, v.ID, doc.Doc), rec), nil
}
