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
)

// TestDestroyedPatientKeyCached: a node that holds a patient's key
// unwrapped in its cache refuses to open a version sealed under it as
// soon as another node destroyed it in the store (ErrErased), within the
// cache lifetime.
func TestDestroyedPatientKeyCached(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "w.db"))
	m := resealManager(t, st)
	m.SetPatientCache(10, time.Hour)
	kid, body, aad := storePatientVersion(t, m, st, "p1", "Patient", "p1")
	if _, err := m.Open(body, aad); err != nil {
		t.Fatal(err)
	}
	// Another node destroys it: this one is told nothing.
	if err := st.Commit(ctx, &store.Unit{Parts: []store.Part{store.DestroyKey{ID: kid}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Open(body, aad); !errors.Is(err, keys.ErrErased) {
		t.Fatalf("open under a destroyed cached key: %v", err)
	}
	if _, err := m.PatientKey(ctx, "a", "p1"); !errors.Is(err, keys.ErrErased) {
		t.Fatalf("seal under a destroyed key: %v", err)
	}
}

// storePatientVersion seals an empty version 1 of typ/id in tenant "a"
// under patient's key (made here) and commits it with that key, as a
// write does.
func storePatientVersion(t *testing.T, m *keys.Manager, st store.Store, patient, typ, id string) (kid string, body, aad []byte) {
	t.Helper()
	ctx := context.Background()
	kid, err := m.PatientKey(ctx, "a", patient)
	if err != nil {
		t.Fatal(err)
	}
	aad = seal.AAD("a", typ, id, 1)
	if body, err = m.Seal(kid, []byte(`{}`), aad); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: typ, ID: id, Version: 1, LastUpdated: time.Now(), Body: body, NewKey: m.PendingKey(kid)}}}); err != nil {
		t.Fatal(err)
	}
	m.Stored(kid)
	return kid, body, aad
}
