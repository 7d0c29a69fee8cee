package records

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/fhir/compartment"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/shred"
	"github.com/wardhealth/ward/internal/store"
)

// Patient/$erase (docs/keys.md, Erasure): crypto-shredding. One unit
// destroys the patient's data key (its wrapped form is erased, a
// tombstone stays), deletes the index rows of the patient's resources,
// marks them deleted and overwrites the body of every stored version of
// them with an envelope no key opens (versions still under the tenant
// key too), and appends one ledger record naming only ids, the SHA-256
// of the reason and counts; a legal hold on the patient refuses the
// unit in the same transaction. Then the erasure is appended to the
// shred list, outside the database, so that a restore re-applies it
// (fail closed: no success without it); then the Binaries' content
// objects are deleted and the key is forgotten by this node's cache;
// other nodes check a patient key's state before each open
// (keys.Manager.Open).

// EraseResult says what an erasure shredded.
type EraseResult struct {
	Patient, KeyID string
	// Resources is how many resources were sealed under the key
	// (the Patient included), Objects how many content objects were
	// deleted.
	Resources, Objects int
}

// ShredList is where an erasure is kept outside the database, so that a
// restore re-applies it (internal/shred).
type ShredList interface {
	Append(ctx context.Context, e shred.Entry) error
	Find(ctx context.Context, tenant, patient string) (*shred.Entry, error)
}

// forgetter is the keyring's cache eviction (keys.Manager).
type forgetter interface{ Forget(id string) }

