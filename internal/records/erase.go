package records

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/wardhealth/ward/internal/store"
)

// Patient/$erase (docs/keys.md, Erasure): crypto-shredding. One unit
// destroys the patient's data key (its wrapped form is erased, a
// tombstone stays), deletes the index rows of every resource whose
// current version is sealed under it (and marks those resources
// deleted, so that no search or read lists them), and appends one
// ledger record naming only ids, the SHA-256 of the reason and counts;
// a legal hold on the patient refuses the unit in the same transaction.
// Then the Binaries' content objects are deleted (sealed under the same
// key: a crash before that leaves objects nothing can open) and the key
// is forgotten by this node's cache; other nodes check a patient key's
// state before each open (keys.Manager.Open).

// EraseResult says what an erasure shredded.
type EraseResult struct {
	Patient, KeyID string
	// Resources is how many resources were sealed under the key
	// (the Patient included), Objects how many content objects were
	// deleted.
	Resources, Objects int
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
		return nil, r.refuse(rec, audit.OutcomeMinor, "erased", problem.New(problem.ErrGone, "deleted", "Patient/"+id+" was already erased"))
	}
	refs, binaries, err := r.sealedUnder(ctx, id, kid)
	if err != nil {
		return nil, r.refuse(rec, audit.OutcomeSerious, "erase-plan", err)
	}
	sum := sha256.Sum256([]byte(reason))
	rec.Detail = "reason-sha256:" + hex.EncodeToString(sum[:]) + " resources:" + strconv.Itoa(len(refs))
	u := &store.Unit{Parts: []store.Part{
		store.ErasePatient{Tenant: tenant, Patient: id, Resources: refs},
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

// sealedUnder lists the resources of patient id whose current version is
// sealed under kid: the Patient, its compartment (by the index) and the
// Binaries whose securityContext names it (by a scan of the tenant's
// Binaries' envelopes, which needs no key). It returns the Binaries' ids
// apart too.
func (r *Repo) sealedUnder(ctx context.Context, id, kid string) ([]store.Ref, []string, error) {
	tenant := r.subj.Tenant
	bk, err := r.s.keyer(ctx, tenant)
	if err != nil {
		return nil, nil, err
	}
	var refs []store.Ref
	var binaries []string
	under := func(body []byte) bool {
		k, err := seal.EnvelopeKeyID(body)
		return err == nil && k == kid
	}
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
	add := func(h store.Hit) {
		ref := store.Ref{Type: h.Type, ID: h.ID}
		if !seen[ref] && under(h.Body) {
			seen[ref] = true
			refs = append(refs, ref)
		}
	}
	if err := scan(store.SearchQuery{Tenant: tenant, Types: types, Where: []string{where}, Args: args}, add); err != nil {
		return nil, nil, err
	}
	if v, err := r.s.st.Current(ctx, tenant, "Patient", id); err == nil && under(v.Body) && !seen[store.Ref{Type: "Patient", ID: id}] {
		refs = append(refs, store.Ref{Type: "Patient", ID: id})
	}
	err = scan(store.SearchQuery{Tenant: tenant, Types: []string{"Binary"}}, func(h store.Hit) {
		if under(h.Body) {
			refs = append(refs, store.Ref{Type: "Binary", ID: h.ID})
			binaries = append(binaries, h.ID)
		}
	})
	return refs, binaries, err
}
