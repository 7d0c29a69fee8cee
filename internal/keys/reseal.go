package keys

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// ResealStore is what a data-key rotation reads and writes: the tenant's
// versions newest first, the job's cursor, and units.
type ResealStore interface {
	History(ctx context.Context, q store.HistoryQuery) ([]store.Version, error)
	Cursor(ctx context.Context, name string) (seq int64, state []byte, err error)
	store.Committer
}

// ResealOptions tune RotateData.
type ResealOptions struct {
	// Batch is the versions read and re-sealed per transaction (default
	// 500).
	Batch int
	// Rate bounds the versions re-sealed per second (0: no bound), so that
	// the job leaves the database to the requests.
	Rate float64
	// Settle is how long the job waits after starting the new version
	// before it re-seals, so that every running node has learnt it (two
	// KEK probe intervals: nodes reload keys on each probe).
	Settle time.Duration
	// KeepOld keeps the old versions' wrapped keys at the end instead of
	// destroying them.
	KeepOld bool
	// Progress is told the versions re-sealed so far.
	Progress func(done int64)
	// Actor is who asked (for the ledger; "system" if empty).
	Actor string
}

// ResealReport says what a data-key rotation did.
type ResealReport struct {
	To        string
	From      []string
	Resealed  int64
	Destroyed bool
	Resumed   bool
}

// resealState is the job's saved state (ids and counters only), committed
// with each batch: a job killed at any point resumes where its last batch
// committed.
type resealState struct {
	Phase    string   `json:"phase"` // settle, reseal, retired, done
	From     []string `json:"from"`
	To       string   `json:"to"`
	Resealed int64    `json:"resealed"`
	Started  int64    `json:"started"` // unix microseconds
}

func resealCursor(tenant string) string { return "keys/reseal/" + tenant }

// ErrSystemTenant refuses a data-key rotation of the system tenant, whose
// key seals Ward's own secrets outside resource versions.
var ErrSystemTenant = errors.New("keys: the system tenant's data key is not rotated by rotate-data")

// RotateData starts a new data-key version for tenant's new writes and
// re-seals every stored version of the tenant under it, newest first, in
// throttled batches, each committed with the job's cursor: killed, it
// resumes where it stopped (a job already under way is resumed, not
// started again). Then the old versions' wrapped keys are destroyed. The
// start, the end and each destroyed key are ledger records.
func RotateData(ctx context.Context, st ResealStore, m *Manager, tenant string, o ResealOptions) (*ResealReport, error) {
	if tenant == SystemTenant {
		return nil, ErrSystemTenant
	}
	if o.Batch <= 0 {
		o.Batch = 500
	}
	if o.Actor == "" {
		o.Actor = "system"
	}
	name := resealCursor(tenant)
	cur, raw, err := st.Cursor(ctx, name)
	if err != nil {
		return nil, err
	}
	var s resealState
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("keys: re-seal state of %s: %w", tenant, err)
		}
	}
	rep := &ResealReport{Resumed: s.Phase == "settle" || s.Phase == "reseal" || s.Phase == "retired"}
	if !rep.Resumed {
		if s, err = startReseal(ctx, st, m, tenant, o); err != nil {
			return nil, err
		}
		cur = 0
	}
	if s.Phase == "settle" {
		if err := sleepUntil(ctx, time.UnixMicro(s.Started).Add(o.Settle)); err != nil {
			return nil, err
		}
		s.Phase = "reseal"
	}
	if err := m.load(ctx); err != nil {
		return nil, err
	}
	rep.To, rep.From = s.To, s.From
	if s.Phase != "retired" {
		// A node that learned the new version late may still have
		// sealed under an old one during the pass: sweep again from the
		// start until a whole pass finds nothing (or a few passes did
		// not), so that few writes meet the fence below.
		for pass := 0; ; pass++ {
			before := s.Resealed
			if err := resealAll(ctx, st, m, tenant, name, cur, &s, o); err != nil {
				rep.Resealed = s.Resealed
				return rep, err
			}
			if pass > 0 && s.Resealed == before || pass == maxPasses-1 {
				break
			}
			cur = 0
		}
		// Then the fence: once the old versions are marked retiring, the
		// store refuses every write sealed under them (a node that has
		// still not learnt the new version gets a retryable error), so
		// the final pass below, which starts after the mark committed,
		// sees every version they ever sealed.
		if err := retireOld(ctx, st, tenant, name, &s, o); err != nil {
			rep.Resealed = s.Resealed
			return rep, err
		}
	}
	if err := resealAll(ctx, st, m, tenant, name, 0, &s, o); err != nil {
		rep.Resealed = s.Resealed
		return rep, err
	}
	rep.Resealed = s.Resealed
	rep.Destroyed = !o.KeepOld
	return rep, finishReseal(ctx, st, tenant, name, &s, o)
}

