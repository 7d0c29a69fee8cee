package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/sqlite"
	"github.com/wardhealth/ward/internal/store/sqlstore"
	"github.com/wardhealth/ward/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ward.db"), sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// Two processes (here: two handles) on one file keep one chain: the CLI
// writes to the ledger while the server runs.
func TestTwoWritersOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ward.db")
	ctx := context.Background()
	a, err := sqlite.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := sqlite.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	storetest.InterleavedWriters(t, a, b)
	storetest.GuardsAcrossWriters(t, a, b)
}

func BenchmarkLedgerAppend(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ward.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchmarkLedgerAppend(b, st)
}