// Erase runs Patient/$erase for the caller with the reason given (free
// text: only its SHA-256 is recorded).
func (r *Repo) Erase(ctx context.Context, id, reason string) (*EraseResult, error) {
	rec := r.record("erase", "Patient")
	if err := r.decide(authz.Erase, rec); err != nil {
		return nil, err
	}
	tenant := r.subj.Tenant
	rec.Entities = []string{"Patient/" + id}
	if strings.TrimSpace(reason) == "" {
		return nil, r.refuse(rec, audit.OutcomeMinor, "invalid", problem.At(problem.ErrInvalid, "required", "Parameters.parameter", "$erase: a reason is required"))
	}
	if err := r.decideOn(ctx, authz.Erase, rec, authz.Target{Tenant: tenant, Type: "Patient", ID: id, Instance: true, Patients: []string{id}}); err != nil {
		return nil, err
	}
	if _, ok := r.s.keys.(patientKeyer); !ok || r.s.tenantKeysOnly {
		return nil, r.refuse(rec, audit.OutcomeMinor, "no-patient-keys", problem.New(problem.ErrUnprocessable, "not-supported",
			"erasure needs per-patient data keys, which this server does not use"))
	}
	if r.s.shred == nil {
		return nil, r.refuse(rec, audit.OutcomeSerious, "no-shred-list", problem.New(problem.ErrUnavailable, "transient",
			"erasure needs the shred list (in the document store), which this server cannot open now"))
	}
	_, err := r.s.st.Current(ctx, tenant, "Patient", id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, r.refuse(rec, audit.OutcomeMinor, "not-found", problem.New(problem.ErrNotFound, "not-found", "Patient/"+id+" is not known"))
	}
	if err != nil {
		return nil, store.Problem(err)
	}
	kid := keys.PatientKeyID(tenant, id)
	rec.Entities = append(rec.Entities, "data-key/"+kid)
	k, err := r.s.st.Key(ctx, kid)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, r.refuse(rec, audit.OutcomeMinor, "no-patient-key", problem.New(problem.ErrUnprocessable, "business-rule",
			"nothing of Patient/"+id+" is sealed under its own key (run ward keys migrate first)"))
	case err != nil:
		return nil, store.Problem(err)
	case k.State == store.KeyDestroyed:
		// An earlier erasure committed; if writing its shred-list entry
		// failed (that request answered 503), write it now.
		if err := r.ensureShredEntry(ctx, id, kid); err != nil {
			return nil, err
		}
		return nil, r.refuse(rec, audit.OutcomeMinor, "erased", problem.New(problem.ErrGone, "deleted", "Patient/"+id+" was already erased"))
	}
	refs, binaries, err := r.sealedUnder(ctx, id, kid)
	if err != nil {
		return nil, r.refuse(rec, audit.OutcomeSerious, "erase-plan", err)
	}
	sum := sha256.Sum256([]byte(reason))
	rec.Detail = "reason-sha256:" + hex.EncodeToString(sum[:]) + " resources:" + strconv.Itoa(len(refs))
	shredded, err := seal.Shredded(kid)
	if err != nil {
		return nil, err
	}
	u := &store.Unit{Parts: []store.Part{
		store.ErasePatient{Tenant: tenant, Patient: id, Resources: refs, Shredded: shredded},
		store.DestroyKey{ID: kid},
	}}
	if err := r.s.ledger().Commit(ctx, u, rec); err != nil {
		if errors.Is(err, store.ErrHeld) {
			// The store committed rec all the same, marked a conflict.
			return nil, problem.New(problem.ErrConflict, "conflict",
				"Patient/"+id+" is under a legal hold: it cannot be erased until the hold is released")
		}
		return nil, store.Problem(err)
	}
	if f, ok := r.s.keys.(forgetter); ok {
		f.Forget(kid)
	}
	res := &EraseResult{Patient: id, KeyID: kid, Resources: len(refs)}
	// Fail closed: no success without the entry that keeps the erasure
	// through a restore. The commit stands; repeating the request
	// writes the entry (ensureShredEntry).
	names := make([]string, len(refs))
	for i, ref := range refs {
		names[i] = ref.Type + "/" + ref.ID
	}
	e := shred.Entry{Tenant: tenant, Patient: id, Keys: []string{kid}, Resources: names, Seq: rec.Seq, Hash: hex.EncodeToString(rec.Hash[:]), At: rec.Time}
	if err := r.s.shred.Append(ctx, e); err != nil {
		return nil, fmt.Errorf("%w: erase: the erasure committed but its shred-list entry was not written (repeat the request): %v", problem.ErrUnavailable, err)
	}
	if objs := r.s.content.Objects; objs != nil {
		for _, b := range binaries {
			var names []string
			err := objs.List(ctx, ObjectPrefix(tenant)+b+"/", func(o blob.Object) error { names = append(names, o.Key); return nil })
			if err != nil {
				return res, fmt.Errorf("%w: erase: list objects: %v", problem.ErrUnavailable, err)
			}
			for _, n := range names {
				err := objs.Delete(ctx, n)
				if errors.Is(err, blob.ErrLocked) {
					// Under object lock retention: it stays, unreadable (its
					// key is destroyed), and the sweeper deletes it once the
					// retention ends.
					continue
				}
				if err != nil {
					return res, fmt.Errorf("%w: erase: delete object: %v", problem.ErrUnavailable, err)
				}
				res.Objects++
			}
		}
	}
	return res, nil
}

