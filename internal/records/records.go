// Package records is the caller-bound repository: the only path from a
// handler to resource data.
//
// For every interaction a Repo, bound to one authenticated subject and one
// request, does the same things in the same order: decide (authz.Decide,
// before the store is touched, so a refusal says nothing about existence),
// validate, seal, commit the write together with its audit record, or read,
// open and commit the audit record of what is about to be disclosed. Nothing
// is returned to the caller until its audit record is durable; if the ledger
// cannot be written the call fails with problem.ErrUnavailable and returns
// no data. Refusals are audited too.
//
// The facts decisions need are loaded by internal/facts, cached per node
// and dropped by every write that may change them; with Options.Peers and
// Live (the invalidation bus) also by the other nodes' writes, and never
// used while this node may have missed one of those. Records writes no
// SQL: what a caller may see is handed to internal/search as values.
package records

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/facts"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/fhir/jsonpatch"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/store"
)

// Keys seals and opens bodies under the tenant's data key.
type Keys interface {
	DataKey(ctx context.Context, tenant string) (string, error)
	Seal(keyID string, plaintext, aad []byte) ([]byte, error)
	Open(envelope, aad []byte) ([]byte, error)
	// Blinder is the tenant's blind index (keyed hash) for search.
	Blinder(ctx context.Context, tenant string) (*seal.Blinder, error)
}

// Publisher tells the other nodes of a cluster which facts of a tenant a
// commit on this node may have changed. It is called after the commit
// (and after a commit whose outcome is unknown), never before.
type Publisher interface {
	// FactsChanged: the facts f of tenant changed, for the named patients
	// alone (a create in their compartments) or, with none, tenant-wide.
	FactsChanged(tenant string, f Facts, patients []string)
}

// Live reports whether cached facts may be used now: false while this
// node may have missed another node's invalidation.
type Live = facts.Live

// Facts names kinds of facts as other nodes hear of them, as a set.
type Facts = facts.Kinds

// The kinds of facts.
const (
	Relationships = facts.Relationships
	Consents      = facts.Consents
)

// Service holds what every Repo shares.
type Service struct {
	// labels remembers security labels' token hashes (labelHash).
	labels sync.Map
	st     store.Store
	keys   Keys
	// tenantKeysOnly: Options.TenantKeysOnly.
	tenantKeysOnly bool
	val            *fhir.Validator
	now            func() time.Time
	newID          func() string
	// randomIDs: newID draws version 4 UUIDs (no test injected one), so
	// a new Patient's key needs no look-up (keys.WithNewPatient).
	randomIDs bool
	indexer   *search.Indexer
	search    search.Options
	// condDeleteMax caps how many resources a conditional delete removes.
	condDeleteMax int

	noAdminPHI bool
	plainAddr  bool
	encWindow  time.Duration
	maxDecided int
	limits     Limits
	facts      *facts.Source
	peers      Publisher
	// registrationCare: see Options.RegistrationCare.
	registrationCare time.Duration
	// content keeps Binary content (binary.go).
	content Content
	// mergeFault is the test seam of InjectMergeFault (merge.go).
	mergeFault faultHook
	// integrity and baseURL: see Options.ReferentialIntegrity (integrity.go).
	integrity bool
	baseURL   string
	// shred: Options.Shred.
	shred ShredList
}

// Options configure a Service. Now and NewID are injectable for tests.
type Options struct {
	Now   func() time.Time
	NewID func() string
	// Search tunes indexing and search (the leaky index opt-in).
	Search search.Options
	// ConditionalDeleteMax caps how many resources one conditional delete
	// may remove (0: DefaultConditionalDeleteMax).
	ConditionalDeleteMax int
	// PlainAddresses keeps client network addresses in the ledger as
	// they are; by default a ledger record holds a keyed hash of the
	// address under the tenant's blind-index key (Repo.At).
	PlainAddresses bool
	// NoAdminPHI keeps admins out of patient data
	// (WARD_ADMIN_PHI_ACCESS=false).
	NoAdminPHI bool
	// EncounterWindow is how far back an Encounter makes a care
	// relationship (0: 90 days; negative: Encounters make none).
	EncounterWindow time.Duration
	// RegistrationCare is the period of the CareTeam a physician or nurse
	// gets with a Patient they create (registration.go); 0: none.
	RegistrationCare time.Duration
	// MaxDecidedCount bounds how many matches a search total decides one
	// by one (0: DefaultMaxDecidedCount); beyond it the total is left out.
	MaxDecidedCount int
	// Limits bound the work of one request (issue #22).
	Limits Limits
	// FactTTL bounds how long a cached fact is used without an
	// invalidation (0: 5 s): the safety net under Peers.
	FactTTL time.Duration
	// Peers, when set, is told what every commit may have invalidated,
	// for the other nodes; Live, when set, keeps the caches out of use
	// while invalidations may be missed. Both nil: a single node.
	Peers Publisher
	Live  Live
	// Content keeps raw Binary content (docs/documents.md).
	Content Content
	// ReferentialIntegrity refuses writes with unresolved local
	// references and deletes that leave references dangling
	// (integrity.go); BaseURL is the configured public root
	// (WARD_BASE_URL): absolute references under its /fhir are local, as
	// are those under Repo.Based's.
	ReferentialIntegrity bool
	BaseURL              string
	// TenantKeysOnly seals every version under the tenant's data key,
	// none under a patient's (for side-by-side benchmarks; see
	// patientkeys.go).
	TenantKeysOnly bool
	// Shred is the shred list an erasure is appended to (erase.go); nil
	// refuses every erasure (it could not survive a restore).
	Shred ShredList
}

