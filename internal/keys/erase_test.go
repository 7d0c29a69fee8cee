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
	kid, err := m.PatientKey(ctx, "a", "p1")
	if err != nil {
		t.Fatal(err)
	}
	aad := seal.AAD("a", "Patient", "p1", 1)
	body, err := m.Seal(kid, []byte(`{}`), aad)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, &store.Unit{Writes: []store.Write{{Tenant: "a", Type: "Patient", ID: "p1", Version: 1, LastUpdated: time.Now(), Body: body, NewKey: m.PendingKey(kid)}}}); err != nil {
		t.Fatal(err)
	}
	m.Stored(kid)
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
