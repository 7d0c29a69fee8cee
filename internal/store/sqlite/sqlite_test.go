package sqlite_test

import (
	"context"
	"database/sql"
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
	storetest.OutboxAcrossWriters(t, a, b)
}

func BenchmarkLedgerAppend(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ward.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchmarkLedgerAppend(b, st)
}

// TestBodiesOnceMigration: migration 00058 drops the copy of the current
// body from resources on a populated database (the schema before it made
// by its Down section, which fills the copy as 00016 did), frees its
// pages, and every read still returns the right bodies, also after later
// writes.
func TestBodiesOnceMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ward.db")
	ctx := context.Background()
	const n = 200
	st, err := sqlite.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	storetest.WriteUpgradeData(t, st, n)
	st.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	size := func() (bytes int64, copies int) {
		t.Helper()
		if err := db.QueryRowContext(ctx, `SELECT SUM(pgsize) FROM dbstat WHERE name = 'resources'`).Scan(&bytes); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('resources') WHERE name = 'body'`).Scan(&copies); err != nil {
			t.Fatal(err)
		}
		return bytes, copies
	}
	// The schema as it was before 00058, with these rows and their copies.
	storetest.MigrateDown(t, db, "migrations/00058_bodies_once.sql")
	before, col := size()
	if col != 1 || before < n*2048 {
		t.Fatalf("before the migration: body column %d, resources %d bytes", col, before)
	}
	storetest.MigrateUp(t, db, "migrations/00058_bodies_once.sql")
	after, col := size()
	t.Logf("resources: %d bytes before, %d after", before, after)
	if col != 0 || after > before/4 {
		t.Fatalf("after the migration: body column %d, resources %d bytes (was %d)", col, after, before)
	}
	st, err = sqlite.Open(ctx, path, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	storetest.CheckUpgradeData(t, st, n)
	storetest.UpdateAfterUpgrade(t, st)
}

func BenchmarkCreateOutbox(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ward.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchmarkCreateOutbox(b, st, nil)
}

// BenchmarkReads: see storetest.BenchmarkReads.
func BenchmarkReads(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ward.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchmarkReads(b, st)
}