// New returns a Service.
func New(st store.Store, keys Keys, val *fhir.Validator, o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	randomIDs := o.NewID == nil
	if o.NewID == nil {
		o.NewID = func() string { return uuid.Must(uuid.NewRandomFromReader(rand.Reader)).String() }
	}
	if o.Search.Now == nil {
		o.Search.Now = o.Now
	}
	if o.ConditionalDeleteMax <= 0 {
		o.ConditionalDeleteMax = DefaultConditionalDeleteMax
	}
	if o.EncounterWindow == 0 {
		o.EncounterWindow = defaultEncWindow
	}
	if o.MaxDecidedCount <= 0 {
		o.MaxDecidedCount = DefaultMaxDecidedCount
	}
	if o.Limits.Includes <= 0 {
		o.Limits.Includes = DefaultMaxIncluded
	}
	s := &Service{st: st, keys: keys, val: val, now: o.Now, newID: o.NewID, randomIDs: randomIDs,
		indexer: search.NewIndexer(o.Search), search: o.Search, condDeleteMax: o.ConditionalDeleteMax,
		noAdminPHI: o.NoAdminPHI, plainAddr: o.PlainAddresses, encWindow: o.EncounterWindow, maxDecided: o.MaxDecidedCount,
		limits: o.Limits, registrationCare: o.RegistrationCare, peers: o.Peers, tenantKeysOnly: o.TenantKeysOnly}
	o.Content.defaults()
	s.content = o.Content
	s.integrity = o.ReferentialIntegrity
	s.shred = o.Shred
	if o.BaseURL != "" {
		s.baseURL = strings.TrimSuffix(o.BaseURL, "/") + "/fhir"
	}
	s.facts = facts.New(facts.Config{Store: st, Keyer: s.keyer, Open: func(v *store.Version) ([]byte, error) { return s.open(context.Background(), v) }, Search: o.Search, Now: o.Now,
		EncounterWindow: o.EncounterWindow, AdminPHI: !o.NoAdminPHI, TTL: o.FactTTL, Live: o.Live})
	return s
}

// FactsChanged drops the cached facts f of tenant, of the named patients
// alone or, with none, tenant-wide: another node committed a write that
// may have changed them.
func (s *Service) FactsChanged(tenant string, f Facts, patients []string) {
	s.facts.Changed(tenant, f, patients)
}

// FactSource is where the Service loads the facts of its decisions.
func (s *Service) FactSource() *facts.Source { return s.facts }

// ResetFacts drops every cached fact (invalidations may have been lost).
func (s *Service) ResetFacts() { s.facts.Reset() }

// publish tells the other nodes (through Peers) what a commit may have
// changed: c.patients' facts of the kinds c.perPatient, and every fact of
// the kinds c.tenant.
func (s *Service) publish(tenant string, c change) {
	if s.peers == nil {
		return
	}
	if c.tenant != 0 {
		s.peers.FactsChanged(tenant, c.tenant, nil)
	}
	if f := c.perPatient &^ c.tenant; f != 0 && len(c.patients) > 0 {
		s.peers.FactsChanged(tenant, f, c.patients)
	}
}

// change is what one or more writes invalidated, for publish.
type change struct {
	tenant, perPatient Facts
	patients           []string
}

func (c *change) add(o change) {
	c.tenant |= o.tenant
	c.perPatient |= o.perPatient
	for _, p := range o.patients {
		if !slices.Contains(c.patients, p) {
			c.patients = append(c.patients, p)
		}
	}
}

// Repo is the repository bound to one caller and one request.
type Repo struct {
	s         *Service
	subj      authz.Subject
	requestID string
	address   string // for the ledger: keyed hash or plain (At)
	facts     *facts.Loader
	base      string // the request's FHIR base (Based)
	// deferred, when set, keeps the audit records instead of committing
	// them (Defer).
	deferred *Deferred
}

// Deferred holds the audit records of reads decided together, to be
// committed in one ledger transaction (Service.Flush) before any of what
// they read is disclosed. Not safe for concurrent use: one deliverer
// fills and flushes it.
type Deferred struct{ recs []*audit.Record }

// Len is how many records wait.
func (d *Deferred) Len() int { return len(d.recs) }

// Defer returns the repository with its audit records kept in d, not
// committed. For a caller that decides many reads before it discloses
// any (a Subscription's delivery batch: one ledger commit for all its
// notifications instead of one each, every one waiting for the single
// writer behind the changes being notified). The caller must Flush d,
// and succeed, before anything these reads returned leaves the server.
func (r *Repo) Defer(d *Deferred) *Repo {
	c := *r
	c.deferred = d
	return &c
}

// Flush commits the records d holds in one ledger transaction and
// empties d. A failure is ErrUnavailable: nothing read may be disclosed.
func (s *Service) Flush(ctx context.Context, d *Deferred) error {
	if len(d.recs) == 0 {
		return nil
	}
	recs := d.recs
	d.recs = nil
	return s.ledger().Record(ctx, recs...)
}

// For binds the repository to a caller.
func (s *Service) For(subj authz.Subject, requestID string) *Repo {
	return &Repo{s: s, subj: subj, requestID: requestID, facts: s.facts.For(subj)}
}

// Resource is a resource version as the caller sees it.
type Resource struct {
	Type        string
	ID          string
	Version     int64
	LastUpdated time.Time
	Deleted     bool
	// JSON is the resource (with meta.versionId and meta.lastUpdated);
	// nil for a deletion.
	JSON []byte
}

func (r *Repo) record(action, typ string) *audit.Record {
	return &audit.Record{
		Time:         r.s.now().UTC(),
		Tenant:       r.subj.Tenant,
		RequestID:    r.requestID,
		Actor:        r.subj.ID,
		Role:         string(r.subj.Role),
		Action:       action,
		ResourceType: typ,
		Address:      r.address,
	}
}