// maxPasses bounds the sweeps before the fence: a node that never learns
// the new version (a stuck probe) must not keep the job from finishing.
const maxPasses = 3

// retireOld marks the old versions retiring, with the job's cursor and a
// ledger record, in one unit.
func retireOld(ctx context.Context, st ResealStore, tenant, name string, s *resealState, o ResealOptions) error {
	s.Phase = "retired"
	state, _ := json.Marshal(s)
	u := &store.Unit{Parts: []store.Part{store.SaveCursor{Name: name, Seq: 0, State: state}}}
	var recs []*audit.Record
	now := time.Now().UTC()
	for _, id := range s.From {
		u.Parts = append(u.Parts, store.RetireKey{ID: id})
		recs = append(recs, &audit.Record{Time: now, Tenant: tenant, Actor: o.Actor, Role: "system", Action: "data-key-retire",
			Entities: []string{"data-key/" + id}})
	}
	return store.NewRecorder(st).Commit(ctx, u, recs...)
}

// startReseal creates the new version (and keeps the blind index key in
// its own row first, since the first version may be destroyed).
func startReseal(ctx context.Context, st ResealStore, m *Manager, tenant string, o ResealOptions) (resealState, error) {
	if err := m.load(ctx); err != nil {
		return resealState{}, err
	}
	if _, err := m.DataKey(ctx, tenant); err != nil {
		return resealState{}, err
	}
	ks, err := m.st.Keys(ctx, DataKeyPurpose)
	if err != nil {
		return resealState{}, err
	}
	var from []string
	var next int64 = 1
	hasBlind := false
	for _, k := range ks {
		if k.Tenant != tenant {
			continue
		}
		switch k.Scope {
		case BlindScope:
			hasBlind = true
		case TenantScope:
			from = append(from, k.ID)
			next = max(next, k.Version+1)
		}
	}
	now := m.now().UTC()
	id := versionID(tenant, next)
	dek := make([]byte, seal.KeySize)
	if _, err := rand.Read(dek); err != nil {
		return resealState{}, err
	}
	wrapped, kek, err := m.w.Wrap(ctx, id, dek)
	if err != nil {
		return resealState{}, fmt.Errorf("%w: wrap new data key: %v", ErrKEKUnavailable, err)
	}
	u := &store.Unit{Parts: []store.Part{store.NewKey{Key: &store.Key{ID: id, Purpose: DataKeyPurpose, Tenant: tenant, Scope: TenantScope, Version: next, KEK: kek, Wrapped: wrapped, Created: now}}}}
	if !hasBlind {
		m.mu.Lock()
		ik := m.blindKey[tenant]
		m.mu.Unlock()
		if ik == nil {
			return resealState{}, fmt.Errorf("keys: blind index key of tenant %s is missing", tenant)
		}
		bid := "b/" + tenant + "/1"
		bw, bkek, err := m.w.Wrap(ctx, bid, ik)
		if err != nil {
			return resealState{}, fmt.Errorf("%w: wrap blind index key: %v", ErrKEKUnavailable, err)
		}
		u.Parts = append(u.Parts, store.NewKey{Key: &store.Key{ID: bid, Purpose: DataKeyPurpose, Tenant: tenant, Scope: BlindScope, Version: 1, KEK: bkek, Wrapped: bw, Created: now}})
	}
	s := resealState{Phase: "settle", From: from, To: id, Started: now.UnixMicro()}
	state, _ := json.Marshal(s)
	u.Parts = append(u.Parts, store.SaveCursor{Name: resealCursor(tenant), Seq: 0, State: state})
	// "data-key-create" records also emit keys.rotated (events.FromAudit).
	rec := &audit.Record{Time: now, Tenant: tenant, Actor: o.Actor, Role: "system", Action: "data-key-create", Detail: "rotate-data",
		Entities: []string{"data-key/" + id}}
	if err := store.NewRecorder(st).Commit(ctx, u, rec); err != nil {
		return resealState{}, err
	}
	if err := m.ring.Add(id, dek); err != nil {
		return resealState{}, err
	}
	m.mu.Lock()
	err = m.setStreamKey(id, dek)
	m.mu.Unlock()
	if err != nil {
		return resealState{}, err
	}
	return s, nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	wait := time.Until(t)
	if wait <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(wait):
		return nil
	}
}

