package keys_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
	"github.com/wardhealth/ward/internal/store/storetest"
)

func open(t *testing.T, path string, kekByte byte) (store.Store, *keys.Manager, error) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kek, _ := seal.NewKEK(bytes.Repeat([]byte{kekByte}, 32))
	m, err := keys.New(context.Background(), st, kek, nil)
	return st, m, err
}

func TestDataKeysPerTenant(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "w.db")
	st, m, err := open(t, path, 1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.DataKey(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.DataKey(ctx, "b")
	if a == b {
		t.Fatal("two tenants share a data key")
	}
	if again, _ := m.DataKey(ctx, "a"); again != a {
		t.Fatal("data key changed")
	}
	env, err := m.Seal(a, []byte("secret"), []byte("aad"))
	if err != nil {
		t.Fatal(err)
	}
	// Key creation is audited; the wrapped key is not the key.
	var created int
	for _, r := range storetest.Records(t, st) {
		if r.Action == "data-key-create" {
			created++
		}
	}
	if created != 2 {
		t.Fatalf("%d key creations audited", created)
	}
	// A second process with the same KEK opens what the first sealed, and
	// derives the same blind indexes.
	_, m2, err := open(t, path, 1)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := m2.Open(env, []byte("aad")); err != nil || string(pt) != "secret" {
		t.Fatalf("second process: %q %v", pt, err)
	}
	b1, _ := m.Blinder(ctx, "a")
	b2, _ := m2.Blinder(ctx, "a")
	bOther, _ := m.Blinder(ctx, "b")
	if b1.Index("family", "smith") != b2.Index("family", "smith") {
		t.Fatal("blind indexes differ between processes")
	}
	if b1.Index("family", "smith") == bOther.Index("family", "smith") {
		t.Fatal("blind indexes equal across tenants")
	}
	// A key created by another process after this one started is loaded
	// when first seen.
	c, _ := m2.DataKey(ctx, "c")
	envC, _ := m2.Seal(c, []byte("later"), nil)
	if pt, err := m.Open(envC, nil); err != nil || string(pt) != "later" {
		t.Fatalf("key from another process: %q %v", pt, err)
	}
	// A different KEK is refused at start.
	if _, _, err := open(t, path, 2); err == nil {
		t.Fatal("wrong KEK accepted")
	}
}