// At names the client's network address (as the server saw it) in the
// repository's ledger records: a keyed hash (the tenant's blind-index
// key, 128 bits in hex) unless Options.PlainAddresses. An address that
// cannot be hashed now (the key is unavailable) is recorded as
// "unhashed", never in the clear.
func (r *Repo) At(addr string) *Repo {
	switch {
	case addr == "":
	case r.s.plainAddr:
		r.address = addr
	default:
		b, err := r.s.keys.Blinder(context.Background(), r.subj.Tenant)
		if err != nil {
			r.address = "unhashed"
			break
		}
		h := b.Index("audit.address", addr)
		r.address = hex.EncodeToString(h[:16])
	}
	return r
}

// ledger is the audit recorder, the only way records reach the ledger.
func (s *Service) ledger() *store.Recorder {
	if pk, ok := s.keys.(patientKeyer); ok {
		return store.NewRecorder(keyedCommitter{s.st, pk})
	}
	return store.NewRecorder(s.st)
}

// commitAudit makes rec durable. A failure is ErrUnavailable: the caller
// must not disclose anything. The recorder detaches the write from the
// client, so a client that goes away cannot stop the record.
func (r *Repo) commitAudit(rec *audit.Record) error {
	if r.deferred != nil {
		r.deferred.recs = append(r.deferred.recs, rec)
		return nil
	}
	return r.s.ledger().Record(context.Background(), rec)
}

// refuse audits an unsuccessful attempt and returns err (or the audit
// failure, which wins: the client must then learn nothing).
func (r *Repo) refuse(rec *audit.Record, outcome audit.Outcome, detail string, err error) error {
	rec.Outcome = outcome
	rec.Detail = detail
	if aerr := r.commitAudit(rec); aerr != nil {
		return aerr
	}
	return err
}

// decide runs the type-level access decision (role, scopes, purpose: no
// facts about any resource, so before the store is touched) and audits a
// refusal. The resource-level decision (decideOn) follows once the
// resource is known.
func (r *Repo) decide(a authz.Action, rec *audit.Record) error {
	if rec.ResourceType == auditEventResourceType && a.IsWrite() {
		// AuditEvents are the ledger (LedgerView), never stored: a write
		// in a bundle is refused as the REST interaction is.
		return r.refuse(rec, audit.OutcomeMinor, "read-only", problem.New(problem.ErrNotAllowed, "not-supported",
			"AuditEvents are read-only: they are the audit ledger, written by the server alone"))
	}
	d := r.decideType(a, rec.ResourceType)
	rec.Purpose = d.Purpose
	if d.Allow {
		return nil
	}
	return r.refuse(rec, audit.OutcomeMinor, denial(d),
		problem.New(problem.ErrForbidden, "forbidden", "access denied by policy"))
}

func (r *Repo) validate(res *fhir.Resource, rec *audit.Record) error {
	if issues := append(r.s.val.Validate(res), subscriptionIssues(res)...); hasErrors(issues) {
		return r.refuse(rec, audit.OutcomeMinor, "invalid", &problem.Error{Class: problem.ErrInvalid, Issues: issues})
	}
	return nil
}

func ref(typ, id string, version int64) string {
	// Called for every resource disclosed: concatenation, not fmt.
	return typ + "/" + id + "/_history/" + strconv.FormatInt(version, 10)
}

// seal stamps meta, serialises and seals a resource version.
// It also computes the version's search index from the same document, so
// the rows committed with the version describe exactly what was sealed.
func (r *Repo) seal(ctx context.Context, res *fhir.Resource, version int64, now time.Time) (plain, sealed []byte, ix *store.Index, err error) {
	res.Doc["id"] = res.ID
	fhir.SetMeta(res.Doc, fmt.Sprint(version), now)
	plain, err = fhir.Marshal(res.Doc)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("serialise %s: %w", res.Type, err)
	}
	keyID, err := r.s.sealKey(ctx, r.subj.Tenant, res.Type, res.ID, res.Doc)
	if err != nil {
		return nil, nil, nil, err
	}
	sealed, err = r.s.keys.Seal(keyID, plain, seal.AAD(r.subj.Tenant, res.Type, res.ID, version))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("seal %s: %w", res.Type, err)
	}
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return nil, nil, nil, err
	}
	ix, err = r.s.indexer.Index(res.Doc, k)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("index %s: %w", res.Type, err)
	}
	return plain, sealed, ix, nil
}

// invalidate forgets the cached facts that write w can change. A first
// version (a create) changes the facts of the patients of doc alone; any
// other version may also have moved the resource away from the patients
// its previous version named, which only the tenant-wide generation
// covers.
// It returns what other nodes must forget.
func (s *Service) invalidate(w store.Write, doc map[string]any) change {
	if w.Version == 1 && !w.Deleted && doc != nil {
		ps := facts.PatientsOf(w.Type, w.ID, doc)
		if f, perPatient := s.facts.Created(w.Tenant, w.Type, ps); perPatient {
			return change{perPatient: f, patients: ps}
		} else {
			return change{tenant: f}
		}
	}
	return change{tenant: s.facts.Wrote(w.Tenant, w.Type)}
}

// keyer is the tenant's keyed hash for search rows and queries.
func (s *Service) keyer(ctx context.Context, tenant string) (search.Keyer, error) {
	b, err := s.keys.Blinder(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: index key: %v", problem.ErrUnavailable, err)
	}
	return search.BlindKeyer{B: b}, nil
}

func (r *Repo) open(ctx context.Context, v *store.Version) ([]byte, error) { return r.s.open(ctx, v) }

// contextOpener is a Keys that opens within a read (keys.WithFence): a
// patient key's erasure state is then read once per read, not per
// version, and a page's keys at once (Precheck).
type contextOpener interface {
	OpenContext(ctx context.Context, envelope, aad []byte) ([]byte, error)
	Precheck(ctx context.Context, envelopes [][]byte)
}