// resealAll walks the tenant's versions newest first from before (0: the
// newest), re-sealing those under an old version.
func resealAll(ctx context.Context, st ResealStore, m *Manager, tenant, name string, before int64, s *resealState, o ResealOptions) error {
	start, startCount := time.Now(), s.Resealed
	for {
		page, err := st.History(ctx, store.HistoryQuery{Tenant: tenant, Before: before, Limit: o.Batch})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		before = page[len(page)-1].Seq
		u := &store.Unit{}
		for _, v := range page {
			p, err := resealOne(m, s, v)
			if err != nil {
				return err
			}
			if p != nil {
				u.Parts = append(u.Parts, *p)
			}
		}
		s.Resealed += int64(len(u.Parts))
		state, _ := json.Marshal(s)
		u.Parts = append(u.Parts, store.SaveCursor{Name: name, Seq: before, State: state})
		if err := st.Commit(ctx, u); err != nil {
			return fmt.Errorf("store re-sealed versions: %w", err)
		}
		if o.Progress != nil {
			o.Progress(s.Resealed)
		}
		if o.Rate > 0 {
			// Throttle: never ahead of Rate versions a second.
			due := start.Add(time.Duration(float64(s.Resealed-startCount) / o.Rate * float64(time.Second)))
			if err := sleepUntil(ctx, due); err != nil {
				return err
			}
		}
	}
}

// resealOne re-seals v if an old version sealed it (nil: nothing to do).
func resealOne(m *Manager, s *resealState, v store.Version) (*store.ResealVersion, error) {
	if v.Deleted || len(v.Body) == 0 {
		return nil, nil
	}
	kid, err := seal.EnvelopeKeyID(v.Body)
	if err != nil {
		return nil, fmt.Errorf("re-seal %s/%s version %d: %w", v.Type, v.ID, v.Version, err)
	}
	if !slices.Contains(s.From, kid) {
		return nil, nil
	}
	aad := seal.AAD(v.Tenant, v.Type, v.ID, v.Version)
	plain, err := m.Open(v.Body, aad)
	if err != nil {
		return nil, fmt.Errorf("re-seal %s/%s version %d: %w", v.Type, v.ID, v.Version, err)
	}
	sealed, err := m.Seal(s.To, plain, aad)
	clear(plain)
	if err != nil {
		return nil, err
	}
	return &store.ResealVersion{Tenant: v.Tenant, Type: v.Type, ID: v.ID, Version: v.Version, Old: v.Body, New: sealed}, nil
}

// finishReseal destroys the old versions (unless kept) and closes the job,
// in one unit with its records.
func finishReseal(ctx context.Context, st ResealStore, tenant, name string, s *resealState, o ResealOptions) error {
	now := time.Now().UTC()
	s.Phase = "done"
	state, _ := json.Marshal(s)
	u := &store.Unit{Parts: []store.Part{store.SaveCursor{Name: name, Seq: 0, State: state}}}
	recs := []*audit.Record{{Time: now, Tenant: tenant, Actor: o.Actor, Role: "system", Action: "data-reseal-done",
		Entities: []string{"data-key/" + s.To}, Detail: fmt.Sprintf("resealed=%d", s.Resealed)}}
	if !o.KeepOld {
		for _, id := range s.From {
			u.Parts = append(u.Parts, store.DestroyKey{ID: id})
			recs = append(recs, &audit.Record{Time: now, Tenant: tenant, Actor: o.Actor, Role: "system", Action: "data-key-destroy",
				Entities: []string{"data-key/" + id}})
		}
	}
	return store.NewRecorder(st).Commit(ctx, u, recs...)
}
