package app

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/blob"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/shred"
	"github.com/wardhealth/ward/internal/store"
)

// The shred list (docs/keys.md): every committed Patient/$erase leaves an
// entry in the document object store, outside the database and its
// backups. A restore re-applies the entries its database does not
// reflect, after the ledger check and before the database is accepted.

// openShredList opens (creating it on first start) the shred list of
// the configured document store.
func openShredList(ctx context.Context, objs blob.Store, kw shred.Wrapper) (*shred.List, error) {
	l, err := shred.Open(ctx, objs, kw, true)
	if err != nil {
		return nil, fmt.Errorf("the shred list (in the document store): %w", err)
	}
	return l, nil
}

// reapplyErasures checks the shred list against st's ledger and re-applies
// every erasure st does not reflect, returning how many. It refuses a list
// that is missing, tampered with, or lacks an erasure st's ledger holds.
func reapplyErasures(ctx context.Context, cfg config.Config, st store.Store, o RestoreOptions) (int, error) {
	if o.NoShredList {
		return 0, nil
	}
	content, err := openObjects(cfg)
	if err != nil {
		return 0, err
	}
	where, objs := "the document store", content
	if o.ShredList != "" {
		if objs, err = blob.NewLocal(o.ShredList); err != nil {
			return 0, fmt.Errorf("--shred-list: %w", err)
		}
		where = o.ShredList
	}
	kw, closeKEK, err := OpenKeyWrapper(ctx, cfg, io.Discard)
	if err != nil {
		return 0, err
	}
	defer closeKEK()
	list, err := shred.Open(ctx, objs, kw, false)
	if errors.Is(err, shred.ErrMissing) {
		return 0, fmt.Errorf("no shred list in %s: a restore without it could bring erased patients back; name it with --shred-list DIR, or accept that risk with --no-shred-list", where)
	}
	if err != nil {
		return 0, err
	}
	entries, err := list.Entries(ctx)
	if err != nil {
		return 0, fmt.Errorf("the shred list in %s is refused: %w", where, err)
	}
	// Every erasure the restored ledger holds must be in the list, as
	// it was written: a list missing one is not this deployment's, or
	// was cut.
	erasures := map[int64][32]byte{}
	err = st.AuditScan(ctx, 0, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		for r, err := range recs {
			if err != nil {
				return err
			}
			if r.Action == "erase" && r.Outcome == audit.OutcomeSuccess {
				erasures[r.Seq] = r.Hash
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read the restored ledger: %w", err)
	}
	listed := map[int64]string{}
	for _, e := range entries {
		if h, ok := erasures[e.Seq]; ok && hex.EncodeToString(h[:]) == e.Hash {
			listed[e.Seq] = e.Hash
		}
	}
	for seq := range erasures {
		if _, ok := listed[seq]; !ok {
			return 0, fmt.Errorf("the shred list in %s is refused: it lacks the erasure of ledger record %d, which the restored ledger holds", where, seq)
		}
	}
	n := 0
	for _, e := range entries {
		// An erasure of the restored ledger itself is in st; one of
		// after the snapshot (or of another history) is re-applied
		// unless st reflects it already (reapply checks).
		if listed[e.Seq] == e.Hash {
			continue
		}
		done, err := reapply(ctx, st, content, e)
		if err != nil {
			return n, fmt.Errorf("re-apply the erasure of ledger record %d: %w", e.Seq, err)
		}
		if done {
			n++
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "re-applied the erasure of Patient/%s (tenant %s, ledger record %d)\n", e.Patient, e.Tenant, e.Seq)
			}
		}
	}
	return n, nil
}

// reapply erases e's patient in st as $erase did, unless st already
// reflects it (its keys destroyed or unknown, none of its resources
// there), with an erase-reapply ledger record in the same commit; then
// deletes the content objects of its Binaries.
func reapply(ctx context.Context, st store.Store, objs blob.Store, e shred.Entry) (bool, error) {
	names := e.Resources
	if len(names) == 0 {
		names = []string{"Patient/" + e.Patient}
	}
	var refs []store.Ref
	present := false
	for _, n := range names {
		typ, id, _ := strings.Cut(n, "/")
		refs = append(refs, store.Ref{Type: typ, ID: id})
		if v, err := st.Current(ctx, e.Tenant, typ, id); err == nil && !v.Deleted {
			present = true
		}
	}
	var destroy []store.Part
	for _, kid := range e.Keys {
		k, err := st.Key(ctx, kid)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return false, err
		case k.State != store.KeyDestroyed:
			destroy = append(destroy, store.DestroyKey{ID: kid})
		}
	}
	if !present && len(destroy) == 0 {
		return false, nil
	}
	now := time.Now().UTC()
	rec := func(action, detail string) *audit.Record {
		ents := []string{"Patient/" + e.Patient}
		for _, kid := range e.Keys {
			ents = append(ents, "data-key/"+kid)
		}
		return &audit.Record{Time: now, Tenant: e.Tenant, Actor: "ward-restore", Role: "system", Action: action,
			ResourceType: "Patient", Entities: ents, Patients: []string{e.Patient}, Detail: detail}
	}
	detail := "shred-seq:" + strconv.FormatInt(e.Seq, 10) + " shred-hash:" + e.Hash + " resources:" + strconv.Itoa(len(refs))
	shredded, err := seal.Shredded(e.Keys[0])
	if err != nil {
		return false, err
	}
	r := store.NewRecorder(st)
	unit := func() *store.Unit {
		return &store.Unit{Parts: append([]store.Part{store.ErasePatient{Tenant: e.Tenant, Patient: e.Patient, Resources: refs, Shredded: shredded}}, destroy...)}
	}
	err = r.Commit(ctx, unit(), rec("erase-reapply", detail))
	if errors.Is(err, store.ErrHeld) {
		// The hold the snapshot holds was released before the erasure
		// (an erasure is refused under a hold): release it here too.
		if err := r.Commit(ctx, &store.Unit{Parts: []store.Part{store.ReleaseHold{Tenant: e.Tenant, Patient: e.Patient}}},
			rec("legal-hold-release", "shred-seq:"+strconv.FormatInt(e.Seq, 10))); err != nil {
			return false, err
		}
		err = r.Commit(ctx, unit(), rec("erase-reapply", detail))
	}
	if err != nil {
		return false, err
	}
	for _, ref := range refs {
		if ref.Type != "Binary" {
			continue
		}
		var keys []string
		err := objs.List(ctx, records.ObjectPrefix(e.Tenant)+ref.ID+"/", func(o blob.Object) error { keys = append(keys, o.Key); return nil })
		if err != nil {
			return true, err
		}
		for _, k := range keys {
			if err := objs.Delete(ctx, k); err != nil && !errors.Is(err, blob.ErrNotFound) {
				return true, err
			}
		}
	}
	return true, nil
}