// precheck reads the key states of a page of versions at once.
func (s *Service) precheck(ctx context.Context, vs []store.Version) {
	o, ok := s.keys.(contextOpener)
	if !ok || len(vs) < 2 {
		return
	}
	envs := make([][]byte, len(vs))
	for i := range vs {
		envs[i] = vs[i].Body
	}
	o.Precheck(ctx, envs)
}

// keyObserver is a Keys that takes a key state the store read with a
// version (store.Version.SealKey) as its own erasure-fence read.
type keyObserver interface {
	Observed(k store.SealKeyState)
}

func (s *Service) open(ctx context.Context, v *store.Version) ([]byte, error) {
	aad := seal.AAD(v.Tenant, v.Type, v.ID, v.Version)
	if o, ok := s.keys.(keyObserver); ok && v.SealKey != nil {
		o.Observed(*v.SealKey)
	}
	var plain []byte
	var err error
	if o, ok := s.keys.(contextOpener); ok {
		plain, err = o.OpenContext(ctx, v.Body, aad)
	} else {
		plain, err = s.keys.Open(v.Body, aad)
	}
	if err != nil {
		// A body that does not open is tampering or a lost key: never
		// serve it, never say more than that to the client. A patient
		// erased (its key destroyed) is gone.
		var e erasedError
		if errors.As(err, &e) && e.Erased() {
			return nil, keyError(err)
		}
		return nil, fmt.Errorf("open %s/%s version %d: %w", v.Type, v.ID, v.Version, err)
	}
	return plain, nil
}

// commitFault, set by tests only, fails a commit before it reaches the
// store (an injected failure).
var commitFault func(*store.Unit) error

// commitWrite commits one write with its audit record, and the staged
// writes with it in the same unit, and maps the store's answer to a
// problem class. doc is the resource written (nil for a
// delete): when w creates it, the cached facts of its patients alone are
// invalidated. old is the content replaced (nil: none): a write that
// changes what governs access commits a second record saying so
// (governanceRecord).
func (r *Repo) commitWrite(ctx context.Context, w store.Write, rec *audit.Record, old, doc map[string]any, with ...staged) error {
	all := append([]staged{{w: w, rec: rec, old: old, doc: doc}}, with...)
	var recs []*audit.Record
	ws := make([]store.Write, len(all))
	olds, docs := map[int]map[string]any{}, map[int]map[string]any{}
	for i, x := range all {
		x.rec.Entities = []string{ref(x.w.Type, x.w.ID, x.w.Version)}
		recs = append(recs, x.rec)
		if g := governanceRecord(x.rec, x.w.Type, x.old, x.doc); g != nil {
			recs = append(recs, g)
		}
		ws[i], olds[i], docs[i] = x.w, x.old, x.doc
	}
	unit := &store.Unit{Writes: ws, Parts: r.eventParts(ws, olds, docs)}
	var err error
	if commitFault != nil {
		err = commitFault(unit)
	}
	if err == nil {
		err = r.s.ledger().Commit(ctx, unit, recs...)
	}
	for _, x := range all {
		r.s.publish(x.w.Tenant, r.s.invalidate(x.w, x.doc)) // also on failure: the outcome may be unknown
	}
	r.facts.Wrote()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %v", problem.ErrConflict, err)
	default:
		return err // the recorder's: problem.ErrUnavailable
	}
}

// Create stores a new resource with a server-assigned id.
func (r *Repo) Create(ctx context.Context, res *fhir.Resource) (*Resource, error) {
	rec := r.record("create", res.Type)
	if err := r.decide(authz.Create, rec); err != nil {
		return nil, err
	}
	if err := r.validate(res, rec); err != nil {
		return nil, err
	}
	res.ID = r.s.newID()
	if res.Type == "Patient" && r.s.randomIDs {
		ctx = keys.WithNewPatient(ctx, r.subj.Tenant, res.ID)
	}
	if err := r.checkReferences(ctx, rec, []*fhir.Resource{res}, nil, nil); err != nil {
		return nil, err
	}
	t := targetOf(r.subj.Tenant, res.Type, res.ID, res.Doc)
	t.New = res.Type == "Patient"
	if err := r.decideOn(ctx, authz.Create, rec, t); err != nil {
		return nil, err
	}
	if err := r.attachments(ctx, rec, res); err != nil {
		return nil, err
	}
	if r.registers(res) {
		g, err := r.planRegistration(ctx, res.ID)
		if err != nil {
			return nil, err
		}
		return r.createRegistered(ctx, res, rec, g)
	}
	now := r.s.now().UTC()
	plain, sealed, ix, err := r.seal(ctx, res, 1, now)
	if err != nil {
		return nil, err
	}
	w := store.Write{Tenant: r.subj.Tenant, Type: res.Type, ID: res.ID, Version: 1, LastUpdated: now, Body: sealed, Index: ix}
	sup, err := r.superseding(ctx, res, now)
	if err != nil {
		return nil, err
	}
	if err := r.commitWrite(ctx, w, rec, nil, res.Doc, sup...); err != nil {
		return nil, err
	}
	return &Resource{Type: res.Type, ID: res.ID, Version: 1, LastUpdated: now, JSON: plain}, nil
}

// maxUpdateRetries bounds the re-reads of an update without If-Match that
// lost a race with another writer.
const maxUpdateRetries = 8

