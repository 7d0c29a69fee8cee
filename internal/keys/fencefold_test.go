package keys_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/sqlstore"
)

// TestFenceFoldedIntoRead: on PostgreSQL a read of one version (Current,
// Version) reads the state of the patient key that sealed it in the same
// statement (store.Version.SealKey), and the fence takes that state as
// its own read (Manager.Observed): a read of a cached patient's version
// is one statement, where it was two. The guarantee is unchanged: a
// state read before a read began does not serve it (an erasure committed
// in between is refused), and a destroyed key read with the version is
// refused. SQLite reads the state apart, as before (a read costs no
// round trip there): SealKey stays nil and the fence reads once.
func TestFenceFoldedIntoRead(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		testFenceFoldedIntoRead(t, openStore(t, filepath.Join(t.TempDir(), "w.db")), nil)
	})
	t.Run("postgres", func(t *testing.T) {
		tr := pgtest.Trace(t)
		st, err := postgres.Open(context.Background(), pgtest.URL(t), sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		testFenceFoldedIntoRead(t, st, tr)
	})
}

func testFenceFoldedIntoRead(t *testing.T, raw store.Store, tr *pgtest.Statements) {
	ctx := context.Background()
	st := &stateCounter{Store: raw}
	m := resealManager(t, st)
	m.SetPatientCache(100, time.Hour)
	kid, body, aad := storePatientVersion(t, m, raw, "p0", "Observation", "o1")
	// Another node, which holds p0's key and will not hear of its erasure.
	other := resealManager(t, st)
	other.SetPatientCache(100, time.Hour)
	if _, err := other.OpenContext(keys.WithFence(ctx), body, aad); err != nil {
		t.Fatal(err)
	}
	// A tenant-key version: no patient key state is read with it.
	tkid, err := m.DataKey(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	taad := seal.AAD("a", "Organization", "g1", 1)
	tbody, err := m.Seal(tkid, []byte(`{}`), taad)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Organization", ID: "g1", Version: 1, LastUpdated: time.Now(), Body: tbody}}}); err != nil {
		t.Fatal(err)
	}
	if v, err := raw.Current(ctx, "a", "Organization", "g1"); err != nil || v.SealKey != nil {
		t.Fatalf("tenant-key version: %v, seal key %+v, want none", err, v.SealKey)
	}

	// read opens o1 as the records layer does: the store's read, the
	// state read with it handed over, the fenced open.
	read := func(fence context.Context, get func() (*store.Version, error)) (*store.Version, error) {
		v, err := get()
		if err != nil {
			t.Fatal(err)
		}
		if v.SealKey != nil {
			m.Observed(*v.SealKey)
		}
		_, err = m.OpenContext(fence, v.Body, aad)
		return v, err
	}
	current := func() (*store.Version, error) { return raw.Current(ctx, "a", "Observation", "o1") }
	version := func() (*store.Version, error) { return raw.Version(ctx, "a", "Observation", "o1", 1) }
	for name, get := range map[string]func() (*store.Version, error){"current": current, "version": version} {
		fence := keys.WithFence(ctx)
		c0, s0 := st.byID.Load()+st.batched.Load(), 0
		if tr != nil {
			s0 = tr.Mark()
		}
		v, err := read(fence, get)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		stateReads := st.byID.Load() + st.batched.Load() - c0
		if tr == nil {
			if v.SealKey != nil || stateReads != 1 {
				t.Fatalf("sqlite %s: seal key %+v, %d state reads, want none and 1", name, v.SealKey, stateReads)
			}
			continue
		}
		if v.SealKey == nil || v.SealKey.ID != kid || v.SealKey.State != store.KeyActive {
			t.Fatalf("postgres %s: seal key %+v, want %s active", name, v.SealKey, kid)
		}
		if n := len(tr.Since(s0)); stateReads != 0 || n != 1 {
			t.Fatalf("postgres %s: %d state reads of its own, %d statements %q, want 0 and 1", name, stateReads, n, tr.Since(s0))
		}
	}

	// A state read before a read began does not serve it: another node
	// erases p0 after that state read and before this read begins.
	stale := store.SealKeyState{ID: kid, State: store.KeyActive, Began: time.Now()}
	fence := keys.WithFence(ctx)
	if err := raw.Commit(ctx, &store.Unit{Parts: []store.Part{store.DestroyKey{ID: kid}}}); err != nil {
		t.Fatal(err)
	}
	m.Observed(stale)
	if _, err := m.OpenContext(fence, body, aad); !errors.Is(err, keys.ErrErased) {
		t.Fatalf("a state read from before the read served it across an erasure: %v", err)
	}

	// The other node, still holding the key: the store reads it destroyed
	// with the version, and the read is refused.
	m = other
	for name, get := range map[string]func() (*store.Version, error){"current": current, "version": version} {
		v, err := read(keys.WithFence(ctx), get)
		if !errors.Is(err, keys.ErrErased) {
			t.Fatalf("%s after the erasure: %v", name, err)
		}
		if tr != nil && (v.SealKey == nil || v.SealKey.State != store.KeyDestroyed) {
			t.Fatalf("postgres %s after the erasure: seal key %+v, want destroyed", name, v.SealKey)
		}
	}
}

