package keys_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// stateCounter counts the key reads the erasure fence makes: by id, and
// batched (KeysByID).
type stateCounter struct {
	store.Store
	byID, batched atomic.Int64
}

func (c *stateCounter) Key(ctx context.Context, id string) (*store.Key, error) {
	c.byID.Add(1)
	return c.Store.Key(ctx, id)
}

func (c *stateCounter) KeysByID(ctx context.Context, ids []string) ([]store.Key, error) {
	c.batched.Add(1)
	return c.Store.(interface {
		KeysByID(context.Context, []string) ([]store.Key, error)
	}).KeysByID(ctx, ids)
}

// TestFenceReadsOncePerRead: within one read (WithFence) the state of a
// patient's key is read once however many of its versions are opened,
// and a page under several patients' keys costs one batched read
// (Precheck); a later read reads again; an erasure committed by another
// node before a read begins is refused by that read though the key is
// cached, and one committed during a read whose state read came after it
// too. An unfenced Open still reads the state each time.
func TestFenceReadsOncePerRead(t *testing.T) {
	for _, b := range bothStores {
		t.Run(b.name, func(t *testing.T) { testFenceReadsOncePerRead(t, b.open(t)) })
	}
}

func testFenceReadsOncePerRead(t *testing.T, raw store.Store) {
	ctx := context.Background()
	st := &stateCounter{Store: raw}
	m := resealManager(t, st)
	m.SetPatientCache(100, time.Hour)
	type ver struct{ body, aad []byte }
	var vs []ver
	for p := range 5 {
		patient := fmt.Sprintf("p%d", p)
		kid, err := m.PatientKey(ctx, "a", patient)
		if err != nil {
			t.Fatal(err)
		}
		for v := int64(1); v <= 10; v++ {
			aad := seal.AAD("a", "Observation", fmt.Sprintf("%s-o%d", patient, v), 1)
			body, err := m.Seal(kid, []byte(`{}`), aad)
			if err != nil {
				t.Fatal(err)
			}
			if err := raw.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Observation", ID: fmt.Sprintf("%s-o%d", patient, v), Version: 1, LastUpdated: time.Now(), Body: body, NewKey: m.PendingKey(kid)}}}); err != nil {
				t.Fatal(err)
			}
			m.Stored(kid)
			vs = append(vs, ver{body, aad})
		}
	}
	reads := func() int64 { return st.byID.Load() + st.batched.Load() }

	// One patient's ten versions in one read: one state read.
	r0 := reads()
	read := keys.WithFence(ctx)
	for _, v := range vs[:10] {
		if _, err := m.OpenContext(read, v.body, v.aad); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads() - r0; n != 1 {
		t.Fatalf("%d state reads for one patient's versions in one read, want 1", n)
	}
	// A page under five patients' keys: one batched read, then none.
	r0 = reads()
	read = keys.WithFence(ctx)
	envs := make([][]byte, len(vs))
	for i, v := range vs {
		envs[i] = v.body
	}
	m.Precheck(read, envs)
	for _, v := range vs {
		if _, err := m.OpenContext(read, v.body, v.aad); err != nil {
			t.Fatal(err)
		}
	}
	if n, b := reads()-r0, st.batched.Load(); n != 1 || b != 1 {
		t.Fatalf("%d state reads (%d batched) for a page under five keys, want 1 batched", n, b)
	}
	// A read that began before that batched read began shares it; one
	// that begins after reads again.
	r0 = reads()
	if _, err := m.OpenContext(keys.WithFence(ctx), vs[0].body, vs[0].aad); err != nil {
		t.Fatal(err)
	}
	if n := reads() - r0; n != 1 {
		t.Fatalf("%d state reads for a new read, want 1", n)
	}
	// Unfenced: one each.
	r0 = reads()
	for _, v := range vs[:3] {
		if _, err := m.Open(v.body, v.aad); err != nil {
			t.Fatal(err)
		}
	}
	if n := reads() - r0; n != 3 {
		t.Fatalf("%d state reads for 3 unfenced opens, want 3", n)
	}

	// Another node erases p0 and p1 (this one is told nothing).
	early := keys.WithFence(ctx) // began before the erasure of p1
	if _, err := m.OpenContext(early, vs[10].body, vs[10].aad); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p0", "p1"} {
		if err := raw.Commit(ctx, &store.Unit{Parts: []store.Part{store.DestroyKey{ID: keys.PatientKeyID("a", p)}}}); err != nil {
			t.Fatal(err)
		}
	}
	// A read that began before the erasure and checked p1 before it may
	// still open p1 (the erasure was not committed when it began), but
	// p0, first opened now, is read now and refused.
	if _, err := m.OpenContext(early, vs[0].body, vs[0].aad); !errors.Is(err, keys.ErrErased) {
		t.Fatalf("p0 in a read that began before its erasure, opened after it: %v", err)
	}
	late := keys.WithFence(ctx)
	m.Precheck(late, envs)
	for i, v := range vs {
		_, err := m.OpenContext(late, v.body, v.aad)
		if erased := i < 20; erased != errors.Is(err, keys.ErrErased) {
			t.Fatalf("version %d after the erasure of p0 and p1: %v", i, err)
		}
	}
}