// Update stores a new version of res (whose ID is the URL's). ifMatch, when
// not nil, is the version the client expects to replace. An update of a
// resource that does not exist creates it. created reports which.
func (r *Repo) Update(ctx context.Context, res *fhir.Resource, ifMatch *int64) (out *Resource, created bool, err error) {
	rec := r.record("update", res.Type)
	if err := r.decide(authz.Update, rec); err != nil {
		return nil, false, err
	}
	if err := r.validate(res, rec); err != nil {
		return nil, false, err
	}
	if err := r.checkReferences(ctx, rec, []*fhir.Resource{res}, nil, nil); err != nil {
		return nil, false, err
	}
	// reg is the registration CareTeam of a new Patient this update
	// creates (as Create makes one), decided with the first attempt.
	var reg *registration
	for attempt := 0; ; attempt++ {
		var cur int64
		v, err := r.s.st.Current(ctx, r.subj.Tenant, res.Type, res.ID)
		switch {
		case err == nil:
			cur = v.Version
		case errors.Is(err, store.ErrNotFound):
		default:
			return nil, false, store.Problem(err)
		}
		var old map[string]any
		var oldPlain []byte
		if attempt == 0 {
			// The caller must be allowed to change what is there and to
			// write what it sends: every patient of both.
			if cur > 0 && !v.Deleted {
				plain, err := r.decideVersion(ctx, authz.Update, rec, v)
				if err != nil {
					return nil, false, err
				}
				oldPlain = plain
				if old, err = docOf(v, plain); err != nil {
					return nil, false, err
				}
			}
			t := writeTarget(r.subj.Tenant, res.Type, res.ID, old, res.Doc)
			if cur == 0 {
				// A Patient id that records already name is theirs: creating
				// it writes into their compartment.
				if t.New, err = r.newPatient(ctx, res.Type, res.ID); err != nil {
					return nil, false, err
				}
			}
			if err := r.decideOn(ctx, authz.Update, rec, t); err != nil {
				return nil, false, err
			}
			if err := r.attachments(ctx, rec, res); err != nil {
				return nil, false, err
			}
			if t.New && r.registers(res) {
				if reg, err = r.planRegistration(ctx, res.ID); err != nil {
					return nil, false, err
				}
			}
		} else if cur > 0 {
			if old, err = r.currentDoc(v); err != nil {
				return nil, false, err
			}
		}
		if ifMatch != nil && *ifMatch == 0 && cur != 0 {
			return nil, false, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
				problem.New(problem.ErrPreconditionFailed, "conflict", "If-None-Match: * but the resource has versions already"))
		}
		if ifMatch != nil && *ifMatch != cur {
			return nil, false, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
				problem.New(problem.ErrPreconditionFailed, "conflict", fmt.Sprintf("If-Match names version %d but the current version is %d", *ifMatch, cur)))
		}
		if oldPlain != nil && unchanged(old, res.Doc) {
			// Nothing changes: no new version (FHIR R4 http.html,
			// update); the answer is the current version, and the
			// attempt is in the ledger like any update.
			rec.Entities = []string{ref(v.Type, v.ID, v.Version)}
			rec.Detail = "unchanged"
			if err := r.commitAudit(rec); err != nil {
				return nil, false, err
			}
			return &Resource{Type: v.Type, ID: v.ID, Version: v.Version, LastUpdated: v.LastUpdated, JSON: oldPlain}, false, nil
		}
		if reg != nil && cur == 0 {
			// Still absent: created with its registration CareTeam.
			out, err := r.createRegistered(ctx, res, rec, reg)
			if retry, err := lostRace(err, ifMatch, attempt); retry {
				rec = r.record("update", res.Type)
				reg.rec = r.record("create", "CareTeam")
				continue
			} else if err != nil {
				return nil, false, err
			}
			return out, true, nil
		}
		now := r.s.now().UTC()
		plain, sealed, ix, err := r.seal(ctx, res, cur+1, now)
		if err != nil {
			return nil, false, err
		}
		rec.Time = now
		w := store.Write{Tenant: r.subj.Tenant, Type: res.Type, ID: res.ID, Version: cur + 1, LastUpdated: now, Body: sealed, Index: ix}
		sup, err := r.superseding(ctx, res, now)
		if err != nil {
			return nil, false, err
		}
		err = r.commitWrite(ctx, w, rec, old, res.Doc, sup...)
		if retry, err := lostRace(err, ifMatch, attempt); retry {
			rec = r.record("update", res.Type)
			continue
		} else if err != nil {
			return nil, false, err
		}
		return &Resource{Type: res.Type, ID: res.ID, Version: cur + 1, LastUpdated: now, JSON: plain}, cur == 0, nil
	}
}

// Limits bound the work of one request; a zero field is no bound (but
// Includes, whose zero means DefaultMaxIncluded).
type Limits struct {
	// PatchElements caps the JSON values of a patched resource after
	// each operation (WARD_PATCH_MAX_ELEMENTS).
	PatchElements int
	// ArrayItems caps the items of an array a patch adds to
	// (WARD_RESOURCE_MAX_ARRAY_ITEMS).
	ArrayItems int
	// Includes caps the resources _include and _revinclude add to one
	// search page (WARD_SEARCH_MAX_INCLUDES).
	Includes int
	// Parse bounds each resource line of an import.
	Parse fhir.Limits
}

// Patch applies a JSON Patch to the current version and stores the result
// as a new version, validated like any write. The caller sees the patched
// resource, so patching needs both read and update permission. ifMatch,
// when not nil, is the version the patch was written against.
func (r *Repo) Patch(ctx context.Context, typ, id string, ops []jsonpatch.Op, ifMatch *int64) (*Resource, error) {
	return r.patchWith(ctx, typ, id, ifMatch, r.patcher(patchDoc{json: ops}))
}