// TestWriteReadsKeysOnce: on PostgreSQL the writer reads the keys that a
// batch's versions are sealed under, and the keys it stores, in one
// statement (where it read each with one of its own: a round trip per
// patient), and still refuses a version sealed under a retired key and
// a new key whose id another key holds.
func TestWriteReadsKeysOnce(t *testing.T) {
	tr := pgtest.Trace(t)
	raw, err := postgres.Open(context.Background(), pgtest.URL(t), sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	ctx := context.Background()
	m := resealManager(t, raw)
	m.SetPatientCache(100, time.Hour)
	write := func(patient, id string, version int64) store.Write {
		kid, err := m.PatientKey(ctx, "a", patient)
		if err != nil {
			t.Fatal(err)
		}
		body, err := m.Seal(kid, []byte(`{}`), seal.AAD("a", "Observation", id, version))
		if err != nil {
			t.Fatal(err)
		}
		return store.Write{Tenant: "a", Type: "Observation", ID: id, Version: version, LastUpdated: time.Now(), Body: body, NewKey: m.PendingKey(kid)}
	}
	keyReads := func(mark int) int { return len(tr.Since(mark, "FROM keys WHERE id")) }
	patients := []string{"p0", "p1", "p2", "p3", "p4"}

	// Five new patients in one unit: their keys are checked in one read.
	var ws []store.Write
	for _, p := range patients {
		ws = append(ws, write(p, p+"-o", 1))
	}
	mark := tr.Mark()
	if err := raw.Commit(ctx, &store.Unit{Writes: ws}); err != nil {
		t.Fatal(err)
	}
	if n := keyReads(mark); n != 1 {
		t.Fatalf("%d key reads to store five new patients' keys, want 1: %q", n, tr.Since(mark, "FROM keys WHERE id"))
	}
	for _, p := range patients {
		m.Stored(keys.PatientKeyID("a", p))
	}
	// Five stored patients' keys: one read.
	ws = ws[:0]
	for _, p := range patients {
		ws = append(ws, write(p, p+"-o", 2))
	}
	mark = tr.Mark()
	if err := raw.Commit(ctx, &store.Unit{Writes: ws}); err != nil {
		t.Fatal(err)
	}
	if n := keyReads(mark); n != 1 {
		t.Fatalf("%d key reads for versions under five patients' keys, want 1: %q", n, tr.Since(mark, "FROM keys WHERE id"))
	}
	// Retired elsewhere: refused, nothing stored.
	if err := raw.Commit(ctx, &store.Unit{Parts: []store.Part{store.RetireKey{ID: keys.PatientKeyID("a", "p3")}}}); err != nil {
		t.Fatal(err)
	}
	ws = ws[:0]
	for _, p := range patients {
		ws = append(ws, write(p, p+"-o", 3))
	}
	if err := raw.Commit(ctx, &store.Unit{Writes: ws}); !errors.Is(err, store.ErrKeyRetired) {
		t.Fatalf("a version under a retired key: %v, want ErrKeyRetired", err)
	}
	if v, err := raw.Current(ctx, "a", "Observation", "p0-o"); err != nil || v.Version != 2 {
		t.Fatalf("p0-o after a refused unit: %v, %v", v, err)
	}
	// A new key whose id another key holds: a conflict.
	w := write("p1", "p1-x", 1)
	w.NewKey = &store.Key{ID: keys.PatientKeyID("a", "p1"), Purpose: keys.DataKeyPurpose, Tenant: "a", Scope: store.PatientScopePrefix + "p1", Version: 1, Wrapped: []byte("another key"), Created: time.Now()}
	if err := raw.Commit(ctx, &store.Unit{Writes: []store.Write{write("p0", "p0-x", 1), w}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a new key under a taken id: %v, want ErrConflict", err)
	}
}

// TestNewPatientKeyNoRead: the key of a Patient created under an id just
// drawn at random (WithNewPatient) is made without reading the store;
// without the mark, PatientKey reads it first. A wrong mark weakens
// nothing: the write storing a key under an id another key holds is
// refused (ErrConflict), and one under a destroyed key's id too.
func TestNewPatientKeyNoRead(t *testing.T) {
	for _, b := range bothStores {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			raw := b.open(t)
			st := &stateCounter{Store: raw}
			m := resealManager(t, st)
			m.SetPatientCache(100, time.Hour)
			create := func(m *keys.Manager, ctx context.Context, p string) error {
				kid, err := m.PatientKey(ctx, "a", p)
				if err != nil {
					return err
				}
				body, err := m.Seal(kid, []byte(`{}`), seal.AAD("a", "Patient", p, 1))
				if err != nil {
					t.Fatal(err)
				}
				err = raw.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Patient", ID: p, Version: 1, LastUpdated: time.Now(), Body: body, NewKey: m.PendingKey(kid)}}})
				if err == nil {
					m.Stored(kid)
				}
				return err
			}
			r0 := st.byID.Load()
			if err := create(m, keys.WithNewPatient(ctx, "a", "new1"), "new1"); err != nil {
				t.Fatal(err)
			}
			if n := st.byID.Load() - r0; n != 0 {
				t.Fatalf("%d key reads for a new Patient's key, want 0", n)
			}
			r0 = st.byID.Load()
			if err := create(m, ctx, "new2"); err != nil {
				t.Fatal(err)
			}
			if n := st.byID.Load() - r0; n != 1 {
				t.Fatalf("%d key reads for an unmarked Patient's key, want 1", n)
			}
			// Another node marks an id whose key exists: refused.
			other := resealManager(t, st)
			if err := create(other, keys.WithNewPatient(ctx, "a", "new1"), "new1"); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("a marked id whose key exists: %v, want ErrConflict", err)
			}
			// And one whose key was destroyed.
			if err := raw.Commit(ctx, &store.Unit{Parts: []store.Part{store.DestroyKey{ID: keys.PatientKeyID("a", "new2")}}}); err != nil {
				t.Fatal(err)
			}
			other = resealManager(t, st)
			kid, err := other.PatientKey(keys.WithNewPatient(ctx, "a", "new2"), "a", "new2")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := other.Seal(kid, []byte(`{}`), seal.AAD("a", "Observation", "x", 1))
			err = raw.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Observation", ID: "x", Version: 1, LastUpdated: time.Now(), Body: body, NewKey: other.PendingKey(kid)}}})
			if !errors.Is(err, store.ErrKeyRetired) {
				t.Fatalf("a marked id whose key was destroyed: %v, want ErrKeyRetired", err)
			}
		})
	}
}
