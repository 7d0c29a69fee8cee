package postgres_test

import (
	"context"
	"testing"

	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/sqlstore"
	"github.com/wardhealth/ward/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		st, err := postgres.Open(context.Background(), pgtest.URL(t), sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	})
}

// Two nodes on one database keep one chain: their batches serialise on the
// audit head row.
func TestTwoNodesOneDatabase(t *testing.T) {
	u := pgtest.URL(t)
	ctx := context.Background()
	a, err := postgres.Open(ctx, u, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, u, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	storetest.InterleavedWriters(t, a, b)
	storetest.GuardsAcrossWriters(t, a, b)
}

func TestRebind(t *testing.T) {
	cases := map[string]string{
		"SELECT 1":                     "SELECT 1",
		"a = ? AND b = ?":              "a = $1 AND b = $2",
		"VALUES (?, ?), (?, ?)":        "VALUES ($1, $2), ($3, $4)",
		"x IN (?,?,?,?,?,?,?,?,?,?,?)": "x IN ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)",
	}
	for in, want := range cases {
		if got := postgres.Rebind(in); got != want {
			t.Errorf("Rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkLedgerAppend(b *testing.B) {
	st, err := postgres.Open(context.Background(), pgtest.URL(b), sqlstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	storetest.BenchmarkLedgerAppend(b, st)
}