// patchWith is the patch interaction for any patch format: apply returns
// the patched document or a *problem.Error. Both the current version and
// the patched document are decided (read and update), so a patch can
// neither reach a record the caller may not see nor move one elsewhere.
func (r *Repo) patchWith(ctx context.Context, typ, id string, ifMatch *int64, apply func(map[string]any) (map[string]any, error)) (*Resource, error) {
	rec := r.record("patch", typ)
	if err := r.decide(authz.Read, rec); err != nil {
		return nil, err
	}
	if err := r.decide(authz.Update, rec); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		v, err := r.instance(ctx, rec, typ, id, 0)
		if err != nil {
			return nil, err
		}
		rec.Entities = []string{ref(typ, id, v.Version)}
		if v.Deleted && r.hidesExistence(typ) {
			return nil, r.hidden(rec, "deleted")
		}
		if v.Deleted {
			return nil, r.refuse(rec, audit.OutcomeMinor, "deleted",
				problem.New(problem.ErrGone, "deleted", fmt.Sprintf("%s/%s was deleted", typ, id)))
		}
		plain, err := r.decideVersion(ctx, authz.Update, rec, v)
		if err != nil {
			return nil, err
		}
		// After the decision: a precondition answer must not tell a caller
		// who may not touch the resource that it exists.
		if ifMatch != nil && *ifMatch != v.Version {
			return nil, r.refuse(rec, audit.OutcomeMinor, "precondition-failed",
				problem.New(problem.ErrPreconditionFailed, "conflict", fmt.Sprintf("If-Match names version %d but the current version is %d", *ifMatch, v.Version)))
		}
		cur, err := fhir.Parse(plain)
		if err != nil {
			return nil, fmt.Errorf("stored %s/%s does not parse: %w", typ, id, err)
		}
		old, err := docOf(v, plain)
		if err != nil {
			return nil, err
		}
		doc, err := apply(cur.Doc)
		if err != nil {
			return nil, r.refuse(rec, audit.OutcomeMinor, "patch-failed", err)
		}
		if doc["resourceType"] != typ || doc["id"] != id {
			return nil, r.refuse(rec, audit.OutcomeMinor, "patch-failed", problem.New(problem.ErrUnprocessable, "processing",
				"the patched document must stay a "+typ+" with id "+id))
		}
		res := &fhir.Resource{Type: typ, ID: id, Doc: doc}
		if issues := r.s.val.Validate(res); hasErrors(issues) {
			return nil, r.refuse(rec, audit.OutcomeMinor, "invalid", &problem.Error{Class: problem.ErrUnprocessable, Issues: issues})
		}
		if err := r.checkReferences(ctx, rec, []*fhir.Resource{res}, nil, nil); err != nil {
			return nil, err
		}
		if err := r.decideOn(ctx, authz.Update, rec, writeTarget(r.subj.Tenant, typ, id, old, doc)); err != nil {
			return nil, err
		}
		now := r.s.now().UTC()
		out, sealed, ix, err := r.seal(ctx, res, v.Version+1, now)
		if err != nil {
			return nil, err
		}
		rec.Time = now
		w := store.Write{Tenant: r.subj.Tenant, Type: typ, ID: id, Version: v.Version + 1, LastUpdated: now, Body: sealed, Index: ix}
		err = r.commitWrite(ctx, w, rec, old, res.Doc)
		if retry, err := lostRace(err, ifMatch, attempt); retry {
			rec = r.record("patch", typ)
			continue
		} else if err != nil {
			return nil, err
		}
		return &Resource{Type: typ, ID: id, Version: w.Version, LastUpdated: now, JSON: out}, nil
	}
}

func hasErrors(issues []fhir.Issue) bool {
	for _, is := range issues {
		if is.Severity == "error" || is.Severity == "fatal" {
			return true
		}
	}
	return false
}

// lostRace says what to do after a write commit: retry when it lost a race
// to another writer and the client named no version (the write is then
// redone on the new current version), or return the error: 412 when the
// client's If-Match version was overtaken, 409 after too many retries.
func lostRace(err error, ifMatch *int64, attempt int) (retry bool, _ error) {
	switch {
	case !errors.Is(err, problem.ErrConflict):
		return false, err
	case ifMatch != nil:
		return false, problem.New(problem.ErrPreconditionFailed, "conflict", "the resource was changed by another request")
	case attempt < maxUpdateRetries:
		return true, nil
	default:
		return false, problem.New(problem.ErrConflict, "conflict", "the resource is being changed by other requests; try again")
	}
}

// Delete marks a resource deleted; its versions stay in history. Deleting
// a deleted resource changes nothing. Deleting one that never existed
// writes nothing and returns nil, nil (FHIR R4 http.html 3.1.0.7: 200 or
// 204, as in a transaction), except for a caller from whom existence is
// hidden, who is refused as for any unknown id.
func (r *Repo) Delete(ctx context.Context, typ, id string) (*Resource, error) {
	rec := r.record("delete", typ)
	if err := r.decide(authz.Delete, rec); err != nil {
		return nil, err
	}
	if _, err := r.s.st.Current(ctx, r.subj.Tenant, typ, id); errors.Is(err, store.ErrNotFound) && !r.hidesExistence(typ) {
		rec.Detail = "nothing-to-delete"
		return nil, r.commitAudit(rec)
	}
	for attempt := 0; ; attempt++ {
		v, err := r.instance(ctx, rec, typ, id, 0)
		if err != nil {
			return nil, err
		}
		if v.Deleted && r.hidesExistence(typ) {
			return nil, r.hidden(rec, "deleted")
		}
		var old map[string]any
		if !v.Deleted {
			var plain []byte
			if attempt == 0 {
				plain, err = r.decideVersion(ctx, authz.Delete, rec, v)
			} else {
				plain, err = r.open(ctx, v)
			}
			if err != nil {
				return nil, err
			}
			if old, err = docOf(v, plain); err != nil {
				return nil, err
			}
		}
		if v.Deleted {
			rec.Entities = []string{ref(typ, id, v.Version)}
			rec.Detail = "already-deleted"
			if err := r.commitAudit(rec); err != nil {
				return nil, err
			}
			return &Resource{Type: typ, ID: id, Version: v.Version, LastUpdated: v.LastUpdated, Deleted: true}, nil
		}
		if err := r.checkReferrers(ctx, rec, []store.Ref{{Type: typ, ID: id}}, nil); err != nil {
			return nil, err
		}
		now := r.s.now().UTC()
		rec.Time = now
		w := store.Write{Tenant: r.subj.Tenant, Type: typ, ID: id, Version: v.Version + 1, LastUpdated: now, Deleted: true}
		err = r.commitWrite(ctx, w, rec, old, nil)
		if errors.Is(err, problem.ErrConflict) && attempt < maxUpdateRetries {
			rec = r.record("delete", typ)
			continue
		}
		if err != nil {
			return nil, err
		}
		return &Resource{Type: typ, ID: id, Version: w.Version, LastUpdated: now, Deleted: true}, nil
	}
}

