package keys_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// countingWrapper counts unwraps.
type countingWrapper struct {
	keys.KeyWrapper
	unwraps *atomic.Int64
}

func (c countingWrapper) Unwrap(ctx context.Context, id string, wrapped []byte) ([]byte, error) {
	c.unwraps.Add(1)
	return c.KeyWrapper.Unwrap(ctx, id, wrapped)
}

// TestPatientKeyCache: a patient's key is created pending, stored by the
// first write sealed under it, then served from the cache: one unwrap
// per patient per cache lifetime; the cache is bounded (least recently
// used out) and expires; an evicted key opens again from the store.
func TestPatientKeyCache(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "w.db"))
	kek, _ := seal.NewKEK(resealKEK)
	var unwraps atomic.Int64
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	w := countingWrapper{keys.NewFileWrapper(kek), &unwraps}
	if _, err := keys.NewWithWrapper(ctx, st, w, now); err != nil {
		t.Fatal(err)
	}
	m, err := keys.NewWithWrapper(ctx, st, w, now)
	if err != nil {
		t.Fatal(err)
	}
	m.SetPatientCache(2, time.Minute)
	write := func(patient string, v int64) string {
		t.Helper()
		kid, err := m.PatientKey(ctx, "a", patient)
		if err != nil {
			t.Fatal(err)
		}
		body, err := m.Seal(kid, []byte(`{}`), seal.AAD("a", "Patient", patient, v))
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Patient", ID: patient, Version: v, LastUpdated: now(), Body: body, NewKey: m.PendingKey(kid)}}}); err != nil {
			t.Fatal(err)
		}
		m.Stored(kid) // as the records layer does after the commit
		return kid
	}
	kid := write("p1", 1)
	if kid != keys.PatientKeyID("a", "p1") {
		t.Fatalf("key id %s", kid)
	}
	if k, err := st.Key(ctx, kid); err != nil || k.Scope != "patient/p1" || k.State != store.KeyActive {
		t.Fatalf("stored with the first write: %+v %v", k, err)
	}
	base := unwraps.Load()
	for v := int64(2); v < 10; v++ {
		write("p1", v)
	}
	if unwraps.Load() != base {
		t.Fatalf("%d unwraps for a cached key", unwraps.Load()-base)
	}
	if m.PendingKey(kid) != nil {
		t.Fatal("still pending after it was stored")
	}
	// Bounded: p2 and p3 push p1 out; reading p1 unwraps it again, once.
	write("p2", 1)
	write("p3", 1)
	v, _ := st.Current(ctx, "a", "Patient", "p1")
	base = unwraps.Load()
	for range 3 {
		if _, err := m.Open(v.Body, seal.AAD("a", "Patient", "p1", v.Version)); err != nil {
			t.Fatal(err)
		}
	}
	if n := unwraps.Load() - base; n != 1 {
		t.Fatalf("%d unwraps after eviction, want 1", n)
	}
	// Expired: the next use unwraps again.
	clock.Add(int64(2 * time.Minute))
	base = unwraps.Load()
	write("p1", v.Version+1)
	if n := unwraps.Load() - base; n != 1 {
		t.Fatalf("%d unwraps after expiry, want 1", n)
	}
	// A fresh node opens every patient's versions from the store.
	m2 := resealManager(t, st)
	vs, _ := st.History(ctx, store.HistoryQuery{Tenant: "a", Limit: 100})
	for _, v := range vs {
		if _, err := m2.Open(v.Body, seal.AAD("a", v.Type, v.ID, v.Version)); err != nil {
			t.Fatalf("%s version %d: %v", v.ID, v.Version, err)
		}
	}
}

// TestPatientKeyConcurrentFirstUse: many writers of one patient whose key
// does not exist yet get one key between them (no conflict), and every
// version opens on a fresh node.
func TestPatientKeyConcurrentFirstUse(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "w.db"))
	m := resealManager(t, st)
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := "o" + string(rune('a'+i))
			kid, err := m.PatientKey(ctx, "a", "p1")
			if err == nil {
				var body []byte
				if body, err = m.Seal(kid, []byte(`{}`), seal.AAD("a", "Observation", id, 1)); err == nil {
					err = st.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Observation", ID: id, Version: 1, LastUpdated: time.Now(), Body: body, NewKey: m.PendingKey(kid)}}})
				}
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	m2 := resealManager(t, st)
	vs, _ := st.History(ctx, store.HistoryQuery{Tenant: "a", Limit: 100})
	if len(vs) != n {
		t.Fatalf("%d versions", len(vs))
	}
	for _, v := range vs {
		if _, err := m2.Open(v.Body, seal.AAD("a", v.Type, v.ID, v.Version)); err != nil {
			t.Fatalf("%s: %v", v.ID, err)
		}
	}
}