// sealedUnder lists the resources of patient id: the Patient, those of
// its compartment (by the index) and the Binaries (by a scan of the
// tenant's Binaries) whose current version is sealed under kid, or under
// a tenant key with content that is this patient's alone (patientOf). It
// returns the Binaries' ids apart too.
func (r *Repo) sealedUnder(ctx context.Context, id, kid string) ([]store.Ref, []string, error) {
	tenant := r.subj.Tenant
	bk, err := r.s.keyer(ctx, tenant)
	if err != nil {
		return nil, nil, err
	}
	var refs []store.Ref
	var binaries []string
	scan := func(sq store.SearchQuery, fn func(h store.Hit)) error {
		sq.Limit = mergeChunk
		for {
			hits, err := r.s.st.Search(ctx, sq)
			if err != nil {
				return store.Problem(err)
			}
			for _, h := range hits {
				fn(h)
			}
			if len(hits) < sq.Limit {
				return nil
			}
			sq.After = []any{hits[len(hits)-1].RID}
		}
	}
	types := compartment.PatientTypes()
	where, args := search.InCompartmentOf(types, compartmentPIDs, id, tenant, bk)
	seen := map[store.Ref]bool{}
	var openErr error
	add := func(h store.Hit) {
		ref := store.Ref{Type: h.Type, ID: h.ID}
		if seen[ref] {
			return
		}
		ok, err := r.patientOf(ctx, &h.Version, id, kid)
		if err != nil && openErr == nil {
			openErr = err
		}
		if ok {
			seen[ref] = true
			refs = append(refs, ref)
		}
	}
	if err := scan(store.SearchQuery{Tenant: tenant, Types: types, Where: []string{where}, Args: args}, add); err != nil {
		return nil, nil, err
	}
	if !seen[store.Ref{Type: "Patient", ID: id}] {
		refs = append(refs, store.Ref{Type: "Patient", ID: id})
	}
	err = scan(store.SearchQuery{Tenant: tenant, Types: []string{"Binary"}}, func(h store.Hit) {
		ok, err := r.patientOf(ctx, &h.Version, id, kid)
		if err != nil && openErr == nil {
			openErr = err
		}
		if ok {
			refs = append(refs, store.Ref{Type: "Binary", ID: h.ID})
			binaries = append(binaries, h.ID)
		}
	})
	if err == nil {
		err = openErr
	}
	return refs, binaries, err
}

// patientOf reports whether the stored version v is patient id's alone:
// sealed under its key kid, or under a tenant key (written before
// per-patient keys, not yet moved by keys migrate) with content that
// would be sealed under kid (records.SealPatient). A version under another
// patient's key is not opened.
func (r *Repo) patientOf(ctx context.Context, v *store.Version, id, kid string) (bool, error) {
	k, err := seal.EnvelopeKeyID(v.Body)
	if err != nil || k == kid {
		return err == nil, nil
	}
	if keys.IsPatientKey(k) {
		return false, nil
	}
	plain, err := r.s.open(ctx, v)
	if err != nil {
		return false, err
	}
	var doc map[string]any
	if err := json.Unmarshal(plain, &doc); err != nil {
		return false, fmt.Errorf("erase: %s/%s does not parse: %w", v.Type, v.ID, err)
	}
	return SealPatient(v.Type, v.ID, doc) == id, nil
}

// ensureShredEntry writes the shred-list entry of patient id's erasure
// from its ledger record if the list has none (an erasure whose entry
// could not be written). Such an entry names no resources: a restore
// re-applies it by the key and the Patient (docs/keys.md).
func (r *Repo) ensureShredEntry(ctx context.Context, id, kid string) error {
	tenant := r.subj.Tenant
	e, err := r.s.shred.Find(ctx, tenant, id)
	if err != nil {
		return fmt.Errorf("%w: erase: the shred list: %v", problem.ErrUnavailable, err)
	}
	ls, ok := r.s.st.(store.LedgerSearch)
	if e != nil || !ok {
		return nil
	}
	ok0 := audit.OutcomeSuccess
	recs, err := ls.AuditSearch(ctx, store.AuditQuery{Tenant: tenant, Entity: "Patient/" + id, Actions: []string{"erase"}, Outcome: &ok0, Limit: 1})
	if err != nil {
		return store.Problem(err)
	}
	if len(recs) == 0 {
		return nil
	}
	rec := recs[0]
	err = r.s.shred.Append(ctx, shred.Entry{Tenant: tenant, Patient: id, Keys: []string{kid}, Resources: []string{"Patient/" + id},
		Seq: rec.Seq, Hash: hex.EncodeToString(rec.Hash[:]), At: rec.Time})
	if err != nil {
		return fmt.Errorf("%w: erase: write the shred-list entry: %v", problem.ErrUnavailable, err)
	}
	return nil
}