// Read returns the current version.
func (r *Repo) Read(ctx context.Context, typ, id string) (*Resource, error) {
	return r.read(ctx, "read", typ, id, 0)
}

// VRead returns one version.
func (r *Repo) VRead(ctx context.Context, typ, id string, version int64) (*Resource, error) {
	return r.read(ctx, "vread", typ, id, version)
}

func (r *Repo) read(ctx context.Context, action, typ, id string, version int64) (*Resource, error) {
	rec := r.record(action, typ)
	if err := r.decide(authz.Read, rec); err != nil {
		return nil, err
	}
	v, err := r.instance(ctx, rec, typ, id, version)
	if err != nil {
		return nil, err
	}
	rec.Entities = []string{ref(typ, id, v.Version)}
	if v.Deleted {
		// The fact of deletion is disclosed: only to a caller who could
		// read the resource before it was deleted.
		if r.hidesExistence(typ) || compartment.InPatientCompartment(typ) {
			if err := r.decideDeleted(ctx, authz.Read, rec, v); err != nil {
				return nil, err
			}
		}
		rec.Detail = "deleted"
		if err := r.commitAudit(rec); err != nil {
			return nil, err
		}
		return &Resource{Type: typ, ID: id, Version: v.Version, LastUpdated: v.LastUpdated, Deleted: true},
			problem.New(problem.ErrGone, "deleted", fmt.Sprintf("%s/%s was deleted", typ, id))
	}
	plain, err := r.decideVersion(ctx, authz.Read, rec, v)
	if err != nil {
		return nil, err
	}
	if err := r.commitAudit(rec); err != nil {
		return nil, err
	}
	return &Resource{Type: typ, ID: id, Version: v.Version, LastUpdated: v.LastUpdated, JSON: plain}, nil
}

// HistoryQuery selects history. Empty Type: the whole tenant's history;
// empty ID: the type's.
type HistoryQuery struct {
	Type   string
	ID     string
	Since  time.Time
	Before int64
	Count  int
}

// Page is a list of versions with the cursor of the next page (0 or "": no
// further page).
type Page struct {
	Resources  []Resource
	NextBefore int64
	NextAfter  string
	// Search results only: resources added by _include and _revinclude,
	// the cursor of the next page (nil: last page) and the total when
	// known.
	Included []Resource
	NextKeys []any
	// Prev is the cursor of the page before (search results only; nil
	// on the first page).
	Prev  *Cursor
	Total *int64
	// TotalMAC, with Total, is what a cursor carries to the next page
	// (Cursor.TotalMAC); 0 when the total is not to be carried.
	TotalMAC int64
	// Notes are warnings for the caller about the search itself (never
	// PHI), such as a total left out.
	Notes []string
}

// History returns versions newest first.
func (r *Repo) History(ctx context.Context, q HistoryQuery) (*Page, error) {
	action := "history-system"
	switch {
	case q.ID != "":
		action = "history-instance"
	case q.Type != "":
		action = "history-type"
	}
	rec := r.record(action, q.Type)
	if err := r.decide(authz.History, rec); err != nil {
		return nil, err
	}
	if q.ID != "" {
		// Whatever _since and the cursor select, the answer must not say
		// whether the resource exists to a caller who may not read it.
		if err := r.guardInstance(ctx, rec, authz.History, q.Type, q.ID, true); err != nil {
			return nil, err
		}
		rec.Entities = nil
	}
	hq := store.HistoryQuery{Tenant: r.subj.Tenant, Type: q.Type, ID: q.ID, Since: q.Since, Before: q.Before, Limit: q.Count + 1}
	if q.ID == "" {
		// Type and system history: restricted in SQL like a search, so a
		// page walks only what the caller may see; each version is then
		// decided on its own body (disclose).
		where, args, err := r.historyRestriction(ctx, q.Type)
		if err != nil {
			return nil, err
		}
		if where != "" {
			hq.Where, hq.Args = []string{where}, args
		}
	}
	vs, err := r.s.st.History(ctx, hq)
	if err != nil {
		return nil, store.Problem(err)
	}
	if q.ID != "" && len(vs) == 0 && q.Before == 0 && q.Since.IsZero() {
		if r.hidesExistence(q.Type) {
			return nil, r.hidden(rec, "not-found")
		}
		return nil, r.refuse(rec, audit.OutcomeMinor, "not-found",
			problem.New(problem.ErrNotFound, "not-found", fmt.Sprintf("%s/%s is not known", q.Type, q.ID)))
	}
	if q.Count <= 0 {
		// _count=0 asks for the total alone (FHIR search.html#count;
		// history takes _count with the same meaning).
		return r.historyTotal(ctx, rec, hq, q.ID != "")
	}
	page := &Page{}
	if len(vs) > q.Count {
		vs = vs[:q.Count]
		page.NextBefore = vs[len(vs)-1].Seq
	}
	if err := r.decideVersions(ctx, rec, vs, page, q.ID != ""); err != nil {
		return nil, err
	}
	// Every page carries the total: the only page what it shows, one of
	// several the versions counted as a page decides them (bounded).
	if page.NextBefore == 0 && q.Before == 0 {
		n := int64(len(page.Resources))
		page.Total = &n
	} else {
		named := rec.Entities
		all := hq
		all.Before = 0
		n, known, err := r.countHistory(ctx, rec, all, q.ID != "")
		if err != nil {
			return nil, err
		}
		rec.Entities = named
		if known {
			page.Total = &n
		} else {
			page.Notes = append(page.Notes, TotalTooCostly)
		}
	}
	return page, r.commitAudit(rec)
}

