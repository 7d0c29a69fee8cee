package keys

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
)

// KeyPager is what re-wrapping reads: the wrapped keys in id order, a
// page at a time.
type KeyPager interface {
	KeysAfter(ctx context.Context, purpose, afterID string, limit int) ([]store.Key, error)
}

// RotateOptions tune RotateKEK.
type RotateOptions struct {
	// Rotate asks the wrapper for a new KEK version first (Rotator). Off,
	// only the keys not yet under the current version are re-wrapped (a
	// rotation that was interrupted, or a new key file given as the
	// wrapper's current one).
	Rotate bool
	// Retire retires the older KEK versions once no key is left under
	// them (Retirer).
	Retire bool
	// Batch is how many keys one transaction re-wraps (default 2000).
	Batch int
	// Progress, when set, is called after each batch with the keys
	// re-wrapped so far.
	Progress func(rewrapped int)
	// Actor is who asked (for the ledger; "system" if empty).
	Actor string
}

// RotateReport says what RotateKEK did.
type RotateReport struct {
	From []string // KEK versions the re-wrapped keys were under
	To   string   // the current KEK version
	// Rewrapped counts keys moved to To; Kept those already under it.
	Rewrapped, Kept int
	Retired         bool
}

// ErrRotateIncomplete is returned when keys were still under an old KEK
// version after the last pass (another node kept wrapping new keys under
// it): nothing is retired, run the rotation again.
var ErrRotateIncomplete = errors.New("keys: some keys are still under an old KEK version")

// RotateKEK moves every wrapped data key to the wrapper's current KEK
// version, online: only the wrapped forms change (compare-and-swap per
// key), never a sealed body, and a node serving meanwhile keeps its
// unwrapped keys. The start and the end are ledger records (the end also
// a keys.rotated event). Old versions are retired only when a final pass
// finds no key left under them.
func RotateKEK(ctx context.Context, st interface {
	KeyPager
	store.Committer
}, w KeyWrapper, o RotateOptions) (*RotateReport, error) {
	if o.Batch <= 0 {
		o.Batch = 2000
	}
	if o.Actor == "" {
		o.Actor = "system"
	}
	rec := store.NewRecorder(st)
	if o.Rotate {
		r, ok := w.(Rotator)
		if !ok {
			return nil, fmt.Errorf("keys: this key-encryption key cannot make a new version itself (%T)", w)
		}
		v, err := r.RotateKEK(ctx)
		if err != nil {
			return nil, fmt.Errorf("%w: rotate: %v", ErrKEKUnavailable, err)
		}
		if err := rec.Commit(ctx, &store.Unit{}, keyRecord(o.Actor, "kek-rotate", v, "")); err != nil {
			return nil, err
		}
	}
	cur, ok := w.(Current)
	if !ok {
		return nil, fmt.Errorf("keys: %T does not name its current version", w)
	}
	to, err := cur.CurrentKEK(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKEKUnavailable, err)
	}
	rep := &RotateReport{To: to}
	from := map[string]bool{}
	// Two passes at most: the second finds only the keys that nodes
	// created under the old version while the first ran.
	for pass := 0; pass < 2; pass++ {
		n, err := rewrapPass(ctx, st, w, to, o, rep, from, pass == 0)
		if err != nil {
			return rep, err
		}
		if n == 0 {
			break
		}
		if pass == 1 {
			return rep, ErrRotateIncomplete
		}
	}
	for v := range from {
		rep.From = append(rep.From, v)
	}
	if o.Retire {
		r, ok := w.(Retirer)
		if !ok {
			return rep, fmt.Errorf("keys: %T cannot retire versions: remove the old key yourself", w)
		}
		if err := r.RetireOldKEKs(ctx); err != nil {
			return rep, fmt.Errorf("%w: retire: %v", ErrKEKUnavailable, err)
		}
		rep.Retired = true
	}
	detail := "rewrapped=" + strconv.Itoa(rep.Rewrapped)
	if rep.Retired {
		detail += " retired"
	}
	u := &store.Unit{}
	r := keyRecord(o.Actor, "kek-rewrap", to, detail)
	u.Parts = append(u.Parts, store.Outbox{Events: []events.Event{events.New(SystemTenant, events.KeysRotated, "kek/"+to, "", r.Time,
		events.Data{Actor: o.Actor, Role: "system", Action: r.Action, Reason: detail})}})
	return rep, rec.Commit(ctx, u, r)
}

