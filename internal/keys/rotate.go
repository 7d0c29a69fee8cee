package keys

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
)

// KeyPager is what re-wrapping reads: the wrapped keys in id order, a
// page at a time (only ID, KEK and Wrapped are used).
type KeyPager interface {
	WrappedAfter(ctx context.Context, purpose, afterID string, limit int) ([]store.Key, error)
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
	// Workers is how many pages are re-wrapped and committed at once
	// (default 4).
	Workers int
	// Progress, when set, is called after each batch with the keys
	// re-wrapped so far.
	Progress func(rewrapped int)
	// Actor is who asked (for the ledger; "system" if empty).
	Actor string
	// Outside, when set, re-wraps the keys kept outside the store (the
	// shred list's MAC key) under the current version once every stored
	// key is there, before anything is retired.
	Outside func(ctx context.Context, w KeyWrapper) error
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
	if o.Workers <= 0 {
		o.Workers = 4
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
	if o.Outside != nil {
		if err := o.Outside(ctx, w); err != nil {
			return rep, err
		}
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
		// Retiring is a key event of its own: it names the versions that
		// no longer unwrap (keys re-wrapped by an earlier run included).
		ret := keyRecord(o.Actor, "kek-retire", to, "retired older than "+to)
		ret.Entities = nil
		for _, v := range rep.From {
			ret.Entities = append(ret.Entities, "kek/"+v)
		}
		if len(ret.Entities) == 0 {
			ret.Entities = []string{"kek/" + to}
			ret.Detail = "nothing was left under an older version"
		}
		if err := rec.Commit(ctx, &store.Unit{}, ret); err != nil {
			return rep, err
		}
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
// how many it re-wrapped. One goroutine reads the pages in id order;
// o.Workers goroutines each re-wrap a page (in the KMS, the token or
// here) and commit it. Pages are independent (each key is in one, and its
// update is a compare-and-swap), so their commits may land in any order,
// and concurrent ones share the store's group commit.
func rewrapPass(ctx context.Context, st interface {
	KeyPager
	store.Committer
}, w KeyWrapper, to string, o RotateOptions, rep *RotateReport, from map[string]bool, count bool) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan []store.Key, o.Workers)
	var (
		mu       sync.Mutex
		n        int
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	var wg sync.WaitGroup
	for range o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for page := range pages {
				var old []store.Key
				var vs []string
				kept := 0
				for _, k := range page {
					if k.KEK == to {
						kept++
					} else {
						old = append(old, k)
						vs = append(vs, k.KEK)
					}
				}
				var parts []store.Part
				if len(old) > 0 {
					var err error
					if parts, err = rewrapKeys(ctx, w, old, o.Workers); err != nil {
						fail(err)
						return
					}
					if err := st.Commit(ctx, &store.Unit{Parts: parts}); err != nil {
						fail(fmt.Errorf("store re-wrapped keys: %w", err))
						return
					}
				}
				mu.Lock()
				if count {
					rep.Kept += kept
				}
				for _, v := range vs {
					from[v] = true
				}
				n += len(parts)
				rep.Rewrapped += len(parts)
				if o.Progress != nil && len(parts) > 0 {
					o.Progress(rep.Rewrapped)
				}
				mu.Unlock()
			}
		}()
	}
	after := ""
	for ctx.Err() == nil {
		page, err := st.WrappedAfter(ctx, DataKeyPurpose, after, o.Batch)
		if err != nil {
			fail(err)
			break
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		select {
		case pages <- page:
		case <-ctx.Done():
		}
	}
	close(pages)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err() // the caller's context ended
	}
	return n, firstErr
}

// rewrapKeys re-wraps ks: in one request when the wrapper batches, in the
// KMS when it can re-wrap, else by unwrapping and wrapping again here.
// Without a batch, the keys are spread over at most par goroutines: a
// PKCS#11 token or a KMS answers many calls at once, and a page of keys
// one call at a time would leave the rotation waiting on round trips.
func rewrapKeys(ctx context.Context, w KeyWrapper, ks []store.Key, par int) ([]store.Part, error) {
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
		if len(nw) != len(ks) || len(vs) != len(ks) {
			return nil, fmt.Errorf("%w: re-wrapped %d keys of %d", ErrKEKUnavailable, len(nw), len(ks))
		}
		for i, k := range ks {
			parts[i] = store.RewrapKey{ID: k.ID, Old: k.Wrapped, New: nw[i], KEK: vs[i]}
		}
		return parts, nil
	}
	if _, local := w.(*FileWrapper); local || par < 2 {
		// The local KEK is a few microseconds of AES a key: the pages
		// already run in parallel, more goroutines would cost more than
		// they save.
		par = 1
	}
	chunk := (len(ks) + par - 1) / par
	errs := make([]error, par)
	var wg sync.WaitGroup
	for c := 0; c*chunk < len(ks); c++ {
		lo, hi := c*chunk, min((c+1)*chunk, len(ks))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				nw, v, err := rewrapOne(ctx, w, ks[i])
				if err != nil {
					errs[c] = err
					return
				}
				parts[i] = store.RewrapKey{ID: ks[i].ID, Old: ks[i].Wrapped, New: nw, KEK: v}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
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