// historyRestriction is the SQL condition (over the current row r of each
// version's resource) of a type (typ) or system (typ "") history: the
// types the caller may read the history of, and of those, the resources a
// search by the caller would reach, or deleted ones (a deletion keeps no
// index rows; its versions are decided one by one by disclose). Versions
// of a resource whose current version the caller may not see are not
// listed, even where an older version was about a patient the caller may
// see (as instance history refuses such a resource). "" means none.
func (r *Repo) historyRestriction(ctx context.Context, typ string) (string, []any, error) {
	types, all := []string{typ}, true
	if typ == "" {
		types = nil
		for _, t := range fhir.ResourceTypes() {
			if r.decideType(authz.History, t).Allow {
				types = append(types, t)
			} else {
				all = false
			}
		}
		if len(types) == 0 {
			return search.NoRows, nil, nil
		}
	}
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return "", nil, err
	}
	where, args, err := r.restriction(ctx, types, k)
	if err != nil || (where == "" && all) {
		return "", nil, err
	}
	targs := make([]any, len(types))
	for i, t := range types {
		targs[i] = t
	}
	if where == "" {
		return search.TypesIn("r", len(types)), targs, nil
	}
	return search.DeletedOrKept(len(types), where), append(targs, args...), nil
}

// historyTotal counts the versions of hq the caller would be shown, a
// chunk at a time, deciding each as a page would; beyond the bound of
// decisions (WARD_SEARCH_MAX_DECIDED) the total is left out. No version
// is disclosed, so none is named in the audit record.
func (r *Repo) historyTotal(ctx context.Context, rec *audit.Record, hq store.HistoryQuery, strict bool) (*Page, error) {
	n, known, err := r.countHistory(ctx, rec, hq, strict)
	if err != nil {
		return nil, err
	}
	rec.Entities = nil
	page := &Page{}
	if known {
		page.Total = &n
	} else {
		page.Notes = append(page.Notes, TotalTooCostly)
	}
	return page, r.commitAudit(rec)
}

// countHistory counts the versions of hq the caller would be shown;
// known is false beyond the bound of decisions. It names versions in
// rec.Entities: the caller resets them.
func (r *Repo) countHistory(ctx context.Context, rec *audit.Record, hq store.HistoryQuery, strict bool) (int64, bool, error) {
	hq.Limit = decideChunk
	var n int64
	seen := 0
	known := true
	for {
		if err := ctx.Err(); err != nil {
			return 0, false, err
		}
		vs, err := r.s.st.History(ctx, hq)
		if err != nil {
			return 0, false, store.Problem(err)
		}
		if seen += len(vs); seen > r.s.maxDecided {
			known = false
			break
		}
		var scratch Page
		if err := r.decideVersions(ctx, rec, vs, &scratch, strict); err != nil {
			return 0, false, err
		}
		n += int64(len(scratch.Resources))
		if len(vs) < hq.Limit {
			break
		}
		hq.Before = vs[len(vs)-1].Seq
	}
	return n, known, nil
}

// decideVersions puts into page what of vs the caller may see (strict:
// refusing the whole request if any is denied), naming each in rec.
func (r *Repo) decideVersions(ctx context.Context, rec *audit.Record, vs []store.Version, page *Page, strict bool) error {
	page.Resources = make([]Resource, 0, len(vs))
	for i := range vs {
		v := &vs[i]
		out := Resource{Type: v.Type, ID: v.ID, Version: v.Version, LastUpdated: v.LastUpdated, Deleted: v.Deleted}
		if v.Deleted && !strict {
			ok, err := r.mayLearnDeletion(ctx, rec, v)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		if !v.Deleted {
			plain, err := r.open(ctx, v)
			if err != nil {
				return r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
			}
			doc, err := fhir.Parse(plain)
			if err != nil {
				return fmt.Errorf("stored %s/%s does not parse: %w", v.Type, v.ID, err)
			}
			if strict {
				if err := r.decideRead(ctx, rec, v.Type, v.ID, doc.Doc); err != nil {
					return err
				}
			} else if !r.readable(ctx, rec, v.Type, v.ID, doc.Doc) {
				continue
			}
			out.JSON = plain
		}
		page.Resources = append(page.Resources, out)
		rec.Entities = append(rec.Entities, ref(v.Type, v.ID, v.Version))
	}
	return nil
}

// mayLearnDeletion decides whether a deletion version may be listed: the
// caller must be allowed to read the last version before it that has a
// body (a deletion without one is never listed).
func (r *Repo) mayLearnDeletion(ctx context.Context, rec *audit.Record, v *store.Version) (bool, error) {
	live, err := r.lastLive(ctx, v)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	plain, err := r.open(ctx, live)
	if err != nil {
		return false, r.refuse(rec, audit.OutcomeSerious, "unsealable", err)
	}
	doc, err := fhir.Parse(plain)
	if err != nil {
		return false, fmt.Errorf("stored %s/%s does not parse: %w", live.Type, live.ID, err)
	}
	return r.readable(ctx, rec, live.Type, live.ID, doc.Doc), nil
}
