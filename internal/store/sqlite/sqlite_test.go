package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

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

// TestCurrentBodiesMigration runs migration 00016's Up section on rows
// written before it (the column dropped again to get that schema) and
// checks that every current row then holds its current version's body,
// deleted ones none, also after later writes by a store opened on it.
func TestCurrentBodiesMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ward.db")
	ctx := context.Background()
	open := func() *sqlstore.DB {
		t.Helper()
		st, err := sqlite.Open(ctx, path, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	now := time.Now().UTC()
	commit := func(st *sqlstore.DB, ws ...store.Write) {
		t.Helper()
		if err := st.Commit(ctx, &store.Unit{Writes: ws}); err != nil {
			t.Fatal(err)
		}
	}
	w := func(id string, v int64, body string) store.Write {
		return store.Write{Tenant: "t", Type: "Patient", ID: id, Version: v, LastUpdated: now, Body: []byte(body), Deleted: body == ""}
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	differ := func() (n, bodies int) {
		t.Helper()
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(SUM(r.body IS NOT v.body), 0), COUNT(r.body)
			FROM resources r JOIN resource_versions v ON v.seq = r.seq`).Scan(&n, &bodies); err != nil {
			t.Fatal(err)
		}
		return n, bodies
	}
	st := open()
	commit(st, w("a", 1, "a1"), w("b", 1, "b1"), w("gone", 1, "g1"))
	commit(st, w("a", 2, "a2"), w("gone", 2, ""))
	st.Close()
	// The schema as it was before 00016, with these rows in it.
	if _, err := db.ExecContext(ctx, `ALTER TABLE resources DROP COLUMN body`); err != nil {
		t.Fatal(err)
	}
	storetest.MigrateUp(t, db, "migrations/00016_current_bodies.sql")
	if n, bodies := differ(); n != 0 || bodies != 2 {
		t.Fatalf("after the migration: %d rows differ from their current version, %d bodies (want 0 and 2)", n, bodies)
	}
	st = open()
	defer st.Close()
	commit(st, w("b", 2, "b2"), w("c", 1, "c1"), w("c", 2, "c2"), w("gone", 3, "g3"))
	commit(st, w("a", 3, ""))
	if n, bodies := differ(); n != 0 || bodies != 3 {
		t.Fatalf("after writes: %d rows differ from their current version, %d bodies (want 0 and 3)", n, bodies)
	}
}

func BenchmarkCreateOutbox(b *testing.B) {
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ward.db"), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchmarkCreateOutbox(b, st, nil)
}