func keyRecord(actor, action, version, detail string) *audit.Record {
	return &audit.Record{Time: time.Now().UTC(), Tenant: SystemTenant, Actor: actor, Role: "system", Action: action, Entities: []string{"kek/" + version}, Detail: detail}
}

// rewrapPass re-wraps, page by page, every key not under to; it returns
// how many it re-wrapped. Reading and re-wrapping the next page overlaps
// with committing the last one.
func rewrapPass(ctx context.Context, st interface {
	KeyPager
	store.Committer
}, w KeyWrapper, to string, o RotateOptions, rep *RotateReport, from map[string]bool, count bool) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type batch struct {
		parts []store.Part
		from  []string // the KEK versions of the keys re-wrapped
		kept  int      // keys already under to
		err   error
	}
	batches := make(chan batch, 1)
	go func() {
		defer close(batches)
		after := ""
		for {
			page, err := st.KeysAfter(ctx, DataKeyPurpose, after, o.Batch)
			if err != nil || len(page) == 0 {
				if err != nil {
					batches <- batch{err: err}
				}
				return
			}
			after = page[len(page)-1].ID
			var old []store.Key
			var b batch
			for _, k := range page {
				if k.KEK == to {
					b.kept++
				} else {
					old = append(old, k)
					b.from = append(b.from, k.KEK)
				}
			}
			if len(old) > 0 {
				b.parts, b.err = rewrapKeys(ctx, w, old)
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	n := 0
	for b := range batches {
		if b.err != nil {
			return n, b.err
		}
		if count {
			rep.Kept += b.kept
		}
		for _, v := range b.from {
			from[v] = true
		}
		if len(b.parts) == 0 {
			continue
		}
		if err := st.Commit(ctx, &store.Unit{Parts: b.parts}); err != nil {
			return n, fmt.Errorf("store re-wrapped keys: %w", err)
		}
		n += len(b.parts)
		rep.Rewrapped += len(b.parts)
		if o.Progress != nil {
			o.Progress(rep.Rewrapped)
		}
	}
	return n, nil
}

// rewrapKeys re-wraps ks: in one request when the wrapper batches, in the
// KMS when it can re-wrap, else by unwrapping and wrapping again here.
func rewrapKeys(ctx context.Context, w KeyWrapper, ks []store.Key) ([]store.Part, error) {
	parts := make([]store.Part, len(ks))
	if b, ok := w.(Batcher); ok {
		ids, wrapped := make([]string, len(ks)), make([][]byte, len(ks))
		for i, k := range ks {
			ids[i], wrapped[i] = k.ID, k.Wrapped
		}
		nw, vs, err := b.RewrapBatch(ctx, ids, wrapped)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKEKUnavailable, err)
		}
		for i, k := range ks {
			parts[i] = store.RewrapKey{ID: k.ID, Old: k.Wrapped, New: nw[i], KEK: vs[i]}
		}
		return parts, nil
	}
	for i, k := range ks {
		nw, v, err := rewrapOne(ctx, w, k)
		if err != nil {
			return nil, err
		}
		parts[i] = store.RewrapKey{ID: k.ID, Old: k.Wrapped, New: nw, KEK: v}
	}
	return parts, nil
}

func rewrapOne(ctx context.Context, w KeyWrapper, k store.Key) ([]byte, string, error) {
	if r, ok := w.(Rewrapper); ok {
		nw, v, err := r.Rewrap(ctx, k.ID, k.Wrapped)
		if err != nil {
			return nil, "", fmt.Errorf("%w: rewrap %s: %v", ErrKEKUnavailable, k.ID, err)
		}
		return nw, v, nil
	}
	dek, err := w.Unwrap(ctx, k.ID, k.Wrapped)
	if err != nil {
		return nil, "", fmt.Errorf("%w: unwrap %s: %v", ErrKEKUnavailable, k.ID, err)
	}
	defer clear(dek)
	nw, v, err := w.Wrap(ctx, k.ID, dek)
	if err != nil {
		return nil, "", fmt.Errorf("%w: wrap %s: %v", ErrKEKUnavailable, k.ID, err)
	}
	return nw, v, nil
}
